// Passive health bookkeeping around an upstream client; see passive_health_client.h.
#include "proxy/upstream/passive_health_client.h"

#include <utility>

namespace airbag::upstream {

// One try through the wrapper: relays every callback, noting the verdict.
class PassiveHealthClient::Call final : public UpstreamCall, public UpstreamResponseHandler {
 public:
  explicit Call(PassiveHealthClient* owner) : owner_(owner) {}

  void begin(const UpstreamRequest& request, UpstreamResponseHandler* handler) {
    handler_ = handler;
    inner_ = owner_->inner_->start(request, this);
  }

  // UpstreamCall
  void cancel() override {
    UpstreamCall* c = inner_;
    inner_ = nullptr;
    handler_ = nullptr;
    c->cancel();
    owner_->release(this);
  }
  void pauseReading() override { inner_->pauseReading(); }
  void resumeReading() override { inner_->resumeReading(); }

  // UpstreamResponseHandler
  void onUpstreamHeaders(const UpstreamResponseHead& head) override {
    owner_->health_->recordSuccess();
    handler_->onUpstreamHeaders(head);
  }
  void onUpstreamData(std::string_view data) override { handler_->onUpstreamData(data); }
  void onUpstreamReadDone() override { handler_->onUpstreamReadDone(); }
  void onUpstreamComplete() override {
    UpstreamResponseHandler* h = finish();
    h->onUpstreamComplete();
  }
  void onUpstreamFailure(AttemptOutcome outcome, std::string_view detail) override {
    if (outcome == AttemptOutcome::kConnect)
      owner_->health_->recordConnectFailure(owner_->config_, owner_->clock_.now());
    UpstreamResponseHandler* h = finish();
    h->onUpstreamFailure(outcome, detail);
  }

 private:
  // Terminal: this call is free again before the handler hears (it may start
  // its next try from inside, through this wrapper).
  UpstreamResponseHandler* finish() {
    UpstreamResponseHandler* h = handler_;
    handler_ = nullptr;
    inner_ = nullptr;
    owner_->release(this);
    return h;
  }

  PassiveHealthClient* owner_;
  UpstreamResponseHandler* handler_ = nullptr;
  UpstreamCall* inner_ = nullptr;
};

PassiveHealthClient::PassiveHealthClient(UpstreamClient* inner,
                                         std::shared_ptr<UpstreamHealth> health,
                                         PassiveHealthConfig config, const Clock& clock)
    : inner_(inner), health_(std::move(health)), config_(config), clock_(clock) {}

PassiveHealthClient::~PassiveHealthClient() = default;

UpstreamCall* PassiveHealthClient::start(const UpstreamRequest& request,
                                         UpstreamResponseHandler* handler) {
  Call* call;
  if (!free_.empty()) {
    call = free_.back();
    free_.pop_back();
  } else {
    calls_.push_back(std::make_unique<Call>(this));
    call = calls_.back().get();
  }
  call->begin(request, handler);
  return call;
}

void PassiveHealthClient::release(Call* call) { free_.push_back(call); }

bool PassiveHealthClient::sameAs(const UpstreamClient* inner, const UpstreamHealth* health,
                                 const PassiveHealthConfig& config) const {
  return inner_ == inner && health_.get() == health &&
         config_.consecutive_connect_failures == config.consecutive_connect_failures &&
         config_.down_for == config.down_for && config_.max_down_for == config.max_down_for;
}

}  // namespace airbag::upstream
