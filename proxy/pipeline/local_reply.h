// Local replies: the JSON error answers airbag writes itself when no level of
// the ladder can answer (DESIGN.md §4), and for requests it refuses.
#pragma once

#include <string>
#include <string_view>

#include "proxy/pipeline/answer_head.h"

namespace airbag::pipeline {

struct LocalReply {
  int status = 503;
  std::string_view code;     // "no_route", "timeout", ...
  std::string_view message;  // human-readable
  std::string_view route;    // empty when no route matched
  // What the head says besides (attempts, request id, cache, connection);
  // `meta.source` is always written as "none": nothing answered.
  AnswerMeta meta;
  bool head_only = false;  // the answer to a HEAD: the head alone, with the body's length
};

// Appends a complete response (head and JSON body) to `out`:
// {"error":{"code":"...","message":"...","route":"..."}}.
void appendLocalReply(std::string& out, const LocalReply& reply);

// Appends `s` to `out` with JSON string escaping (no surrounding quotes).
void appendJsonEscaped(std::string& out, std::string_view s);

}  // namespace airbag::pipeline
