// The YAML loader's internals, shared by the files that read each part of
// the schema (config_loader.cc: the file and its top level, route_loader.cc:
// routes and their policies). Not part of the config room's interface: use
// config_loader.h.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/time/time.h"
#include "airbag/config.h"
#include "proxy/config/yaml_reader.h"

namespace airbag::config::internal {

inline constexpr int64_t kMaxU32 = 0xffffffffll;

inline SourceLoc locOf(const YAML::Mark& m) {
  return {std::max(m.line, 0) + 1, std::max(m.column, 0) + 1};
}

inline bool isTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

inline bool isToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!isTokenChar(c)) return false;
  }
  return true;
}

// Compact JSON that never throws: bad UTF-8 is refused before parsing, and
// would be replaced here rather than abort a load.
template <typename Json>
std::string compactJson(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

inline std::string durationText(absl::Duration d) {
  return d == absl::ZeroDuration() ? "0s" : absl::FormatDuration(d);
}


class Loader {
 public:
  explicit Loader(std::string_view file) : diag_(std::string(file)), read_(diag_) {
    config_.source_path = std::string(file);
  }

  absl::StatusOr<std::shared_ptr<const Config>> load(std::string_view yaml);

 private:
  void readRoot(const YAML::Node& root);
  void readListen(const Entry& e);
  void readAdmin(const Entry& e);
  void readLog(const Entry& e);
  void readUpstreams(const Entry& e);
  void readUpstream(const Entry& e, UpstreamConfig& u);
  // A TLS client block ({ca, verify, sni}), as upstreams and cache.shared write it.
  std::optional<UpstreamTlsConfig> readClientTls(const Entry& e, const std::string& what);
  void parseUrl(const Entry& e, UpstreamConfig& u);
  // admission_loader.cc
  void readSaturation(const Entry& e, const std::string& what, UpstreamConfig& u);
  void readAdmission(const Entry& e, RouteConfig& r);
  void readHedge(const Entry& e, RouteConfig& r);
  void readRoutes(const Entry& e);
  void readRoute(const YAML::Node& node, RouteConfig& r);
  void readMatch(const Entry& e, MatchConfig& m);
  void readTimeout(const Entry& e, TimeoutConfig& t);
  void readRetry(const Entry& e, RetryConfig& r);
  void readBulkhead(const Entry& e, BulkheadConfig& b);
  void readBreaker(const Entry& e, CircuitBreakerConfig& b);
  void readRouteCache(const Entry& e, RouteCacheConfig& c);
  void readValidate(const Entry& e, ValidateConfig& v);
  void readFallback(const Entry& e, RouteConfig& r);
  void readRules(const Entry& e, std::vector<Rule>& rules);
  void readPredicate(const YAML::Node& node, Predicate& p);
  void readRespond(const Entry& e, RespondConfig& out);
  void readFault(const Entry& e, FaultConfig& f);
  void readSharedCache(const Entry& e, SharedCacheConfig& s);  // shared_cache_loader.cc
  // Routes with cache.shared: true, checked once `cache.shared` is known.
  std::vector<YAML::Mark> shared_routes_;
  void checkUpstreamRef(const Entry& e, const std::string& name);
  void checkRegex(const YAML::Mark& mark, std::string_view key, const std::string& pattern);
  void checkPointer(const Entry& e, const std::string& pointer);
  std::optional<HostPort> hostPort(const Entry& e);

  Diagnostics diag_;
  ValueReader read_;
  Config config_;
};

}  // namespace airbag::config::internal
