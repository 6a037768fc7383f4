// Saturation-aware admission to one upstream (`routes[].admission`,
// DESIGN.md §8), shared by every worker and by every route with `admission`
// whose own upstream it is; each such route has a lane in it (its queue.max
// and queue.timeout, its counts). A request is admitted while the upstream is
// not saturated and below its adaptive limit, if it has one: the routes' own
// `adaptive` bounds make one gradient limit for the upstream, fed by the
// latency of all their answers, since they all load the same model.
// Otherwise it waits in the upstream's one queue, ordered by its route's
// priority (critical, normal, optional; FIFO within a priority), until room
// frees or its queue timeout. A request that finds queue.max requests (of all
// lanes) already waiting displaces the most recently queued one of the
// lowest priority below its own; failing that it is refused. A refused,
// displaced or timed-out request goes down its route's ladder at once.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "airbag/config.h"
#include "policy/gradient_limiter.h"

namespace airbag::policy {

class Admission;

// One queued request. The queue links through the waiter itself, so queueing
// allocates nothing. A waiter may be queued in one Admission at a time.
class AdmissionWaiter {
 public:
  // Called once when the waiter's fate is decided while it waits: granted (it
  // now holds a place) or displaced (it holds nothing). Runs on
  // whichever thread decided, under the Admission's lock: must be quick and
  // must not call back into the Admission (the proxy posts a wake-up to the
  // waiter's worker, which then asks leave() for the fate).
  virtual void onAdmissionDecided() = 0;

 protected:
  AdmissionWaiter() = default;
  ~AdmissionWaiter() = default;
  AdmissionWaiter(const AdmissionWaiter&) = delete;
  AdmissionWaiter& operator=(const AdmissionWaiter&) = delete;

 private:
  friend class Admission;
  enum class Fate : uint8_t { kNone, kQueued, kGranted, kDisplaced };
  // Guarded by the mutex of the Admission the waiter is queued in.
  AdmissionWaiter* prev_ = nullptr;
  AdmissionWaiter* next_ = nullptr;
  Fate fate_ = Fate::kNone;
  uint8_t tier_ = 0;
  uint32_t lane_ = 0;
};

// Why a request was not admitted at once (x-airbag-admission).
enum class AdmissionReason : uint8_t { kSaturated, kAdaptiveLimit };

struct AdmissionDecision {
  enum class Verdict : uint8_t { kAdmitted, kQueued, kRefused };
  Verdict verdict = Verdict::kAdmitted;
  AdmissionReason reason = AdmissionReason::kSaturated;  // kQueued, kRefused
};

// What leave() found.
enum class AdmissionFate : uint8_t {
  kLeft,       // was still queued; now out, holds nothing
  kGranted,    // holds a place: release() it
  kDisplaced,  // pushed out by a more important request; holds nothing
};

// Thread-safe: one mutex, taken only by routes that have `admission`.
class Admission {
 public:
  Admission() = default;
  Admission(const Admission&) = delete;
  Admission& operator=(const Admission&) = delete;
  ~Admission() = default;  // precondition: nothing queued

  // The lane of the route named `route`, made on first use with `config`
  // (`ceiling`: the route's bulkhead max_in_flight, an upper bound of the
  // adaptive limit). A lane lives as long as the Admission, so a reloaded
  // route keeps its counts and the learned limit; configure() gives it new
  // settings.
  uint32_t lane(const std::string& route, const AdmissionConfig& config, uint32_t ceiling);
  void configure(uint32_t lane, const AdmissionConfig& config, uint32_t ceiling);
  // Only the lanes of these routes shape the adaptive limit from now on (a
  // reload removed the others).
  void retainLanes(const std::vector<std::string>& routes);

  // `saturated`: the upstream's latest reading. kAdmitted: the caller holds
  // a place and must release() it. kQueued: `w` waits; it gets
  // onAdmissionDecided() once unless leave(w) comes first, and the caller
  // runs the lane's queue timeout. kRefused: the queue is full; a waiter
  // displaced to make room has been told instead.
  AdmissionDecision tryAdmit(AdmissionWaiter* w, uint32_t lane, Priority priority, bool saturated);

  // Gives a place back; while not saturated, queued requests are granted
  // while there is room, critical first.
  void release(uint32_t lane, bool saturated);

  // Takes `w` out (its queue timeout, the client gone, or its wake-up came)
  // and says what had become of it.
  AdmissionFate leave(AdmissionWaiter* w);

  // Grants queued requests while there is room: for a saturation that just
  // ended, which no release announces.
  void pump(bool saturated);

  // One finished call's latency (TTFB for streams), for the adaptive limit;
  // call it before release() of the call's place.
  void onLatency(absl::Duration latency, absl::Time now, bool saturated);

  absl::Duration queueTimeout(uint32_t lane) const;

  struct Stats {
    uint32_t in_flight = 0;            // this lane's
    uint32_t upstream_in_flight = 0;   // all lanes'
    uint32_t limit = 0;                // the adaptive limit; 0: none
    std::array<uint32_t, 3> queued{};  // this lane's waiters by priority
    bool adaptive = false;
    absl::Duration min_rtt;     // adaptive only
    absl::Duration sample_rtt;  // adaptive only
  };
  Stats stats(uint32_t lane) const;

 private:
  struct Lane {
    std::string route;
    AdmissionConfig config;
    uint32_t ceiling = 0;
    bool active = true;  // its route is in the current configuration
    uint32_t in_flight = 0;
    std::array<uint32_t, 3> queued{};
  };
  struct Tier {
    AdmissionWaiter* head = nullptr;
    AdmissionWaiter* tail = nullptr;
    uint32_t count = 0;
  };

  // The adaptive limit's bounds from the active lanes that ask for one.
  void shapeLimiterLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool hasRoomLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !limiter_ || in_flight_ < limiter_->limit();
  }
  uint32_t queuedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void grantLocked(bool saturated) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void push(AdmissionWaiter* w, uint32_t lane, int tier) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void unlink(AdmissionWaiter* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Lane>> lanes_ ABSL_GUARDED_BY(mu_);
  std::optional<GradientLimiter> limiter_ ABSL_GUARDED_BY(mu_);
  uint32_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;  // all lanes'
  std::array<Tier, 3> tiers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace airbag::policy
