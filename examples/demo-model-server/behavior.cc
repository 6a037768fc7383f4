// Parsing and printing of the control endpoint's behaviour and stats JSON.
#include "behavior.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace demo {
namespace {

using nlohmann::json;

absl::Status wrongType(absl::string_view key, absl::string_view want) {
  return absl::InvalidArgumentError(absl::StrCat("behavior.", key, ": expected ", want));
}

// null stands for "off" on the keys that have an off value.
absl::Status readInt(const json& v, absl::string_view key, int64_t min, int64_t max, int64_t off,
                     int64_t& out) {
  if (v.is_null()) {
    out = off;
    return absl::OkStatus();
  }
  if (!v.is_number_integer() &&
      !(v.is_number_float() && std::nearbyint(v.get<double>()) == v.get<double>())) {
    return wrongType(key, "an integer");
  }
  const double d = v.get<double>();
  if (d < static_cast<double>(min) || d > static_cast<double>(max)) {
    return absl::InvalidArgumentError(
        absl::StrCat("behavior.", key, ": must be in [", min, ", ", max, "]"));
  }
  out = v.is_number_integer() ? v.get<int64_t>() : static_cast<int64_t>(d);
  return absl::OkStatus();
}

absl::Status readRate(const json& v, absl::string_view key, double& out) {
  if (v.is_null()) {
    out = 0.0;
    return absl::OkStatus();
  }
  if (!v.is_number()) return wrongType(key, "a number in [0, 1]");
  const double d = v.get<double>();
  if (!(d >= 0.0 && d <= 1.0)) return wrongType(key, "a number in [0, 1]");
  out = d;
  return absl::OkStatus();
}

absl::Status readBool(const json& v, absl::string_view key, bool& out) {
  if (!v.is_boolean()) return wrongType(key, "true or false");
  out = v.get<bool>();
  return absl::OkStatus();
}

constexpr int64_t kMaxMs = 3600 * 1000;
constexpr int64_t kMaxBytes = 64 << 20;
constexpr int64_t kMaxCount = 1 << 30;

absl::Status mergeKey(const std::string& key, const json& v, Behavior& b) {
  int64_t i = 0;
  absl::Status s;
  if (key == "latency_ms") {
    s = readInt(v, key, 0, kMaxMs, 0, b.latency_ms);
  } else if (key == "latency_jitter_ms") {
    s = readInt(v, key, 0, kMaxMs, 0, b.latency_jitter_ms);
  } else if (key == "error_rate") {
    s = readRate(v, key, b.error_rate);
  } else if (key == "error_status") {
    s = readInt(v, key, 100, 599, 500, i);
    b.error_status = static_cast<int>(i);
  } else if (key == "retry_after") {
    s = readInt(v, key, -1, 86400, -1, b.retry_after);
  } else if (key == "nan") {
    s = readBool(v, key, b.nan);
  } else if (key == "missing_field") {
    s = readBool(v, key, b.missing_field);
  } else if (key == "drop_rate") {
    s = readRate(v, key, b.drop_rate);
  } else if (key == "stream_events") {
    s = readInt(v, key, 0, kMaxCount, 5, b.stream_events);
  } else if (key == "stream_interval_ms") {
    s = readInt(v, key, 0, kMaxMs, 10, b.stream_interval_ms);
  } else if (key == "stream_event_bytes") {
    s = readInt(v, key, 0, kMaxBytes, 0, b.stream_event_bytes);
  } else if (key == "stall_after_events") {
    s = readInt(v, key, -1, kMaxCount, -1, b.stall_after_events);
  } else if (key == "abort_after_events") {
    s = readInt(v, key, -1, kMaxCount, -1, b.abort_after_events);
  } else if (key == "response_bytes") {
    s = readInt(v, key, 0, kMaxBytes, 0, b.response_bytes);
  } else if (key == "status_override") {
    s = readInt(v, key, 0, 599, 0, i);
    if (s.ok() && i != 0 && i < 100) s = wrongType(key, "0 (off) or a status in [100, 599]");
    b.status_override = static_cast<int>(i);
  } else if (key == "fail_next") {
    s = readInt(v, key, 0, kMaxCount, 0, b.fail_next);
  } else if (key == "drop_next") {
    s = readInt(v, key, 0, kMaxCount, 0, b.drop_next);
  } else if (key == "slow_next") {
    s = readInt(v, key, 0, kMaxCount, 0, b.slow_next);
  } else if (key == "slow_ms") {
    s = readInt(v, key, 0, kMaxMs, 1000, b.slow_ms);
  } else if (key == "healthy") {
    s = readBool(v, key, b.healthy);
  } else if (key == "capacity") {
    s = readInt(v, key, 0, kMaxCount, 0, b.capacity);
  } else if (key == "service_ms") {
    s = readInt(v, key, 0, kMaxMs, 100, b.service_ms);
  } else {
    s = absl::InvalidArgumentError(absl::StrCat("behavior: unknown key \"", key, "\""));
  }
  return s;
}

}  // namespace

absl::Status mergeBehavior(const json& patch, Behavior& behavior) {
  if (!patch.is_object()) return absl::InvalidArgumentError("behavior: expected a JSON object");
  Behavior next = behavior;
  std::vector<std::string> errors;
  for (const auto& [key, value] : patch.items()) {
    absl::Status s = mergeKey(key, value, next);
    if (!s.ok()) errors.emplace_back(s.message());
  }
  if (!errors.empty()) {
    std::string all;
    for (const std::string& e : errors) absl::StrAppend(&all, all.empty() ? "" : "; ", e);
    return absl::InvalidArgumentError(all);
  }
  behavior = next;
  return absl::OkStatus();
}

json behaviorToJson(const Behavior& b) {
  json j = json::object();
  j["latency_ms"] = b.latency_ms;
  j["latency_jitter_ms"] = b.latency_jitter_ms;
  j["error_rate"] = b.error_rate;
  j["error_status"] = b.error_status;
  j["retry_after"] = b.retry_after < 0 ? json(nullptr) : json(b.retry_after);
  j["nan"] = b.nan;
  j["missing_field"] = b.missing_field;
  j["drop_rate"] = b.drop_rate;
  j["stream_events"] = b.stream_events;
  j["stream_interval_ms"] = b.stream_interval_ms;
  j["stream_event_bytes"] = b.stream_event_bytes;
  j["stall_after_events"] = b.stall_after_events;
  j["abort_after_events"] = b.abort_after_events;
  j["response_bytes"] = b.response_bytes;
  j["status_override"] = b.status_override == 0 ? json(nullptr) : json(b.status_override);
  j["fail_next"] = b.fail_next;
  j["drop_next"] = b.drop_next;
  j["slow_next"] = b.slow_next;
  j["slow_ms"] = b.slow_ms;
  j["healthy"] = b.healthy;
  j["capacity"] = b.capacity;
  j["service_ms"] = b.service_ms;
  return j;
}

json statsToJson(const Stats& s) {
  json by_path = json::object();
  for (const auto& [path, n] : s.by_path) by_path[path] = n;
  json j = json::object();
  j["requests"] = s.requests;
  j["by_path"] = std::move(by_path);
  j["completed"] = s.completed;
  j["cancelled"] = s.cancelled;
  j["errors"] = s.errors;
  j["dropped"] = s.dropped;
  j["aborted"] = s.aborted;
  j["in_flight"] = s.in_flight;
  j["streams_started"] = s.streams_started;
  j["streams_completed"] = s.streams_completed;
  j["stream_bytes_sent"] = s.stream_bytes_sent;
  j["connections_accepted"] = s.connections_accepted;
  j["connections_open"] = s.connections_open;
  j["max_concurrent"] = s.max_concurrent;
  j["waiting"] = s.waiting;
  j["running"] = s.running;
  return j;
}

}  // namespace demo
