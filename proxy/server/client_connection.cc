// Client connection handling; see client_connection.h.
#include "proxy/server/client_connection.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "absl/strings/match.h"
#include "proxy/log/access_log.h"
#include "proxy/metrics/metrics.h"
#include "proxy/pipeline/local_reply.h"
#include "proxy/server/worker.h"

namespace airbag::server {
namespace {

// Resume the upstream once the client has taken all but this much.
constexpr size_t kResumeUpstreamAt = 64 * 1024;
// Pipelined input kept unparsed while a request is being answered.
constexpr size_t kMaxQueuedInput = 256 * 1024;
// A request-body buffer larger than this is freed between requests.
constexpr size_t kMaxKeptBuffer = 256 * 1024;

std::string_view pathOf(std::string_view url) {
  size_t q = url.find('?');
  return q == std::string_view::npos ? url : url.substr(0, q);
}

}  // namespace

ClientConnection::ClientConnection(Worker& worker, evutil_socket_t fd)
    : worker_(worker),
      parser_(http::MessageParser::Kind::kRequest, this),
      exchange_(worker.ctx(), *this) {
  parser_.setMaxHeaderBytes(worker_.limits().max_header_bytes);
  bev_ = bufferevent_socket_new(worker_.ctx().base, fd, BEV_OPT_CLOSE_ON_FREE);
  bufferevent_setcb(bev_, &ClientConnection::readCb, &ClientConnection::writeCb,
                    &ClientConnection::eventCb, this);
  bufferevent_setwatermark(bev_, EV_READ, 0, kMaxQueuedInput);
  bufferevent_setwatermark(bev_, EV_WRITE, kResumeUpstreamAt, 0);
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
  event_assign(&timer_, worker_.ctx().base, -1, 0, &ClientConnection::timerCb, this);
  armTimer(worker_.limits().idle_timeout);
  if (worker_.ctx().metrics) worker_.ctx().metrics->clientConnectionOpened();
}

ClientConnection::~ClientConnection() {
  event_del(&timer_);
  exchange_.cancel();
  if (bev_) bufferevent_free(bev_);
}

void ClientConnection::readCb(bufferevent*, void* arg) {
  static_cast<ClientConnection*>(arg)->processInput();
}

void ClientConnection::writeCb(bufferevent*, void* arg) {
  auto* self = static_cast<ClientConnection*>(arg);
  if (self->state_ == State::kClosing) {
    if (evbuffer_get_length(bufferevent_get_output(self->bev_)) == 0) self->closeNow();
    return;
  }
  self->exchange_.onDownstreamWritable();
}

void ClientConnection::eventCb(bufferevent*, short events, void* arg) {
  static_cast<ClientConnection*>(arg)->onEvent(events);
}

void ClientConnection::onEvent(short events) {
  if (events & BEV_EVENT_ERROR) {
    closeNow();
    return;
  }
  if (!(events & BEV_EVENT_EOF)) return;
  // The client closed its sending side. While a request is being answered
  // this usually means the client left, and its upstream call is cancelled
  // to free the model. But a client that sent more bytes behind the request
  // (pipelined requests, or trailing garbage) and then half-closed is done
  // sending, not gone: it is answered in order, and what cannot be parsed
  // gets its 400 after the complete requests' answers.
  bool more_input = evbuffer_get_length(bufferevent_get_input(bev_)) > 0;
  if (state_ == State::kProcessing && more_input) {
    input_ended_ = true;
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
  timeval tv = absl::ToTimeval(d);
  evtimer_add(&timer_, &tv);
}

void ClientConnection::onTimer() {
  if (state_ != State::kReading) {
    if (state_ == State::kClosing) closeNow();  // the client stopped reading our last answer
    return;
  }
  if (parser_.started() && !parser_.headersComplete()) {
    refuse(408, "request_timeout", "the request head did not arrive in time");
    return;
  }
  // Idle keep-alive connection, or a request body that stalled.
  closeNow();
}

void ClientConnection::processInput() {
  if (in_process_input_) return;
  in_process_input_ = true;
  evbuffer* in = bufferevent_get_input(bev_);
  while (state_ == State::kReading && evbuffer_get_length(in) > 0) {
    evbuffer_iovec vec;
    if (evbuffer_peek(in, -1, nullptr, &vec, 1) < 1) break;
    bool was_started = parser_.started();
    size_t consumed = 0;
    auto r = parser_.execute(static_cast<const char*>(vec.iov_base), vec.iov_len, &consumed);
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
      break;
    }
    evbuffer_drain(in, consumed);
    if (r == http::MessageParser::Result::kComplete) {
      startRequest();
      continue;
    }
    if (!was_started && parser_.started() && !header_timer_armed_) {
      header_timer_armed_ = true;
      armTimer(worker_.limits().header_timeout);
    } else if (parser_.headersComplete()) {
      armTimer(worker_.limits().idle_timeout);  // body trickling in
    }
  }
  in_process_input_ = false;
  if (input_ended_ && state_ == State::kReading && evbuffer_get_length(in) == 0) {
    // Everything the client sent before closing its side has been answered.
    if (parser_.started())
      refuse(400, "bad_request", "the client closed the connection in the middle of a request");
    else
      closeNow();
  }
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
  reply.close = true;
  reply.head_only = parser_.headersComplete() && parser_.method() == "HEAD";
  std::string out;
  pipeline::appendLocalReply(out, reply);
  pipeline::WorkerContext& ctx = worker_.ctx();
  if (ctx.metrics) ctx.metrics->recordRequest("", "none", status, absl::ZeroDuration());
  if (ctx.access_log) {
    log::AccessLogEntry e;
    e.time = ctx.now();
    e.method = parser_.method();
    e.path = pathOf(parser_.url());
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
  evbuffer* out = bufferevent_get_output(bev_);
  std::string_view parts[3] = {a, b, c};
  size_t skip = 0;
  if (evbuffer_get_length(out) == 0) {
    iovec iov[3];
    int n = 0;
    for (std::string_view p : parts)
      if (!p.empty()) iov[n++] = {const_cast<char*>(p.data()), p.size()};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(n);
    ssize_t w = n > 0 ? sendmsg(bufferevent_getfd(bev_), &msg, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;
    if (w > 0) skip = static_cast<size_t>(w);
    // A failed send (client gone) surfaces through the read side.
  }
  for (std::string_view p : parts) {
    if (skip >= p.size()) {
      skip -= p.size();
      continue;
    }
    evbuffer_add(out, p.data() + skip, p.size() - skip);
    skip = 0;
  }
}

size_t ClientConnection::pendingBytes() const {
  return evbuffer_get_length(bufferevent_get_output(bev_));
}

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
  // Requests pipelined behind this one are already waiting in the input.
  if (!in_process_input_) processInput();
}

void ClientConnection::responseAborted() { closeWhenFlushed(); }

void ClientConnection::closeWhenFlushed() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosing;
  bufferevent_disable(bev_, EV_READ);
  if (evbuffer_get_length(bufferevent_get_output(bev_)) == 0) {
    closeNow();
    return;
  }
  // Do not wait forever on a client that stopped reading.
  armTimer(worker_.limits().idle_timeout);
}

void ClientConnection::closeNow() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  event_del(&timer_);
  exchange_.cancel();
  bufferevent_disable(bev_, EV_READ | EV_WRITE);
  worker_.closeConnection(this);
}

void ClientConnection::drain() {
  if (state_ == State::kReading && !parser_.started()) closeNow();
}

}  // namespace airbag::server
