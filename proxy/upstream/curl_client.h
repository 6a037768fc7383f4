// The libcurl client for https:// upstreams that ask for HTTP/2 (`http2:
// true`), and for health probes and saturation scrapes of any upstream. One CURLM per owner loop,
// driven by that loop through the multi-socket API (libcurl's hiperfifo
// example): curl's sockets map to libevent events, its one timer to one
// libevent timer, and finished transfers are collected after every
// socket action. libcurl brings what the plain pool leaves out: TLS with
// verification and SNI, HTTP/2 by ALPN, connection reuse in its own cache.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/time/time.h"
#include "airbag/config.h"
#include "airbag/upstream_client.h"
#include "proxy/upstream/upstream_health.h"

struct event_base;
struct event;
typedef void CURLM;
typedef void CURL;
struct curl_sockaddr;

namespace spdlog {
class logger;
}
namespace airbag::metrics {
class WorkerMetrics;
}

namespace airbag::upstream {

struct CurlClientOptions {
  std::string name;          // upstream name, for logs
  bool https = true;         // scheme
  std::string host;          // from the url (without brackets)
  uint16_t port = 443;
  std::string connect_ip;    // numeric address to connect to (resolved at load); empty = host
  absl::Duration connect_timeout = absl::Seconds(1);  // includes the TLS handshake
  uint32_t max_connections = 256;                     // for this client (this worker)
  std::string ca;            // CA bundle file; empty = the system's
  bool verify = true;        // verify the peer's certificate and host name
  std::string sni;           // name sent in SNI and verified; empty = host
  // Offer h2 by ALPN (https only): `upstreams.X.http2: true`. Note that a
  // cancelled h2 transfer is an RST_STREAM, which some proxies (nginx) were
  // seen not to pass on to the model as a closed connection.
  bool http2 = false;
  // Where this client's open and idle connections are counted (may be null).
  std::shared_ptr<ConnectionCounts> counts;

  bool operator==(const CurlClientOptions&) const = default;
};

// Options for talking to `u` (scheme, host, port, tls), connecting to
// `address` (resolved at load; may be null: curl resolves the host).
CurlClientOptions curlOptions(const std::string& name, const UpstreamConfig& u,
                              const sockaddr_storage* address);

class CurlClient final : public UpstreamClient {
 public:
  // `base` and `metrics` (may be null) must outlive the client; `logger` may
  // be null. Owner thread only.
  CurlClient(event_base* base, CurlClientOptions options, metrics::WorkerMetrics* metrics,
             std::shared_ptr<spdlog::logger> logger);
  ~CurlClient() override;
  CurlClient(const CurlClient&) = delete;
  CurlClient& operator=(const CurlClient&) = delete;

  // The request head is parsed back into method, target and headers; the
  // transfer goes to the upstream's host with the head's own Host header.
  UpstreamCall* start(const UpstreamRequest& request, UpstreamResponseHandler* handler) override;
  uint64_t connectionsOpened() const override { return opened_; }

  const CurlClientOptions& options() const { return options_; }
  // Transfers in flight (started, not yet ended or cancelled).
  size_t active() const { return active_; }

 private:
  class Call;
  struct SocketWatch;
  friend class Call;

  static int socketCb(CURL* easy, int fd, int what, void* clientp, void* socketp);
  static int timerCb(CURLM* multi, long timeout_ms, void* clientp);
  static void eventCb(int fd, short what, void* arg);
  static void timeoutCb(int fd, short what, void* arg);
  static void kickCb(int fd, short what, void* arg);
  // curl's socket open and close, counted for ConnectionCounts.
  int openSocket(const curl_sockaddr* address);
  int closeSocket(int fd);
  // Publishes the open and idle counts (idle: open beyond the transfers).
  void publish();
  int onSocket(int fd, int what);
  void onTimerSet(long timeout_ms);
  void socketAction(int fd, int ev_bitmask);
  void collectDone();
  void onKick();
  void kick();
  void release(Call* call);

  event_base* base_;
  CurlClientOptions options_;
  metrics::WorkerMetrics* metrics_;
  std::shared_ptr<spdlog::logger> logger_;
  std::unique_ptr<CURLM, void (*)(CURLM*)> multi_;
  std::unique_ptr<event, void (*)(event*)> timer_;
  std::unique_ptr<event, void (*)(event*)> kick_ev_;  // deferred resumes and removals
  std::string url_prefix_;  // scheme://host:port
  void* connect_to_ = nullptr;  // curl_slist for CURLOPT_CONNECT_TO
  std::vector<std::unique_ptr<Call>> calls_;
  std::vector<Call*> free_calls_;
  std::unordered_map<int, std::unique_ptr<SocketWatch>> watches_;  // by fd
  std::vector<Call*> to_resume_;
  std::vector<Call*> to_remove_;     // cancelled inside curl's callbacks
  std::vector<Call*> failed_starts_; // reported from the loop
  int depth_ = 0;  // > 0 inside curl_multi_socket_action (curl's callbacks run)
  size_t active_ = 0;
  uint64_t opened_ = 0;
  int64_t open_sockets_ = 0;
  ConnectionShare share_;
};

}  // namespace airbag::upstream
