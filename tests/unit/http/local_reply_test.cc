// Tests for local JSON replies: they must parse as HTTP/1.1 answers whose
// JSON body survives any message or route text, with optional headers only
// when asked for.
#include "proxy/pipeline/local_reply.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "proxy/http/message_parser.h"

namespace airbag::pipeline {
namespace {

// A parsed local reply.
struct Parsed {
  bool ok = false;
  int status = 0;
  std::string status_line;
  http::HeaderList headers;
  std::string body;
  uint64_t content_length = 0;
  bool keep_alive = false;
};

class BodyCollector : public http::MessageParser::Listener {
 public:
  int onHeadersComplete() override { return 0; }
  int onBody(std::string_view d) override {
    body.append(d);
    return 0;
  }
  int onMessageComplete() override { return 0; }
  std::string body;
};

Parsed parse(const std::string& wire) {
  Parsed out;
  BodyCollector c;
  http::MessageParser p(http::MessageParser::Kind::kResponse, &c);
  size_t used = 0;
  if (p.execute(wire.data(), wire.size(), &used) != http::MessageParser::Result::kComplete)
    return out;
  // Exactly one message: nothing trails the body.
  out.ok = used == wire.size();
  out.status = p.status();
  out.status_line = wire.substr(0, wire.find("\r\n"));
  for (size_t i = 0; i < p.headers().size(); ++i)
    out.headers.add(p.headers().name(i), p.headers().value(i));
  out.body = c.body;
  out.content_length = p.contentLength();
  out.keep_alive = p.keepAlive();
  return out;
}

size_t countHeader(const http::HeaderList& h, std::string_view name) {
  size_t n = 0;
  for (size_t i = 0; i < h.size(); ++i) n += http::iequals(h.name(i), name) ? 1 : 0;
  return n;
}

TEST(LocalReplyTest, MinimalReplyParsesAsHttp) {
  LocalReply r;
  r.status = 503;
  r.code = "upstream_unavailable";
  r.message = "no level of the ladder could answer";
  r.route = "chat";
  r.meta.attempts = 3;
  std::string wire = "prefix-kept|";
  appendLocalReply(wire, r);
  ASSERT_EQ(wire.rfind("prefix-kept|", 0), 0u);
  Parsed p = parse(wire.substr(12));
  ASSERT_TRUE(p.ok) << wire;
  EXPECT_EQ(p.status_line, "HTTP/1.1 503 Service Unavailable");
  EXPECT_EQ(p.status, 503);
  EXPECT_EQ(p.content_length, p.body.size());
  EXPECT_EQ(p.headers.get("content-type"), "application/json");
  EXPECT_EQ(p.headers.get("x-airbag-source"), "none");
  EXPECT_EQ(p.headers.get("x-airbag-attempts"), "3");
  EXPECT_FALSE(p.headers.get("retry-after").has_value());
  EXPECT_FALSE(p.headers.get("connection").has_value());
  EXPECT_FALSE(p.headers.get("x-airbag-cache").has_value());
  EXPECT_FALSE(p.headers.get("x-request-id").has_value());
  EXPECT_TRUE(p.keep_alive);

  auto j = nlohmann::json::parse(p.body);
  EXPECT_EQ(j["error"]["code"], "upstream_unavailable");
  EXPECT_EQ(j["error"]["message"], "no level of the ladder could answer");
  EXPECT_EQ(j["error"]["route"], "chat");
  EXPECT_EQ(j.size(), 1u);
}

TEST(LocalReplyTest, RouteIsLeftOutWhenEmpty) {
  LocalReply r;
  r.status = 404;
  r.code = "no_route";
  r.message = "no route matches";
  std::string wire;
  appendLocalReply(wire, r);
  Parsed p = parse(wire);
  ASSERT_TRUE(p.ok) << wire;
  EXPECT_EQ(p.status_line, "HTTP/1.1 404 Not Found");
  auto j = nlohmann::json::parse(p.body);
  EXPECT_FALSE(j["error"].contains("route"));
  EXPECT_EQ(j["error"]["code"], "no_route");
  EXPECT_EQ(p.headers.get("x-airbag-attempts"), "0");
}

TEST(LocalReplyTest, JsonEscapesQuotesBackslashesAndControlCharacters) {
  const std::string message = std::string("say \"hi\"\\ back\n\r\t") + '\x01' + '\x1f' + "end";
  const std::string route = std::string("r\"o\\u\te") + '\0' + "x";
  const std::string code = "bad\"code";
  LocalReply r;
  r.status = 400;
  r.code = code;
  r.message = message;
  r.route = route;
  std::string wire;
  appendLocalReply(wire, r);
  Parsed p = parse(wire);
  ASSERT_TRUE(p.ok) << wire;
  EXPECT_EQ(p.content_length, p.body.size());
  // No raw control character may reach the body except the trailing newline.
  for (size_t i = 0; i + 1 < p.body.size(); ++i)
    EXPECT_GE(static_cast<unsigned char>(p.body[i]), 0x20) << "at " << i << " in " << p.body;
  auto j = nlohmann::json::parse(p.body);
  EXPECT_EQ(j["error"]["message"].get<std::string>(), message);
  EXPECT_EQ(j["error"]["route"].get<std::string>(), route);
  EXPECT_EQ(j["error"]["code"].get<std::string>(), code);
}

TEST(LocalReplyTest, AppendJsonEscaped) {
  std::string out;
  appendJsonEscaped(out, std::string("a\"b\\c\nd") + '\x02' + "\x7f" + "\xc3\xa9");
  EXPECT_EQ(out, "a\\\"b\\\\c\\nd\\u0002\x7f\xc3\xa9");
}

TEST(LocalReplyTest, RetryAfterOnlyWhenAsked) {
  LocalReply r;
  r.status = 429;
  r.code = "shed";
  r.message = "overloaded";
  r.meta.retry_after_seconds = 7;
  std::string wire;
  appendLocalReply(wire, r);
  Parsed p = parse(wire);
  ASSERT_TRUE(p.ok) << wire;
  EXPECT_EQ(p.status_line, "HTTP/1.1 429 Too Many Requests");
  EXPECT_EQ(countHeader(p.headers, "retry-after"), 1u);
  EXPECT_EQ(p.headers.get("retry-after"), "7");

  r.meta.retry_after_seconds = 0;
  wire.clear();
  appendLocalReply(wire, r);
  p = parse(wire);
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(p.headers.get("retry-after"), "0");
}

TEST(LocalReplyTest, ConnectionHeaderOnlyWhenAsked) {
  LocalReply r;
  r.code = "c";
  r.message = "m";

  r.meta.close = true;
  std::string wire;
  appendLocalReply(wire, r);
  Parsed p = parse(wire);
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(countHeader(p.headers, "connection"), 1u);
  EXPECT_EQ(p.headers.get("connection"), "close");
  EXPECT_FALSE(p.keep_alive);

  // close wins over the HTTP/1.0 keep-alive echo.
  r.meta.http10_keep_alive = true;
  wire.clear();
  appendLocalReply(wire, r);
  p = parse(wire);
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(countHeader(p.headers, "connection"), 1u);
  EXPECT_EQ(p.headers.get("connection"), "close");

  r.meta.close = false;
  wire.clear();
  appendLocalReply(wire, r);
  p = parse(wire);
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(countHeader(p.headers, "connection"), 1u);
  EXPECT_EQ(p.headers.get("connection"), "keep-alive");
}

TEST(LocalReplyTest, CacheAndRequestIdHeadersOnlyWhenAsked) {
  LocalReply r;
  r.status = 504;
  r.code = "timeout";
  r.message = "deadline";
  r.meta.cache = "miss";
  r.meta.request_id = "req-42";
  std::string wire;
  appendLocalReply(wire, r);
  Parsed p = parse(wire);
  ASSERT_TRUE(p.ok) << wire;
  EXPECT_EQ(p.status_line, "HTTP/1.1 504 Gateway Timeout");
  EXPECT_EQ(countHeader(p.headers, "x-airbag-cache"), 1u);
  EXPECT_EQ(p.headers.get("x-airbag-cache"), "miss");
  EXPECT_EQ(p.headers.get("x-request-id"), "req-42");
}

TEST(LocalReplyTest, ContentLengthMatchesForLongText) {
  const std::string message(5000, 'm');
  const std::string route(300, 'r');
  LocalReply r;
  r.status = 500;
  r.code = "internal";
  r.message = message;
  r.route = route;
  std::string wire;
  appendLocalReply(wire, r);
  Parsed p = parse(wire);
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(p.content_length, p.body.size());
  EXPECT_GT(p.body.size(), 5300u);
  EXPECT_EQ(nlohmann::json::parse(p.body)["error"]["message"], message);
}

}  // namespace
}  // namespace airbag::pipeline
