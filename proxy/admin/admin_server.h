// The admin HTTP API (DESIGN.md §5) on its own thread and event_base, with
// libevent's evhttp: the traffic is tiny, so convenience beats speed here.
#pragma once

#include <event2/event.h>
#include <event2/http.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "airbag/config.h"
#include "nlohmann/json.hpp"
#include "proxy/admin/route_history.h"
#include "proxy/metrics/metrics.h"
#include "spdlog/logger.h"

namespace airbag::admin {

// What the admin API reads and steers, supplied by the process. Every hook is
// called on the admin thread, so each must be safe to call from there. A hook
// left empty makes its endpoint answer 501 not_implemented (or, for the
// readiness inputs, counts as "fine").
struct AdminHooks {
  std::function<std::shared_ptr<const Config>()> config;  // current snapshot
  std::function<std::string(const Config&)> config_json;  // default: config::toJson
  // Live state of a route (breaker, bulkhead, budget, cache, fault).
  std::function<nlohmann::json(const Config&, std::string_view route)> route_state;
  // GET /upstreams: each upstream's health, passive state and connections.
  std::function<nlohmann::json()> upstreams;
  // Extra reasons /readyz is not ready (a probed primary upstream is down
  // under readiness.require_upstream); empty when none.
  std::function<std::vector<std::string>()> readiness_problems;
  std::function<bool()> listeners_up;
  std::function<bool()> draining;
  std::function<void()> drain;           // POST /drain
  // POST /reload: the warnings of a reload that went through (restart-only
  // settings that changed and were kept), or why the new file was refused.
  std::function<absl::StatusOr<std::vector<std::string>>()> reload;
  // POST /routes/{name}/circuit with state "open" | "closed" | "auto".
  std::function<absl::Status(std::string_view route, std::string_view state)> circuit;
  // PUT /routes/{name}/fault with the request's JSON object.
  std::function<absl::Status(std::string_view route, const nlohmann::json& fault)> set_fault;
  // DELETE /routes/{name}/fault.
  std::function<absl::Status(std::string_view route)> clear_fault;
  // POST /cache/purge; nullopt purges every route.
  std::function<absl::Status(std::optional<std::string_view> route)> cache_purge;
  // POST /cache/purge's shared-tier half, asked after cache_purge succeeded:
  // false when none of the routes named uses cache.shared (the answer is
  // given at once); else true, and `done` is called later, exactly once and
  // from any thread, with the answer's "shared" object ({"purged":N,
  // "complete":bool, ...}; an "error" member when Redis failed).
  std::function<bool(std::optional<std::string_view> route,
                     std::function<void(nlohmann::json shared)> done)>
      shared_purge;
  // How long POST /cache/purge waits for `done` before answering 504.
  absl::Duration shared_purge_timeout = absl::Seconds(5);
  // GET /status: what the process knows of itself (config_file, workers,
  // started_at, uptime_seconds, last_reload); the router adds version,
  // rss_bytes, draining and token_required.
  std::function<nlohmann::json()> process_status;
};

// One admin request, as the router sees it (independent of evhttp).
struct AdminRequest {
  std::string_view method;         // "GET", "POST", ...
  std::string_view path;           // without the query string, still percent-encoded
  std::string_view authorization;  // the Authorization header, empty if absent
  std::string_view body;
};

struct AdminResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

// An answer given later, from any thread. The first call is the answer;
// calls after it (a late answer after the timeout) are ignored.
using Respond = std::function<void(AdminResponse)>;

// The router's word that a request is answered later, through Respond: the
// server answers `on_timeout` instead if that has not come by `timeout`.
struct Deferred {
  absl::Duration timeout;
  AdminResponse on_timeout;
};

// A JSON answer; and the error shape every endpoint uses:
// {"error":{"code":...,"message":...}}.
AdminResponse jsonResponse(int status, const nlohmann::json& body);
AdminResponse errorResponse(int status, std::string_view code, std::string_view message);

// Routes admin requests to hooks. Thread-compatible; used by AdminServer on
// its thread, and directly by tests.
class AdminRouter {
 public:
  // `token` empty means no authentication is required.
  AdminRouter(AdminHooks hooks, const metrics::Registry& registry, std::string token);

  // Answers `request` now, or returns Deferred and answers it later through
  // `later` (POST /cache/purge of a route in the shared tier). `later` is
  // never called from inside this call.
  std::variant<AdminResponse, Deferred> handleAsync(const AdminRequest& request,
                                                    Respond later) const;
  // The same, waiting (up to the deferral's timeout) for a later answer.
  AdminResponse handle(const AdminRequest& request) const;

  // Adds the second ending at `now` to every route's history (GET
  // /routes/{name}/history) from the registry's totals. The admin server
  // calls it once a second; not safe to call concurrently with handle().
  void sampleHistory(absl::Time now);

 private:
  std::variant<AdminResponse, Deferred> route(const AdminRequest& request,
                                              const Respond& later) const;
  // In admin_deferred.cc: POST /cache/purge's answer once memory is purged:
  // now, or with the shared tier's part later.
  std::variant<AdminResponse, Deferred> sharedPurge(std::optional<std::string_view> route,
                                                    const Respond& later) const;
  AdminResponse readyz() const;
  AdminResponse routes(std::string_view name) const;
  AdminResponse routeAction(std::string_view name, std::string_view action,
                            const AdminRequest& request) const;
  bool authorized(std::string_view authorization) const;
  // In admin_status.cc: GET /, GET /status, GET /routes/{name}/history, and
  // the upstreams hook's answer with each one's connections_opened.
  nlohmann::json processStatus() const;
  nlohmann::json upstreams() const;
  AdminResponse statusPage() const;
  AdminResponse history(std::string_view name) const;

  const AdminHooks hooks_;
  const metrics::Registry& registry_;
  const std::string token_;
  HistoryStore history_;
};

// Reads a token file: the first line, surrounding whitespace trimmed. Returns
// an error if the file cannot be read or holds no token.
absl::StatusOr<std::string> readTokenFile(const std::string& path);

// The admin server. Not copyable; stop() or destruction joins its thread.
class AdminServer {
 public:
  // Binds config.bind (port 0 picks a free port), reads config.token_file if
  // set, and starts serving on a new thread. `registry` must outlive the
  // server. Returns an error if the token cannot be read or the bind fails.
  static absl::StatusOr<std::unique_ptr<AdminServer>> start(const AdminConfig& config,
                                                            AdminHooks hooks,
                                                            const metrics::Registry& registry,
                                                            std::shared_ptr<spdlog::logger> logger);

  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;
  ~AdminServer();

  // The bound port (the real one when the config asked for 0).
  uint16_t port() const { return port_; }

  // Stops serving, joins the admin thread and closes the listening socket.
  // Idempotent; call from any
  // thread but the admin thread.
  void stop();

 private:
  struct EventBaseDeleter {
    void operator()(event_base* b) const { event_base_free(b); }
  };
  struct EventDeleter {
    void operator()(event* e) const { event_free(e); }
  };
  struct EvhttpDeleter {
    void operator()(evhttp* h) const { evhttp_free(h); }
  };
  // Owns one file descriptor.
  class Fd {
   public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    Fd& operator=(Fd&& o) noexcept;
    ~Fd();
    int get() const { return fd_; }

   private:
    int fd_ = -1;
  };

  AdminServer(AdminRouter router, std::shared_ptr<spdlog::logger> logger);

  // A request answered later (Deferred): its timeout timer, and what the
  // answer needs to know of the request.
  struct Held {
    AdminServer* server;
    uint64_t id;
    evhttp_request* req;
    AdminResponse on_timeout;
    std::unique_ptr<event, EventDeleter> timer;
  };
  // Answers given from other threads, waiting for the admin loop; shared
  // (weakly) with their Respond callbacks, which may outlive the server.
  // Not a pipeline::Inbox: its posters may outlive it, so it is closed on
  // stop and drops what comes after, and it carries whole answers.
  class Mailbox {
   public:
    explicit Mailbox(int wake_fd) : wake_fd_(wake_fd) {}
    // Any thread: leaves `resp` for the held request `id` and wakes the
    // loop; dropped once closed.
    void post(uint64_t id, AdminResponse resp);
    void wake();
    // Admin thread: the answers posted so far.
    std::vector<std::pair<uint64_t, AdminResponse>> take();
    // Before the wake pipe closes: nothing is posted or woken after this.
    void close();

   private:
    void wakeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
    const int wake_fd_;
    absl::Mutex mu_;
    bool closed_ ABSL_GUARDED_BY(mu_) = false;
    std::vector<std::pair<uint64_t, AdminResponse>> answers_ ABSL_GUARDED_BY(mu_);
  };

  static void onRequestCb(evhttp_request* req, void* self);
  void onRequest(evhttp_request* req);
  // Writes the answer and logs the request with its status.
  void send(evhttp_request* req, AdminResponse resp);
  static void onHeldTimeoutCb(evutil_socket_t fd, short what, void* held);
  void answerHeld(uint64_t id, AdminResponse resp);
  static void onWakeCb(evutil_socket_t fd, short what, void* self);
  void onWake();
  static void onHistoryTickCb(evutil_socket_t fd, short what, void* self);
  // Samples the route history and sets the timer for the next second.
  bool sampleHistoryAndRearm();

  AdminRouter router_;
  std::shared_ptr<spdlog::logger> logger_;
  // Declared so that evhttp and the wake event are freed before the base, and
  // the wake pipe is closed only after its event is gone.
  Fd wake_read_;
  Fd wake_write_;
  std::unique_ptr<event_base, EventBaseDeleter> base_;
  std::unique_ptr<event, EventDeleter> wake_event_;
  std::unique_ptr<event, EventDeleter> history_tick_;  // samples route history each second
  std::unique_ptr<evhttp, EvhttpDeleter> http_;
  uint16_t port_ = 0;
  std::shared_ptr<Mailbox> mailbox_;
  std::unordered_map<uint64_t, std::unique_ptr<Held>> held_;  // admin thread only
  uint64_t next_id_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace airbag::admin
