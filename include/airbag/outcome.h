// Outcomes of one upstream try and the source of an answer, as data
// (DESIGN.md §4, §6). Upstream failures are values, not errors.
#pragma once

#include <cstdint>
#include <string_view>

namespace airbag {

// How one upstream try ended. Labels are the `outcome` of
// airbag_upstream_attempts_total.
enum class AttemptOutcome : uint8_t {
  kOk,        // a complete answer (any status below 500)
  kError5xx,  // a complete answer with status >= 500
  kTimeout,   // per-try, first-byte, idle or total deadline hit
  kReset,     // connection closed or reset before the answer was complete
  kConnect,   // could not connect (refused, unreachable, connect timeout)
  kInvalid,   // the answer failed validation
};

constexpr std::string_view attemptOutcomeLabel(AttemptOutcome o) {
  switch (o) {
    case AttemptOutcome::kOk: return "ok";
    case AttemptOutcome::kError5xx: return "error_5xx";
    case AttemptOutcome::kTimeout: return "timeout";
    case AttemptOutcome::kReset: return "reset";
    case AttemptOutcome::kConnect: return "connect";
    case AttemptOutcome::kInvalid: return "invalid";
  }
  return "unknown";
}

// Which level of the ladder produced the answer (x-airbag-source).
enum class AnswerSource : uint8_t {
  kUpstream,
  kCache,
  kStale,
  kFallback,  // "fallback:<upstream>"
  kRule,      // "rule:<name>"
  kDefault,
  kNone,      // local error reply
};

constexpr std::string_view answerSourceLabel(AnswerSource s) {
  switch (s) {
    case AnswerSource::kUpstream: return "upstream";
    case AnswerSource::kCache: return "cache";
    case AnswerSource::kStale: return "stale";
    case AnswerSource::kFallback: return "fallback";
    case AnswerSource::kRule: return "rule";
    case AnswerSource::kDefault: return "default";
    case AnswerSource::kNone: return "none";
  }
  return "none";
}

}  // namespace airbag
