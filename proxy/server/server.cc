// Process lifecycle: listeners, workers, admin port and signals; see server.h.
#include "proxy/server/server.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "proxy/admin/admin_server.h"
#include "proxy/config/config_json.h"
#include "proxy/config/config_loader.h"
#include "proxy/config/restart_only.h"
#include "proxy/http/tls.h"
#include "proxy/log/access_log.h"
#include "proxy/log/logging.h"
#include "proxy/metrics/metrics.h"
#include "proxy/pipeline/snapshot.h"
#include "proxy/server/route_admin.h"
#include "proxy/server/shared_purge.h"
#include "proxy/server/upstream_admin.h"
#include "proxy/server/worker.h"
#include "proxy/upstream/curl_client.h"
#include "proxy/upstream/health_checker.h"
#include "spdlog/spdlog.h"

namespace airbag::server {
namespace {

// A listening socket with SO_REUSEPORT, so every worker gets its own accept
// queue on the same port and the kernel spreads connections between them.
absl::StatusOr<int> bindListener(const HostPort& at, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port_s = std::to_string(port);
  int rc = getaddrinfo(at.host.empty() ? nullptr : at.host.c_str(), port_s.c_str(), &hints, &res);
  if (rc != 0) return absl::InvalidArgumentError(absl::StrCat("cannot resolve listen address '", at.host, "': ", gai_strerror(rc)));
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    freeaddrinfo(res);
    return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
    int err = errno;
    freeaddrinfo(res);
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", at.host, ":", port, ": ", std::strerror(err)));
  }
  freeaddrinfo(res);
  return fd;
}

uint16_t boundPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

// The main thread's loop: signals, drain timing, and the workers' exits.
class Process {
 public:
  Process(std::shared_ptr<const Config> config, const ServerOptions& options)
      : config_(std::move(config)), options_(options), base_(event_base_new(), &event_base_free) {}

  absl::StatusOr<int> run();

 private:
  static void signalCb(evutil_socket_t sig, short, void* arg);
  static void graceCb(evutil_socket_t, short, void* arg);
  static void workerExitCb(evutil_socket_t, short, void* arg);
  void beginDrain(bool exit_after);
  // Waits (briefly, bounded) until every worker has closed its listening
  // socket, so that whoever started the drain can rely on new connects being
  // refused once it returns.
  void waitListenersClosed();
  // Loads the config file again; on success every worker switches to it, and
  // the warnings name the restart-only settings that changed and were kept.
  // Callable from the main and the admin thread.
  absl::StatusOr<std::vector<std::string>> reload();
  std::shared_ptr<const pipeline::Snapshot> snapshot() const {
    absl::MutexLock l(&snapshot_mu_);
    return snapshot_;
  }
  // GET /status's part from the process: config file, workers, start, last reload.
  nlohmann::json processStatus(int workers) const;
  void recordReload(const absl::Status& result, const std::vector<std::string>& warnings);

  std::shared_ptr<const Config> config_;
  ServerOptions options_;
  std::unique_ptr<event_base, void (*)(event_base*)> base_;
  std::shared_ptr<spdlog::logger> log_;
  // Every process logger, so a reload can apply a new log.level to all.
  std::vector<std::shared_ptr<spdlog::logger>> loggers_;
  mutable absl::Mutex snapshot_mu_;
  std::shared_ptr<const pipeline::Snapshot> snapshot_ ABSL_GUARDED_BY(snapshot_mu_);
  absl::Mutex reload_mu_;  // one reload at a time
  metrics::Registry* registry_ = nullptr;
  // listen.tls: the context every TLS listener hands new connections.
  std::unique_ptr<http::TlsServerContext> tls_;
  std::unique_ptr<upstream::HealthChecker> health_;  // probes once per process
  std::unique_ptr<upstream::SaturationScraper> saturation_;  // scrapes once per process
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> draining_{false};
  std::atomic<bool> listeners_up_{false};
  bool exiting_ = false;
  const absl::Time started_ = absl::Now();
  mutable absl::Mutex status_mu_;
  nlohmann::json last_reload_ ABSL_GUARDED_BY(status_mu_);  // null until the first reload
  event* grace_ = nullptr;
  event* worker_exit_ = nullptr;
};

absl::StatusOr<int> Process::run() {
  const Config& config = *config_;
  log_ = log::makeLogger("main", config.log);
  auto sink = log::AccessLogSink::open(config.log);
  if (!sink.ok()) return sink.status();
  auto initial = pipeline::Snapshot::build(config_);
  if (!initial.ok()) return initial.status();
  (*initial)->commit();

  int workers = config.listen.workers > 0 ? config.listen.workers
                                          : static_cast<int>(std::thread::hardware_concurrency());
  if (workers <= 0) workers = 1;

  if (config.listen.tls) {
    auto tls = http::TlsServerContext::create(*config.listen.tls);
    if (!tls.ok()) return tls.status();
    tls_ = *std::move(tls);
  }
  // The listeners: plain on listen.address; with listen.tls, TLS there
  // instead, or on listen.tls.address beside it.
  struct ListenerPlan {
    HostPort at;
    const http::TlsServerContext* tls;
    uint16_t port;
  };
  std::vector<ListenerPlan> plans;
  if (!config.listen.tls || !config.listen.tls->address.empty())
    plans.push_back({config.listen.bind, nullptr, config.listen.bind.port});
  if (config.listen.tls) {
    const HostPort& at =
        config.listen.tls->address.empty() ? config.listen.bind : config.listen.tls->bind;
    plans.push_back({at, tls_.get(), at.port});
  }
  // Bind every worker's sockets up front so a bad address fails the start,
  // and so port 0 resolves once for all of them.
  std::vector<std::vector<ListenSocket>> sockets(static_cast<size_t>(workers));
  for (int i = 0; i < workers; ++i) {
    for (ListenerPlan& plan : plans) {
      auto fd = bindListener(plan.at, plan.port);
      if (!fd.ok()) {
        for (auto& list : sockets)
          for (ListenSocket& ls : list) close(ls.fd);
        return fd.status();
      }
      if (i == 0) plan.port = boundPort(*fd);
      sockets[static_cast<size_t>(i)].push_back({*fd, plan.tls});
    }
  }

  metrics::Registry registry;
  {
    absl::MutexLock l(&snapshot_mu_);
    snapshot_ = *initial;
  }
  registry_ = &registry;
  registry.addCollector([this](metrics::WorkerMetrics& out) {
    std::shared_ptr<const pipeline::Snapshot> snap = snapshot();
    collectRouteMetrics(*snap, out, absl::Now());
    collectUpstreamMetrics(*snap, out, absl::Now());
  });
  worker_exit_ = event_new(base_.get(), -1, EV_PERSIST, &Process::workerExitCb, this);
  auto worker_log = log::makeLogger("worker", config.log);
  auto admin_log = log::makeLogger("admin", config.log);
  auto health_log = log::makeLogger("health", config.log);
  loggers_ = {log_, worker_log, admin_log, health_log};
  health_ = std::make_unique<upstream::HealthChecker>(health_log, &registry.global());
  health_->update(healthTargets(**initial));
  saturation_ = std::make_unique<upstream::SaturationScraper>(health_log);
  saturation_->update(saturationTargets(**initial));
  for (int i = 0; i < workers; ++i) {
    workers_.push_back(std::make_unique<Worker>(i, std::move(sockets[static_cast<size_t>(i)]),
                                                *initial,
                                                registry.addShard(), sink->get(), worker_log,
                                                [this] { event_active(worker_exit_, 0, 0); }));
  }

  admin::AdminHooks hooks;
  hooks.config = [this] { return snapshot()->config; };
  hooks.config_json = [](const Config& c) { return config::toJson(c); };
  hooks.route_state = [this](const Config&, std::string_view route) {
    return routeState(*snapshot(), route, absl::Now());
  };
  hooks.circuit = [this](std::string_view route, std::string_view state) {
    return setCircuitOverride(*snapshot(), route, state);
  };
  hooks.set_fault = [this](std::string_view route, const nlohmann::json& fault) {
    return setFault(*snapshot(), route, fault);
  };
  hooks.clear_fault = [this](std::string_view route) { return clearFault(*snapshot(), route); };
  hooks.reload = [this] { return reload(); };
  hooks.cache_purge = [this](std::optional<std::string_view> route) {
    return purgeCache(*snapshot(), route);
  };
  // The shared tier's half of a purge runs on the purger's own loop, which
  // answers the admin thread later; declared before the admin server, so it
  // outlives it.
  SharedPurger purger(admin_log, &registry.global());
  hooks.shared_purge = [this, &purger](std::optional<std::string_view> route,
                                       std::function<void(nlohmann::json)> done) {
    return purger.purge(snapshot(), route, std::move(done));
  };
  hooks.upstreams = [this] { return upstreamsState(*snapshot(), absl::Now()); };
  hooks.readiness_problems = [this] { return readinessProblems(*snapshot()); };
  hooks.process_status = [this, workers] { return processStatus(workers); };
  hooks.listeners_up = [this] { return listeners_up_.load(); };
  hooks.draining = [this] { return draining_.load(); };
  hooks.drain = [this] {
    // Called on the admin thread: stop accepting and finish in flight, but
    // keep the process up (an orchestrator sends SIGTERM when it wants us gone).
    draining_.store(true);
    for (auto& w : workers_) w->requestDrain(/*exit_when_done=*/false);
    waitListenersClosed();
  };
  // Workers first, then the admin port: once /healthz answers, /readyz
  // already sees the listeners up.
  for (auto& w : workers_) w->start();
  health_->start();
  saturation_->start();
  listeners_up_.store(true);
  auto admin = admin::AdminServer::start(config.admin, hooks, registry, admin_log);
  if (!admin.ok()) {
    for (auto& w : workers_) w->requestStop();
    for (auto& w : workers_) w->join();
    workers_.clear();
    return admin.status();
  }
  std::string where;
  for (const ListenerPlan& plan : plans)
    absl::StrAppend(&where, where.empty() ? "" : " and ", plan.at.host, ":", plan.port,
                    plan.tls ? " (TLS)" : "");
  log_->info("airbag listening on {} with {} worker(s); admin on {}:{}", where, workers,
             config.admin.bind.host, (*admin)->port());

  event* sigterm = evsignal_new(base_.get(), SIGTERM, &Process::signalCb, this);
  event* sigint = evsignal_new(base_.get(), SIGINT, &Process::signalCb, this);
  event* sighup = evsignal_new(base_.get(), SIGHUP, &Process::signalCb, this);
  event_add(sigterm, nullptr);
  event_add(sigint, nullptr);
  event_add(sighup, nullptr);
  event_add(worker_exit_, nullptr);

  event_base_dispatch(base_.get());

  for (auto& w : workers_) w->requestStop();
  for (auto& w : workers_) w->join();
  (*admin)->stop();
  health_.reset();
  saturation_.reset();
  workers_.clear();
  event_free(sigterm);
  event_free(sigint);
  event_free(sighup);
  if (grace_) event_free(grace_);
  event_free(worker_exit_);
  log_->info("airbag stopped");
  return 0;
}

void Process::signalCb(evutil_socket_t sig, short, void* arg) {
  auto* self = static_cast<Process*>(arg);
  if (sig == SIGHUP) {
    self->log_->info("SIGHUP: reloading {}", self->config_->source_path);
    (void)self->reload();  // the outcome is logged and counted
    return;
  }
  if (self->exiting_) {
    self->log_->warn("second stop signal: exiting without waiting for in-flight requests");
    event_base_loopbreak(self->base_.get());
    return;
  }
  self->log_->info("{}: draining (grace {})", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                   absl::FormatDuration(self->options_.drain_grace));
  self->beginDrain(/*exit_after=*/true);
}

absl::StatusOr<std::vector<std::string>> Process::reload() {
  absl::MutexLock serial(&reload_mu_);
  std::shared_ptr<const pipeline::Snapshot> current = snapshot();
  const std::string path = current->config->source_path;
  auto fail = [&](const absl::Status& s) {
    log_->error("reload of {} failed; keeping the running configuration:\n{}", path,
                std::string(s.message()));
    registry_->recordConfigReload(false);
    recordReload(s, {});
    return s;
  };
  auto loaded = config::loadFile(path);
  if (!loaded.ok()) return fail(loaded.status());
  const Config& was = *current->config;
  // The snapshot shows what is in force: restart-only settings keep their
  // running values, and each one the file changed is named.
  auto merged = std::make_shared<Config>(**loaded);
  std::vector<std::string> warnings = config::keepRestartOnly(was, *merged);
  // Built completely first; only then is anything live touched.
  // The certificate and key are read again (a rotated pair takes effect); a
  // pair that does not load fails the reload, and the running one stays.
  std::shared_ptr<SSL_CTX> tls;
  if (tls_ && merged->listen.tls) {
    auto prepared = tls_->prepare(*merged->listen.tls);
    if (!prepared.ok()) return fail(prepared.status());
    tls = *std::move(prepared);
  }
  auto next = pipeline::Snapshot::build(std::move(merged), current.get());
  if (!next.ok()) return fail(next.status());
  (*next)->commit();
  const Config& now = *(*next)->config;
  for (const std::string& w : warnings) log_->warn("reload: {}", w);
  if (now.log.level != was.log.level) {
    // Said before the change, so it shows whichever way the level moves.
    log_->info("reload: log.level is now {} (was {})", now.log.level, was.log.level);
    auto level = log::parseLevel(now.log.level);
    for (auto& l : loggers_) l->set_level(level.ok() ? *level : spdlog::level::info);
  }
  {
    absl::MutexLock l(&snapshot_mu_);
    snapshot_ = *next;
  }
  if (tls) tls_->set(std::move(tls));  // connections accepted from now on use it
  for (auto& w : workers_) w->updateSnapshot(*next);
  health_->update(healthTargets(**next));
  saturation_->update(saturationTargets(**next));
  registry_->recordConfigReload(true);
  recordReload(absl::OkStatus(), warnings);
  log_->info("reloaded {} ({} route(s))", path, now.routes.size());
  return warnings;
}

void Process::recordReload(const absl::Status& result, const std::vector<std::string>& warnings) {
  nlohmann::json j = {{"at", absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone())},
                      {"ok", result.ok()},
                      {"error", result.ok() ? nlohmann::json(nullptr)
                                            : nlohmann::json(std::string(result.message()))},
                      {"warnings", warnings}};
  absl::MutexLock l(&status_mu_);
  last_reload_ = std::move(j);
}

nlohmann::json Process::processStatus(int workers) const {
  const absl::Time now = absl::Now();
  nlohmann::json j = {
      {"config_file", snapshot()->config->source_path},
      {"workers", workers},
      {"started_at", absl::FormatTime(absl::RFC3339_sec, started_, absl::UTCTimeZone())},
      {"uptime_seconds", std::floor(absl::ToDoubleSeconds(now - started_) * 10) / 10}};
  absl::MutexLock l(&status_mu_);
  j["last_reload"] = last_reload_;
  return j;
}

void Process::beginDrain(bool exit_after) {
  exiting_ = exit_after;
  draining_.store(true);
  for (auto& w : workers_) w->requestDrain(exit_after);
  waitListenersClosed();
  grace_ = evtimer_new(base_.get(), &Process::graceCb, this);
  timeval tv = absl::ToTimeval(options_.drain_grace);
  evtimer_add(grace_, &tv);
}

void Process::waitListenersClosed() {
  // A worker answers its inbox within one loop pass; a second is far beyond
  // that, and a worker stuck longer must not hold the drain (or the admin
  // thread) hostage.
  const absl::Time until = absl::Now() + absl::Seconds(1);
  for (auto& w : workers_) {
    if (!w->waitListenerClosed(std::max(absl::ZeroDuration(), until - absl::Now())))
      log_->warn("drain: a worker did not close its listening socket within 1s");
  }
}

void Process::graceCb(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Process*>(arg);
  self->log_->warn("drain grace period over: closing remaining connections");
  event_base_loopbreak(self->base_.get());
}

void Process::workerExitCb(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Process*>(arg);
  for (auto& w : self->workers_)
    if (!w->finished()) return;
  event_base_loopbreak(self->base_.get());
}

}  // namespace

absl::StatusOr<int> runServer(std::shared_ptr<const Config> config, const ServerOptions& options) {
  static const bool threads_ready = evthread_use_pthreads() == 0;
  if (!threads_ready) return absl::InternalError("libevent thread support is unavailable");
  signal(SIGPIPE, SIG_IGN);
  Process p(std::move(config), options);
  return p.run();
}

}  // namespace airbag::server
