// The admission stage (DESIGN.md §8 `admission`): while the route's upstream
// is saturated, or the route is at its adaptive limit, a request waits in
// the route's priority queue; one not admitted in time goes down the ladder
// at once, without waiting for an upstream timeout. Part of Exchange.
#include <algorithm>

#include "proxy/metrics/metrics.h"
#include "proxy/pipeline/exchange.h"

namespace airbag::pipeline {
namespace {

// While queued, the saturation reading is looked at again this often: the
// end of a saturation frees room that no release announces.
constexpr absl::Duration kRecheck = absl::Milliseconds(50);

std::string_view reasonLabel(policy::AdmissionReason r) {
  return r == policy::AdmissionReason::kSaturated ? "saturated" : "adaptive-limit";
}

}  // namespace

bool Exchange::primarySaturated() const {
  int up = r_.snapshot->route_upstream[r_.route_index];
  return r_.snapshot->upstreams[static_cast<size_t>(up)].saturation->saturated();
}

void Exchange::admit(absl::Time now) {
  enter(Stage::kAdmission);
  policy::Admission* admission = r_.runtime->admission();
  if (!admission) {
    acquireBulkhead(now);
    return;
  }
  wait_generation_ = generation_;
  policy::AdmissionDecision d = admission->tryAdmit(this, r_.runtime->admissionLane(),
                                                    r_.route->priority, primarySaturated());
  using V = policy::AdmissionDecision::Verdict;
  switch (d.verdict) {
    case V::kAdmitted:
      takeAdmissionSlot(RouteRuntime::AdmissionOutcome::kAdmitted, "admitted");
      acquireBulkhead(now);
      return;
    case V::kQueued:
      r_.admission_queued = true;
      r_.admission_reason = d.reason;
      r_.admission_until =
          std::min(now + admission->queueTimeout(r_.runtime->admissionLane()), r_.deadline);
      armWait(std::min(now + kRecheck, r_.admission_until));
      return;
    case V::kRefused:
      refuseAdmission(d.reason, now);
      return;
  }
}

// Runs on the thread that decided, under the admission's lock: only posts a
// wake-up to this exchange's worker.
void Exchange::onAdmissionDecided() {
  ctx_.inbox->post({InboxMessage::Kind::kWake, slot_, wait_generation_});
}

void Exchange::onAdmissionWake(absl::Time now) {
  if (!r_.admission_queued) return;
  r_.admission_queued = false;
  timer_->disarm();
  afterAdmissionQueue(r_.runtime->admission()->leave(this), now);
}

void Exchange::onAdmissionTimer(absl::Time now) {
  policy::Admission& admission = *r_.runtime->admission();
  if (!r_.admission_queued) return;
  if (now < r_.admission_until) {
    admission.pump(primarySaturated());  // may grant this request: its wake-up follows
    armWait(std::min(now + kRecheck, r_.admission_until));
    return;
  }
  r_.admission_queued = false;
  if (primarySaturated()) r_.admission_reason = policy::AdmissionReason::kSaturated;
  policy::AdmissionFate fate = admission.leave(this);
  // Granted or displaced at the last moment: its wake-up, on its way, is stale.
  if (fate != policy::AdmissionFate::kLeft) generation_ = ctx_.newGeneration();
  afterAdmissionQueue(fate, now);
}

void Exchange::leaveAdmissionQueue() {
  if (!r_.admission_queued) return;
  r_.admission_queued = false;
  policy::Admission& admission = *r_.runtime->admission();
  policy::AdmissionFate fate = admission.leave(this);
  if (fate == policy::AdmissionFate::kGranted)
    admission.release(r_.runtime->admissionLane(), primarySaturated());
  // Granted or displaced meanwhile: the wake-up on its way is stale.
  if (fate != policy::AdmissionFate::kLeft) generation_ = ctx_.newGeneration();
}

void Exchange::afterAdmissionQueue(policy::AdmissionFate fate, absl::Time now) {
  if (fate == policy::AdmissionFate::kGranted) {
    r_.admission = "queued";
    takeAdmissionSlot(RouteRuntime::AdmissionOutcome::kQueued, "queued");
    acquireBulkhead(now);
    return;
  }
  if (fate == policy::AdmissionFate::kDisplaced) {
    r_.admission = reasonLabel(r_.admission_reason);
    countAdmission(RouteRuntime::AdmissionOutcome::kDisplaced, "displaced");
    runFallback(Failure::kAdmission, now);
    return;
  }
  refuseAdmission(r_.admission_reason, now);
}

void Exchange::refuseAdmission(policy::AdmissionReason reason, absl::Time now) {
  r_.admission = reasonLabel(reason);
  r_.admission_reason = reason;
  countAdmission(reason == policy::AdmissionReason::kSaturated
                     ? RouteRuntime::AdmissionOutcome::kSaturated
                     : RouteRuntime::AdmissionOutcome::kAdaptiveLimit,
                 r_.admission);
  runFallback(Failure::kAdmission, now);
}

void Exchange::takeAdmissionSlot(RouteRuntime::AdmissionOutcome outcome, std::string_view label) {
  int up = r_.snapshot->route_upstream[r_.route_index];
  r_.holds.admission = AdmissionSlot(
      r_.runtime->admission(), {r_.runtime->admissionLane(),
                                r_.snapshot->upstreams[static_cast<size_t>(up)].saturation.get()});
  countAdmission(outcome, label);
}

void Exchange::countAdmission(RouteRuntime::AdmissionOutcome outcome, std::string_view label) {
  r_.runtime->countAdmission(outcome);
  if (ctx_.metrics)
    ctx_.metrics->incCounter(ctx_.metrics->families().admission_total, {r_.route->name, label});
}

void Exchange::sampleLatency(absl::Time now) {
  if (r_.fallback_try || !r_.holds.admission) return;
  r_.runtime->admission()->onLatency(try_.latency(now), now, primarySaturated());
}

}  // namespace airbag::pipeline
