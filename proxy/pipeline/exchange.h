// One request's journey through the pipeline of DESIGN.md §1. The Exchange
// only sequences the stages — route, shed, fault, cache, breaker, bulkhead,
// tries, the fallback ladder — and answers; each upstream call is an
// UpstreamTry, each hold on shared state a value in holds.h. An Exchange
// lives inside its client connection and serves every request on it, so its
// buffers keep their capacity and steady traffic allocates nothing.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "airbag/dispatcher.h"
#include "airbag/outcome.h"
#include "policy/admission_control.h"
#include "policy/backoff.h"
#include "policy/bulkhead.h"
#include "policy/cache_store.h"
#include "proxy/http/headers.h"
#include "proxy/json/document.h"
#include "proxy/pipeline/downstream.h"
#include "proxy/pipeline/hedged_call.h"
#include "proxy/pipeline/holds.h"
#include "proxy/pipeline/shared_lock.h"
#include "proxy/pipeline/upstream_try.h"
#include "proxy/pipeline/worker_context.h"

namespace airbag::shared_cache {
struct Result;
}

namespace airbag::pipeline {

// A parsed request, owned by the connection until Downstream::responseDone.
struct RequestView {
  std::string_view method;
  std::string_view url;   // request target as received (path + query)
  std::string_view path;  // url without the query
  const http::HeaderList* headers = nullptr;
  std::string_view body;
  int version_minor = 1;  // HTTP/1.x
};

class Exchange final : private UpstreamTry::Owner,
                       private HedgedCall::Owner,
                       private TimerCallback,
                       private policy::BulkheadWaiter,
                       private policy::AdmissionWaiter,
                       private policy::CacheStore::FillWaiter {
 public:
  // In DESIGN.md §1 order; a request only moves forward, except between a
  // try and its backoff, and from one fallback upstream to the next.
  enum class Stage {
    kIdle,
    kRouting,
    kShedding,
    kFault,
    kCacheLookup,
    kCoalesced,  // waiting for another request's fetch of the same cache key
    kSharedLookup,  // asking the shared (Redis) tier after a local miss
    kCircuitBreaker,
    kAdmission,  // waiting in the route's admission queue (saturated or at its limit)
    kBulkhead,   // waiting for a bulkhead slot (queued)
    kAttempt,    // a try to the route's upstream is in flight
    kBackoff,    // waiting to retry
    kSharedStale,  // the ladder's stale rung asking the shared tier
    kFallback,   // a try to a fallback upstream is in flight
    kStreaming,  // a streamed answer is being relayed; no way back
    kDone,
  };

  Exchange(WorkerContext& ctx, Downstream& down);
  ~Exchange();
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // Takes a complete request. May answer before returning (local replies).
  void start(const RequestView& request);
  // The client went away: abandon the request; no more writes.
  void cancel();
  // The client's queued output fell below the low mark: resume relaying.
  void onDownstreamWritable();
  // A wake-up from the inbox for this exchange's generation: a bulkhead slot
  // was granted, an admission decided, or the cache fill this request waits
  // on is over.
  void onWake();

  // The shared tier's answer to this exchange's lookup (exchange_shared.cc).
  void onSharedResult(shared_cache::Result&& result);

  bool busy() const { return stage_ != Stage::kIdle && stage_ != Stage::kDone; }
  Stage stage() const { return stage_; }
  // Changes whenever a wake-up posted for this exchange may no longer apply.
  uint64_t generation() const { return generation_; }

 private:
  // Why the route's upstream could not answer; picks the ladder's final
  // local reply when no fallback level answers.
  enum class Failure {
    kShed,
    kBulkheadFull,
    kAdmission,  // not admitted in time: the model is saturated or the route at its limit
    kCircuitOpen,
    kFaultAbort,
    kTimeout,
    kUnavailable,  // connect failure or reset
    kAnswer,       // a complete answer that counts as a failure (5xx, retriable status)
    kInvalid,      // a 2xx that failed validation
  };

  // What this request holds on shared state; dropping it gives all back.
  struct Holds {
    ShedSlot shed;
    AdmissionSlot admission;
    BulkheadSlot bulkhead;
    BreakerPermit permit;  // for the try in flight (or about to be)
    FillLeadership fill;   // this request fetches for coalesced followers
    SharedFillLock shared_lock;  // ... and for the fleet (cache.shared.coalesce)
  };

  // What the shared tier is being asked in kSharedLookup.
  enum class SharedAsk : uint8_t {
    kLookup,  // GET after a local miss
    kLock,    // SET NX PX of the fleet's fill lock, after a miss in both tiers
    kPoll,    // GET while another pod holds the lock (the timer paces the next)
  };

  // Everything one request decides and learns, reset by value at its start.
  // (Buffers that keep their capacity live outside it.)
  struct Request {
    RequestView view;
    std::shared_ptr<const Snapshot> snapshot;  // the config this request started with
    size_t route_index = 0;
    const RouteConfig* route = nullptr;
    RouteRuntime* runtime = nullptr;
    RouteMetrics* metrics = nullptr;  // this worker's cells for the route (with ctx.metrics)
    std::optional<std::string_view> budget_header;      // x-airbag-timeout-ms
    std::optional<std::string_view> connection_header;  // Connection
    bool request_id_generated = false;
    bool client_budget = false;
    bool close = false;
    absl::Time start;
    absl::Time deadline;
    Holds holds;
    bool queued = false;     // in the route's bulkhead queue
    bool admission_queued = false;  // in the route's admission queue
    absl::Time admission_until;     // ... until then
    policy::AdmissionReason admission_reason = policy::AdmissionReason::kSaturated;
    std::string_view
        admission;           // x-airbag-admission: "" (no part), queued, saturated, adaptive-limit
    bool following = false;  // waiting on another request's cache fill
    std::optional<policy::Backoff> backoff;
    int circuit_retry_after_s = 1;
    int fault_status = 503;
    AnswerSource source = AnswerSource::kUpstream;
    std::string_view cache_status;  // x-airbag-cache: "" (no cache), hit, stale, miss, bypass
    std::string_view cache_tier;    // x-airbag-cache-tier of a shared route: "shared" from Redis
    bool shared_stale_tried = false;
    Failure shared_failure = Failure::kUnavailable;  // what sent the ladder to the shared tier
    absl::Time shared_sent;
    SharedAsk shared_ask = SharedAsk::kLookup;
    absl::Time coalesce_until;  // the end of the wait for another pod's answer
    bool stale_tried = false;
    size_t fallback_next = 0;            // the next ladder step to try
    std::optional<size_t> fallback_try;  // the fallback step whose upstream is being tried
    const UpstreamConfig* try_upstream = nullptr;  // of the try in flight
    bool request_json_parsed = false;
    int attempts = 0;
    absl::Duration upstream_time;
    int status = 0;
    int64_t bytes_sent = 0;
  };

  // The stages, in order. Each passes the request on or answers it.
  void route(absl::Time now);
  void admitShed(absl::Time now);
  void injectFault(absl::Time now);
  void lookupCache(absl::Time now);  // exchange_cache.cc
  void checkBreaker(absl::Time now);
  void admit(absl::Time now);  // exchange_admission.cc
  void acquireBulkhead(absl::Time now);
  void beginAttempts(absl::Time now);
  void startAttempt(absl::Time now);
  void launchTry(const UpstreamConfig& upstream, UpstreamClient* client, absl::Time end,
                 absl::Time first_byte, absl::Time now);
  // Takes a breaker permit for the route's next try unless one is held;
  // false when refused (the ladder has then taken over).
  bool acquirePermit(absl::Time now);

  // Hedged tries (exchange_hedge.cc): the client a try of the route's own
  // upstream goes through — `client` itself, or the hedging wrapper armed
  // for this try when the route has `hedge`.
  UpstreamClient* hedgeClient(UpstreamClient* client, absl::Time now);
  bool allowHedge(absl::Time now) override;
  void onHedgeDecided(size_t index, size_t hedges, absl::Duration time_to_head,
                      absl::Time now) override;
  void countHedge(RouteRuntime::Hedge kind, std::string_view result);

  // UpstreamTry::Owner
  AnswerMeta answerMeta() override;
  void onTryDone(absl::Time now) override;
  void onTryCommitted() override;
  // A try that ended before anything reached the client: counts it, and
  // returns true when a retry has been scheduled.
  bool retryAfterTry(AttemptOutcome outcome, absl::Time now);
  void endStream(absl::Time now);

  // Waiting for other threads (bulkhead grant, cache fill); see onWake.
  void onGranted() override;
  void onFilled(std::shared_ptr<const policy::CacheEntry> entry) override;
  void onTimer() override;
  // Leaves a bulkhead queue, an admission queue or a fill this request waits
  // in, if any.
  void leaveWaits();

  // Admission (exchange_admission.cc).
  void onAdmissionDecided() override;
  void onAdmissionWake(absl::Time now);
  void onAdmissionTimer(absl::Time now);
  void leaveAdmissionQueue();
  void afterAdmissionQueue(policy::AdmissionFate fate, absl::Time now);
  void refuseAdmission(policy::AdmissionReason reason, absl::Time now);
  bool primarySaturated() const;
  void takeAdmissionSlot(RouteRuntime::AdmissionOutcome outcome, std::string_view label);
  void countAdmission(RouteRuntime::AdmissionOutcome outcome, std::string_view label);
  // A try to the route's own upstream ended with an answer: its latency
  // feeds the adaptive limit.
  void sampleLatency(absl::Time now);

  // Cache (exchange_cache.cc).
  void buildCacheKey();
  void onFillDone(absl::Time now);
  void serveEntry(const policy::CacheEntry& entry, AnswerSource source,
                  std::string_view cache_status);
  void startRevalidation(absl::Time now);
  void maybeStore(absl::Time now);
  void countLookup(std::string_view result);

  // The shared tier (exchange_shared.cc). Each asks Redis for the key and
  // returns true with the stage entered, or false when the route does not use
  // the tier or the client refused (its breaker is open): go on without it.
  bool lookupShared(absl::Time now);
  bool staleFromShared(Failure failure, absl::Time now);
  bool askShared(Stage stage, absl::Time now);
  // Sends one command whose answer comes to onSharedResult while this
  // request is still on this exchange; false when the client refused it.
  bool sendShared(std::initializer_list<std::string_view> args, absl::Duration timeout);
  void countShared(std::string_view result);
  // Coalescing across pods (exchange_coalesce.cc). takeFillLock asks for the
  // fleet's fill lock after a miss in both tiers; true when asked (the answer
  // comes to onFillLock). pollShared is the wait's timer.
  bool takeFillLock(absl::Time now);
  void onFillLock(shared_cache::Result&& result, absl::Time now);
  void pollShared(absl::Time now);
  // A polled GET found nothing to serve: wait on, or give up the wait.
  void waitOrGiveUp(bool redis_answered, absl::Time now);
  void countCoalesce(std::string_view outcome);

  // The ladder (exchange_fallback.cc).
  void runFallback(Failure failure, absl::Time now);
  bool startFallbackTry(size_t step, absl::Time now);
  void serveRespond(const RespondConfig& respond, AnswerSource source, std::string_view label);
  void finalFailure(Failure failure);
  const json::Document& requestJson();
  bool validateAnswer();

  // Answering.
  void buildUpstreamHead(absl::Time now, const UpstreamConfig& upstream);
  void replyLocal(int status, std::string_view code, std::string_view message,
                  std::optional<int> retry_after_seconds = std::nullopt);
  // Ends the request: gives back its holds, records it, sends `last` and
  // `last2` (the final bytes of the answer, if any), then hands the
  // connection back.
  void finish(int status, bool aborted, std::string_view last = {}, std::string_view last2 = {});
  void record(int status, absl::Time now);
  void setSource(AnswerSource source, std::string_view detail = {});
  void recordAttempt(AttemptOutcome outcome);
  void enter(Stage next);
  void armWait(absl::Time until);

  WorkerContext& ctx_;
  Downstream& down_;
  const uint32_t slot_;       // this exchange's place in the worker's registry
  uint64_t generation_ = 0;   // bumped per request and when a wake-up may be stale
  uint64_t wait_generation_ = 0;  // posted with a wake-up; set before joining a queue
  std::unique_ptr<Timer> timer_;  // the end of the current wait (stage says which)
  Stage stage_ = Stage::kIdle;
  Request r_;
  HedgedCall hedge_;  // before try_: a try's call may be the hedging wrapper
  UpstreamTry try_;

  // Buffers that keep their capacity from request to request.
  std::string request_id_;
  std::string source_label_;
  std::string cache_key_;  // empty: not cacheable
  std::string shared_key_;  // its Redis key
  std::string lock_key_;    // the fleet's fill lock for it (cache.shared.coalesce)
  std::string lock_token_;  // this request's claim on that lock
  std::string upstream_head_;
  std::string scratch_;
  HeaderPairs scratch_headers_;
  std::vector<http::HeaderKind> request_kinds_;  // per request header, classified once
  json::Document request_json_;
};

}  // namespace airbag::pipeline
