// One upstream try; see upstream_try.h.
#include "proxy/pipeline/upstream_try.h"

#include <algorithm>

#include "policy/retry.h"
#include "proxy/http/text.h"

namespace airbag::pipeline {
namespace {

// Answers up to this size are held back whole (so a failure before their end
// can still be retried or replaced); larger or open-ended ones are streamed.
constexpr uint64_t kMaxBufferedBody = 8 * 1024 * 1024;
// Above this much queued for a slow client, stop reading the upstream.
constexpr size_t kPauseUpstreamAt = 256 * 1024;
// Buffers grown past this are freed before the next try.
constexpr size_t kMaxKeptBuffer = 256 * 1024;

// A status the route may still retry on: held back, never streamed.
bool retryableStatus(const RetryConfig* retry, int status) {
  if (!retry || retry->attempts <= 1) return false;
  policy::TryResult r;
  r.outcome = status >= 500 ? AttemptOutcome::kError5xx : AttemptOutcome::kOk;
  r.status = status;
  return policy::isRetriable(*retry, r);
}

}  // namespace

UpstreamTry::UpstreamTry(Dispatcher& dispatcher, Owner& owner)
    : dispatcher_(dispatcher), owner_(owner), timer_(dispatcher.createTimer(this)) {}

UpstreamTry::~UpstreamTry() { cancel(); }

void UpstreamTry::start(const Plan& plan, absl::Time now) {
  for (std::string* b : {&client_head_, &body_, &stream_out_, &stream_copy_})
    if (b->capacity() > kMaxKeptBuffer) std::string().swap(*b);
  client_head_.clear();
  body_.clear();
  stream_out_.clear();
  stream_copy_.clear();
  cache_control_.clear();
  kept_headers_.clear();
  plan_ = plan;
  s_ = State{};
  s_.started = now;
  s_.first_byte_by = plan.first_byte;
  s_.end_by = plan.end;
  timer_->armAt(std::min(plan.first_byte, plan.end));
  call_ = plan.client->start(plan.request, this);
}

void UpstreamTry::cancel() {
  timer_->disarm();
  if (call_) std::exchange(call_, nullptr)->cancel();
}

AttemptOutcome UpstreamTry::outcome() const {
  if (s_.failed) return s_.failure;
  return s_.status >= 500 ? AttemptOutcome::kError5xx : AttemptOutcome::kOk;
}

void UpstreamTry::onUpstreamHeaders(const UpstreamResponseHead& head) {
  s_.got_head = true;
  s_.status = head.status;
  bool no_body = plan_.request.head_only_response || head.status == 204 || head.status == 304;
  const RouteCacheConfig* cache = plan_.cache;
  bool keep = cache && std::find(cache->statuses.begin(), cache->statuses.end(), head.status) !=
                           cache->statuses.end();
  s_.keep = keep;
  std::string_view content_type;
  relayed_.clear();
  kinds_.clear();
  // Framing is ours to set, except that the answer to a HEAD and a 304 keep
  // the length they describe; a 204 never has one (RFC 9110 §8.6).
  bool keep_length = no_body && head.status != 204;
  for (size_t i = 0; i < head.headerCount(); ++i) {
    std::string_view name = head.headerName(i);
    std::string_view value = head.headerValue(i);
    http::HeaderKind kind = http::classifyHeader(name);
    if (kind == http::HeaderKind::kContentType)
      content_type = value;
    else if (kind == http::HeaderKind::kRetryAfter)
      s_.retry_after = policy::parseRetryAfter(value, dispatcher_.now());
    else if (kind == http::HeaderKind::kCacheControl)
      cache_control_.assign(value);
    bool relayed = http::isRelayedAnswerHeader(kind);
    if (relayed || (keep_length && kind == http::HeaderKind::kContentLength))
      relayed_.emplace_back(name, value);
    if (keep && relayed) kept_headers_.emplace_back(name, value);
  }
  s_.sse = http::startsWithIgnoreCase(content_type, "text/event-stream");
  s_.streaming = !no_body && (http::isStreamingContentType(content_type) ||
                              !head.has_content_length || head.content_length > kMaxBufferedBody);
  // An answer that may be retried or replaced is held back whole.
  if (s_.streaming && (head.status >= 500 || retryableStatus(plan_.retry, head.status)) &&
      (!head.has_content_length || head.content_length <= kMaxBufferedBody))
    s_.streaming = false;
  s_.keep_stream = keep && s_.streaming && cache->streams;
  if (!plan_.down) {
    // Collect mode: nothing goes to a client.
    if (!s_.streaming && head.has_content_length)
      body_.reserve(std::min<uint64_t>(head.content_length, plan_.max_collected));
    timer_->armAt(s_.end_by);
    return;
  }
  s_.chunked_to_client =
      s_.streaming && !head.has_content_length && plan_.client_version_minor >= 1;
  AnswerMeta meta = owner_.answerMeta();
  Framing framing = Framing::kLength;
  if (no_body)
    framing = Framing::kNone;
  else if (s_.chunked_to_client)
    framing = Framing::kChunked;
  else if (!head.has_content_length)
    framing = Framing::kUntilClose;
  if (framing == Framing::kUntilClose) meta.close = true;  // an HTTP/1.0 client reads to the close
  appendAnswerHead(client_head_, head.status, relayed_, {}, framing, head.content_length, meta);
  if (!s_.streaming) {
    if (head.has_content_length) body_.reserve(head.content_length);
    // From here the whole answer must arrive by the try's end.
    timer_->armAt(s_.end_by);
  }
}

void UpstreamTry::onUpstreamData(std::string_view data) {
  if (!plan_.down || !s_.streaming) {
    if (!plan_.down && body_.size() + data.size() > plan_.max_collected) {
      s_.keep = false;
      return;  // too big to keep; a refresh of it stores nothing
    }
    body_.append(data);
    return;
  }
  if (!s_.committed) {
    s_.first_data = dispatcher_.now();
    commit();
  }
  writeStreamData(data);
  if (s_.keep_stream) {
    if (stream_copy_.size() + data.size() <= plan_.cache->max_entry_bytes)
      stream_copy_.append(data);
    else
      s_.keep_stream = false;  // too big to keep; relayed all the same
  }
}

void UpstreamTry::onUpstreamReadDone() {
  if (!s_.committed) return;
  // One write per upstream read, however many events it carried.
  flush();
  absl::Time now = dispatcher_.now();
  armIdle(now);
  if (!s_.paused && call_ && plan_.down->pendingBytes() > kPauseUpstreamAt) {
    s_.paused = true;
    call_->pauseReading();
  }
}

void UpstreamTry::onDownstreamWritable(absl::Time now) {
  if (s_.paused && call_) {
    // The client is taking data again: that is progress, so the idle clock
    // restarts (a client that stops reading altogether is cut at `idle`).
    s_.paused = false;
    armIdle(now);
    call_->resumeReading();
  }
}

void UpstreamTry::armIdle(absl::Time now) { timer_->armAt(now + plan_.idle); }

void UpstreamTry::onUpstreamComplete() {
  call_ = nullptr;
  end(/*failed=*/false, AttemptOutcome::kOk, dispatcher_.now());
}

void UpstreamTry::onUpstreamFailure(AttemptOutcome outcome, std::string_view) {
  call_ = nullptr;
  end(/*failed=*/true, outcome, dispatcher_.now());
}

void UpstreamTry::onTimer() {
  if (call_) std::exchange(call_, nullptr)->cancel();
  end(/*failed=*/true, AttemptOutcome::kTimeout, dispatcher_.now());
}

void UpstreamTry::end(bool failed, AttemptOutcome failure, absl::Time now) {
  timer_->disarm();
  s_.done = true;
  s_.failed = failed;
  s_.failure = failure;
  owner_.onTryDone(now);
}

void UpstreamTry::commit() {
  s_.committed = true;
  stream_out_.append(client_head_);
  owner_.onTryCommitted();
}

void UpstreamTry::writeStreamData(std::string_view data) {
  if (data.empty()) return;
  s_.bytes_sent += static_cast<int64_t>(data.size());
  if (s_.chunked_to_client) {
    http::appendHexNumber(stream_out_, data.size());
    stream_out_ += "\r\n";
    stream_out_.append(data);
    stream_out_ += "\r\n";
  } else {
    stream_out_.append(data);
  }
}

void UpstreamTry::flush() {
  if (stream_out_.empty()) return;
  plan_.down->write(stream_out_);
  stream_out_.clear();
}

std::string_view UpstreamTry::streamTail() {
  if (!s_.committed) commit();
  if (s_.chunked_to_client) stream_out_ += "0\r\n\r\n";
  return stream_out_;
}

std::string_view UpstreamTry::abortTail(std::string_view code) {
  if (s_.sse) {
    // Tell an event-stream reader in its own terms before the cut.
    std::string ev;
    http::append(ev, "event: error\ndata: {\"error\":{\"code\":\"", code,
                 "\",\"message\":\"the upstream failed mid-stream\"}}\n\n");
    writeStreamData(ev);
  }
  return stream_out_;
}

}  // namespace airbag::pipeline
