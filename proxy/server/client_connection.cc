// Client connection handling; see client_connection.h.
#include "proxy/server/client_connection.h"

#include <event2/event.h>

#include <cassert>

#include "absl/strings/match.h"
#include "proxy/log/access_log.h"
#include "proxy/metrics/metrics.h"
#include "proxy/pipeline/local_reply.h"
#include "proxy/server/worker.h"

namespace airbag::server {
namespace {

// Resume the upstream once the client has taken all but this much.
constexpr size_t kResumeUpstreamAt = 64 * 1024;
// The next pipelined request waits while more than this of earlier answers is
// still unread by the client.
constexpr size_t kMaxUnreadAnswers = 256 * 1024;
// Pipelined input kept unparsed while a request is being answered.
constexpr size_t kMaxQueuedInput = 256 * 1024;
// A request-body or input buffer larger than this is freed between requests.
constexpr size_t kMaxKeptBuffer = 256 * 1024;
// One read takes at most this much; a full read leaves the rest for the next
// pass of the loop (the read event is level-triggered).
constexpr size_t kReadBytes = 64 * 1024;

std::string_view pathOf(std::string_view url) {
  size_t q = url.find('?');
  return q == std::string_view::npos ? url : url.substr(0, q);
}

}  // namespace

ClientConnection::ClientConnection(Worker& worker, evutil_socket_t fd, ssl_ctx_st* tls)
    : worker_(worker),
      sock_(worker.ctx().base, this),
      parser_(http::MessageParser::Kind::kRequest, this),
      exchange_(worker.ctx(), *this),
      timer_(event_new(worker.ctx().base, -1, 0, &ClientConnection::timerCb, this)) {
  parser_.setMaxHeaderBytes(worker_.limits().max_header_bytes);
  // Without its events (no memory) the connection can only wait for its idle timer.
  if (sock_.adopt(fd, tls)) sock_.setReading(true);
  handshaking_ = sock_.tls();
  armTimer(handshaking_ ? worker_.limits().header_timeout : worker_.limits().idle_timeout);
  if (worker_.ctx().metrics) worker_.ctx().metrics->clientConnectionOpened();
}

ClientConnection::~ClientConnection() { exchange_.cancel(); }

void ClientConnection::onReadable() {
  char buf[kReadBytes];
  ssize_t n = sock_.read(buf, sizeof(buf));
  if (handshaking_ && (sock_.handshakeDone() || n == 0 || n == http::StreamSocket::kFailed)) {
    handshakeEnded(n);
    if (state_ == State::kClosed || state_ == State::kClosing) return;
  }
  if (n > 0) {
    processInput(std::string_view(buf, static_cast<size_t>(n)));
  } else if (n == 0) {
    onEndOfInput();
  } else if (n == http::StreamSocket::kFailed) {
    closeNow();
  }
}

void ClientConnection::handshakeEnded(ssize_t n) {
  handshaking_ = false;
  if (sock_.handshakeDone()) {
    countHandshake(sock_.resumed() ? "resumed" : "ok");
    armTimer(worker_.limits().idle_timeout);  // the wait for the first request starts now
    return;
  }
  if (n == 0) {
    countHandshake("closed");
    return;  // the caller sees the end of the stream and closes
  }
  countHandshake("failed");
  if (sock_.plainHttp()) {
    // nginx's courtesy: a plain HTTP client is told in its own protocol.
    sock_.dropTls();
    refuse(400, "plain_http_to_tls_port",
           "this port speaks TLS (HTTPS): send the request with https://");
  }
}

void ClientConnection::countHandshake(std::string_view result) {
  metrics::WorkerMetrics* m = worker_.ctx().metrics;
  if (m) m->incCounter(m->families().tls_handshakes_total, {result});
}

void ClientConnection::onFlushed() {
  if (state_ == State::kClosing) {
    if (sock_.pending() == 0) closeNow();
    return;
  }
  if (sock_.pending() > kResumeUpstreamAt) return;
  if (state_ == State::kWaitingForReader) {
    state_ = State::kReading;  // the client reads again: on to its next request
    processInput();
    return;
  }
  exchange_.onDownstreamWritable();
}

void ClientConnection::onWriteError(int) { closeNow(); }

void ClientConnection::onEndOfInput() {
  // The client closed its sending side. While a request is being answered
  // this usually means the client left, and its upstream call is cancelled
  // to free the model. But a client that sent more bytes behind the request
  // (pipelined requests, or trailing garbage) and then half-closed is done
  // sending, not gone: it is answered in order, and what cannot be parsed
  // gets its 400 after the complete requests' answers.
  bool more_input = in_off_ < in_.size();
  if (state_ == State::kWaitingForReader && !more_input) {
    closeWhenFlushed();  // nothing more to answer: let it read what it has
    return;
  }
  if ((state_ == State::kProcessing || state_ == State::kWaitingForReader) && more_input) {
    input_ended_ = true;
    updateReading();
    return;
  }
  if (state_ == State::kReading && (more_input || parser_.started())) {
    input_ended_ = true;
    processInput();
    return;
  }
  closeNow();
}

void ClientConnection::timerCb(int, short, void* arg) {
  static_cast<ClientConnection*>(arg)->onTimer();
}

void ClientConnection::armTimer(absl::Duration d) {
  // The timer may stay set for an earlier instant than the deadline: it then
  // fires early and is set again for the rest. A keep-alive connection moves
  // its idle deadline on every request, and this makes that a store rather
  // than a timer-heap update.
  SteadyClock::time_point now = SteadyClock::now();
  deadline_ = now + absl::ToChronoNanoseconds(d);
  if (timer_set_ && timer_at_ <= deadline_) return;
  setTimer(now);
}

void ClientConnection::setTimer(SteadyClock::time_point now) {
  timeval tv = absl::ToTimeval(absl::FromChrono(deadline_ - now));
  evtimer_add(timer_.get(), &tv);
  timer_at_ = deadline_;
  timer_set_ = true;
}

void ClientConnection::onTimer() {
  timer_set_ = false;
  SteadyClock::time_point now = SteadyClock::now();
  if (now < deadline_) {
    setTimer(now);
    return;
  }
  if (handshaking_) {
    countHandshake("timeout");
    closeNow();
    return;
  }
  if (state_ != State::kReading) {
    // A client that stopped reading our last answer (closing) or the earlier
    // ones (waiting) is cut at the idle timeout.
    if (state_ == State::kClosing || state_ == State::kWaitingForReader) closeNow();
    return;
  }
  if (parser_.started() && !parser_.headersComplete()) {
    refuse(408, "request_timeout", "the request head did not arrive in time");
    return;
  }
  // Idle keep-alive connection, or a request body that stalled.
  closeNow();
}

void ClientConnection::processInput(std::string_view fresh) {
  if (in_process_input_) {
    // An answer finished from inside the parse below: the loop there goes on.
    assert(fresh.empty());
    return;
  }
  in_process_input_ = true;
  if (in_off_ < in_.size()) {
    // Drop what was parsed before adding more, so that a client that keeps
    // pipelining never grows the buffer by what it already had answered.
    if (!fresh.empty() && in_off_ > 0) {
      in_.erase(0, in_off_);
      in_off_ = 0;
    }
    in_.append(fresh);
    in_off_ += parseSome(std::string_view(in_).substr(in_off_));
    if (in_off_ == in_.size()) {
      in_.clear();
      in_off_ = 0;
      if (in_.capacity() > kMaxKeptBuffer) std::string().swap(in_);
    }
  } else {
    // The usual case: nothing kept, parse straight from what was just read.
    size_t used = parseSome(fresh);
    if (used < fresh.size()) in_.assign(fresh.substr(used));
  }
  in_process_input_ = false;
  if (input_ended_ && state_ == State::kReading && in_off_ == in_.size()) {
    // Everything the client sent before closing its side has been answered.
    if (parser_.started())
      refuse(400, "bad_request", "the client closed the connection in the middle of a request");
    else
      closeNow();
    return;
  }
  updateReading();
}

size_t ClientConnection::parseSome(std::string_view data) {
  size_t used = 0;
  while (state_ == State::kReading && used < data.size()) {
    bool was_started = parser_.started();
    size_t consumed = 0;
    auto r = parser_.execute(data.data() + used, data.size() - used, &consumed);
    if (r == http::MessageParser::Result::kError) {
      if (refuse_status_ == 413)
        refuse(413, "body_too_large", "the request body exceeds listen.limits.max_body_bytes");
      else if (parser_.error() == http::MessageParser::Error::kHeadersTooLarge)
        refuse(431, "headers_too_large",
               "the request head exceeds listen.limits.max_header_bytes");
      else if (parser_.error() == http::MessageParser::Error::kUnsupportedTransferCoding)
        refuse(501, "unsupported_transfer_coding", parser_.errorReason());
      else
        refuse(400, "bad_request", parser_.errorReason());
      return data.size();  // nothing after a refused request is read
    }
    used += consumed;
    if (r == http::MessageParser::Result::kComplete) {
      startRequest();
      continue;
    }
    if (parser_.headersComplete()) {
      armTimer(worker_.limits().idle_timeout);  // body trickling in
    } else if (!was_started && parser_.started() && !header_timer_armed_) {
      header_timer_armed_ = true;
      armTimer(worker_.limits().header_timeout);
    }
  }
  return used;
}

void ClientConnection::updateReading() {
  // Requests pipelined behind the one being answered are read up to a bound,
  // so that a client closing or resetting is still noticed; past it the
  // kernel's buffers hold the rest.
  bool on = (state_ == State::kReading || state_ == State::kProcessing ||
             state_ == State::kWaitingForReader) &&
            !input_ended_ &&
            in_.size() - in_off_ <= kMaxQueuedInput;
  sock_.setReading(on);
}

int ClientConnection::onHeadersComplete() {
  const LimitsConfig& limits = worker_.limits();
  if (parser_.hasContentLength() && parser_.contentLength() > limits.max_body_bytes) {
    refuse_status_ = 413;
    return -1;
  }
  bool has_body = parser_.chunked() || parser_.contentLength() > 0;
  if (has_body) {
    if (parser_.hasContentLength()) body_.reserve(parser_.contentLength());
    auto expect = parser_.headers().get("expect");
    if (expect && http::iequals(*expect, "100-continue") && parser_.versionMinor() >= 1)
      write("HTTP/1.1 100 Continue\r\n\r\n", {}, {});
  }
  return 0;
}

int ClientConnection::onBody(std::string_view data) {
  if (body_.size() + data.size() > worker_.limits().max_body_bytes) {
    refuse_status_ = 413;
    return -1;
  }
  body_.append(data);
  return 0;
}

void ClientConnection::startRequest() {
  // The idle/header timer is left to run: while a request is being answered
  // onTimer ignores it, and responseDone re-arms it. That saves a timer
  // removal on every request of a keep-alive connection.
  header_timer_armed_ = false;
  state_ = State::kProcessing;
  pipeline::RequestView r;
  r.method = parser_.method();
  r.url = parser_.url();
  r.path = pathOf(r.url);
  r.headers = &parser_.headers();
  r.body = body_;
  r.version_minor = parser_.versionMinor();
  exchange_.start(r);
}

void ClientConnection::refuse(int status, std::string_view code, std::string_view message) {
  pipeline::LocalReply reply;
  reply.status = status;
  reply.code = code;
  reply.message = message;
  reply.meta.close = true;
  reply.head_only = parser_.headersComplete() && parser_.method() == "HEAD";
  std::string out;
  pipeline::appendLocalReply(out, reply);
  pipeline::WorkerContext& ctx = worker_.ctx();
  if (ctx.metrics) ctx.metrics->recordRequest("", "none", status, absl::ZeroDuration());
  if (ctx.access_log) {
    log::AccessLogEntry e;
    e.time = ctx.now();
    e.method = parser_.method();
    e.path = parser_.url();  // the whole target, query included, as for answered requests
    e.status = status;
    e.source = "none";
    e.bytes_sent = static_cast<int64_t>(out.size());
    ctx.access_log->append(e);
  }
  write(out, {}, {});
  closeWhenFlushed();
}

void ClientConnection::write(std::string_view a, std::string_view b, std::string_view c) {
  if (state_ == State::kClosed) return;
  sock_.write({a, b, c});
}

size_t ClientConnection::pendingBytes() const { return sock_.pending(); }

bool ClientConnection::keepAlive() const { return parser_.keepAlive() && !worker_.draining(); }

void ClientConnection::responseDone(bool close) {
  if (close || worker_.draining()) {
    closeWhenFlushed();
    return;
  }
  state_ = State::kReading;
  parser_.reset();
  body_.clear();
  // Keep the capacity for the next request, unless one large upload would
  // pin it to an idle keep-alive connection.
  if (body_.capacity() > kMaxKeptBuffer) std::string().swap(body_);
  refuse_status_ = 0;
  armTimer(worker_.limits().idle_timeout);
  if (sock_.pending() > kMaxUnreadAnswers) {
    state_ = State::kWaitingForReader;  // onFlushed goes on once the client reads
    updateReading();
    return;
  }
  // Requests pipelined behind this one are already waiting in the input.
  if (!in_process_input_) processInput();
}

void ClientConnection::responseAborted() { closeWhenFlushed(); }

void ClientConnection::closeWhenFlushed() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosing;
  sock_.setReading(false);
  if (sock_.pending() == 0) {
    closeNow();
    return;
  }
  // Do not wait forever on a client that stopped reading.
  armTimer(worker_.limits().idle_timeout);
}

void ClientConnection::closeNow() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  event_del(timer_.get());
  timer_set_ = false;
  exchange_.cancel();
  sock_.stop();
  worker_.closeConnection(this);
}

void ClientConnection::drain() {
  if (state_ == State::kReading && !parser_.started()) closeNow();
  if (state_ == State::kWaitingForReader) closeWhenFlushed();
}

}  // namespace airbag::server
