// Tests for MessageParser: incremental requests and responses, pipelining,
// framing errors, de-chunking and close-delimited answers.
#include "proxy/http/message_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace airbag::http {
namespace {

using Result = MessageParser::Result;

// Records what the parser hands over, in order.
class RecordingListener : public MessageParser::Listener {
 public:
  int onHeadersComplete() override {
    events.push_back("headers");
    return headers_result;
  }
  int onBody(std::string_view data) override {
    events.push_back("body");
    body.append(data);
    return body_result;
  }
  int onMessageComplete() override {
    events.push_back("complete");
    ++completed;
    return 0;
  }

  std::vector<std::string> events;
  std::string body;
  int completed = 0;
  int headers_result = 0;
  int body_result = 0;
};

// Feeds `data` in pieces of `step` bytes until the parser completes a message
// or fails; `consumed` is the total taken from `data`.
Result feed(MessageParser& parser, std::string_view data, size_t step, size_t* consumed) {
  *consumed = 0;
  Result r = Result::kNeedMore;
  while (*consumed < data.size()) {
    size_t n = std::min(step, data.size() - *consumed);
    size_t used = 0;
    r = parser.execute(data.data() + *consumed, n, &used);
    *consumed += used;
    if (r != Result::kNeedMore) return r;
    EXPECT_EQ(used, n) << "kNeedMore must consume everything it was given";
  }
  return r;
}

constexpr std::string_view kPost =
    "POST /v1/chat/completions?stream=false HTTP/1.1\r\n"
    "Host: model.local\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 11\r\n"
    "\r\n"
    "{\"a\":\"bcd\"}";

TEST(MessageParserTest, RequestSplitByteByByte) {
  RecordingListener l;
  MessageParser p(MessageParser::Kind::kRequest, &l);
  for (size_t i = 0; i < kPost.size(); ++i) {
    size_t used = 0;
    Result r = p.execute(kPost.data() + i, 1, &used);
    if (i + 1 < kPost.size()) {
      ASSERT_EQ(r, Result::kNeedMore) << "at byte " << i;
      ASSERT_EQ(used, 1u);
    } else {
      ASSERT_EQ(r, Result::kComplete);
      EXPECT_EQ(used, 1u);
    }
  }
  EXPECT_TRUE(p.started());
  EXPECT_TRUE(p.headersComplete());
  EXPECT_EQ(p.method(), "POST");
  EXPECT_EQ(p.url(), "/v1/chat/completions?stream=false");
  EXPECT_EQ(p.versionMajor(), 1);
  EXPECT_EQ(p.versionMinor(), 1);
  ASSERT_EQ(p.headers().size(), 3u);
  EXPECT_EQ(p.headers().name(0), "Host");
  EXPECT_EQ(p.headers().value(0), "model.local");
  EXPECT_EQ(p.headers().name(1), "Content-Type");
  EXPECT_EQ(p.headers().value(1), "application/json");
  EXPECT_EQ(p.headers().get("content-length"), "11");
  EXPECT_TRUE(p.hasContentLength());
  EXPECT_EQ(p.contentLength(), 11u);
  EXPECT_FALSE(p.chunked());
  EXPECT_EQ(l.body, "{\"a\":\"bcd\"}");
  ASSERT_FALSE(l.events.empty());
  EXPECT_EQ(l.events.front(), "headers");
  EXPECT_EQ(l.events.back(), "complete");
  EXPECT_EQ(l.completed, 1);
}

TEST(MessageParserTest, PipelinedRequestsOneAtATime) {
  const std::string first = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string second = std::string(kPost);
  const std::string third = "DELETE /c HTTP/1.1\r\nHost: z\r\nContent-Length: 0\r\n\r\n";
  const std::string all = first + second + third;

  RecordingListener l;
  MessageParser p(MessageParser::Kind::kRequest, &l);
  size_t used = 0;
  ASSERT_EQ(p.execute(all.data(), all.size(), &used), Result::kComplete);
  EXPECT_EQ(used, first.size());
  EXPECT_EQ(p.method(), "GET");
  EXPECT_EQ(p.url(), "/a");
  EXPECT_EQ(p.headers().get("host"), "x");
  EXPECT_EQ(l.completed, 1);

  // Without reset() the parser stays on the finished message.
  size_t again = 99;
  EXPECT_EQ(p.execute(all.data() + used, all.size() - used, &again), Result::kComplete);
  EXPECT_EQ(again, 0u);
  EXPECT_EQ(l.completed, 1);

  size_t offset = used;
  p.reset();
  EXPECT_FALSE(p.started());
  EXPECT_EQ(p.headers().size(), 0u);
  ASSERT_EQ(p.execute(all.data() + offset, all.size() - offset, &used), Result::kComplete);
  EXPECT_EQ(used, second.size());
  EXPECT_EQ(p.method(), "POST");
  EXPECT_EQ(p.url(), "/v1/chat/completions?stream=false");
  EXPECT_EQ(p.headers().get("Host"), "model.local");
  EXPECT_EQ(l.body, "{\"a\":\"bcd\"}");
  EXPECT_EQ(l.completed, 2);

  offset += used;
  p.reset();
  ASSERT_EQ(p.execute(all.data() + offset, all.size() - offset, &used), Result::kComplete);
  EXPECT_EQ(used, third.size());
  EXPECT_EQ(p.method(), "DELETE");
  EXPECT_EQ(p.url(), "/c");
  EXPECT_EQ(p.headers().get("host"), "z");
  EXPECT_EQ(l.completed, 3);
  EXPECT_EQ(offset + used, all.size());
}

TEST(MessageParserTest, HeadersSplitAtEveryOffsetStayIntact) {
  const std::string req =
      "GET /models HTTP/1.1\r\n"
      "Host: upstream.example\r\n"
      "X-Request-Id: abc-123\r\n"
      "Accept-Encoding: gzip, br\r\n"
      "\r\n";
  for (size_t split = 1; split < req.size(); ++split) {
    RecordingListener l;
    MessageParser p(MessageParser::Kind::kRequest, &l);
    size_t used = 0;
    ASSERT_EQ(p.execute(req.data(), split, &used), Result::kNeedMore) << "split " << split;
    ASSERT_EQ(p.execute(req.data() + split, req.size() - split, &used), Result::kComplete)
        << "split " << split;
    ASSERT_EQ(p.headers().size(), 3u) << "split " << split;
    EXPECT_EQ(p.headers().name(0), "Host") << "split " << split;
    EXPECT_EQ(p.headers().value(0), "upstream.example") << "split " << split;
    EXPECT_EQ(p.headers().name(1), "X-Request-Id") << "split " << split;
    EXPECT_EQ(p.headers().value(1), "abc-123") << "split " << split;
    EXPECT_EQ(p.headers().name(2), "Accept-Encoding") << "split " << split;
    EXPECT_EQ(p.headers().value(2), "gzip, br") << "split " << split;
    EXPECT_EQ(p.url(), "/models") << "split " << split;
  }
}

TEST(MessageParserTest, EmptyHeaderValueKeepsNextHeaderSeparate) {
  const std::string req = "GET / HTTP/1.1\r\nX-Empty:\r\nHost: h\r\nX-Last: v\r\n\r\n";
  RecordingListener l;
  MessageParser p(MessageParser::Kind::kRequest, &l);
  size_t used = 0;
  ASSERT_EQ(p.execute(req.data(), req.size(), &used), Result::kComplete);
  ASSERT_EQ(p.headers().size(), 3u);
  EXPECT_EQ(p.headers().name(0), "X-Empty");
  EXPECT_EQ(p.headers().value(0), "");
  EXPECT_EQ(p.headers().name(1), "Host");
  EXPECT_EQ(p.headers().value(1), "h");
  EXPECT_EQ(p.headers().get("x-last"), "v");
}

TEST(MessageParserTest, HeadersLargerThanLimitFail) {
  const std::string req =
      "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(300, 'a') + "\r\n\r\n";
  RecordingListener l;
  MessageParser p(MessageParser::Kind::kRequest, &l);
  p.setMaxHeaderBytes(128);
  size_t used = 0;
  EXPECT_EQ(feed(p, req, req.size(), &used), Result::kError);
  EXPECT_EQ(p.error(), MessageParser::Error::kHeadersTooLarge);
  EXPECT_EQ(l.completed, 0);
  EXPECT_TRUE(l.events.empty());

  // The same head under a larger limit is fine.
  RecordingListener l2;
  MessageParser p2(MessageParser::Kind::kRequest, &l2);
  p2.setMaxHeaderBytes(1024);
  EXPECT_EQ(feed(p2, req, req.size(), &used), Result::kComplete);
  EXPECT_EQ(p2.error(), MessageParser::Error::kNone);
}

TEST(MessageParserTest, HeadersTooLargeWhenFedInPieces) {
  const std::string req =
      "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(300, 'a') + "\r\n\r\n";
  RecordingListener l;
  MessageParser p(MessageParser::Kind::kRequest, &l);
  p.setMaxHeaderBytes(128);
  size_t used = 0;
  EXPECT_EQ(feed(p, req, 7, &used), Result::kError);
  EXPECT_EQ(p.error(), MessageParser::Error::kHeadersTooLarge);
}

TEST(MessageParserTest, HeadBytesDoNotDependOnHowInputIsSplit) {
  const std::string req =
      "GET /x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer token\r\nX-Long-Header-Name: v\r\n\r\n";
  RecordingListener l1, l2;
  MessageParser whole(MessageParser::Kind::kRequest, &l1);
  MessageParser bytes(MessageParser::Kind::kRequest, &l2);
  size_t used = 0;
  ASSERT_EQ(feed(whole, req, req.size(), &used), Result::kComplete);
  ASSERT_EQ(feed(bytes, req, 1, &used), Result::kComplete);
  EXPECT_EQ(whole.headBytes(), bytes.headBytes());
}

TEST(MessageParserTest, ContentLengthWithTransferEncodingIsMalformed) {
  const std::string req =
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\n\r\n";
  RecordingListener l;
  MessageParser p(MessageParser::Kind::kRequest, &l);
  size_t used = 0;
  EXPECT_EQ(p.execute(req.data(), req.size(), &used), Result::kError);
  EXPECT_EQ(p.error(), MessageParser::Error::kMalformed);
  EXPECT_EQ(l.completed, 0);

  // The other order too.
  const std::string req2 =
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
      "5\r\nhello\r\n0\r\n\r\n";
  RecordingListener l2;
  MessageParser p2(MessageParser::Kind::kRequest, &l2);
  EXPECT_EQ(p2.execute(req2.data(), req2.size(), &used), Result::kError);
  EXPECT_EQ(p2.error(), MessageParser::Error::kMalformed);
}

TEST(MessageParserTest, BadContentLengthIsMalformed) {
  for (std::string_view cl :
       {"Content-Length: abc\r\n", "Content-Length: -1\r\n",
        "Content-Length: 5\r\nContent-Length: 6\r\n", "Content-Length: 1 2\r\n"}) {
    const std::string req = "POST / HTTP/1.1\r\nHost: h\r\n" + std::string(cl) + "\r\nhello!";
    RecordingListener l;
    MessageParser p(MessageParser::Kind::kRequest, &l);
    size_t used = 0;
    EXPECT_EQ(p.execute(req.data(), req.size(), &used), Result::kError) << cl;
    EXPECT_EQ(p.error(), MessageParser::Error::kMalformed) << cl;
    EXPECT_EQ(l.completed, 0) << cl;
  }
}

TEST(MessageParserTest, ResetAfterErrorParsesAFreshMessage) {
  const std::string bad = "POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n";
  RecordingListener l;
  MessageParser p(MessageParser::Kind::kRequest, &l);
  size_t used = 0;
  ASSERT_EQ(p.execute(bad.data(), bad.size(), &used), Result::kError);
  p.reset();
  EXPECT_EQ(p.error(), MessageParser::Error::kNone);
  EXPECT_EQ(p.execute(kPost.data(), kPost.size(), &used), Result::kComplete);
  EXPECT_EQ(used, kPost.size());
  EXPECT_EQ(p.method(), "POST");
}

TEST(MessageParserTest, ChunkedRequestBodyIsDeChunked) {
  const std::string req =
      "POST /generate HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n"
      "6;ext=1\r\n world\r\n"
      "a\r\n0123456789\r\n"
      "0\r\n\r\n";
  for (size_t step : {req.size(), size_t{1}, size_t{3}}) {
    RecordingListener l;
    MessageParser p(MessageParser::Kind::kRequest, &l);
    size_t used = 0;
    ASSERT_EQ(feed(p, req, step, &used), Result::kComplete) << "step " << step;
    EXPECT_EQ(used, req.size());
    EXPECT_TRUE(p.chunked());
    EXPECT_FALSE(p.hasContentLength());
    EXPECT_EQ(l.body, "hello world0123456789") << "step " << step;
    EXPECT_EQ(l.completed, 1);
  }
}

TEST(MessageParserTest, ResponseWithContentLength) {
  const std::string resp =
      "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nfoobar";
  RecordingListener l;
  MessageParser p(MessageParser::Kind::kResponse, &l);
  size_t used = 0;
  ASSERT_EQ(p.execute(resp.data(), resp.size(), &used), Result::kComplete);
  EXPECT_EQ(used, resp.size());
  EXPECT_EQ(p.status(), 201);
  EXPECT_TRUE(p.hasContentLength());
  EXPECT_EQ(p.contentLength(), 6u);
  EXPECT_EQ(l.body, "foobar");
  EXPECT_TRUE(p.keepAlive());
  EXPECT_EQ(p.finish(), Result::kComplete);
}

TEST(MessageParserTest, ChunkedResponseIsDeChunked) {
  const std::string resp =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n4\r\ndefg\r\n0\r\nX-Trailer: t\r\n\r\n";
  RecordingListener l;
  MessageParser p(MessageParser::Kind::kResponse, &l);
  size_t used = 0;
  ASSERT_EQ(feed(p, resp, 2, &used), Result::kComplete);
  EXPECT_EQ(used, resp.size());
  EXPECT_EQ(p.status(), 200);
  EXPECT_TRUE(p.chunked());
  EXPECT_EQ(l.body, "abcdefg");
}

TEST(MessageParserTest, CloseDelimitedResponseCompletesOnFinish) {
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end";
  RecordingListener l;
  MessageParser p(MessageParser::Kind::kResponse, &l);
  size_t used = 0;
  ASSERT_EQ(p.execute(resp.data(), resp.size(), &used), Result::kNeedMore);
  EXPECT_EQ(used, resp.size());
  EXPECT_EQ(l.completed, 0);
  EXPECT_FALSE(p.keepAlive());
  EXPECT_EQ(p.finish(), Result::kComplete);
  EXPECT_EQ(l.completed, 1);
  EXPECT_EQ(l.body, "until the end");
}

TEST(MessageParserTest, ResponseCutMidChunkFailsOnFinish) {
  const std::string resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nhel";
  RecordingListener l;
  MessageParser p(MessageParser::Kind::kResponse, &l);
  size_t used = 0;
  ASSERT_EQ(p.execute(resp.data(), resp.size(), &used), Result::kNeedMore);
  EXPECT_EQ(l.body, "hel");
  EXPECT_EQ(p.finish(), Result::kError);
  EXPECT_NE(p.error(), MessageParser::Error::kNone);
  EXPECT_EQ(l.completed, 0);
}

TEST(MessageParserTest, ResponseCutShortOfContentLengthFailsOnFinish) {
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
  RecordingListener l;
  MessageParser p(MessageParser::Kind::kResponse, &l);
  size_t used = 0;
  ASSERT_EQ(p.execute(resp.data(), resp.size(), &used), Result::kNeedMore);
  EXPECT_EQ(p.finish(), Result::kError);
  EXPECT_EQ(l.completed, 0);
}

TEST(MessageParserTest, ResponseCutInHeadFailsOnFinish) {
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Le";
  RecordingListener l;
  MessageParser p(MessageParser::Kind::kResponse, &l);
  size_t used = 0;
  ASSERT_EQ(p.execute(resp.data(), resp.size(), &used), Result::kNeedMore);
  EXPECT_EQ(p.finish(), Result::kError);
}

TEST(MessageParserTest, FinishWithNothingStartedNeedsMore) {
  RecordingListener l;
  MessageParser p(MessageParser::Kind::kResponse, &l);
  EXPECT_FALSE(p.started());
  EXPECT_EQ(p.finish(), Result::kNeedMore);
}

TEST(MessageParserTest, HeadResponseHasNoBody) {
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
  const std::string next = "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno";
  const std::string all = head + next;
  RecordingListener l;
  l.headers_result = 1;
  MessageParser p(MessageParser::Kind::kResponse, &l);
  size_t used = 0;
  ASSERT_EQ(p.execute(all.data(), all.size(), &used), Result::kComplete);
  EXPECT_EQ(used, head.size());
  EXPECT_EQ(p.contentLength(), 100u);
  EXPECT_TRUE(l.body.empty());
  EXPECT_EQ(l.events, (std::vector<std::string>{"headers", "complete"}));

  // The next answer on the connection starts right after the head.
  l.headers_result = 0;
  p.reset();
  ASSERT_EQ(p.execute(all.data() + used, all.size() - used, &used), Result::kComplete);
  EXPECT_EQ(p.status(), 404);
  EXPECT_EQ(l.body, "no");
}

TEST(MessageParserTest, InterimResponseThenFinal) {
  const std::string interim = "HTTP/1.1 100 Continue\r\n\r\n";
  const std::string final_resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  const std::string all = interim + final_resp;
  RecordingListener l;
  MessageParser p(MessageParser::Kind::kResponse, &l);
  size_t used = 0;
  ASSERT_EQ(p.execute(all.data(), all.size(), &used), Result::kComplete);
  EXPECT_EQ(p.status(), 100);
  EXPECT_EQ(used, interim.size());
  p.reset();
  ASSERT_EQ(p.execute(all.data() + used, all.size() - used, &used), Result::kComplete);
  EXPECT_EQ(p.status(), 200);
  EXPECT_EQ(l.body, "ok");
}

TEST(MessageParserTest, ListenerCanStopParsing) {
  {
    RecordingListener l;
    l.headers_result = -1;
    MessageParser p(MessageParser::Kind::kRequest, &l);
    size_t used = 0;
    EXPECT_EQ(p.execute(kPost.data(), kPost.size(), &used), Result::kError);
    EXPECT_EQ(p.error(), MessageParser::Error::kListener);
    EXPECT_TRUE(l.body.empty());
  }
  {
    RecordingListener l;
    l.body_result = -1;
    MessageParser p(MessageParser::Kind::kRequest, &l);
    size_t used = 0;
    EXPECT_EQ(p.execute(kPost.data(), kPost.size(), &used), Result::kError);
    EXPECT_EQ(p.error(), MessageParser::Error::kListener);
    EXPECT_EQ(l.completed, 0);
  }
}

struct KeepAliveCase {
  std::string version;
  std::string connection;  // empty: no Connection header
  bool keep_alive;
};

TEST(MessageParserTest, KeepAliveFollowsVersionAndConnectionHeader) {
  const std::vector<KeepAliveCase> cases = {
      {"HTTP/1.1", "", true},           {"HTTP/1.1", "keep-alive", true},
      {"HTTP/1.1", "close", false},     {"HTTP/1.1", "Close", false},
      {"HTTP/1.0", "", false},          {"HTTP/1.0", "keep-alive", true},
      {"HTTP/1.0", "Keep-Alive", true}, {"HTTP/1.0", "close", false},
  };
  for (const KeepAliveCase& c : cases) {
    std::string conn = c.connection.empty() ? "" : "Connection: " + c.connection + "\r\n";
    const std::string req = "GET / " + c.version + "\r\nHost: h\r\n" + conn + "\r\n";
    RecordingListener l;
    MessageParser p(MessageParser::Kind::kRequest, &l);
    size_t used = 0;
    ASSERT_EQ(p.execute(req.data(), req.size(), &used), Result::kComplete) << req;
    EXPECT_EQ(p.keepAlive(), c.keep_alive) << "request " << c.version << " / " << c.connection;

    const std::string resp = c.version + " 200 OK\r\nContent-Length: 1\r\n" + conn + "\r\nx";
    RecordingListener lr;
    MessageParser pr(MessageParser::Kind::kResponse, &lr);
    ASSERT_EQ(pr.execute(resp.data(), resp.size(), &used), Result::kComplete) << resp;
    EXPECT_EQ(pr.keepAlive(), c.keep_alive) << "response " << c.version << " / " << c.connection;
  }
}


// ---- What a proxy must never let through (strict framing) ----

// Parses `data` as one message in a single call; returns the result.
Result parseOnce(MessageParser::Kind kind, std::string_view data, RecordingListener* l) {
  MessageParser p(kind, l);
  size_t consumed = 0;
  return feed(p, data, data.size(), &consumed);
}

TEST(MessageParserTest, ChunkDataNotFollowedByCrlfIsMalformed) {
  // "XX" where the chunk's CRLF belongs: lenient parsers drop it and read what
  // follows as a new request, a request-smuggling primitive.
  RecordingListener l;
  EXPECT_EQ(parseOnce(MessageParser::Kind::kRequest,
                      "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5\r\nhelloXX0\r\n\r\n",
                      &l),
            Result::kError);
  EXPECT_EQ(l.completed, 0);
}

TEST(MessageParserTest, TransferCodingOtherThanChunkedIsRefused) {
  for (std::string_view te : {"gzip, chunked", "deflate", "identity"}) {
    RecordingListener l;
    MessageParser p(MessageParser::Kind::kRequest, &l);
    std::string req = "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + std::string(te) +
                      "\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    size_t consumed = 0;
    EXPECT_EQ(feed(p, req, req.size(), &consumed), Result::kError) << te;
    EXPECT_EQ(p.error(), MessageParser::Error::kUnsupportedTransferCoding) << te;
    EXPECT_EQ(l.completed, 0) << te;
  }
  {
    RecordingListener l;
    EXPECT_EQ(parseOnce(MessageParser::Kind::kRequest,
                        "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"
                        "5\r\nhello\r\n0\r\n\r\n",
                        &l),
              Result::kError);
  }
  // Plain "chunked", in any case and with spaces, is fine.
  RecordingListener l;
  EXPECT_EQ(parseOnce(MessageParser::Kind::kRequest,
                      "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:  Chunked \r\n\r\n"
                      "5\r\nhello\r\n0\r\n\r\n",
                      &l),
            Result::kComplete);
  EXPECT_EQ(l.body, "hello");
}

TEST(MessageParserTest, ResponseTransferCodingOtherThanChunkedIsMalformed) {
  RecordingListener l;
  EXPECT_EQ(parseOnce(MessageParser::Kind::kResponse,
                      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                      "5\r\nhello\r\n0\r\n\r\n",
                      &l),
            Result::kError);
  EXPECT_EQ(l.completed, 0);
}

TEST(MessageParserTest, StatusCodeMustHaveThreeDigitsInRange) {
  for (std::string_view line : {"HTTP/1.1 20 X", "HTTP/1.1 50", "HTTP/1.1 020 X", "HTTP/1.1 600 X",
                                "HTTP/1.1 99 X", "HTTP/1.1 2000 X"}) {
    RecordingListener l;
    std::string resp = std::string(line) + "\r\nContent-Length: 5\r\n\r\nhello";
    EXPECT_EQ(parseOnce(MessageParser::Kind::kResponse, resp, &l), Result::kError) << line;
    EXPECT_TRUE(l.events.empty()) << line << ": nothing may reach the listener";
  }
  for (std::string_view line : {"HTTP/1.1 100 Continue", "HTTP/1.1 599 X", "HTTP/1.1 200"}) {
    RecordingListener l;
    MessageParser p(MessageParser::Kind::kResponse, &l);
    std::string resp = std::string(line) + "\r\nContent-Length: 0\r\n\r\n";
    size_t consumed = 0;
    EXPECT_EQ(feed(p, resp, resp.size(), &consumed), Result::kComplete) << line;
  }
}

TEST(MessageParserTest, NoContentAndNotModifiedHaveNoBodyWhateverTheirLength) {
  for (std::string_view status : {"204 No Content", "304 Not Modified", "103 Early Hints"}) {
    RecordingListener l;
    MessageParser p(MessageParser::Kind::kResponse, &l);
    std::string resp =
        "HTTP/1.1 " + std::string(status) + "\r\nContent-Length: 8\r\n\r\n12345678";
    size_t consumed = 0;
    EXPECT_EQ(feed(p, resp, resp.size(), &consumed), Result::kComplete) << status;
    EXPECT_EQ(l.body, "") << status;
    EXPECT_EQ(consumed, resp.size() - 8) << status << ": the bytes after the head are not its body";
  }
}

TEST(MessageParserTest, InvalidHeaderNameIsMalformed) {
  for (std::string_view header : {"Bad Name: v", "Bad\x01Name: v", ": empty", "N\xc3\xa4me: v",
                                  "Name : v"}) {
    for (MessageParser::Kind kind : {MessageParser::Kind::kRequest, MessageParser::Kind::kResponse}) {
      RecordingListener l;
      std::string msg = kind == MessageParser::Kind::kRequest
                            ? "GET / HTTP/1.1\r\nHost: x\r\n" + std::string(header) + "\r\n\r\n"
                            : "HTTP/1.1 200 OK\r\n" + std::string(header) +
                                  "\r\nContent-Length: 0\r\n\r\n";
      EXPECT_EQ(parseOnce(kind, msg, &l), Result::kError) << header;
      EXPECT_EQ(l.completed, 0) << header;
    }
  }
}

TEST(MessageParserTest, InvalidHeaderValueIsMalformed) {
  RecordingListener l;
  EXPECT_EQ(parseOnce(MessageParser::Kind::kResponse,
                      "HTTP/1.1 200 OK\r\nX: a\x01z\r\nContent-Length: 0\r\n\r\n", &l),
            Result::kError);
}

}  // namespace
}  // namespace airbag::http
