// The shared-tier purge loop: a ProbeLoop and its Redis client.
#include "proxy/server/shared_purge.h"

#include <utility>
#include <vector>

#include "airbag/clock.h"
#include "proxy/pipeline/event_dispatcher.h"
#include "proxy/shared_cache/entry_codec.h"
#include "proxy/upstream/probe_loop.h"
#include "spdlog/spdlog.h"

namespace airbag::server {

nlohmann::json sharedPurgeJson(const shared_cache::PurgeResult& r) {
  nlohmann::json j = {{"purged", r.purged}, {"complete", r.complete}, {"nodes", r.nodes}};
  if (r.stopped_by == shared_cache::PurgeStop::kError)
    j["error"] = r.error;
  else if (r.stopped_by != shared_cache::PurgeStop::kNone)
    j["stopped_by"] = std::string(shared_cache::purgeStopName(r.stopped_by));
  return j;
}

// The purges' loop and the Redis client on it.
class SharedPurger::Loop {
 public:
  explicit Loop(std::shared_ptr<spdlog::logger> logger)
      : logger_(std::move(logger)), dispatcher_(loop_.base(), clock_) {
    loop_.start();
  }
  // The client goes after the thread and before the base it runs on.
  ~Loop() {
    loop_.stop();
    client_.reset();
  }

  // Any thread: runs `task` on the loop, after those posted before it.
  void post(std::function<void()> task) { loop_.post(std::move(task)); }

  // Loop thread: this loop's client of `tier`, made when first needed (the
  // tier is restart-only, so one client serves every purge).
  shared_cache::Client& client(const std::shared_ptr<const shared_cache::Tier>& tier) {
    if (!client_ || &client_->tier() != tier.get())
      client_ = std::make_unique<shared_cache::Client>(loop_.base(), dispatcher_, tier, logger_);
    return *client_;
  }

 private:
  std::shared_ptr<spdlog::logger> logger_;
  upstream::ProbeLoop loop_;
  RealClock clock_;
  pipeline::EventDispatcher dispatcher_;
  std::unique_ptr<shared_cache::Client> client_;
};

SharedPurger::SharedPurger(std::shared_ptr<spdlog::logger> logger, metrics::WorkerMetrics* metrics)
    : logger_(std::move(logger)), metrics_(metrics) {}

SharedPurger::~SharedPurger() = default;

bool SharedPurger::purge(std::shared_ptr<const pipeline::Snapshot> snap,
                         std::optional<std::string_view> route,
                         std::function<void(nlohmann::json)> done) {
  if (!snap->shared_tier) return false;
  const shared_cache::TierSettings& s = snap->shared_tier->settings();
  std::vector<std::string> patterns;
  for (const RouteConfig& r : snap->config->routes)
    if (r.cache && r.cache->shared && (!route || r.name == *route))
      patterns.push_back(shared_cache::routePattern(s.prefix, r.name));
  if (patterns.empty()) return false;
  Loop* loop;
  {
    absl::MutexLock l(&mu_);
    if (!loop_) loop_ = std::make_unique<Loop>(logger_);
    loop = loop_.get();
  }
  std::string what = route ? std::string(*route) : "every route";
  loop->post([loop, snap, patterns = std::move(patterns), done = std::move(done),
              what = std::move(what), logger = logger_, m = metrics_]() mutable {
    std::shared_ptr<shared_cache::PurgeTransport> transport =
        shared_cache::clientTransport(loop->client(snap->shared_tier));
    shared_cache::purgeShared(
        std::move(transport), std::move(patterns), snap->shared_tier->settings().cluster,
        shared_cache::PurgeLimits{},
        [done = std::move(done), what = std::move(what), logger,
         m](shared_cache::PurgeResult r) {
          const bool failed = r.stopped_by == shared_cache::PurgeStop::kError;
          if (m) {
            if (r.purged > 0) m->incCounter(m->families().shared_cache_purged_total, {}, r.purged);
            if (failed) m->incCounter(m->families().shared_cache_errors_total, {"purge"});
          }
          if (logger) {
            if (failed)
              logger->warn("cache purge of {} in the shared tier: {} key(s), then {}", what,
                           r.purged, r.error);
            else if (r.complete)
              logger->info("cache purge of {} in the shared tier: {} key(s)", what, r.purged);
            else
              logger->info("cache purge of {} in the shared tier: {} key(s), stopped by {}", what,
                           r.purged, shared_cache::purgeStopName(r.stopped_by));
          }
          done(sharedPurgeJson(r));
        });
  });
  return true;
}

}  // namespace airbag::server
