// Tests for the text-building helpers and the reason phrase table.
#include "proxy/http/text.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "proxy/http/status.h"

namespace airbag::http {
namespace {

std::string decimal(int64_t v) {
  std::string s;
  appendDecimal(s, v);
  return s;
}

std::string hex(uint64_t v) {
  std::string s;
  appendHexNumber(s, v);
  return s;
}

TEST(TextTest, AppendDecimal) {
  EXPECT_EQ(decimal(0), "0");
  EXPECT_EQ(decimal(7), "7");
  EXPECT_EQ(decimal(10), "10");
  EXPECT_EQ(decimal(1234567890), "1234567890");
  EXPECT_EQ(decimal(-1), "-1");
  EXPECT_EQ(decimal(-10), "-10");
  EXPECT_EQ(decimal(-987654321), "-987654321");
  EXPECT_EQ(decimal(std::numeric_limits<int64_t>::max()), "9223372036854775807");
  EXPECT_EQ(decimal(std::numeric_limits<int64_t>::min()), "-9223372036854775808");
  for (int64_t v : {int64_t{1}, int64_t{99}, int64_t{-99}, int64_t{100000}, int64_t{-4096}})
    EXPECT_EQ(decimal(v), std::to_string(v));
}

TEST(TextTest, AppendDecimalAppendsToExistingText) {
  std::string s = "n=";
  appendDecimal(s, 42);
  appendDecimal(s, -3);
  EXPECT_EQ(s, "n=42-3");
}

TEST(TextTest, AppendHexNumber) {
  EXPECT_EQ(hex(0), "0");
  EXPECT_EQ(hex(9), "9");
  EXPECT_EQ(hex(10), "a");
  EXPECT_EQ(hex(255), "ff");
  EXPECT_EQ(hex(256), "100");
  EXPECT_EQ(hex(0x1234abcd), "1234abcd");
  EXPECT_EQ(hex(std::numeric_limits<uint64_t>::max()), "ffffffffffffffff");
  std::string s = "chunk:";
  appendHexNumber(s, 4096);
  EXPECT_EQ(s, "chunk:1000");
}

TEST(TextTest, AppendMixedArguments) {
  std::string s = ">";
  const std::string owned = "owned";
  std::string_view view = "view";
  append(s, "lit ", owned, ' ', view, ' ', 42, ' ', -7, ' ', uint16_t{65535}, ' ', int64_t{-1}, ' ',
         'c', size_t{0});
  EXPECT_EQ(s, ">lit owned view 42 -7 65535 -1 c0");
}

TEST(TextTest, AppendStatusLine) {
  std::string s;
  append(s, "HTTP/1.1 ", 503, " ", reasonPhrase(503), "\r\n");
  EXPECT_EQ(s, "HTTP/1.1 503 Service Unavailable\r\n");
}

TEST(TextTest, StartsWithIgnoreCase) {
  EXPECT_TRUE(startsWithIgnoreCase("Content-Length: 5", "content-length"));
  EXPECT_TRUE(startsWithIgnoreCase("BEARER abc", "Bearer "));
  EXPECT_TRUE(startsWithIgnoreCase("anything", ""));
  EXPECT_TRUE(startsWithIgnoreCase("", ""));
  EXPECT_TRUE(startsWithIgnoreCase("abc", "ABC"));
  EXPECT_FALSE(startsWithIgnoreCase("ab", "abc"));
  EXPECT_FALSE(startsWithIgnoreCase("text/html", "text/plain"));
  EXPECT_FALSE(startsWithIgnoreCase("", "a"));
  EXPECT_FALSE(startsWithIgnoreCase("[x", "{x"));
}

TEST(StatusTest, ReasonPhrases) {
  EXPECT_EQ(reasonPhrase(200), "OK");
  EXPECT_EQ(reasonPhrase(204), "No Content");
  EXPECT_EQ(reasonPhrase(304), "Not Modified");
  EXPECT_EQ(reasonPhrase(400), "Bad Request");
  EXPECT_EQ(reasonPhrase(404), "Not Found");
  EXPECT_EQ(reasonPhrase(413), "Content Too Large");
  EXPECT_EQ(reasonPhrase(429), "Too Many Requests");
  EXPECT_EQ(reasonPhrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reasonPhrase(499), "Client Closed Request");
  EXPECT_EQ(reasonPhrase(500), "Internal Server Error");
  EXPECT_EQ(reasonPhrase(502), "Bad Gateway");
  EXPECT_EQ(reasonPhrase(503), "Service Unavailable");
  EXPECT_EQ(reasonPhrase(504), "Gateway Timeout");
}

TEST(StatusTest, UnknownStatusHasGenericPhrase) {
  EXPECT_EQ(reasonPhrase(0), "Unknown");
  EXPECT_EQ(reasonPhrase(299), "Unknown");
  EXPECT_EQ(reasonPhrase(599), "Unknown");
  EXPECT_EQ(reasonPhrase(-1), "Unknown");
  EXPECT_EQ(reasonPhrase(1000), "Unknown");
}

TEST(StatusTest, EveryKnownPhraseIsNonEmptyAndPrintable) {
  for (int s = 100; s < 600; ++s) {
    std::string_view p = reasonPhrase(s);
    ASSERT_FALSE(p.empty()) << s;
    for (char c : p) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << s;
  }
}

TEST(BoundedWriterTest, WritesLikeAppendAndTrimsToWhatWasWritten) {
  std::string viaAppend = "HTTP/1.1 ";
  std::string viaWriter = "HTTP/1.1 ";
  const std::string owned = "owned";
  append(viaAppend, 200, ' ', std::string_view("OK"), "\r\n", owned, int64_t{-42}, uint64_t{0},
         std::numeric_limits<int64_t>::min());
  {
    BoundedWriter w(viaWriter, 256);
    w.add(200, ' ', std::string_view("OK"), "\r\n", owned, int64_t{-42}, uint64_t{0},
          std::numeric_limits<int64_t>::min());
    // Until the writer goes, the string holds the whole bound.
    EXPECT_EQ(viaWriter.size(), 9u + 256u);
  }
  EXPECT_EQ(viaWriter, viaAppend);
  EXPECT_EQ(viaWriter, "HTTP/1.1 200 OK\r\nowned-420-9223372036854775808");
}

TEST(BoundedWriterTest, ExactBoundIsEnough) {
  std::string out;
  {
    BoundedWriter w(out, 2 + BoundedWriter::kMaxDecimal);
    w.add("ab", std::numeric_limits<uint64_t>::max() >> 1);
  }
  EXPECT_EQ(out, "ab9223372036854775807");
}

}  // namespace
}  // namespace airbag::http
