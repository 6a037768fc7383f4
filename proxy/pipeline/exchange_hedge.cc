// Hedged tries (DESIGN.md §8 `hedge`): a try to the route's own upstream
// goes through the HedgedCall wrapper, which starts a second call when the
// first has no answer head after `after`; here the Exchange says whether a
// hedge may go (policy/hedge.h: not while the upstream is saturated, its
// breaker not closed, or the retry budget spent) and counts how it went.
// Part of Exchange.
#include "policy/hedge.h"
#include "proxy/metrics/metrics.h"
#include "proxy/pipeline/exchange.h"

namespace airbag::pipeline {

UpstreamClient* Exchange::hedgeClient(UpstreamClient* client, absl::Time now) {
  const std::optional<HedgeConfig>& hedge = r_.route->hedge;
  if (!hedge) return client;
  absl::Duration after = hedge->after;
  if (hedge->percentile > 0) {
    // Before the window holds enough samples there is no percentile to go
    // by: the try still goes through the wrapper, to be measured.
    std::optional<absl::Duration> p = r_.runtime->firstByte().percentile(hedge->percentile, now);
    after = p ? *p : absl::InfiniteDuration();
  }
  hedge_.arm(client, after, hedge->max);
  return &hedge_;
}

bool Exchange::allowHedge(absl::Time now) {
  policy::HedgeInputs in;
  in.now = now;
  in.deadline = r_.deadline;
  in.saturated = primarySaturated();
  policy::CircuitBreaker* breaker = r_.runtime->breaker();
  in.breaker_closed = !breaker || breaker->state(now) == policy::CircuitState::kClosed;
  int up = r_.snapshot->route_upstream[r_.route_index];
  in.upstream_usable = r_.snapshot->upstreams[static_cast<size_t>(up)].health->usable(now);
  in.body_replayable = true;  // the whole request body is held before the first try
  policy::HedgeVerdict v = policy::decideHedge(in, r_.runtime->budget());
  bool send = v == policy::HedgeVerdict::kSend;
  countHedge(send ? RouteRuntime::Hedge::kSent : RouteRuntime::Hedge::kSkipped,
             policy::hedgeVerdictLabel(v));
  if (send) ++r_.attempts;  // x-airbag-attempts and the access log count it
  return send;
}

void Exchange::onHedgeDecided(size_t index, size_t hedges, absl::Duration time_to_head,
                              absl::Time now) {
  r_.runtime->firstByte().add(time_to_head, now);
  if (hedges == 0) return;
  if (index > 0)
    countHedge(RouteRuntime::Hedge::kWon, "won");
  else
    countHedge(RouteRuntime::Hedge::kLost, "lost");
}

void Exchange::countHedge(RouteRuntime::Hedge kind, std::string_view result) {
  r_.runtime->countHedge(kind);
  if (ctx_.metrics)
    ctx_.metrics->incCounter(ctx_.metrics->families().hedges_total, {r_.route->name, result});
}

}  // namespace airbag::pipeline
