// Per-route metric cells; see route_metrics.h.
#include "proxy/pipeline/route_metrics.h"

#include <charconv>

namespace airbag::pipeline {

void RouteMetrics::request(metrics::WorkerMetrics& m, std::string_view route,
                           std::string_view source, int code, absl::Duration total) {
  RequestCells* cells = nullptr;
  for (RequestCells& c : requests_)
    if (c.code == code && c.source == source) cells = &c;
  if (!cells) {
    cells = &requests_[next_request_];
    next_request_ = (next_request_ + 1) % kWays;
    char buf[16];
    auto r = std::to_chars(buf, buf + sizeof(buf), code);
    const metrics::Families& f = m.families();
    cells->source.assign(source);
    cells->code = code;
    cells->requests = m.counter(f.requests_total, {route, source, std::string_view(buf, r.ptr - buf)});
    cells->duration = m.histogram(f.request_duration_seconds, {route, source});
  }
  cells->requests.inc();
  cells->duration.observe(absl::ToDoubleSeconds(total));
}

void RouteMetrics::attempt(metrics::WorkerMetrics& m, std::string_view route,
                           std::string_view upstream, AttemptOutcome outcome) {
  AttemptCells* cells = nullptr;
  for (AttemptCells& c : attempts_)
    if (c.set && c.outcome == outcome && c.upstream == upstream) cells = &c;
  if (!cells) {
    cells = &attempts_[next_attempt_];
    next_attempt_ = (next_attempt_ + 1) % kWays;
    cells->upstream.assign(upstream);
    cells->outcome = outcome;
    cells->set = true;
    cells->attempts = m.counter(m.families().upstream_attempts_total,
                                {route, upstream, attemptOutcomeLabel(outcome)});
  }
  cells->attempts.inc();
}

}  // namespace airbag::pipeline
