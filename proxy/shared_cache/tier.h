// The process-wide half of the shared cache tier: where Redis is, how to log
// in, and the breaker every worker's client reports to (one Redis, one
// verdict). Built with the config snapshot on the main thread; thread-safe.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "airbag/config.h"
#include "policy/circuit_breaker.h"
#include "proxy/http/tls.h"

namespace airbag::shared_cache {

struct TierSettings {
  std::string url;  // as configured, for logs and /routes
  std::string host;
  int port = 6379;
  sockaddr_storage address{};  // resolved once, when the config is loaded
  socklen_t address_len = 0;
  std::string username;  // empty: AUTH with the password alone (the default user)
  std::string password;  // empty: no AUTH
  int db = 0;
  absl::Duration timeout = absl::Milliseconds(5);       // a lookup
  absl::Duration write_timeout = absl::Milliseconds(250);  // writes, deletes, scans
  absl::Duration connect_timeout = absl::Seconds(1);
  std::string prefix = "airbag:";
  // Coalescing across pods (cache.shared.coalesce): the fill lock's expiry
  // and the longest wait for another pod's answer, and how often that wait
  // asks Redis whether the answer is there.
  bool coalesce = false;
  absl::Duration coalesce_wait = absl::Milliseconds(300);
  absl::Duration coalesce_poll = absl::Milliseconds(10);
  bool cluster = false;       // Redis Cluster: this is the seed node; see cluster.h
  size_t max_pending = 1024;  // commands waiting on one connection
  // rediss://: the TLS client context and the name sent as SNI and verified.
  std::shared_ptr<const http::ClientTls> tls;
  std::string tls_name;
};

// The Redis breaker: five failures in a row (or half of at least 20 calls
// in 10 s) stop every worker asking for 1 s, doubling to 30 s while Redis
// stays bad; one probe at a time tries it again.
CircuitBreakerConfig redisBreakerConfig();

class Tier {
 public:
  explicit Tier(TierSettings settings);
  // One node of a Redis Cluster: its own address in `settings`, the breaker
  // of the whole cluster (`parent`'s), so the fleet tier keeps one verdict.
  Tier(TierSettings settings, std::shared_ptr<const Tier> parent);
  Tier(const Tier&) = delete;
  Tier& operator=(const Tier&) = delete;

  const TierSettings& settings() const { return settings_; }
  policy::CircuitBreaker& breaker() const { return parent_ ? parent_->breaker() : breaker_; }

  // True exactly once per change of the breaker between letting calls
  // through and not (whichever worker sees it first): log then, never per
  // request. `*open` says which way it went.
  bool breakerChanged(absl::Time now, bool* open) const;

 private:
  TierSettings settings_;
  std::shared_ptr<const Tier> parent_;
  mutable policy::CircuitBreaker breaker_;
  mutable std::atomic<bool> reported_open_{false};
};

// The tier for `cache.shared` at `address` (resolved by the caller). Reads
// the password file (blocking: call on the main thread, never on a worker
// loop); errors name the setting and the file.
absl::StatusOr<std::shared_ptr<const Tier>> makeTier(const SharedCacheConfig& config,
                                                     const sockaddr_storage& address,
                                                     socklen_t address_len);

}  // namespace airbag::shared_cache
