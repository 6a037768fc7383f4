// The demo model server's steerable behaviour (faults, latency, stream shape) and its counters,
// as plain values exchanged as JSON on the control endpoint.
#pragma once

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace demo {

// What the server does with each model request. A request copies the behaviour current when it
// arrives, so changing it never alters answers already under way.
struct Behavior {
  int64_t latency_ms = 0;
  int64_t latency_jitter_ms = 0;
  double error_rate = 0.0;
  int error_status = 500;
  int64_t retry_after = -1;  // seconds; -1 = no Retry-After header
  bool nan = false;
  bool missing_field = false;
  double drop_rate = 0.0;
  int64_t stream_events = 5;
  int64_t stream_interval_ms = 10;
  int64_t stream_event_bytes = 0;
  int64_t stall_after_events = -1;
  int64_t abort_after_events = -1;
  int64_t response_bytes = 0;
  int status_override = 0;  // 0 = off
  int64_t fail_next = 0;    // the next N model requests answer error_status
  int64_t drop_next = 0;    // the next N model requests are dropped
  int64_t slow_next = 0;    // the next N model requests wait slow_ms instead of latency_ms
  int64_t slow_ms = 1000;
  bool healthy = true;      // false: health endpoints answer 503
  // Saturation mode: at most `capacity` requests are served at once, each for
  // service_ms; the rest wait in a FIFO queue (0 = off: every request at once).
  int64_t capacity = 0;
  int64_t service_ms = 100;
};

// Merges the keys of `patch` (a JSON object) into `behavior`. Unknown keys, wrong types and
// out-of-range values are errors, and then `behavior` is left unchanged.
absl::Status mergeBehavior(const nlohmann::json& patch, Behavior& behavior);

nlohmann::json behaviorToJson(const Behavior& behavior);

// Counters reported by GET /control/stats. in_flight is a gauge and survives a reset.
struct Stats {
  int64_t requests = 0;
  absl::flat_hash_map<std::string, int64_t> by_path;
  int64_t completed = 0;
  int64_t cancelled = 0;
  int64_t errors = 0;
  int64_t dropped = 0;
  int64_t aborted = 0;
  int64_t in_flight = 0;
  int64_t streams_started = 0;
  int64_t streams_completed = 0;
  int64_t stream_bytes_sent = 0;
  int64_t connections_accepted = 0;
  int64_t connections_open = 0;
  int64_t max_concurrent = 0;
  int64_t waiting = 0;  // saturation mode: queued for a slot (a gauge, kept by reset)
  int64_t running = 0;  // saturation mode: holding a slot (a gauge, kept by reset)
};

nlohmann::json statsToJson(const Stats& stats);

}  // namespace demo
