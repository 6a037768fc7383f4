// Passive health: wraps an upstream's client and tells the shared
// UpstreamHealth how each try went — a connect failure counts toward taking
// the upstream down, an answer head brings it back. A wrapper (as LevelDB's
// EnvWrapper wraps an Env) keeps both clients free of health bookkeeping.
// Owner thread only, like the client it wraps.
#pragma once

#include <memory>
#include <vector>

#include "airbag/clock.h"
#include "airbag/config.h"
#include "airbag/upstream_client.h"
#include "proxy/upstream/upstream_health.h"

namespace airbag::upstream {

class PassiveHealthClient final : public UpstreamClient {
 public:
  // `inner` and `clock` must outlive this client.
  PassiveHealthClient(UpstreamClient* inner, std::shared_ptr<UpstreamHealth> health,
                      PassiveHealthConfig config, const Clock& clock);
  ~PassiveHealthClient() override;
  PassiveHealthClient(const PassiveHealthClient&) = delete;
  PassiveHealthClient& operator=(const PassiveHealthClient&) = delete;

  UpstreamCall* start(const UpstreamRequest& request, UpstreamResponseHandler* handler) override;
  uint64_t connectionsOpened() const override { return inner_->connectionsOpened(); }

  // True when this wrapper was made for exactly these (reload reuses it).
  bool sameAs(const UpstreamClient* inner, const UpstreamHealth* health,
              const PassiveHealthConfig& config) const;

 private:
  class Call;
  void release(Call* call);

  UpstreamClient* inner_;
  std::shared_ptr<UpstreamHealth> health_;
  PassiveHealthConfig config_;
  const Clock& clock_;
  std::vector<std::unique_ptr<Call>> calls_;
  std::vector<Call*> free_;
};

}  // namespace airbag::upstream
