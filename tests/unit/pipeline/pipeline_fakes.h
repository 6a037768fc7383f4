// Fakes that let a test drive an Exchange by hand: a dispatcher whose clock
// moves only when told (timers fire in due order as it moves), an upstream
// client whose calls the test answers piece by piece, and a client
// connection that records what it was sent.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "airbag/clock.h"
#include "airbag/dispatcher.h"
#include "airbag/upstream_client.h"
#include "proxy/pipeline/downstream.h"

namespace airbag::pipeline::testing {

class SimDispatcher final : public Dispatcher {
 public:
  absl::Time now() const override { return clock_.now(); }
  std::unique_ptr<Timer> createTimer(TimerCallback* cb) override {
    return std::make_unique<SimTimer>(this, cb);
  }
  // Moves the clock by `d`, firing every timer that falls due, in due order,
  // each at its own time.
  void advance(absl::Duration d) {
    absl::Time target = clock_.now() + d;
    for (;;) {
      SimTimer* next = nullptr;
      for (SimTimer* t : timers_)
        if (t->armed_ && t->at_ <= target && (!next || t->at_ < next->at_)) next = t;
      if (!next) break;
      if (next->at_ > clock_.now()) clock_.set(next->at_);
      next->armed_ = false;
      next->cb_->onTimer();
    }
    clock_.set(target);
  }
  int armedTimers() const {
    return static_cast<int>(std::count_if(timers_.begin(), timers_.end(),
                                          [](const SimTimer* t) { return t->armed_; }));
  }

 private:
  struct SimTimer final : Timer {
    SimTimer(SimDispatcher* d, TimerCallback* cb) : d_(d), cb_(cb) { d_->timers_.push_back(this); }
    ~SimTimer() override {
      d_->timers_.erase(std::find(d_->timers_.begin(), d_->timers_.end(), this));
    }
    void armAt(absl::Time at) override {
      at_ = at;
      armed_ = true;
    }
    void disarm() override { armed_ = false; }
    bool armed() const override { return armed_; }
    SimDispatcher* d_;
    TimerCallback* cb_;
    absl::Time at_;
    bool armed_ = false;
  };
  SimulatedClock clock_;
  std::vector<SimTimer*> timers_;
};

// An upstream client whose every call waits for the test to answer it.
class ScriptedUpstream final : public UpstreamClient {
 public:
  struct Call final : UpstreamCall {
    void cancel() override { cancelled = true; }
    void pauseReading() override { paused = true; }
    void resumeReading() override { paused = false; }
    bool live() const { return !cancelled && !ended; }

    std::string head;
    std::string body;
    UpstreamResponseHandler* handler = nullptr;
    bool cancelled = false;
    bool paused = false;
    bool ended = false;
  };

  struct Head final : UpstreamResponseHead {
    std::vector<std::pair<std::string, std::string>> fields;
    size_t headerCount() const override { return fields.size(); }
    std::string_view headerName(size_t i) const override { return fields[i].first; }
    std::string_view headerValue(size_t i) const override { return fields[i].second; }
  };

  UpstreamCall* start(const UpstreamRequest& r, UpstreamResponseHandler* handler) override {
    auto c = std::make_unique<Call>();
    c->head.assign(r.head);
    c->body.assign(r.body);
    c->handler = handler;
    calls_.push_back(std::move(c));
    return calls_.back().get();
  }
  uint64_t connectionsOpened() const override { return 0; }

  int callCount() const { return static_cast<int>(calls_.size()); }
  Call& call(int i) { return *calls_.at(static_cast<size_t>(i)); }
  Call& last() { return *calls_.back(); }

  // Answers `c` with a head; `content_length` < 0: no Content-Length.
  static void sendHead(Call& c, int status,
                       std::vector<std::pair<std::string, std::string>> fields = {},
                       int64_t content_length = -1) {
    Head h;
    h.status = status;
    h.fields = std::move(fields);
    h.has_content_length = content_length >= 0;
    h.content_length = content_length >= 0 ? static_cast<uint64_t>(content_length) : 0;
    c.handler->onUpstreamHeaders(h);
  }
  static void sendData(Call& c, std::string_view data) {
    c.handler->onUpstreamData(data);
    if (c.live()) c.handler->onUpstreamReadDone();
  }
  static void complete(Call& c) {
    c.ended = true;
    c.handler->onUpstreamComplete();
  }
  static void fail(Call& c, AttemptOutcome o) {
    c.ended = true;
    c.handler->onUpstreamFailure(o, "scripted");
  }
  // A whole answer with a Content-Length.
  static void answer(Call& c, int status, std::string_view body,
                     std::vector<std::pair<std::string, std::string>> fields = {}) {
    sendHead(c, status, std::move(fields), static_cast<int64_t>(body.size()));
    if (!body.empty()) c.handler->onUpstreamData(body);
    complete(c);
  }

 private:
  std::vector<std::unique_ptr<Call>> calls_;
};

// A client connection that records what it was sent.
class RecordingDownstream final : public Downstream {
 public:
  void write(std::string_view a, std::string_view b, std::string_view c) override {
    out.append(a);
    out.append(b);
    out.append(c);
  }
  size_t pendingBytes() const override { return pending; }
  bool keepAlive() const override { return keep_alive; }
  void responseDone(bool close) override {
    done = true;
    closed = close;
  }
  void responseAborted() override { aborted = true; }

  void reset() {
    out.clear();
    done = closed = aborted = false;
  }
  // The status code of the first answer written, 0 if none.
  int status() const {
    return out.size() >= 12 && out.compare(0, 9, "HTTP/1.1 ") == 0 ? std::stoi(out.substr(9, 3))
                                                                    : 0;
  }
  // The value of header `name` (lower-case, as airbag writes its own) in the
  // first answer, or "".
  std::string header(std::string_view name) const {
    std::string key = "\r\n" + std::string(name) + ": ";
    size_t at = out.find(key);
    if (at == std::string::npos) return "";
    size_t end = out.find("\r\n", at + key.size());
    return out.substr(at + key.size(), end - at - key.size());
  }
  std::string body() const {
    size_t at = out.find("\r\n\r\n");
    return at == std::string::npos ? "" : out.substr(at + 4);
  }

  std::string out;
  size_t pending = 0;
  bool keep_alive = true;
  bool done = false;
  bool closed = false;
  bool aborted = false;
};

}  // namespace airbag::pipeline::testing
