// Local replies: the JSON error answers airbag writes itself when no level of
// the ladder can answer (DESIGN.md §4), and for requests it refuses.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace airbag::pipeline {

struct LocalReply {
  int status = 503;
  std::string_view code;     // "no_route", "timeout", ...
  std::string_view message;  // human-readable
  std::string_view route;    // empty when no route matched
  std::string_view request_id;
  int attempts = 0;
  std::optional<int> retry_after_seconds;
  std::string_view cache;  // x-airbag-cache value, empty for routes without a cache
  std::string_view admission;  // x-airbag-admission value, empty when admission played no part
  bool close = false;  // adds "connection: close"
  bool http10_keep_alive = false;  // adds "connection: keep-alive" for HTTP/1.0 clients
  bool head_only = false;  // the answer to a HEAD: the head alone, with the body's length
};

// Appends a complete response (head and JSON body) to `out`:
// {"error":{"code":"...","message":"...","route":"..."}}.
void appendLocalReply(std::string& out, const LocalReply& reply);

// Appends `s` to `out` with JSON string escaping (no surrounding quotes).
void appendJsonEscaped(std::string& out, std::string_view s);

}  // namespace airbag::pipeline
