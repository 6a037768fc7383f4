// The process-wide settings and breaker of the shared cache tier.
#include "proxy/shared_cache/tier.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"

namespace airbag::shared_cache {

CircuitBreakerConfig redisBreakerConfig() {
  CircuitBreakerConfig c;
  c.window = absl::Seconds(10);
  c.minimum_calls = 20;
  c.failure_rate = 0.5;
  c.consecutive_failures = 5;
  c.open_for = absl::Seconds(1);
  c.max_open_for = absl::Seconds(30);
  c.half_open_calls = 1;
  return c;
}

Tier::Tier(TierSettings settings)
    : settings_(std::move(settings)), breaker_(redisBreakerConfig()) {}

Tier::Tier(TierSettings settings, std::shared_ptr<const Tier> parent)
    : settings_(std::move(settings)), parent_(std::move(parent)), breaker_(redisBreakerConfig()) {}

bool Tier::breakerChanged(absl::Time now, bool* open) const {
  if (parent_) return parent_->breakerChanged(now, open);
  bool is_open = breaker_.state(now) == policy::CircuitState::kOpen;
  bool was = reported_open_.load(std::memory_order_relaxed);
  if (is_open == was) return false;
  if (!reported_open_.compare_exchange_strong(was, is_open)) return false;
  *open = is_open;
  return true;
}

absl::StatusOr<std::shared_ptr<const Tier>> makeTier(const SharedCacheConfig& config,
                                                     const sockaddr_storage& address,
                                                     socklen_t address_len) {
  TierSettings s;
  s.url = config.redis;
  s.host = config.host;
  s.port = config.port;
  s.db = config.db;
  s.username = config.username;
  s.timeout = config.timeout;
  s.coalesce = config.coalesce;
  s.coalesce_wait = config.coalesce_wait;
  s.cluster = config.cluster;
  s.address = address;
  s.address_len = address_len;
  if (!config.password_file.empty()) {
    std::ifstream in(config.password_file);
    if (!in)
      return absl::FailedPreconditionError(
          absl::StrCat("cache.shared.password_file: cannot read \"", config.password_file,
                       "\": ", std::strerror(errno)));
    std::string line;
    std::getline(in, line);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.pop_back();
    if (line.empty())
      return absl::FailedPreconditionError(absl::StrCat(
          "cache.shared.password_file \"", config.password_file, "\" holds no password"));
    s.password = std::move(line);
  }
  if (config.tls) {
    http::ClientTlsSettings tls{config.tls_settings.ca, config.tls_settings.verify};
    auto made = http::makeClientTls(tls, "cache.shared.tls", nullptr);
    if (!made.ok()) return made.status();
    s.tls = *std::move(made);
    s.tls_name = config.tls_settings.sni.empty() ? config.host : config.tls_settings.sni;
  }
  return std::make_shared<const Tier>(std::move(s));
}

}  // namespace airbag::shared_cache
