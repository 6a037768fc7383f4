// A try with hedges; see hedged_call.h.
#include "proxy/pipeline/hedged_call.h"

#include <algorithm>
#include <utility>

namespace airbag::pipeline {

HedgedCall::HedgedCall(Dispatcher& dispatcher, Owner& owner)
    : dispatcher_(dispatcher), owner_(owner), timer_(dispatcher.createTimer(this)) {
  for (size_t i = 0; i < kMaxCalls; ++i) {
    legs_[i].parent = this;
    legs_[i].index = i;
  }
}

HedgedCall::~HedgedCall() { cancel(); }

void HedgedCall::arm(UpstreamClient* inner, absl::Duration after, uint32_t max) {
  inner_ = inner;
  after_ = after;
  max_ = std::min<uint32_t>(max, kMaxCalls - 1);
}

UpstreamCall* HedgedCall::start(const UpstreamRequest& request, UpstreamResponseHandler* handler) {
  cancel();  // a try starts only after the previous one is over; this is cheap insurance
  request_ = request;
  handler_ = handler;
  winner_ = -1;
  count_ = 1;
  absl::Time now = dispatcher_.now();
  legs_[0].started = now;
  legs_[0].call = inner_->start(request, &legs_[0]);
  if (max_ > 0 && after_ != absl::InfiniteDuration()) timer_->armAt(now + after_);
  return this;
}

uint64_t HedgedCall::connectionsOpened() const { return inner_ ? inner_->connectionsOpened() : 0; }

void HedgedCall::onTimer() {
  absl::Time now = dispatcher_.now();
  if (winner_ >= 0 || !anyRunning() || count_ > max_) return;
  if (!owner_.allowHedge(now)) return;  // no more hedges for this try
  Leg& leg = legs_[count_++];
  leg.started = now;
  leg.call = inner_->start(request_, &leg);
  if (count_ <= max_) timer_->armAt(now + after_);
}

bool HedgedCall::anyRunning() const {
  for (size_t i = 0; i < count_; ++i)
    if (legs_[i].call) return true;
  return false;
}

void HedgedCall::cancelAllBut(size_t keep) {
  for (size_t i = 0; i < count_; ++i)
    if (i != keep && legs_[i].call) std::exchange(legs_[i].call, nullptr)->cancel();
}

void HedgedCall::cancel() {
  timer_->disarm();
  cancelAllBut(kMaxCalls);
}

void HedgedCall::pauseReading() {
  for (size_t i = 0; i < count_; ++i)
    if (legs_[i].call) legs_[i].call->pauseReading();
}

void HedgedCall::resumeReading() {
  for (size_t i = 0; i < count_; ++i)
    if (legs_[i].call) legs_[i].call->resumeReading();
}

void HedgedCall::onHeaders(Leg& leg, const UpstreamResponseHead& head) {
  if (winner_ < 0) {
    winner_ = static_cast<int>(leg.index);
    timer_->disarm();
    cancelAllBut(leg.index);
    absl::Time now = dispatcher_.now();
    owner_.onHedgeDecided(leg.index, count_ - 1, now - leg.started, now);
  }
  handler_->onUpstreamHeaders(head);
}

void HedgedCall::onFailure(Leg& leg, AttemptOutcome outcome, std::string_view detail) {
  leg.call = nullptr;
  // Another call still waiting for its head may yet answer.
  if (!isWinner(leg) && anyRunning()) return;
  timer_->disarm();
  handler_->onUpstreamFailure(outcome, detail);  // may start the next try: nothing after this
}

void HedgedCall::Leg::onUpstreamHeaders(const UpstreamResponseHead& head) {
  parent->onHeaders(*this, head);
}

void HedgedCall::Leg::onUpstreamData(std::string_view data) {
  if (parent->isWinner(*this)) parent->handler_->onUpstreamData(data);
}

void HedgedCall::Leg::onUpstreamReadDone() {
  if (parent->isWinner(*this)) parent->handler_->onUpstreamReadDone();
}

void HedgedCall::Leg::onUpstreamComplete() {
  call = nullptr;
  // Only a call with a head can complete, and the first head wins.
  parent->handler_->onUpstreamComplete();
}

void HedgedCall::Leg::onUpstreamFailure(AttemptOutcome outcome, std::string_view detail) {
  parent->onFailure(*this, outcome, detail);
}

}  // namespace airbag::pipeline
