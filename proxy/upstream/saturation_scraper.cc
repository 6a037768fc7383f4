// The process's saturation-scraping thread; see saturation_scraper.h.
#include "proxy/upstream/saturation_scraper.h"

#include <event2/event.h>

#include "absl/strings/str_cat.h"
#include "proxy/upstream/curl_client.h"
#include "spdlog/spdlog.h"

namespace airbag::upstream {
namespace {
// A model server's exposition is tens of KiB; anything far larger is not one.
constexpr size_t kMaxBody = 8 << 20;

// The target as scraped: on `saturation.port` when it names one.
SaturationTarget onMetricsPort(SaturationTarget t) {
  const uint16_t port = t.config.saturation ? t.config.saturation->port : uint16_t{0};
  if (port == 0 || port == t.config.port) return t;
  t.config.port = port;
  bool v6 = t.config.host.find(':') != std::string::npos;
  t.config.host_header = absl::StrCat(v6 ? "[" : "", t.config.host, v6 ? "]" : "", ":", port);
  return t;
}

}  // namespace

// Scrapes one upstream every interval: one request at a time, cancelled
// after an interval.
class SaturationScraper::Scrape final : public UpstreamResponseHandler {
 public:
  Scrape(SaturationScraper& scraper, event_base* base, SaturationTarget target)
      : scraper_(scraper),
        target_(onMetricsPort(std::move(target))),
        client_(base,
                curlOptions(target_.config.name, target_.config,
                            target_.has_address ? &target_.address : nullptr),
                nullptr, nullptr),
        interval_(evtimer_new(base, &Scrape::intervalCb, this), &event_free),
        timeout_(evtimer_new(base, &Scrape::timeoutCb, this), &event_free) {
    head_ = absl::StrCat("GET ", target_.config.saturation->metrics_path,
                         " HTTP/1.1\r\nhost: ", target_.config.host_header,
                         "\r\naccept: text/plain\r\nuser-agent: airbag-saturation\r\n\r\n");
    timeval now = {0, 0};
    evtimer_add(interval_.get(), &now);
  }
  ~Scrape() override {
    if (call_) call_->cancel();
  }

  void onUpstreamHeaders(const UpstreamResponseHead& head) override { status_ = head.status; }
  void onUpstreamData(std::string_view data) override {
    if (body_.size() + data.size() <= kMaxBody)
      body_.append(data);
    else
      too_big_ = true;
  }
  void onUpstreamComplete() override {
    const SaturationConfig& config = *target_.config.saturation;
    UpstreamSaturation& s = *target_.saturation;
    absl::Time now = absl::Now();
    bool changed;
    if (status_ != 200) {
      changed = s.recordFailure(absl::StrCat("the metrics answered status ", status_), now);
    } else if (too_big_) {
      changed = s.recordFailure("the metrics answer is larger than 8 MiB", now);
    } else {
      changed = s.recordScrape(config, body_, now);
    }
    done(changed);
  }
  void onUpstreamFailure(AttemptOutcome outcome, std::string_view detail) override {
    bool changed = target_.saturation->recordFailure(
        absl::StrCat(outcome == AttemptOutcome::kConnect ? "cannot connect: " : "failed: ",
                     absl::string_view(detail.data(), detail.size())),
        absl::Now());
    done(changed);
  }

 private:
  static void intervalCb(int, short, void* arg) { static_cast<Scrape*>(arg)->scrape(); }
  static void timeoutCb(int, short, void* arg) {
    auto* self = static_cast<Scrape*>(arg);
    if (!self->call_) return;
    self->call_->cancel();
    self->done(
        self->target_.saturation->recordFailure("no answer within the interval", absl::Now()));
  }

  void scrape() {
    timeval iv = absl::ToTimeval(target_.config.saturation->interval);
    evtimer_add(interval_.get(), &iv);
    if (call_) return;  // the previous scrape is still out (its timeout ends it)
    status_ = 0;
    too_big_ = false;
    body_.clear();
    UpstreamRequest req;
    req.head = head_;
    call_ = client_.start(req, this);
    evtimer_add(timeout_.get(), &iv);
  }

  void done(bool changed) {
    call_ = nullptr;
    evtimer_del(timeout_.get());
    if (!changed || !scraper_.logger_) return;
    UpstreamSaturation::View v = target_.saturation->view();
    if (v.state == SaturationState::kSaturated) {
      scraper_.logger_->warn("upstream '{}' is saturated", target_.config.name);
    } else if (v.state == SaturationState::kUnknown) {
      scraper_.logger_->warn("upstream '{}' saturation unknown: {}", target_.config.name, v.error);
    } else {
      scraper_.logger_->info("upstream '{}' is no longer saturated", target_.config.name);
    }
  }

  SaturationScraper& scraper_;
  SaturationTarget target_;
  CurlClient client_;
  std::unique_ptr<event, void (*)(event*)> interval_;
  std::unique_ptr<event, void (*)(event*)> timeout_;
  std::string head_;
  std::string body_;
  UpstreamCall* call_ = nullptr;
  int status_ = 0;
  bool too_big_ = false;
};

SaturationScraper::SaturationScraper(std::shared_ptr<spdlog::logger> logger)
    : logger_(std::move(logger)),
      scrapes_([this](event_base* base, SaturationTarget t) -> std::unique_ptr<Scrape> {
        if (!t.config.saturation || !t.saturation) return nullptr;
        return std::make_unique<Scrape>(*this, base, std::move(t));
      }) {}

SaturationScraper::~SaturationScraper() = default;

void SaturationScraper::start() { scrapes_.start(); }

void SaturationScraper::update(std::vector<SaturationTarget> targets) { scrapes_.update(std::move(targets)); }

}  // namespace airbag::upstream
