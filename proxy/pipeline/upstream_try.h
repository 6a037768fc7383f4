// One call to one upstream: the route's own try, a retry, a fallback model or
// a background refresh. An UpstreamTry owns the client call, the try's
// deadlines (first byte, end, idle once streaming) and its timer, and the
// answer's framing on the way to the client (held back whole, or streamed
// chunk by chunk once committed). It decides nothing about retrying or
// falling back: it tells its owner how it ended, and the owner (the Exchange)
// sequences what comes next. A retry is a fresh start() of a try. Worker
// thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "airbag/config.h"
#include "airbag/dispatcher.h"
#include "airbag/outcome.h"
#include "airbag/upstream_client.h"
#include "proxy/http/headers.h"
#include "proxy/pipeline/answer_head.h"
#include "proxy/pipeline/downstream.h"

namespace airbag::pipeline {

class UpstreamTry final : public UpstreamResponseHandler, private TimerCallback {
 public:
  class Owner {
   public:
    // The §4 headers for the client head of this try's answer (relay mode),
    // asked when the answer's head arrives.
    virtual AnswerMeta answerMeta() = 0;
    // The try ended: complete() or failed() says how. Not called after
    // cancel(). The owner may start another try from inside.
    virtual void onTryDone(absl::Time now) = 0;
    // A streamed answer is about to send its first byte to the client: from
    // here it cannot be retried or replaced.
    virtual void onTryCommitted() = 0;

   protected:
    ~Owner() = default;
  };

  struct Plan {
    UpstreamClient* client = nullptr;
    UpstreamRequest request;
    absl::Time first_byte;  // the answer's head must have begun by then
    absl::Time end;         // the whole answer by then, unless it is streamed
    absl::Duration idle = absl::Seconds(60);  // once streamed: longest silence either way
    // Relay mode: answers stream to this client once committed. Null: the
    // answer is only collected (a background refresh).
    Downstream* down = nullptr;
    int client_version_minor = 1;
    // Statuses this try may still be retried or replaced on are held back
    // whole (error bodies are small), never streamed.
    const RetryConfig* retry = nullptr;
    // The route's cache, when this answer may be stored: with a storable
    // status, the end-to-end headers are kept, and a streamed answer's bytes
    // too (up to max_entry_bytes) when the cache keeps streams.
    const RouteCacheConfig* cache = nullptr;
    // The most a collected answer may hold (collect mode).
    uint64_t max_collected = 8 * 1024 * 1024;
  };

  UpstreamTry(Dispatcher& dispatcher, Owner& owner);
  ~UpstreamTry() override;
  UpstreamTry(const UpstreamTry&) = delete;
  UpstreamTry& operator=(const UpstreamTry&) = delete;

  // Starts a new try (the previous one must be over). Never calls the owner
  // before returning.
  void start(const Plan& plan, absl::Time now);
  // Abandons the try: the call is cancelled, no more owner callbacks.
  void cancel();
  // The client can take data again: resume a paused upstream.
  void onDownstreamWritable(absl::Time now);

  bool running() const { return call_ != nullptr; }
  bool complete() const { return s_.done && !s_.failed; }
  bool failed() const { return s_.done && s_.failed; }
  // How the try ended, for metrics and the breaker: kOk or kError5xx for a
  // complete answer (by status), else the failure.
  AttemptOutcome outcome() const;
  absl::Time startedAt() const { return s_.started; }
  // How slow the try was, as the breaker's slow-call check and the admission
  // limiter see it: for a streamed answer the time to its first body byte
  // (a long generation is not a slow model), else the whole try until `now`.
  absl::Duration latency(absl::Time now) const {
    return (s_.streaming && s_.first_data != absl::InfinitePast() ? s_.first_data : now) -
           s_.started;
  }

  // The answer (valid once its head arrived).
  int status() const { return s_.status; }
  bool streaming() const { return s_.streaming; }
  bool committed() const { return s_.committed; }
  bool eventStream() const { return s_.sse; }
  const std::optional<absl::Duration>& retryAfter() const { return s_.retry_after; }
  // The client head (relay mode) and the body of an answer held back whole.
  std::string_view clientHead() const { return client_head_; }
  std::string_view body() const { return body_; }
  std::string& mutableBody() { return body_; }
  // Kept for the cache (Plan::cache): end-to-end headers, the
  // Cache-Control value, and a streamed answer's bytes (empty when it grew
  // past the limit; keptStream() is then false).
  std::vector<std::pair<std::string, std::string>>& keptHeaders() { return kept_headers_; }
  std::string_view cacheControl() const { return cache_control_; }
  bool storable() const { return s_.keep; }
  bool keptStream() const { return s_.keep_stream; }
  std::string& streamCopy() { return stream_copy_; }
  int64_t bytesRelayed() const { return s_.bytes_sent; }

  // Ends a streamed answer: what is still to be written to the client, with
  // the terminating chunk if chunked. Commits a stream that had no body yet.
  std::string_view streamTail();
  // Cuts a streamed answer: the rest of what was read, then, for an event
  // stream, an error event with `code` so the reader sees the failure.
  std::string_view abortTail(std::string_view code);

  // UpstreamResponseHandler
  void onUpstreamHeaders(const UpstreamResponseHead& head) override;
  void onUpstreamData(std::string_view data) override;
  void onUpstreamReadDone() override;
  void onUpstreamComplete() override;
  void onUpstreamFailure(AttemptOutcome outcome, std::string_view detail) override;

 private:
  // Everything one try learns, reset by value when the next one starts.
  struct State {
    absl::Time started;
    absl::Time first_byte_by, end_by;
    absl::Time first_data = absl::InfinitePast();  // a stream's first body byte
    int status = 0;
    bool got_head = false;
    bool streaming = false;
    bool committed = false;
    bool chunked_to_client = false;
    bool sse = false;
    bool paused = false;
    bool keep = false;  // a storable status on a route with a cache
    bool keep_stream = false;
    bool done = false;
    bool failed = false;
    AttemptOutcome failure = AttemptOutcome::kOk;
    std::optional<absl::Duration> retry_after;
    int64_t bytes_sent = 0;
  };

  void onTimer() override;
  void end(bool failed, AttemptOutcome failure, absl::Time now);
  void commit();
  void writeStreamData(std::string_view data);
  void flush();
  void armIdle(absl::Time now);

  Dispatcher& dispatcher_;
  Owner& owner_;
  std::unique_ptr<Timer> timer_;
  Plan plan_;
  UpstreamCall* call_ = nullptr;
  State s_;
  // Buffers keep their capacity from try to try (trimmed if one grew huge).
  std::string client_head_;
  std::string body_;
  std::string stream_out_;  // read but not yet written to the client
  std::string stream_copy_;
  std::string cache_control_;
  std::vector<std::pair<std::string, std::string>> kept_headers_;
  HeaderPairs relayed_;
  std::vector<http::HeaderKind> kinds_;
};

}  // namespace airbag::pipeline
