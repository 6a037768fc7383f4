// One request's journey through the pipeline of DESIGN.md §1, as an explicit
// state machine. An Exchange lives inside its client connection and is reused
// for every request on it, so its buffers keep their capacity and steady
// traffic allocates nothing. Stages that later features fill (shedding,
// fault injection, cache, breaker, bulkhead, fallback) are explicit steps
// here already, passing the request on.
#pragma once

#include <event2/event_struct.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "airbag/outcome.h"
#include "policy/backoff.h"
#include "policy/cache_store.h"
#include "policy/circuit_breaker.h"
#include "proxy/json/document.h"
#include "airbag/upstream_client.h"
#include "proxy/http/headers.h"
#include "proxy/pipeline/downstream.h"
#include "proxy/pipeline/worker_context.h"

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

class Exchange final : public UpstreamResponseHandler {
 public:
  enum class Stage {
    kIdle,
    kRouting,
    kShedding,
    kFault,
    kCacheLookup,
    kCoalesced,  // waiting for another request's fetch of the same cache key
    kCircuitBreaker,
    kBulkhead,   // waiting for a bulkhead slot (queued)
    kAttempt,    // an upstream try is in flight; nothing sent to the client yet
    kBackoff,    // waiting to retry
    kStreaming,  // a streamed answer is being relayed; no way back
    kDone,
  };

  Exchange(WorkerContext& ctx, Downstream& down);
  ~Exchange() override;
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // Takes a complete request. May answer before returning (local replies).
  void start(const RequestView& request);
  // The client went away: abandon the upstream try; no more writes.
  void cancel();
  // The client's queued output fell below the low mark: resume relaying.
  void onDownstreamWritable();
  bool busy() const { return stage_ != Stage::kIdle && stage_ != Stage::kDone; }
  Stage stage() const { return stage_; }

  // UpstreamResponseHandler
  void onUpstreamHeaders(const UpstreamResponseHead& head) override;
  void onUpstreamData(std::string_view data) override;
  void onUpstreamReadDone() override;
  void onUpstreamComplete() override;
  void onUpstreamFailure(AttemptOutcome outcome, std::string_view detail) override;

 private:
  class Ticket;
  class Revalidation;

  // Why the route's upstream could not answer; picks the ladder's final
  // local reply when no fallback level answers.
  enum class Failure {
    kShed,
    kBulkheadFull,
    kCircuitOpen,
    kFaultAbort,
    kTimeout,
    kUnavailable,  // connect failure or reset
    kAnswer,       // a complete answer that counts as a failure (5xx, retriable status)
    kInvalid,      // a 2xx that failed validation
  };

  void route();
  void admitShed();
  void injectFault();
  void lookupCache();
  void checkBreaker();
  // Takes a breaker permit for the route's next try unless one is held;
  // false when refused (the ladder has then taken over).
  bool acquirePermit(absl::Time now);
  void acquireBulkhead();
  void onBulkheadGranted();
  void onWake();

  // Cache (exchange_cache.cc).
  void buildCacheKey();
  void onFillDone(std::shared_ptr<const policy::CacheEntry> entry);
  void serveEntry(const policy::CacheEntry& entry, AnswerSource source,
                  std::string_view cache_status);
  void startRevalidation();
  void maybeStore();
  void leaveFill(std::shared_ptr<const policy::CacheEntry> entry);
  void countLookup(std::string_view result);

  // The ladder (exchange_fallback.cc).
  void runFallback(Failure failure);
  bool startFallbackAttempt(size_t step);
  void serveRespond(const RespondConfig& respond, AnswerSource source, std::string_view label);
  void finalFailure(Failure failure);
  const json::Document& requestJson();
  // Checks a complete answer against the route's `validate`; false = invalid.
  bool validateAnswer();
  static bool answerIsValid(const RouteConfig& route, int status, std::string_view body,
                            std::string* reason);
  // A cache entry for an answer of `route`, or null when it must not be
  // stored (Cache-Control, an event stream without its end, too big).
  static std::shared_ptr<policy::CacheEntry> makeEntry(
      const RouteConfig& route, std::string key, int status,
      std::vector<std::pair<std::string, std::string>> headers, std::string body, bool stream,
      bool event_stream, std::string_view cache_control, absl::Time now);
  policy::CircuitBreaker* currentBreaker();
  void launchTry(absl::Time now, absl::Time end, absl::Time first_byte);
  void onTryFailed(AttemptOutcome outcome);
  void beginAttempts();
  void startAttempt();
  // A try ended without an answer worth relaying (or with a retriable one):
  // records it and returns true when a retry has been scheduled.
  bool endTry(AttemptOutcome outcome, int status);
  void reportToBreaker(bool success);
  void releaseHolds();
  static void wakeCb(int, short, void* arg);
  void buildUpstreamHead(absl::Time now);
  void buildClientHead(const UpstreamResponseHead& head);
  static bool retryableStatus(const RetryConfig& retry, int status);
  void writeStreamData(std::string_view data);
  void commitStream();
  void flushStream();

  void abortStream(std::string_view code);
  void replyLocal(int status, std::string_view code, std::string_view message,
                  std::optional<int> retry_after_seconds = std::nullopt);
  // Ends the request: releases its holds, records it, sends `last` and
  // `last2` (the final bytes of the answer, if any), then hands the
  // connection back.
  void finish(int status, bool aborted, std::string_view last = {}, std::string_view last2 = {});
  // Counts the request in the metrics and writes its access-log line.
  void record(int status);
  void setSource(AnswerSource source, std::string_view detail = {});
  void recordAttempt(AttemptOutcome outcome);
  void armTimer(absl::Time at);
  static void timerCb(int, short, void* arg);
  void onTimer();

  WorkerContext& ctx_;
  Downstream& down_;
  event timer_;
  absl::Time timer_at_;  // when timer_ is due
  Stage stage_ = Stage::kIdle;

  // The request.
  RequestView req_;
  std::shared_ptr<const Snapshot> snapshot_;  // the config this request started with
  const RouteConfig* route_ = nullptr;
  const UpstreamConfig* upstream_config_ = nullptr;
  RouteRuntime* runtime_ = nullptr;
  UpstreamClient* upstream_ = nullptr;
  std::optional<std::string_view> budget_header_;      // x-airbag-timeout-ms
  std::optional<std::string_view> connection_header_;  // Connection
  std::vector<http::HeaderKind> request_kinds_;  // per request header, classified once
  std::vector<http::HeaderKind> answer_kinds_;   // per answer header
  std::string request_id_;
  bool request_id_generated_ = false;
  bool client_budget_ = false;
  bool close_ = false;
  absl::Time start_;
  absl::Time deadline_;

  // Holds on shared policy state, given back when the request ends.
  bool shed_admitted_ = false;
  bool bulkhead_held_ = false;
  bool queued_ = false;       // waiting in the bulkhead queue
  bool permit_held_ = false;  // a breaker permit for the current/next try
  bool permit_probe_ = false;
  std::shared_ptr<Ticket> ticket_;  // bulkhead queue entry (a grant may come from any thread)
  event wake_;                      // activated by a bulkhead grant
  std::optional<policy::Backoff> backoff_;
  std::optional<absl::Duration> retry_after_;
  int circuit_retry_after_s_ = 1;
  int fault_status_ = 503;  // status of an injected abort

  // Which level answers (x-airbag-source), e.g. "upstream", "fallback:small".
  AnswerSource source_ = AnswerSource::kUpstream;
  std::string source_label_;

  // Cache.
  std::string_view cache_status_;  // x-airbag-cache: "" (no cache), hit, stale, miss, bypass
  std::string cache_key_;          // empty: not cacheable
  bool fill_leader_ = false;       // this request fetches for coalesced followers
  std::shared_ptr<const policy::CacheEntry> stored_;
  std::vector<std::pair<std::string, std::string>> answer_headers_;  // end-to-end, for storing
  std::string answer_cache_control_;
  bool store_stream_ = false;  // keep a copy of a streamed answer for the cache
  std::string stream_copy_;

  // The ladder.
  bool stale_tried_ = false;
  size_t fallback_next_ = 0;  // next fallback step to try
  int fallback_step_ = -1;    // the fallback step whose upstream is being tried; -1: the route's
  json::Document request_json_;
  bool request_json_parsed_ = false;

  // The current try.
  UpstreamCall* call_ = nullptr;
  int attempts_ = 0;
  absl::Time try_start_;
  absl::Time try_end_;
  absl::Time first_byte_by_;
  absl::Duration upstream_time_;
  std::string upstream_head_;

  // The answer.
  int status_ = 0;
  bool got_head_ = false;
  bool streaming_ = false;
  bool committed_ = false;
  bool chunked_to_client_ = false;
  bool sse_ = false;
  bool paused_ = false;
  int64_t bytes_sent_ = 0;
  std::string client_head_;
  std::string body_;
  std::string stream_out_;  // a stream's bytes read but not yet written to the client
  std::string scratch_;
};

}  // namespace airbag::pipeline
