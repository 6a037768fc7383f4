// Keep-alive HTTP/1.1 upstream pool; see http_pool.h.
#include "proxy/upstream/http_pool.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>

#include "proxy/metrics/metrics.h"

namespace airbag::upstream {

// One try. Reused from a free list so steady traffic allocates nothing.
class HttpPool::Call final : public UpstreamCall {
 public:
  explicit Call(HttpPool* pool) : pool_(pool) {}
  void cancel() override;
  void pauseReading() override;
  void resumeReading() override;

  HttpPool* pool_;
  UpstreamRequest request_;
  UpstreamResponseHandler* handler_ = nullptr;
  Conn* conn_ = nullptr;
  bool waiting_ = false;
  bool stale_retried_ = false;
  bool paused_ = false;
  bool failed_to_open_ = false;
};

// One upstream connection.
class HttpPool::Conn final : public http::MessageParser::Listener, public UpstreamResponseHead {
 public:
  enum class State { kConnecting, kIdle, kBusy, kDead };

  explicit Conn(HttpPool* pool) : pool_(pool), parser_(http::MessageParser::Kind::kResponse, this) {
    parser_.setMaxHeaderBytes(256 * 1024);
  }
  ~Conn() override {
    if (bev_) bufferevent_free(bev_);
  }

  bool open();
  void assign(Call* call);
  void setReading(bool on) {
    if (!bev_) return;
    if (on)
      bufferevent_enable(bev_, EV_READ);
    else
      bufferevent_disable(bev_, EV_READ);
  }
  // No more callbacks from this connection's socket.
  void quiesce() {
    if (!bev_) return;
    bufferevent_disable(bev_, EV_READ | EV_WRITE);
    bufferevent_setcb(bev_, nullptr, nullptr, nullptr, nullptr);
  }
  void detachForCancel() {
    call_ = nullptr;
    pool_->destroyLater(this);
  }

  // UpstreamResponseHead
  size_t headerCount() const override { return parser_.headers().size(); }
  std::string_view headerName(size_t i) const override { return parser_.headers().name(i); }
  std::string_view headerValue(size_t i) const override { return parser_.headers().value(i); }

  // MessageParser::Listener
  int onHeadersComplete() override;
  int onBody(std::string_view data) override;
  int onMessageComplete() override { return 0; }

  State state_ = State::kConnecting;
  Call* call_ = nullptr;

 private:
  static void readCb(bufferevent* bev, void* arg) { static_cast<Conn*>(arg)->onRead(); }
  static void eventCb(bufferevent* bev, short events, void* arg) {
    static_cast<Conn*>(arg)->onEvent(events);
  }
  void onRead();
  void onEvent(short events);
  void processInput();
  void finishCall();
  void failCall(AttemptOutcome outcome, std::string_view detail);
  void writeRequest(const UpstreamRequest& r, bool try_direct);

  HttpPool* pool_;
  bufferevent* bev_ = nullptr;
  http::MessageParser parser_;
  uint64_t served_ = 0;
  bool got_bytes_ = false;
};

// ---- Call ----

void HttpPool::Call::cancel() {
  HttpPool* pool = pool_;
  if (waiting_) {
    auto it = std::find(pool->waiters_.begin(), pool->waiters_.end(), this);
    if (it != pool->waiters_.end()) pool->waiters_.erase(it);
    waiting_ = false;
  } else if (conn_) {
    conn_->detachForCancel();
    conn_ = nullptr;
  }
  pool->releaseCall(this);
}

void HttpPool::Call::pauseReading() {
  paused_ = true;
  if (conn_ && conn_->state_ == Conn::State::kBusy) conn_->setReading(false);
}

void HttpPool::Call::resumeReading() {
  paused_ = false;
  if (conn_ && conn_->state_ == Conn::State::kBusy) conn_->setReading(true);
}

// ---- Conn ----

bool HttpPool::Conn::open() {
  bev_ = bufferevent_socket_new(pool_->base_, -1, BEV_OPT_CLOSE_ON_FREE);
  if (!bev_) return false;
  bufferevent_setcb(bev_, &Conn::readCb, nullptr, &Conn::eventCb, this);
  // While connecting, the write timeout is the connect timeout.
  timeval tv = absl::ToTimeval(pool_->options_.connect_timeout);
  bufferevent_set_timeouts(bev_, nullptr, &tv);
  if (bufferevent_socket_connect(bev_, reinterpret_cast<sockaddr*>(&pool_->options_.address),
                                 static_cast<int>(pool_->options_.address_len)) != 0) {
    return false;
  }
  int fd = bufferevent_getfd(bev_);
  if (fd >= 0) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  bufferevent_setwatermark(bev_, EV_READ, 0, 256 * 1024);
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
  state_ = State::kConnecting;
  return true;
}

void HttpPool::Conn::writeRequest(const UpstreamRequest& r, bool try_direct) {
  evbuffer* out = bufferevent_get_output(bev_);
  size_t skip = 0;
  if (try_direct && evbuffer_get_length(out) == 0) {
    iovec iov[2] = {{const_cast<char*>(r.head.data()), r.head.size()},
                    {const_cast<char*>(r.body.data()), r.body.size()}};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = r.body.empty() ? 1 : 2;
    ssize_t n = sendmsg(bufferevent_getfd(bev_), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) skip = static_cast<size_t>(n);
    // Errors (a dead keep-alive connection) surface through the read side as
    // EOF/reset; the queued bytes below then go nowhere, which is fine.
  }
  size_t total = r.head.size() + r.body.size();
  if (skip >= total) return;
  if (skip < r.head.size()) {
    evbuffer_add(out, r.head.data() + skip, r.head.size() - skip);
    skip = 0;
  } else {
    skip -= r.head.size();
  }
  if (!r.body.empty()) {
    // Large bodies are referenced, not copied: the caller keeps them alive
    // until the try ends, and a connection abandoned mid-write is freed.
    if (r.body.size() - skip > 16 * 1024)
      evbuffer_add_reference(out, r.body.data() + skip, r.body.size() - skip, nullptr, nullptr);
    else
      evbuffer_add(out, r.body.data() + skip, r.body.size() - skip);
  }
}

void HttpPool::Conn::assign(Call* call) {
  call_ = call;
  call->conn_ = this;
  call->waiting_ = false;
  parser_.reset();
  got_bytes_ = false;
  bool connected = state_ != State::kConnecting;
  if (connected) state_ = State::kBusy;
  writeRequest(call->request_, connected);
  if (connected) setReading(!call->paused_);
}

void HttpPool::Conn::onRead() {
  if (state_ == State::kDead) return;
  if (state_ == State::kBusy && call_) {
    processInput();
    return;
  }
  // Bytes on a connection with no request in flight: the upstream is
  // misbehaving or closing. Either way it cannot be reused.
  pool_->destroyLater(this);
}

void HttpPool::Conn::processInput() {
  evbuffer* in = bufferevent_get_input(bev_);
  bool delivered = false;
  while (call_ && evbuffer_get_length(in) > 0) {
    delivered = true;
    got_bytes_ = true;
    evbuffer_iovec vec;
    if (evbuffer_peek(in, -1, nullptr, &vec, 1) < 1) break;
    size_t consumed = 0;
    auto r = parser_.execute(static_cast<const char*>(vec.iov_base), vec.iov_len, &consumed);
    if (!call_) return;  // cancelled from a callback; this connection is doomed
    if (r == http::MessageParser::Result::kComplete) {
      evbuffer_drain(in, consumed);
      if (parser_.status() >= 100 && parser_.status() < 200) {
        parser_.reset();  // an interim answer: the real one follows
        continue;
      }
      finishCall();
      return;
    }
    if (r == http::MessageParser::Result::kError) {
      failCall(AttemptOutcome::kReset, "malformed answer from upstream");
      return;
    }
    evbuffer_drain(in, consumed);
  }
  if (delivered && call_) call_->handler_->onUpstreamReadDone();  // last use of this
}

int HttpPool::Conn::onHeadersComplete() {
  if (!call_) return -1;
  if (parser_.status() < 200) return 0;
  status = parser_.status();
  has_content_length = parser_.hasContentLength();
  content_length = parser_.contentLength();
  chunked = parser_.chunked();
  call_->handler_->onUpstreamHeaders(*this);
  if (!call_) return -1;
  return call_->request_.head_only_response ? 1 : 0;
}

int HttpPool::Conn::onBody(std::string_view data) {
  if (!call_) return -1;
  call_->handler_->onUpstreamData(data);
  return call_ ? 0 : -1;
}

void HttpPool::Conn::finishCall() {
  Call* call = call_;
  call_ = nullptr;
  ++served_;
  bool reusable = parser_.keepAlive() && evbuffer_get_length(bufferevent_get_input(bev_)) == 0 &&
                  evbuffer_get_length(bufferevent_get_output(bev_)) == 0;
  UpstreamResponseHandler* handler = call->handler_;
  call->conn_ = nullptr;
  pool_->releaseCall(call);
  if (reusable) {
    state_ = State::kIdle;
    pool_->connIdle(this);
  } else {
    pool_->destroyLater(this);
  }
  handler->onUpstreamComplete();
}

void HttpPool::Conn::failCall(AttemptOutcome outcome, std::string_view detail) {
  Call* call = call_;
  call_ = nullptr;
  pool_->destroyLater(this);
  if (!call) return;
  UpstreamResponseHandler* handler = call->handler_;
  call->conn_ = nullptr;
  pool_->releaseCall(call);
  handler->onUpstreamFailure(outcome, detail);
}

void HttpPool::Conn::onEvent(short events) {
  // A connection given up (a call cancelled while it was connecting, an
  // upstream that misbehaved) waits for reap() and must not come back to
  // life: a late CONNECTED would put it on the idle list after it is freed.
  if (state_ == State::kDead) return;
  if (events & BEV_EVENT_CONNECTED) {
    bufferevent_set_timeouts(bev_, nullptr, nullptr);
    if (call_) {
      state_ = State::kBusy;
      setReading(!call_->paused_);
    } else {
      state_ = State::kIdle;
      pool_->connIdle(this);
    }
    return;
  }
  if (state_ == State::kConnecting) {
    failCall(AttemptOutcome::kConnect, (events & BEV_EVENT_TIMEOUT) ? "connect timeout"
                                                                     : "connect failed");
    return;
  }
  if (state_ != State::kBusy || !call_) {
    pool_->destroyLater(this);
    return;
  }
  if (events & BEV_EVENT_EOF) {
    // Whatever is still buffered belongs to the answer.
    processInput();
    if (!call_) return;
    if (parser_.finish() == http::MessageParser::Result::kComplete) {
      finishCall();
      return;
    }
  }
  if (!got_bytes_ && served_ > 0 && !call_->stale_retried_) {
    // A kept-alive connection the upstream had already closed: the request
    // never reached it, so send it again on a fresh connection.
    Call* call = call_;
    call_ = nullptr;
    call->conn_ = nullptr;
    call->stale_retried_ = true;
    pool_->destroyLater(this);
    pool_->dispatch(call, /*fresh_only=*/true);
    return;
  }
  failCall(AttemptOutcome::kReset, got_bytes_ ? "upstream closed the connection mid-answer"
                                              : "upstream closed the connection");
}

// ---- HttpPool ----

HttpPool::HttpPool(event_base* base, HttpPoolOptions options, metrics::WorkerMetrics* metrics)
    : base_(base), options_(std::move(options)), metrics_(metrics) {
  reap_ = event_new(base_, -1, 0, &HttpPool::reapCb, this);
}

bool HttpPool::sameOptions(const HttpPoolOptions& o) const {
  return o.name == options_.name && o.address_len == options_.address_len &&
         std::memcmp(&o.address, &options_.address, o.address_len) == 0 &&
         o.connect_timeout == options_.connect_timeout &&
         o.max_connections == options_.max_connections && o.max_idle == options_.max_idle;
}

HttpPool::~HttpPool() {
  if (reap_) event_free(reap_);
  conns_.clear();
}

HttpPool::Call* HttpPool::newCall() {
  if (free_calls_.empty()) {
    calls_.push_back(std::make_unique<Call>(this));
    return calls_.back().get();
  }
  Call* c = free_calls_.back();
  free_calls_.pop_back();
  return c;
}

void HttpPool::releaseCall(Call* call) {
  call->handler_ = nullptr;
  call->conn_ = nullptr;
  call->waiting_ = false;
  call->stale_retried_ = false;
  call->paused_ = false;
  call->failed_to_open_ = false;
  free_calls_.push_back(call);
}

UpstreamCall* HttpPool::start(const UpstreamRequest& request, UpstreamResponseHandler* handler) {
  Call* call = newCall();
  call->request_ = request;
  call->handler_ = handler;
  dispatch(call, /*fresh_only=*/false);
  return call;
}

void HttpPool::dispatch(Call* call, bool fresh_only) {
  if (!fresh_only && !idle_.empty()) {
    Conn* conn = idle_.back();
    idle_.pop_back();
    conn->assign(call);
    return;
  }
  size_t live = conns_.size() - doomed_.size();
  if (live < options_.max_connections) {
    Conn* conn = openConn();
    if (conn) {
      conn->assign(call);
      return;
    }
    // Could not even create a socket: fail from the loop, never re-entrantly.
    call->failed_to_open_ = true;
    waiters_.push_front(call);
    call->waiting_ = true;
    event_active(reap_, 0, 0);
    return;
  }
  call->waiting_ = true;
  waiters_.push_back(call);
}

HttpPool::Conn* HttpPool::openConn() {
  auto conn = std::make_unique<Conn>(this);
  if (!conn->open()) return nullptr;
  ++opened_;
  if (metrics_) metrics_->upstreamConnectionOpened(options_.name);
  conns_.push_back(std::move(conn));
  return conns_.back().get();
}

void HttpPool::connIdle(Conn* conn) {
  assert(conn->state_ == Conn::State::kIdle);
  assert(std::find(idle_.begin(), idle_.end(), conn) == idle_.end());
  if (!waiters_.empty() && !waiters_.front()->failed_to_open_) {
    Call* call = waiters_.front();
    waiters_.pop_front();
    conn->assign(call);
    return;
  }
  if (idle_.size() >= options_.max_idle) {
    destroyLater(conn);
    return;
  }
  conn->setReading(true);  // notice an upstream close while idle
  idle_.push_back(conn);
}

void HttpPool::destroyLater(Conn* conn) {
  if (conn->state_ == Conn::State::kDead) return;
  conn->state_ = Conn::State::kDead;
  conn->call_ = nullptr;
  conn->quiesce();
  auto it = std::find(idle_.begin(), idle_.end(), conn);
  if (it != idle_.end()) idle_.erase(it);
  doomed_.push_back(conn);
  event_active(reap_, 0, 0);
}

void HttpPool::reapCb(int, short, void* arg) { static_cast<HttpPool*>(arg)->reap(); }

void HttpPool::reap() {
  std::vector<Conn*> doomed;
  doomed.swap(doomed_);
  for (Conn* c : doomed) {
    // A connection is on exactly one list: a doomed one is never idle.
    assert(std::find(idle_.begin(), idle_.end(), c) == idle_.end());
    auto it = std::find_if(conns_.begin(), conns_.end(),
                           [c](const std::unique_ptr<Conn>& p) { return p.get() == c; });
    if (it != conns_.end()) {
      std::swap(*it, conns_.back());
      conns_.pop_back();
    }
  }
  // Calls that could not get a socket fail now, outside any caller's stack.
  while (!waiters_.empty() && waiters_.front()->failed_to_open_) {
    Call* call = waiters_.front();
    waiters_.pop_front();
    UpstreamResponseHandler* handler = call->handler_;
    releaseCall(call);
    handler->onUpstreamFailure(AttemptOutcome::kConnect, "could not create a socket");
  }
  serveWaiter();
}

void HttpPool::serveWaiter() {
  // Room freed by closed connections goes to waiting calls.
  while (!waiters_.empty() && conns_.size() - doomed_.size() < options_.max_connections) {
    Call* call = waiters_.front();
    if (call->failed_to_open_) break;
    waiters_.pop_front();
    call->waiting_ = false;
    dispatch(call, /*fresh_only=*/true);
  }
}

}  // namespace airbag::upstream
