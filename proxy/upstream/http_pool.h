// The keep-alive HTTP/1.1 client for http:// and https:// upstreams: one pool
// per worker and upstream, on raw events + llhttp (http::StreamSocket), with
// OpenSSL on the socket for https (sessions resumed across the pool's
// connections). Requests are
// written straight to the socket when it is idle (write-first); only what the
// kernel did not take waits for the write event. Idle connections keep reading so a close by
// the upstream is noticed at once; a reused connection that turns out dead
// before any answer byte is replaced transparently.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "airbag/upstream_client.h"
#include "proxy/http/message_parser.h"
#include "proxy/http/stream_socket.h"
#include "proxy/http/tls.h"
#include "proxy/upstream/upstream_health.h"

struct event_base;

namespace spdlog {
class logger;
}

namespace airbag::metrics {
class WorkerMetrics;
}

namespace airbag::upstream {

struct HttpPoolOptions {
  std::string name;  // upstream name, for metrics
  sockaddr_storage address{};
  socklen_t address_len = 0;
  absl::Duration connect_timeout = absl::Seconds(1);
  uint32_t max_connections = 256;  // for this pool (this worker)
  uint32_t max_idle = 64;          // idle connections kept beyond this are closed
  // Where this pool's open and idle connections are counted (may be null).
  std::shared_ptr<ConnectionCounts> counts;
  // https: the client context, and the name sent as SNI and verified.
  std::shared_ptr<const http::ClientTls> tls;
  std::string tls_name;
  // For the log line a failed TLS connect writes: the url, and where (may be null).
  std::string url;
  std::shared_ptr<spdlog::logger> logger;
};

class HttpPool final : public UpstreamClient {
 public:
  // `base` and `metrics` (may be null) must outlive the pool. Worker thread only.
  HttpPool(event_base* base, HttpPoolOptions options, metrics::WorkerMetrics* metrics);
  ~HttpPool() override;
  HttpPool(const HttpPool&) = delete;
  HttpPool& operator=(const HttpPool&) = delete;

  UpstreamCall* start(const UpstreamRequest& request, UpstreamResponseHandler* handler) override;
  uint64_t connectionsOpened() const override { return opened_; }

  // True when this pool was made with options equal to `o` (reload reuses it).
  bool sameOptions(const HttpPoolOptions& o) const;

  size_t idleConnections() const { return idle_.size(); }
  size_t openConnections() const { return conns_.size(); }

 private:
  class Conn;
  class Call;
  friend class Conn;
  friend class Call;

  Call* newCall();
  void releaseCall(Call* call);
  // Puts `call` on a connection: an idle one, a new one, or the wait queue.
  void dispatch(Call* call, bool fresh_only);
  Conn* openConn();
  void connIdle(Conn* conn);
  void destroyConn(Conn* conn);
  void destroyLater(Conn* conn);
  static void reapCb(int, short, void* arg);
  void reap();
  void serveWaiter();
  // Publishes the open and idle counts to options_.counts.
  void publish();

  event_base* base_;
  HttpPoolOptions options_;
  metrics::WorkerMetrics* metrics_;
  http::TlsSessionCache sessions_;  // outlives conns_: their sessions store into it
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<Conn*> idle_;  // LIFO: the warmest connection first
  std::deque<Call*> waiters_;
  std::vector<std::unique_ptr<Call>> calls_;  // every Call ever made, reused
  std::vector<Call*> free_calls_;
  std::vector<Conn*> doomed_;  // closed inside their own callbacks; freed from reap_
  http::EventPtr reap_;
  uint64_t opened_ = 0;
  ConnectionShare share_;  // options_.counts: this pool's open and idle connections
};

}  // namespace airbag::upstream
