// What the process knows about one upstream's health: the verdict of the
// active probes (rise/fall) and the passive state fed by real requests'
// connect failures. One object per upstream name for the whole process,
// shared by every worker and the health checker and carried over on reload;
// every field is an atomic, so any thread may read or record (a momentary
// overshoot — a few extra requests let through while another thread marks the
// upstream down — is accepted, as Envoy's resource counters accept it).
// Time is passed in; nothing here reads a clock.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "airbag/config.h"

namespace airbag::upstream {

// Connections to one upstream, summed over every worker's client (for
// GET /upstreams). Any thread may read; clients write through a share.
struct ConnectionCounts {
  std::atomic<int64_t> open{0};
  std::atomic<int64_t> idle{0};  // open and carrying no request
};

// One client's part of a ConnectionCounts: set() publishes what changed since
// the last call; the part is taken back on destruction. Owner thread only.
class ConnectionShare {
 public:
  explicit ConnectionShare(std::shared_ptr<ConnectionCounts> counts) : counts_(std::move(counts)) {}
  ~ConnectionShare() { set(0, 0); }
  ConnectionShare(const ConnectionShare&) = delete;
  ConnectionShare& operator=(const ConnectionShare&) = delete;

  void set(int64_t open, int64_t idle) {
    if (!counts_) return;
    if (open != open_) counts_->open.fetch_add(open - open_, std::memory_order_relaxed);
    if (idle != idle_) counts_->idle.fetch_add(idle - idle_, std::memory_order_relaxed);
    open_ = open;
    idle_ = idle;
  }

 private:
  std::shared_ptr<ConnectionCounts> counts_;
  int64_t open_ = 0;
  int64_t idle_ = 0;
};

class UpstreamHealth {
 public:
  explicit UpstreamHealth(std::string name) : name_(std::move(name)) {}
  UpstreamHealth(const UpstreamHealth&) = delete;
  UpstreamHealth& operator=(const UpstreamHealth&) = delete;

  const std::string& name() const { return name_; }

  // True when requests may be sent: the probes (if any) say healthy and no
  // passive down period is running at `now`.
  bool usable(absl::Time now) const { return healthy() && !passiveDown(now); }
  // The probes' verdict; true when the upstream is not probed.
  bool healthy() const { return healthy_.load(std::memory_order_relaxed); }
  // True while a passive down period runs.
  bool passiveDown(absl::Time now) const {
    return absl::ToUnixNanos(now) < down_until_ns_.load(std::memory_order_relaxed);
  }
  // When the current (or last) passive down period ends; InfinitePast if none.
  absl::Time downUntil() const;
  uint32_t consecutiveConnectFailures() const {
    return connect_failures_.load(std::memory_order_relaxed);
  }

  // Passive: a real request could not connect. After `p.consecutive_connect_failures`
  // in a row the upstream is down for down_for, doubled for each period it
  // stayed down in a row, up to max_down_for. Returns true when this failure
  // started a down period.
  bool recordConnectFailure(const PassiveHealthConfig& p, absl::Time now);
  // Passive: a request reached the upstream (an answer head arrived): the
  // failure streak and any down period end.
  void recordSuccess();

  // Active: one probe's result. Returns true when the verdict changed.
  bool recordProbe(const HealthCheckConfig& h, bool passed);
  // Probes made, passed and failed (for /upstreams).
  uint64_t probesPassed() const { return probes_passed_.load(std::memory_order_relaxed); }
  uint64_t probesFailed() const { return probes_failed_.load(std::memory_order_relaxed); }
  // Forgets the probes' verdict (the upstream is no longer probed): healthy.
  void resetProbes();

  // The connections every worker holds to this upstream.
  const std::shared_ptr<ConnectionCounts>& connections() const { return connections_; }

 private:
  const std::string name_;
  std::atomic<bool> healthy_{true};
  // Consecutive probe results against the current verdict (rise or fall count).
  std::atomic<uint32_t> probe_streak_{0};
  std::atomic<uint64_t> probes_passed_{0};
  std::atomic<uint64_t> probes_failed_{0};
  std::atomic<uint32_t> connect_failures_{0};
  std::atomic<uint32_t> down_periods_{0};  // down periods in a row, for the growth
  std::atomic<int64_t> down_until_ns_{INT64_MIN};
  const std::shared_ptr<ConnectionCounts> connections_ = std::make_shared<ConnectionCounts>();
};

}  // namespace airbag::upstream
