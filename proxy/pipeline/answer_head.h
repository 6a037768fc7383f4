// The one writer of an answer's status line and headers, whoever produced the
// answer: the upstream (relayed), the cache, a rule, the default, or airbag's
// own error reply. The headers of DESIGN.md §4 (x-airbag-source,
// x-airbag-attempts, x-airbag-cache, x-airbag-admission, x-request-id) and the connection's
// framing are written here and nowhere else.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace airbag::pipeline {

// What airbag says about an answer, and how the connection goes on.
struct AnswerMeta {
  std::string_view source;      // x-airbag-source: "upstream", "fallback:small", ...
  int attempts = 0;             // x-airbag-attempts
  std::string_view request_id;  // x-request-id; empty: not sent
  std::string_view cache;       // x-airbag-cache; empty (a route without a cache): not sent
  std::string_view admission;   // x-airbag-admission; empty (admission played no part): not sent
  std::string_view cache_tier;  // x-airbag-cache-tier (local, shared); empty: not sent
  std::optional<int> retry_after_seconds;
  bool close = false;              // "connection: close"
  bool http10_keep_alive = false;  // "connection: keep-alive" for an HTTP/1.0 client
};

// How the body that follows the head is framed.
enum class Framing {
  kLength,      // content-length: `length` (also for the answer to a HEAD)
  kChunked,     // transfer-encoding: chunked
  kUntilClose,  // no framing header: the body ends when the connection closes
  kNone,        // no framing header, no body (1xx, 204; a 304 or HEAD answer that
                // carries its own Content-Length among `headers`)
};

using HeaderPairs = std::vector<std::pair<std::string_view, std::string_view>>;

// Appends the head: status line, `headers` verbatim (the caller has left out
// hop-by-hop and framing headers), a content-type unless empty, the §4
// headers, the framing and the connection header, and the blank line.
void appendAnswerHead(std::string& out, int status, const HeaderPairs& headers,
                      std::string_view content_type, Framing framing, uint64_t length,
                      const AnswerMeta& meta);

}  // namespace airbag::pipeline
