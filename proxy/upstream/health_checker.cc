// The process's health-check thread; see health_checker.h.
#include "proxy/upstream/health_checker.h"

#include <event2/event.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "proxy/metrics/metrics.h"
#include "proxy/upstream/curl_client.h"
#include "spdlog/spdlog.h"

namespace airbag::upstream {

// Probes one upstream every interval: one request at a time, cancelled at
// the probe timeout.
class HealthChecker::Prober final : public UpstreamResponseHandler {
 public:
  Prober(HealthChecker& checker, event_base* base, HealthTarget target)
      : checker_(checker),
        target_(std::move(target)),
        client_(base,
                curlOptions(target_.config.name, target_.config,
                            target_.has_address ? &target_.address : nullptr),
                nullptr, nullptr),
        interval_(evtimer_new(base, &Prober::intervalCb, this), &event_free),
        timeout_(evtimer_new(base, &Prober::timeoutCb, this), &event_free) {
    const HealthCheckConfig& h = *target_.config.health;
    head_ = absl::StrCat("GET ", h.path, " HTTP/1.1\r\nhost: ", target_.config.host_header,
                         "\r\nuser-agent: airbag-health-check\r\n\r\n");
    timeval now = {0, 0};
    evtimer_add(interval_.get(), &now);
  }
  ~Prober() override {
    if (call_) call_->cancel();
  }

  void onUpstreamHeaders(const UpstreamResponseHead& head) override { status_ = head.status; }
  void onUpstreamData(std::string_view) override {}
  void onUpstreamComplete() override {
    const std::vector<int>& expect = target_.config.health->expect;
    bool pass = std::find(expect.begin(), expect.end(), status_) != expect.end();
    finish(pass ? "pass" : "fail", pass ? "" : absl::StrCat("status ", status_));
  }
  void onUpstreamFailure(AttemptOutcome outcome, std::string_view detail) override {
    finish(outcome == AttemptOutcome::kConnect ? "connect" : "error", detail);
  }

 private:
  static void intervalCb(int, short, void* arg) { static_cast<Prober*>(arg)->probe(); }
  static void timeoutCb(int, short, void* arg) {
    auto* self = static_cast<Prober*>(arg);
    if (!self->call_) return;
    self->call_->cancel();
    self->finish("timeout", "no answer within the probe timeout");
  }

  void probe() {
    const HealthCheckConfig& h = *target_.config.health;
    timeval iv = absl::ToTimeval(h.interval);
    evtimer_add(interval_.get(), &iv);
    if (call_) return;  // the previous probe is still out (its timeout ends it)
    status_ = 0;
    UpstreamRequest req;
    req.head = head_;
    call_ = client_.start(req, this);
    timeval to = absl::ToTimeval(h.timeout);
    evtimer_add(timeout_.get(), &to);
  }

  void finish(std::string_view result, std::string_view detail) {
    call_ = nullptr;
    evtimer_del(timeout_.get());
    const bool pass = result == "pass";
    UpstreamHealth& health = *target_.health;
    if (checker_.metrics_)
      checker_.metrics_->incCounter(checker_.metrics_->families().health_probes_total,
                                    {target_.config.name, result});
    if (health.recordProbe(*target_.config.health, pass) && checker_.logger_) {
      if (pass) {
        checker_.logger_->info("upstream '{}' is healthy again", target_.config.name);
      } else {
        checker_.logger_->warn("upstream '{}' is unhealthy: {} probe(s) failed, the last: {} {}",
                               target_.config.name, target_.config.health->fall, result, detail);
      }
    }
  }

  HealthChecker& checker_;
  HealthTarget target_;
  CurlClient client_;
  std::unique_ptr<event, void (*)(event*)> interval_;
  std::unique_ptr<event, void (*)(event*)> timeout_;
  std::string head_;
  UpstreamCall* call_ = nullptr;
  int status_ = 0;
};

HealthChecker::HealthChecker(std::shared_ptr<spdlog::logger> logger,
                             metrics::WorkerMetrics* metrics)
    : logger_(std::move(logger)),
      metrics_(metrics),
      probers_([this](event_base* base, HealthTarget t) -> std::unique_ptr<Prober> {
        if (!t.config.health || !t.health) return nullptr;
        return std::make_unique<Prober>(*this, base, std::move(t));
      }) {}

HealthChecker::~HealthChecker() = default;

void HealthChecker::start() { probers_.start(); }

void HealthChecker::update(std::vector<HealthTarget> targets) { probers_.update(std::move(targets)); }

}  // namespace airbag::upstream
