// A try with hedges (`routes[].hedge`): it stands between an UpstreamTry and
// the route's upstream client as an UpstreamClient of its own. It starts the
// first call; when no answer head has come after the delay it asks its owner
// whether a hedge may go and, if so, starts the same request again. The
// first call to produce a head wins: the others are cancelled at once (their
// connections closed, as any cancelled call's), and from then on only the
// winner's answer reaches the try. A call that fails while another is still
// waiting drops out quietly; the try sees a failure only when none is left.
// Worker thread only.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/time/time.h"
#include "airbag/config.h"
#include "airbag/dispatcher.h"
#include "airbag/upstream_client.h"

namespace airbag::pipeline {

class HedgedCall final : public UpstreamClient, private UpstreamCall, private TimerCallback {
 public:
  class Owner {
   public:
    // The delay is over and no head has come: returns true when a hedge may
    // be sent now (the owner has counted it as an attempt), false to send
    // none for the rest of this try.
    virtual bool allowHedge(absl::Time now) = 0;
    // Call `index` (0: the first, 1..: hedges) produced the first head,
    // `time_to_head` after it was started; `hedges` were sent. Called before
    // the head is passed on.
    virtual void onHedgeDecided(size_t index, size_t hedges, absl::Duration time_to_head,
                                absl::Time now) = 0;

   protected:
    ~Owner() = default;
  };

  HedgedCall(Dispatcher& dispatcher, Owner& owner);
  ~HedgedCall() override;
  HedgedCall(const HedgedCall&) = delete;
  HedgedCall& operator=(const HedgedCall&) = delete;

  // Sets up the next start(): calls go to `inner`; up to `max` hedges, each
  // `after` after the previous call. `after` infinite: none (the try's
  // time to head is still reported).
  void arm(UpstreamClient* inner, absl::Duration after, uint32_t max);

  // UpstreamClient: starts the first call. Never calls `handler` before
  // returning.
  UpstreamCall* start(const UpstreamRequest& request, UpstreamResponseHandler* handler) override;
  uint64_t connectionsOpened() const override;

  // Calls started for the current try, the first included.
  size_t calls() const { return count_; }

 private:
  static constexpr size_t kMaxCalls = 1 + HedgeConfig::kMaxHedges;

  // One call's handler: passes its events on with its index.
  struct Leg final : UpstreamResponseHandler {
    HedgedCall* parent = nullptr;
    size_t index = 0;
    UpstreamCall* call = nullptr;  // null once over or cancelled
    absl::Time started;
    void onUpstreamHeaders(const UpstreamResponseHead& head) override;
    void onUpstreamData(std::string_view data) override;
    void onUpstreamReadDone() override;
    void onUpstreamComplete() override;
    void onUpstreamFailure(AttemptOutcome outcome, std::string_view detail) override;
  };

  // UpstreamCall, as the try sees it.
  void cancel() override;
  void pauseReading() override;
  void resumeReading() override;

  void onTimer() override;
  void onHeaders(Leg& leg, const UpstreamResponseHead& head);
  void onFailure(Leg& leg, AttemptOutcome outcome, std::string_view detail);
  bool anyRunning() const;
  void cancelAllBut(size_t keep);
  bool isWinner(const Leg& leg) const { return winner_ == static_cast<int>(leg.index); }

  Dispatcher& dispatcher_;
  Owner& owner_;
  std::unique_ptr<Timer> timer_;
  UpstreamClient* inner_ = nullptr;
  absl::Duration after_ = absl::InfiniteDuration();
  uint32_t max_ = 0;
  UpstreamRequest request_;
  UpstreamResponseHandler* handler_ = nullptr;
  std::array<Leg, kMaxCalls> legs_;
  size_t count_ = 0;
  int winner_ = -1;
};

}  // namespace airbag::pipeline
