// The runtime form of one configuration: the Config plus what is derived from
// it once at load (compiled route regexes, resolved upstream addresses), so
// no request repeats that work. Immutable and shared by all workers.
#pragma once

#include <sys/socket.h>

#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "airbag/config.h"
#include "policy/admission_control.h"
#include "policy/cache_store.h"
#include "proxy/http/headers.h"
#include "proxy/json/rules.h"
#include "proxy/pipeline/route_runtime.h"
#include "proxy/shared_cache/tier.h"
#include "proxy/upstream/upstream_health.h"
#include "proxy/upstream/upstream_saturation.h"

namespace re2 {
class RE2;
}
namespace airbag::http {
struct ClientTls;
}

namespace airbag::pipeline {

struct ResolvedUpstream {
  const UpstreamConfig* config = nullptr;
  sockaddr_storage address{};
  socklen_t address_len = 0;
  // Health shared by every worker and the health checker; carried over on
  // reload for an upstream whose name is unchanged.
  std::shared_ptr<upstream::UpstreamHealth> health;
  // The model's own load readings (`saturation`), shared likewise with the
  // saturation scraper; unknown while the upstream is not scraped.
  std::shared_ptr<upstream::UpstreamSaturation> saturation;
  // Admission to this upstream for the routes with `admission` whose own
  // upstream it is; carried over likewise.
  std::shared_ptr<policy::Admission> admission;
  // https through the keep-alive pool: the TLS client context, built on the
  // loading thread (it reads tls.ca) and kept across reloads while unchanged.
  std::shared_ptr<const http::ClientTls> tls;
};

class RouteTable {
 public:
  RouteTable() = default;
  RouteTable(RouteTable&&) noexcept;
  RouteTable& operator=(RouteTable&&) noexcept;
  ~RouteTable();

  // Compiles every route of `config` (regexes were validated at load).
  static absl::StatusOr<RouteTable> build(const Config& config);

  // Returns the index of the first route matching the request, or -1.
  // `path` is the URL path without the query.
  int match(std::string_view method, std::string_view path, const http::HeaderList& headers) const;

 private:
  struct Entry {
    const RouteConfig* route = nullptr;
    std::unique_ptr<re2::RE2> regex;
  };
  std::vector<Entry> entries_;
};

struct Snapshot {
  std::shared_ptr<const Config> config;
  RouteTable routes;
  std::vector<ResolvedUpstream> upstreams;  // same order as config->upstreams
  std::vector<int> route_upstream;          // route index -> upstream index
  // Route index -> the route's shared mutable state (thread-safe inside).
  std::vector<std::shared_ptr<RouteRuntime>> runtimes;
  // Per route, per fallback step: the upstream index (kUpstream steps, else
  // -1) and the compiled rules (kRules steps, else null).
  struct Fallbacks {
    std::vector<int> upstream;
    std::vector<std::shared_ptr<const json::CompiledRules>> rules;
  };
  std::vector<Fallbacks> fallbacks;
  // The one response cache of the process (cache.max_bytes), shared by all
  // routes and workers; carried over on reload.
  std::shared_ptr<policy::CacheStore> cache;
  // The shared (Redis) cache tier; null without `cache.shared`. Restart-only:
  // carried over on reload.
  std::shared_ptr<const shared_cache::Tier> shared_tier;
  // Global load shedding; null without `shedding`.
  std::shared_ptr<policy::Shedder> shedder;

  // Builds the runtime form. Resolves upstream host names (blocking: call
  // this on the main thread, never on a worker loop). With `previous` (the
  // snapshot being replaced on reload), same-named routes keep their state.
  // Building changes nothing that is live, so a failure leaves the running
  // snapshot untouched; commit() then applies the new settings to the state
  // carried over, before the snapshot is handed to the workers.
  static absl::StatusOr<std::shared_ptr<const Snapshot>> build(std::shared_ptr<const Config> config,
                                                               const Snapshot* previous = nullptr);

  // Applies this snapshot's settings to the breakers, bulkheads, shedder and
  // cache cap it carried over. Call once, after build() succeeded.
  void commit() const;

  // The runtime state of the route named `name`, or null.
  RouteRuntime* runtime(std::string_view name) const;
};

}  // namespace airbag::pipeline
