// Keep-alive HTTP/1.1 upstream pool; see http_pool.h.
#include "proxy/upstream/http_pool.h"

#include <event2/event.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>

#include "proxy/metrics/metrics.h"
#include "spdlog/spdlog.h"

namespace airbag::upstream {
namespace {

// One read takes at most this much; the rest waits for the next loop pass.
constexpr size_t kReadBytes = 64 * 1024;

}  // namespace

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

// One upstream connection. Answers are read into a buffer on the stack and
// parsed at once: nothing read is ever kept, since bytes left after a complete
// answer make the connection unusable anyway.
class HttpPool::Conn final : public http::MessageParser::Listener,
                             public http::StreamSocket::Listener,
                             public UpstreamResponseHead {
 public:
  enum class State { kConnecting, kIdle, kBusy, kDead };

  explicit Conn(HttpPool* pool)
      : pool_(pool), sock_(pool->base_, this), parser_(http::MessageParser::Kind::kResponse, this) {
    parser_.setMaxHeaderBytes(256 * 1024);
  }

  bool open();
  void assign(Call* call);
  void setReading(bool on) { sock_.setReading(on); }
  // No more callbacks from this connection's socket.
  void quiesce() { sock_.stop(); }
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

  // StreamSocket::Listener
  void onReadable() override;
  void onWriteError(int) override { onBroken(/*eof=*/false); }
  void onConnected(int error) override;

  State state_ = State::kConnecting;
  Call* call_ = nullptr;

 private:
  void processInput(std::string_view data);
  // The upstream closed (`eof`) or reset the connection.
  void onBroken(bool eof);
  void finishCall(bool bytes_left);
  void failCall(AttemptOutcome outcome, std::string_view detail);

  HttpPool* pool_;
  http::StreamSocket sock_;
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
  const HttpPoolOptions& o = pool_->options_;
  http::TlsClientTarget tls;
  if (o.tls) {
    tls.ctx = o.tls->ctx.get();
    tls.name = o.tls_name;
    tls.sessions = &pool_->sessions_;
  }
  if (!sock_.connect(reinterpret_cast<const sockaddr*>(&o.address), o.address_len,
                     o.connect_timeout, o.tls ? &tls : nullptr))
    return false;
  state_ = State::kConnecting;
  return true;
}

void HttpPool::Conn::assign(Call* call) {
  call_ = call;
  call->conn_ = this;
  call->waiting_ = false;
  parser_.reset();
  got_bytes_ = false;
  bool connected = state_ != State::kConnecting;
  if (connected) state_ = State::kBusy;
  // Borrowed, not copied: the caller keeps the request alive until the try
  // ends, and a connection whose try ended before its request went out is
  // never written again. While connecting it all waits for the connect.
  sock_.write({call->request_.head, call->request_.body}, http::StreamSocket::Keep::kBorrow);
  if (connected) setReading(!call->paused_);
}

void HttpPool::Conn::onReadable() {
  if (state_ == State::kDead) return;
  if (state_ != State::kBusy || !call_) {
    // Bytes, a close or an error on a connection with no request in flight:
    // the upstream is misbehaving or closing. Either way it cannot be reused.
    pool_->destroyLater(this);
    return;
  }
  char buf[kReadBytes];
  ssize_t n = sock_.read(buf, sizeof(buf));
  if (n > 0)
    processInput(std::string_view(buf, static_cast<size_t>(n)));
  else if (n != http::StreamSocket::kWouldBlock)
    onBroken(/*eof=*/n == 0);
}

void HttpPool::Conn::processInput(std::string_view data) {
  got_bytes_ = true;
  size_t used = 0;
  while (call_ && used < data.size()) {
    size_t consumed = 0;
    auto r = parser_.execute(data.data() + used, data.size() - used, &consumed);
    if (!call_) return;  // cancelled from a callback; this connection is doomed
    if (r == http::MessageParser::Result::kError) {
      failCall(AttemptOutcome::kReset, "malformed answer from upstream");
      return;
    }
    used += consumed;
    if (r == http::MessageParser::Result::kComplete) {
      if (parser_.status() >= 100 && parser_.status() < 200) {
        parser_.reset();  // an interim answer: the real one follows
        continue;
      }
      finishCall(/*bytes_left=*/used < data.size());
      return;
    }
  }
  if (call_) call_->handler_->onUpstreamReadDone();  // last use of this
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

void HttpPool::Conn::finishCall(bool bytes_left) {
  Call* call = call_;
  call_ = nullptr;
  ++served_;
  bool reusable = parser_.keepAlive() && !bytes_left && sock_.pending() == 0;
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

void HttpPool::Conn::onConnected(int error) {
  // A connection given up (a call cancelled while it was connecting, an
  // upstream that misbehaved) waits for reap() and must not come back to
  // life: a late connect would put it on the idle list after it is freed.
  if (state_ == State::kDead) return;
  if (error != 0) {
    std::string why = error == ETIMEDOUT ? "connect timeout" : "connect failed";
    if (sock_.tls()) {
      // TLS: a failed certificate check is a connect failure, and says why.
      if (std::string tls = sock_.tlsError(); !tls.empty()) why = tls;
      const HttpPoolOptions& o = pool_->options_;
      if (o.logger) o.logger->warn("upstream '{}': cannot connect to {}: {}", o.name, o.url, why);
    }
    failCall(AttemptOutcome::kConnect, why);
    return;
  }
  if (call_) {
    state_ = State::kBusy;
    setReading(!call_->paused_);
  } else {
    state_ = State::kIdle;
    pool_->connIdle(this);
  }
}

void HttpPool::Conn::onBroken(bool eof) {
  if (state_ == State::kDead) return;
  if (state_ != State::kBusy || !call_) {
    pool_->destroyLater(this);
    return;
  }
  if (eof && parser_.finish() == http::MessageParser::Result::kComplete) {
    finishCall(/*bytes_left=*/false);
    return;
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
    : base_(base), options_(std::move(options)), metrics_(metrics), share_(options_.counts) {
  reap_.reset(event_new(base_, -1, 0, &HttpPool::reapCb, this));
}

bool HttpPool::sameOptions(const HttpPoolOptions& o) const {
  return o.name == options_.name && o.address_len == options_.address_len &&
         std::memcmp(&o.address, &options_.address, o.address_len) == 0 &&
         o.connect_timeout == options_.connect_timeout &&
         o.max_connections == options_.max_connections && o.max_idle == options_.max_idle &&
         o.counts == options_.counts && o.tls == options_.tls && o.tls_name == options_.tls_name &&
         o.url == options_.url;
}

HttpPool::~HttpPool() {
  reap_.reset();
  conns_.clear();
}

void HttpPool::publish() {
  share_.set(static_cast<int64_t>(conns_.size() - doomed_.size()),
             static_cast<int64_t>(idle_.size()));
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
  publish();
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
    event_active(reap_.get(), 0, 0);
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
  publish();
}

void HttpPool::destroyLater(Conn* conn) {
  if (conn->state_ == Conn::State::kDead) return;
  conn->state_ = Conn::State::kDead;
  conn->call_ = nullptr;
  conn->quiesce();
  auto it = std::find(idle_.begin(), idle_.end(), conn);
  if (it != idle_.end()) idle_.erase(it);
  doomed_.push_back(conn);
  event_active(reap_.get(), 0, 0);
  publish();
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
  publish();
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
