// Worker threads; see worker.h.
#include "proxy/server/worker.h"

#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "proxy/http/tls.h"
#include "proxy/metrics/metrics.h"
#include "proxy/server/client_connection.h"
#include "spdlog/spdlog.h"

namespace airbag::server {
namespace {

constexpr timeval kFlushEvery = {0, 100 * 1000};

event_base* newBase() {
  event_config* cfg = event_config_new();
  // The default coarse clock is kept: a precise one costs a timerfd_settime
  // call on every loop pass. Timers re-check an exact clock instead.
  // Only the worker's own thread touches its base (other threads post to
  // the inbox), so the base needs none of libevent's locks.
  event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
  event_base* base = event_base_new_with_config(cfg);
  event_config_free(cfg);
  return base;
}

}  // namespace

Worker::Worker(int index, std::vector<ListenSocket> listens,
               std::shared_ptr<const pipeline::Snapshot> snapshot, metrics::WorkerMetrics* metrics,
               log::AccessLogSink* sink, std::shared_ptr<spdlog::logger> logger,
               std::function<void()> on_exit)
    : index_(index),
      base_(newBase(), &event_base_free),
      dispatcher_(base_.get(), clock_),
      access_log_(sink, snapshot->config->log.format),
      on_exit_(std::move(on_exit)) {
  ctx_.base = base_.get();
  ctx_.dispatcher = &dispatcher_;
  ctx_.inbox = &inbox_;
  ctx_.metrics = metrics;
  ctx_.access_log = sink && sink->enabled() ? &access_log_ : nullptr;
  ctx_.logger = std::move(logger);
  applySnapshot(std::move(snapshot));
  event_assign(&reap_, ctx_.base, -1, 0, &Worker::reapCb, this);
  event_assign(&flush_, ctx_.base, -1, EV_PERSIST, &Worker::flushCb, this);
  event_assign(&inbox_event_, ctx_.base, inbox_.fd(), EV_READ | EV_PERSIST, &Worker::inboxCb,
               this);
  event_add(&inbox_event_, nullptr);
  for (const ListenSocket& ls : listens) {
    auto l = std::make_unique<Listener>(Listener{this, ls});
    l->listener = evconnlistener_new(ctx_.base, &Worker::acceptCb, l.get(),
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1, ls.fd);
    listeners_.push_back(std::move(l));
  }
}

Worker::~Worker() {
  join();
  event_del(&reap_);
  event_del(&flush_);
  event_del(&inbox_event_);
  conns_.clear();
  doomed_.clear();
  ctx_.background.clear();
  for (auto& l : listeners_)
    if (l->listener) evconnlistener_free(l->listener);
  access_log_.flush();
  ctx_.upstreams.clear();
  ctx_.shared_cache = nullptr;
  shared_client_.reset();
  passive_.clear();
  curl_clients_.clear();
  pools_.clear();
}

void Worker::applySnapshot(std::shared_ptr<const pipeline::Snapshot> snapshot) {
  const Config& config = *snapshot->config;
  size_t workers = static_cast<size_t>(std::max(1, config.listen.workers));
  std::vector<UpstreamClient*> clients;
  for (const pipeline::ResolvedUpstream& u : snapshot->upstreams) {
    // max_connections is per upstream for the whole process.
    uint32_t max_connections = std::max<uint32_t>(
        1, static_cast<uint32_t>((u.config->max_connections + workers - 1) / workers));
    // libcurl only for HTTP/2; http and https/1.1 share the keep-alive pool.
    UpstreamClient* client = u.config->http2 ? httpsClient(u, max_connections)
                                             : httpClient(u, max_connections);
    if (u.config->passive) client = passiveClient(client, u);
    clients.push_back(client);
  }
  ctx_.upstreams = std::move(clients);
  // The shared tier is restart-only: a reload carries the same one over, and
  // this worker's connection with it.
  if (snapshot->shared_tier && !shared_client_)
    shared_client_ = std::make_unique<shared_cache::Client>(ctx_.base, dispatcher_,
                                                            snapshot->shared_tier, ctx_.logger);
  ctx_.shared_cache = shared_client_.get();
  ctx_.snapshot = std::move(snapshot);
}

UpstreamClient* Worker::httpClient(const pipeline::ResolvedUpstream& u, uint32_t max_connections) {
  upstream::HttpPoolOptions o;
  o.name = u.config->name;
  o.address = u.address;
  o.address_len = u.address_len;
  o.connect_timeout = u.config->connect_timeout;
  o.max_connections = max_connections;
  o.counts = u.health->connections();
  if (u.tls) {
    o.tls = u.tls;
    o.tls_name = u.config->tls && !u.config->tls->sni.empty() ? u.config->tls->sni
                                                                : u.config->host;
    o.url = u.config->url;
    o.logger = ctx_.logger;
  }
  for (auto& p : pools_)
    if (p->sameOptions(o)) return p.get();
  pools_.push_back(std::make_unique<upstream::HttpPool>(ctx_.base, o, ctx_.metrics));
  return pools_.back().get();
}

UpstreamClient* Worker::httpsClient(const pipeline::ResolvedUpstream& u,
                                    uint32_t max_connections) {
  upstream::CurlClientOptions o = upstream::curlOptions(u.config->name, *u.config, &u.address);
  o.max_connections = max_connections;
  o.counts = u.health->connections();
  for (auto& c : curl_clients_)
    if (c->options() == o) return c.get();
  curl_clients_.push_back(
      std::make_unique<upstream::CurlClient>(ctx_.base, o, ctx_.metrics, ctx_.logger));
  return curl_clients_.back().get();
}

UpstreamClient* Worker::passiveClient(UpstreamClient* inner, const pipeline::ResolvedUpstream& u) {
  for (auto& p : passive_)
    if (p->sameAs(inner, u.health.get(), *u.config->passive)) return p.get();
  passive_.push_back(std::make_unique<upstream::PassiveHealthClient>(inner, u.health,
                                                                     *u.config->passive, clock_));
  return passive_.back().get();
}

void Worker::updateSnapshot(std::shared_ptr<const pipeline::Snapshot> snapshot) {
  {
    absl::MutexLock l(&pending_mu_);
    pending_ = std::move(snapshot);
  }
  inbox_.post({pipeline::InboxMessage::Kind::kSnapshot});
}

void Worker::inboxCb(int, short, void* arg) { static_cast<Worker*>(arg)->onInbox(); }

void Worker::onInbox() {
  inbox_.take(&messages_);
  for (const pipeline::InboxMessage& m : messages_) {
    switch (m.kind) {
      case pipeline::InboxMessage::Kind::kWake:
        ctx_.deliverWake(m);
        break;
      case pipeline::InboxMessage::Kind::kSnapshot: {
        std::shared_ptr<const pipeline::Snapshot> next;
        {
          absl::MutexLock l(&pending_mu_);
          next = std::move(pending_);
        }
        if (next) applySnapshot(std::move(next));
        break;
      }
      case pipeline::InboxMessage::Kind::kDrain:
        onDrain();
        break;
      case pipeline::InboxMessage::Kind::kStop:
        event_base_loopbreak(ctx_.base);
        return;
    }
  }
}

void Worker::start() {
  thread_ = std::thread([this] { run(); });
}

void Worker::run() {
  evtimer_add(&flush_, &kFlushEvery);
  event_base_dispatch(ctx_.base);
  // Shutting down: connections still open after the grace period are cut,
  // background refreshes abandoned.
  conns_.clear();
  doomed_.clear();
  ctx_.background.clear();
  access_log_.flush();
  finished_.store(true);
  if (on_exit_) on_exit_();
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::requestDrain(bool exit_when_done) {
  if (exit_when_done) exit_when_drained_.store(true);
  inbox_.post({pipeline::InboxMessage::Kind::kDrain});
}

bool Worker::waitListenerClosed(absl::Duration timeout) {
  return listener_closed_.WaitForNotificationWithTimeout(timeout);
}

void Worker::requestStop() { inbox_.post({pipeline::InboxMessage::Kind::kStop}); }

void Worker::acceptCb(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
  auto* l = static_cast<Listener*>(arg);
  l->worker->accept(*l, fd);
}

void Worker::accept(const Listener& l, evutil_socket_t fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  // The connection's session holds its own reference to the context, so a
  // reload that swaps the context leaves it alone.
  std::shared_ptr<SSL_CTX> tls = l.socket.tls ? l.socket.tls->current() : nullptr;
  auto conn = std::make_unique<ClientConnection>(*this, fd, tls.get());
  ClientConnection* raw = conn.get();
  conns_.push_front(std::move(conn));
  raw->self_ = conns_.begin();
}

void Worker::closeConnection(ClientConnection* conn) {
  // Freed from the loop, never inside the connection's own call stack.
  doomed_.push_back(std::move(*conn->self_));
  conns_.erase(conn->self_);
  event_active(&reap_, 0, 0);
}

void Worker::reapCb(int, short, void* arg) {
  auto* self = static_cast<Worker*>(arg);
  self->doomed_.clear();
  self->maybeExit();
}

void Worker::flushCb(int, short, void* arg) { static_cast<Worker*>(arg)->access_log_.flush(); }

void Worker::onDrain() {
  if (!ctx_.draining) {
    ctx_.draining = true;
    // Idle keep-alive connections go now; busy ones close after their answer.
    for (auto it = conns_.begin(); it != conns_.end();) {
      ClientConnection* c = (it++)->get();
      c->drain();
    }
    // After the loop: connections taken from the backlog have not been read
    // yet, and drain() would close them as idle.
    closeListeners();
  }
  maybeExit();
}

void Worker::closeListeners() {
  // Disabling accept alone is not enough: the kernel would go on completing
  // handshakes into the backlog, and those clients would wait until exit for
  // an answer. Closing the socket makes new connects fail at once. What is
  // already in the backlog is taken first: a client that has sent its
  // request gets its answer (with Connection: close); one that has sent
  // nothing is closed like any idle connection.
  for (auto& l : listeners_) {
    if (l->listener == nullptr) continue;
    for (;;) {
      int fd = accept4(l->socket.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR) continue;
        break;  // EAGAIN: the backlog is empty (or the socket is broken)
      }
      char probe;
      if (recv(fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT) > 0) {
        accept(*l, fd);
      } else {
        ::close(fd);
      }
    }
    evconnlistener_free(l->listener);  // LEV_OPT_CLOSE_ON_FREE: closes the socket
    l->listener = nullptr;
    l->socket.fd = -1;
  }
  if (!listener_closed_.HasBeenNotified()) listener_closed_.Notify();
}

void Worker::maybeExit() {
  if (ctx_.draining && exit_when_drained_.load() && conns_.empty())
    event_base_loopexit(ctx_.base, nullptr);
}

}  // namespace airbag::server
