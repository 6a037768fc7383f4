// What MessageParser makes of a byte stream, written down so that two ways of
// feeding the same bytes can be compared (the request and response framing
// fuzzers share it).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/message_parser.h"

namespace airbag::fuzz {

// Appends every message part the parser reports to `log`, one line per event.
class TranscriptListener : public http::MessageParser::Listener {
 public:
  TranscriptListener(std::string* log, bool head_answer) : log_(log), head_answer_(head_answer) {}
  void setParser(const http::MessageParser* parser) { parser_ = parser; }

  int onHeadersComplete() override {
    const http::MessageParser& p = *parser_;
    if (p.status() != 0 && (p.status() < 100 || p.status() > 599)) {
      std::fprintf(stderr, "http_framing: a head with status %d was delivered\n", p.status());
      std::abort();
    }
    *log_ += "head " + std::string(p.method()) + " " + std::string(p.url()) + " status=" +
             std::to_string(p.status()) + " v" + std::to_string(p.versionMajor()) + "." +
             std::to_string(p.versionMinor()) + " keepalive=" + std::to_string(p.keepAlive()) +
             " cl=" + (p.hasContentLength() ? std::to_string(p.contentLength()) : "-") +
             " chunked=" + std::to_string(p.chunked()) + "\n";
    for (size_t i = 0; i < p.headers().size(); ++i) {
      *log_ += "  [" + std::string(p.headers().name(i)) + "]: [" +
               std::string(p.headers().value(i)) + "]\n";
    }
    body_.clear();
    return head_answer_ ? 1 : 0;
  }
  int onBody(std::string_view data) override {
    body_.append(data);  // pieces depend on the split; only their sum is compared
    return 0;
  }
  int onMessageComplete() override {
    *log_ += "body " + std::to_string(body_.size()) + " [" + body_ + "]\ncomplete\n";
    body_.clear();
    return 0;
  }

 private:
  std::string* log_;
  const http::MessageParser* parser_ = nullptr;
  std::string body_;
  bool head_answer_;
};

// Feeds `pieces` in order to a fresh parser the way a connection does: after
// each complete message it resets and goes on with the rest of the same piece;
// after the last piece it signals the peer's close. Returns the transcript.
inline std::string transcript(http::MessageParser::Kind kind, bool head_answer,
                              uint64_t max_header_bytes,
                              const std::vector<std::string_view>& pieces) {
  using Result = http::MessageParser::Result;
  std::string log;
  TranscriptListener listener(&log, head_answer);
  http::MessageParser parser(kind, &listener);
  listener.setParser(&parser);
  parser.setMaxHeaderBytes(max_header_bytes);
  // Refused, without the reason: which check trips first on a head that breaks two rules
  // (llhttp's character checks or our head-size limit, counted as llhttp hands over pieces)
  // depends on where the pieces end, so 400 and 431 may swap; either way the message is refused.
  auto failed = [&] {
    log += "error\n";
    return log;
  };
  for (std::string_view piece : pieces) {
    while (!piece.empty()) {
      size_t used = 0;
      Result r = parser.execute(piece.data(), piece.size(), &used);
      if (used > piece.size()) std::abort();
      piece.remove_prefix(used);
      if (r == Result::kError) return failed();
      if (r == Result::kComplete) {
        parser.reset();
      } else if (!piece.empty()) {
        std::fprintf(stderr, "http_framing: kNeedMore left %zu bytes unconsumed\n", piece.size());
        std::abort();
      }
    }
  }
  Result r = parser.finish();
  if (r == Result::kError) return failed();
  log += r == Result::kComplete ? "end: complete\n" : "end: idle\n";
  return log;
}

// The property of both framing fuzzers: the first two bytes choose a split
// point (and a few parser settings), the rest is the stream; fed whole or in
// two pieces, it must read the same.
inline void checkSplitInvariance(http::MessageParser::Kind kind, const uint8_t* data,
                                 size_t size) {
  if (size < 2) return;
  const bool head_answer = kind == http::MessageParser::Kind::kResponse && (data[0] & 0x80);
  const uint64_t max_header_bytes = (data[0] & 0x40) ? 64 * 1024 : 16 + data[1];
  std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);
  const size_t split = stream.empty() ? 0 : ((data[0] & 0x3f) * 256u + data[1]) % (stream.size() + 1);
  std::string whole = transcript(kind, head_answer, max_header_bytes, {stream});
  std::string parts = transcript(kind, head_answer, max_header_bytes,
                                 {stream.substr(0, split), stream.substr(split)});
  if (whole != parts) {
    std::fprintf(stderr, "http_framing: split at %zu changes the reading\n--- whole ---\n%s--- split ---\n%s",
                 split, whole.c_str(), parts.c_str());
    std::abort();
  }
}

}  // namespace airbag::fuzz
