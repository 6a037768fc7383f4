// A worker: one thread, one event_base, its own SO_REUSEPORT listener, its
// client connections and upstream pools. Workers share nothing per request;
// other threads reach a worker only through its inbox, so its event_base
// runs without libevent's locks.
#pragma once

#include <event2/event_struct.h>
#include <event2/util.h>

#include <atomic>
#include <list>
#include <memory>
#include <thread>

#include "airbag/clock.h"
#include "airbag/config.h"
#include "proxy/log/access_log.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "proxy/pipeline/event_dispatcher.h"
#include "proxy/pipeline/inbox.h"
#include "proxy/pipeline/worker_context.h"
#include "proxy/shared_cache/client.h"
#include "proxy/upstream/curl_client.h"
#include "proxy/upstream/http_pool.h"
#include "proxy/upstream/passive_health_client.h"

struct evconnlistener;

namespace airbag::http {
class TlsServerContext;
}

namespace airbag::server {

class ClientConnection;

// A bound, listening, non-blocking socket handed to a worker, and the TLS
// context its connections start with (null: plain HTTP). The context must
// outlive the worker.
struct ListenSocket {
  evutil_socket_t fd = -1;
  const http::TlsServerContext* tls = nullptr;
};

class Worker {
 public:
  // The worker takes over the `listens` sockets (one per listener: plain,
  // TLS, or both side by side). `metrics` and `sink` must outlive the worker.
  Worker(int index, std::vector<ListenSocket> listens,
         std::shared_ptr<const pipeline::Snapshot> snapshot,
         metrics::WorkerMetrics* metrics, log::AccessLogSink* sink,
         std::shared_ptr<spdlog::logger> logger, std::function<void()> on_exit);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Starts the worker's thread.
  void start();
  // Thread-safe. Close the listening sockets (new connects are refused, not
  // queued), close idle connections, finish the rest; with `exit_when_done`
  // the loop ends once no connection is left.
  void requestDrain(bool exit_when_done);
  // Thread-safe. Waits up to `timeout` for the worker to have closed its
  // listening sockets after requestDrain(); true once it has.
  bool waitListenerClosed(absl::Duration timeout);
  // Thread-safe. Ends the loop now (after the grace period).
  void requestStop();
  // Thread-safe. New requests use `snapshot` from the worker's next loop pass;
  // requests in flight keep the one they started with.
  void updateSnapshot(std::shared_ptr<const pipeline::Snapshot> snapshot);
  // Joins the thread (after it ended).
  void join();
  bool finished() const { return finished_.load(); }

  // Worker thread only.
  pipeline::WorkerContext& ctx() { return ctx_; }
  const LimitsConfig& limits() const { return ctx_.snapshot->config->listen.limits; }
  bool draining() const { return ctx_.draining; }
  void closeConnection(ClientConnection* conn);
  size_t connectionCount() const { return conns_.size(); }

 private:
  static void acceptCb(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg);
  static void reapCb(int, short, void* arg);
  static void flushCb(int, short, void* arg);
  static void inboxCb(int, short, void* arg);
  void onInbox();
  void run();
  void onDrain();
  struct Listener {
    Worker* worker;
    ListenSocket socket;
    evconnlistener* listener = nullptr;
  };
  void accept(const Listener& l, evutil_socket_t fd);
  void closeListeners();
  void applySnapshot(std::shared_ptr<const pipeline::Snapshot> snapshot);
  // This worker's client for an upstream: found among those made before, or new.
  UpstreamClient* httpClient(const pipeline::ResolvedUpstream& u, uint32_t max_connections);
  UpstreamClient* httpsClient(const pipeline::ResolvedUpstream& u, uint32_t max_connections);
  UpstreamClient* passiveClient(UpstreamClient* inner, const pipeline::ResolvedUpstream& u);
  void maybeExit();

  int index_;
  std::unique_ptr<event_base, void (*)(event_base*)> base_;
  RealClock clock_;
  pipeline::EventDispatcher dispatcher_;
  pipeline::Inbox inbox_;
  event inbox_event_;
  std::vector<pipeline::InboxMessage> messages_;  // taken from the inbox, reused
  // Stable addresses: each is its evconnlistener's callback argument.
  std::vector<std::unique_ptr<Listener>> listeners_;
  pipeline::WorkerContext ctx_;
  log::AccessLogWriter access_log_;
  std::function<void()> on_exit_;
  // Every pool ever made: a pool replaced on reload may still carry requests
  // that started before, so it is kept (idle) rather than freed.
  std::vector<std::unique_ptr<upstream::HttpPool>> pools_;
  // The same for https:// upstreams (libcurl) and the passive-health wrappers.
  std::vector<std::unique_ptr<upstream::CurlClient>> curl_clients_;
  std::vector<std::unique_ptr<upstream::PassiveHealthClient>> passive_;
  std::unique_ptr<shared_cache::Client> shared_client_;  // cache.shared: this worker's connection
  absl::Mutex pending_mu_;
  std::shared_ptr<const pipeline::Snapshot> pending_ ABSL_GUARDED_BY(pending_mu_);
  std::list<std::unique_ptr<ClientConnection>> conns_;
  std::vector<std::unique_ptr<ClientConnection>> doomed_;
  event reap_;
  event flush_;
  absl::Notification listener_closed_;
  std::atomic<bool> exit_when_drained_{false};
  std::atomic<bool> finished_{false};
  std::thread thread_;
};

}  // namespace airbag::server
