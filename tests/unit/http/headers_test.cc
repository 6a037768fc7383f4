// Tests for header helpers: case-insensitive names, hop-by-hop names, token
// lists, and the arena-backed HeaderList.
#include "proxy/http/headers.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <string_view>

namespace airbag::http {
namespace {

TEST(HeadersTest, IequalsIgnoresAsciiCaseOnly) {
  EXPECT_TRUE(iequals("", ""));
  EXPECT_TRUE(iequals("Content-Length", "content-length"));
  EXPECT_TRUE(iequals("X-AIRBAG-CACHE", "x-airbag-cache"));
  EXPECT_TRUE(iequals("a1-_~", "A1-_~"));
  EXPECT_FALSE(iequals("content-length", "content-lengt"));
  EXPECT_FALSE(iequals("abc", "abd"));
  EXPECT_FALSE(iequals("a", ""));
  // Only letters fold: '[' (0x5b) is not '{' (0x7b), '@' is not '`'.
  EXPECT_FALSE(iequals("[", "{"));
  EXPECT_FALSE(iequals("@", "`"));
}

TEST(HeadersTest, AllNineHopByHopNamesInAnyCase) {
  for (std::string_view name :
       {"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
        "TE", "Trailer", "Transfer-Encoding", "Upgrade"}) {
    std::string lower(name), upper(name);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_TRUE(isHopByHop(name)) << name;
    EXPECT_TRUE(isHopByHop(lower)) << lower;
    EXPECT_TRUE(isHopByHop(upper)) << upper;
  }
}

TEST(HeadersTest, EndToEndNamesAreNotHopByHop) {
  for (std::string_view name :
       {"", "Content-Length", "Content-Type", "Host", "Cache-Control", "Authorization", "Trailers",
        "Connections", "T", "Upgrade-Insecure-Requests", "Proxy", "Keep-Alive2", "x-airbag-cache",
        "Accept", "Transfer", "Te-"}) {
    EXPECT_FALSE(isHopByHop(name)) << name;
  }
}

TEST(HeadersTest, HeaderHasToken) {
  EXPECT_TRUE(headerHasToken("close", "close"));
  EXPECT_TRUE(headerHasToken("Close", "close"));
  EXPECT_TRUE(headerHasToken("keep-alive, Upgrade", "upgrade"));
  EXPECT_TRUE(headerHasToken("  gzip ,\tchunked\t", "chunked"));
  EXPECT_TRUE(headerHasToken("a,,b", "b"));
  EXPECT_TRUE(headerHasToken("no-cache, no-store", "no-store"));
  EXPECT_FALSE(headerHasToken("", "close"));
  EXPECT_FALSE(headerHasToken("closed", "close"));
  EXPECT_FALSE(headerHasToken("keep-alive", "alive"));
  EXPECT_FALSE(headerHasToken("gzip, deflate", "chunked"));
  EXPECT_FALSE(headerHasToken("no-cache", "cache"));
}

TEST(HeadersTest, HeaderListAddAndGet) {
  HeaderList h;
  EXPECT_EQ(h.size(), 0u);
  EXPECT_FALSE(h.get("host").has_value());
  h.add("Host", "example");
  h.add("Accept", "*/*");
  h.add("accept", "text/plain");
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h.name(0), "Host");
  EXPECT_EQ(h.value(0), "example");
  EXPECT_EQ(h.get("HOST"), "example");
  // get() returns the first of repeated headers.
  EXPECT_EQ(h.get("ACCEPT"), "*/*");
  EXPECT_EQ(h.name(2), "accept");
  EXPECT_EQ(h.value(2), "text/plain");
  EXPECT_FALSE(h.get("Accep").has_value());
}

TEST(HeadersTest, HeaderListIncrementalBuilding) {
  HeaderList h;
  h.beginName();
  h.appendName("Conte");
  h.appendName("nt-Ty");
  h.appendName("pe");
  h.beginValue();
  h.appendValue("application/");
  h.appendValue("json");
  h.beginName();
  h.appendName("X-Empty");
  h.beginValue();
  h.beginName();
  h.appendName("X");
  h.beginValue();
  h.appendValue("1");
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h.name(0), "Content-Type");
  EXPECT_EQ(h.value(0), "application/json");
  EXPECT_EQ(h.name(1), "X-Empty");
  EXPECT_EQ(h.value(1), "");
  EXPECT_EQ(h.name(2), "X");
  EXPECT_EQ(h.value(2), "1");
  EXPECT_EQ(h.get("content-type"), "application/json");
  EXPECT_EQ(h.get("x-empty"), "");
}

TEST(HeadersTest, HeaderListViewsSurviveArenaGrowth) {
  // Views are offsets into one arena: adding many headers must not corrupt
  // earlier ones even when the arena reallocates.
  HeaderList h;
  for (int i = 0; i < 200; ++i) h.add("Name-" + std::to_string(i), std::string(i, 'v'));
  ASSERT_EQ(h.size(), 200u);
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(h.name(i), "Name-" + std::to_string(i));
    EXPECT_EQ(h.value(i), std::string(i, 'v'));
  }
  EXPECT_EQ(h.get("name-199"), std::string(199, 'v'));
}

TEST(HeadersTest, HeaderListClearStartsOver) {
  HeaderList h;
  h.add("A", "1");
  h.add("B", "2");
  h.clear();
  EXPECT_EQ(h.size(), 0u);
  EXPECT_FALSE(h.get("a").has_value());
  h.add("C", "3");
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h.name(0), "C");
  EXPECT_EQ(h.value(0), "3");
}

TEST(IsValidHostTest, AcceptsHostsAndPortsAndRefusesTheRest) {
  for (std::string_view ok : {"a", "a:80", "x.example", "127.0.0.1:18000", "[::1]", "[::1]:8080",
                              "[2001:db8::a]:1", "my_host-1.internal", "a%20b"})
    EXPECT_TRUE(isValidHost(ok)) << ok;
  for (std::string_view bad : {"", "4 x", "a/b", "a:port", ":80", "a:", "[::1", "[]", "[::1]x",
                               "[::1]:", "a:123456", "a@b", "[zz::1]", "a\tb"})
    EXPECT_FALSE(isValidHost(bad)) << bad;
}

}  // namespace
}  // namespace airbag::http
