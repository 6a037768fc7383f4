// The shared-tier purge loop: its thread, its inbox, its Redis client.
#include "proxy/server/shared_purge.h"

#include <event2/event.h>

#include <thread>
#include <utility>
#include <vector>

#include "airbag/clock.h"
#include "proxy/pipeline/event_dispatcher.h"
#include "proxy/pipeline/inbox.h"
#include "proxy/shared_cache/entry_codec.h"
#include "spdlog/spdlog.h"

namespace airbag::server {

nlohmann::json sharedPurgeJson(const shared_cache::PurgeResult& r) {
  nlohmann::json j = {{"purged", r.purged}, {"complete", r.complete}, {"nodes", r.nodes}};
  if (r.stopped_by == "error")
    j["error"] = r.error;
  else if (!r.stopped_by.empty())
    j["stopped_by"] = r.stopped_by;
  return j;
}

class SharedPurger::Loop {
 public:
  explicit Loop(std::shared_ptr<spdlog::logger> logger)
      : logger_(std::move(logger)),
        base_(event_base_new(), &event_base_free),
        dispatcher_(base_.get(), clock_) {
    inbox_event_ = event_new(base_.get(), inbox_.fd(), EV_READ | EV_PERSIST, &Loop::onInboxCb, this);
    event_add(inbox_event_, nullptr);
    thread_ = std::thread([this] { event_base_dispatch(base_.get()); });
  }
  ~Loop() {
    post(nullptr);  // a null task: stop
    thread_.join();
    client_.reset();
    event_free(inbox_event_);
  }

  // Any thread: runs `task` on the loop; null stops it.
  void post(std::function<void()> task) {
    {
      absl::MutexLock l(&mu_);
      tasks_.push_back(std::move(task));
    }
    inbox_.post({pipeline::InboxMessage::Kind::kWake});
  }

  // Loop thread: this loop's client of `tier`, made when first needed (the
  // tier is restart-only, so one client serves every purge).
  shared_cache::Client& client(const std::shared_ptr<const shared_cache::Tier>& tier) {
    if (!client_ || &client_->tier() != tier.get())
      client_ = std::make_unique<shared_cache::Client>(base_.get(), dispatcher_, tier, logger_);
    return *client_;
  }

 private:
  static void onInboxCb(evutil_socket_t, short, void* self) { static_cast<Loop*>(self)->onInbox(); }
  void onInbox() {
    inbox_.take(&messages_);
    std::vector<std::function<void()>> tasks;
    {
      absl::MutexLock l(&mu_);
      tasks.swap(tasks_);
    }
    for (auto& task : tasks) {
      if (!task) {
        event_base_loopbreak(base_.get());
        return;
      }
      task();
    }
  }

  std::shared_ptr<spdlog::logger> logger_;
  std::unique_ptr<event_base, void (*)(event_base*)> base_;
  RealClock clock_;
  pipeline::EventDispatcher dispatcher_;
  pipeline::Inbox inbox_;
  std::vector<pipeline::InboxMessage> messages_;
  event* inbox_event_ = nullptr;
  absl::Mutex mu_;
  std::vector<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<shared_cache::Client> client_;
  std::thread thread_;
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
          if (m) {
            if (r.purged > 0) m->incCounter(m->families().shared_cache_purged_total, {}, r.purged);
            if (r.stopped_by == "error")
              m->incCounter(m->families().shared_cache_errors_total, {"purge"});
          }
          if (logger) {
            if (r.stopped_by == "error")
              logger->warn("cache purge of {} in the shared tier: {} key(s), then {}", what,
                           r.purged, r.error);
            else
              logger->info("cache purge of {} in the shared tier: {} key(s){}", what, r.purged,
                           r.complete ? "" : ", stopped by " + r.stopped_by);
          }
          done(sharedPurgeJson(r));
        });
  });
  return true;
}

}  // namespace airbag::server
