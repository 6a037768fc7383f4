// The validated configuration snapshot (DESIGN.md §3) as plain value types.
// A Config is built once by the loader, then shared read-only
// (std::shared_ptr<const Config>) by every worker; nothing here changes after
// load, so it is safe to read from any thread without locks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace airbag {

// Where a value came from in the YAML file, for error messages and /config.
struct SourceLoc {
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based; 0 when unknown
};

// host:port as written ("0.0.0.0:8080", "[::1]:9901", "localhost:80").
struct HostPort {
  std::string host;  // without brackets for IPv6
  uint16_t port = 0;
};

struct LimitsConfig {
  uint64_t max_header_bytes = 64 * 1024;
  uint64_t max_body_bytes = 16 * 1024 * 1024;
  absl::Duration header_timeout = absl::Seconds(10);
  absl::Duration idle_timeout = absl::Seconds(60);
};

// TLS on the client side. Without `address` the listener on listen.address
// speaks TLS only; with it, a second listener there speaks TLS beside the
// plain one. The files are read at start and again on every reload.
struct ServerTlsConfig {
  std::string address;  // empty = TLS on listen.address itself
  HostPort bind;        // parsed `address`, when set
  std::string cert;       // path to PEM certificate chain
  std::string key;        // path to PEM private key
  std::string client_ca;  // path to PEM CA bundle; set = client certificates required
  std::string min_version = "1.2";  // "1.2" or "1.3"
};

struct ListenConfig {
  std::string address = "0.0.0.0:8080";
  HostPort bind{"0.0.0.0", 8080};
  int workers = 0;  // 0 = auto (CPU count)
  std::optional<ServerTlsConfig> tls;
  LimitsConfig limits;
};

struct AdminConfig {
  std::string address = "127.0.0.1:9901";
  HostPort bind{"127.0.0.1", 9901};
  std::string token_file;  // empty = no token required
};

enum class LogFormat { kJson, kText };

struct LogConfig {
  std::string level = "info";         // trace|debug|info|warn|error|critical|off
  std::string access_log = "stdout";  // stdout|stderr|off|<file path>
  LogFormat format = LogFormat::kJson;
};

struct SheddingConfig {
  uint32_t max_in_flight = 1024;
};

// A TLS client's settings: an https upstream's `tls`, and `cache.shared.tls`
// for rediss://.
struct UpstreamTlsConfig {
  std::string ca;  // path to CA bundle; empty = system default
  bool verify = true;
  std::string sni;  // empty = host of the url
  bool operator==(const UpstreamTlsConfig&) const = default;
};

// The fleet-wide second cache tier in Redis (`cache.shared`).
struct SharedCacheConfig {
  std::string redis;  // the URL as written: redis://[[user]:password@]host[:port][/db]
  std::string host;
  uint16_t port = 6379;
  int db = 0;
  std::string username;       // from the URL's user part; empty: the default user
  std::string password_file;  // empty: no AUTH
  absl::Duration timeout = absl::Milliseconds(5);  // each lookup
  bool coalesce = false;  // cross-pod fill lock (SET NX PX) after a miss in both tiers
  // How long a pod that finds the fill lock taken waits for the holder's
  // answer to appear (polling GET) before calling the model itself; also the
  // lock's own expiry, so a dead holder stalls no one past it.
  absl::Duration coalesce_wait = absl::Milliseconds(300);
  bool cluster = false;   // Redis Cluster: `redis` is a seed node; slots discovered
  bool tls = false;       // rediss://
  UpstreamTlsConfig tls_settings;  // `tls`: ca, verify, sni (rediss:// only)
};

struct GlobalCacheConfig {
  uint64_t max_bytes = 256ull * 1024 * 1024;
  std::optional<SharedCacheConfig> shared;
};

// Active probes, sent once per process (not per worker).
struct HealthCheckConfig {
  std::string path = "/health";  // from the server's root, not under the url's base path
  absl::Duration interval = absl::Seconds(5);
  absl::Duration timeout = absl::Seconds(1);
  uint32_t rise = 2;             // consecutive passes that mark an unhealthy upstream healthy
  uint32_t fall = 3;             // consecutive failures that mark a healthy upstream unhealthy
  std::vector<int> expect{200};  // statuses that pass
};

// Passive health: connect failures seen by real requests take the upstream
// out for a while, so a dead model costs no connect per request.
struct PassiveHealthConfig {
  uint32_t consecutive_connect_failures = 3;
  absl::Duration down_for = absl::Seconds(1);      // doubles while it stays down...
  absl::Duration max_down_for = absl::Seconds(30);  // ...up to this
};

// One threshold of `saturation.when_any`: the model is saturated while a
// sample of `metric` (any of its series) is above `gt`.
struct SaturationThreshold {
  std::string metric;
  double gt = 0;
  SourceLoc loc;
};

// Reading the model server's own Prometheus gauges (once per process).
struct SaturationConfig {
  std::string metrics_path = "/metrics";  // from the server's root
  uint16_t port = 0;  // 0: the upstream's own (Triton serves metrics on another, 8002)
  absl::Duration interval = absl::Seconds(1);  // also the scrape's timeout
  std::vector<SaturationThreshold> when_any;   // at least one
};

struct UpstreamConfig {
  std::string name;
  std::string url;          // as written
  bool https = false;       // scheme
  std::string host;         // from the url, without brackets
  uint16_t port = 80;       // from the url (default 80 / 443)
  std::string host_header;  // "host" or "host:port" as sent when rewriting Host
  std::string base_path;    // path part of the url without trailing '/', may be empty
  absl::Duration connect_timeout = absl::Seconds(1);
  uint32_t max_connections = 256;
  std::optional<UpstreamTlsConfig> tls;
  // https only: HTTP/2 by ALPN through the libcurl client; otherwise https
  // goes through the keep-alive HTTP/1.1 pool like http.
  bool http2 = false;
  std::optional<HealthCheckConfig> health;
  std::optional<PassiveHealthConfig> passive;
  std::optional<SaturationConfig> saturation;
  SourceLoc loc;
};

struct HeaderMatch {
  std::string name;   // lower-case
  std::string value;  // exact match
};

struct MatchConfig {
  std::string path;         // exact path (without query); empty = unset
  std::string path_prefix;  // empty = unset
  std::string path_regex;   // RE2 syntax, full match on the path; empty = unset
  std::vector<std::string> methods;  // upper-case; empty = any
  std::vector<HeaderMatch> headers;  // all must match
};

enum class Priority { kCritical = 0, kNormal = 1, kOptional = 2 };

struct TimeoutConfig {
  absl::Duration total = absl::Seconds(30);
  absl::Duration per_try = absl::Seconds(30);     // defaults to total
  absl::Duration first_byte = absl::Seconds(30);  // defaults to per_try
  absl::Duration idle = absl::Seconds(60);
};

// Retry conditions, as a bit set.
enum RetryOn : uint32_t {
  kRetryOnConnectFailure = 1u << 0,
  kRetryOnReset = 1u << 1,
  kRetryOnTimeout = 1u << 2,
  kRetryOn5xx = 1u << 3,
  kRetryOnRetriableStatus = 1u << 4,
  kRetryOnInvalid = 1u << 5,
};

enum class Jitter { kFull, kEqual, kDecorrelated, kNone };

struct BackoffConfig {
  absl::Duration base = absl::Milliseconds(25);
  absl::Duration max = absl::Milliseconds(250);
  Jitter jitter = Jitter::kFull;
};

struct RetryBudgetConfig {
  double ratio = 0.2;
  double min_per_second = 10;
};

struct RetryConfig {
  int attempts = 1;  // total tries including the first; 1 = no retry
  uint32_t on = kRetryOnConnectFailure | kRetryOnReset | kRetryOn5xx;
  std::vector<int> retriable_status;
  BackoffConfig backoff;
  bool honor_retry_after = true;
  RetryBudgetConfig budget;
};

struct BulkheadConfig {
  uint32_t max_in_flight = 1024;
  uint32_t max_queue = 0;
  absl::Duration queue_timeout = absl::Milliseconds(100);
};

// The gradient limiter's bounds (`admission.adaptive`).
struct AdaptiveLimitConfig {
  uint32_t min = 4;
  uint32_t max = 256;  // at most the bulkhead's max_in_flight
};

// Saturation-aware admission of a route (`admission`): while its upstream is
// saturated (or the route is at its adaptive limit) requests wait in a queue
// ordered by priority, and go down the ladder when not admitted in time.
struct AdmissionConfig {
  std::optional<AdaptiveLimitConfig> adaptive;
  uint32_t queue_max = 256;
  absl::Duration queue_timeout = absl::Seconds(2);
};

// Hedged tries of a route (`hedge`, opt in): when the try to the route's
// upstream has no answer head after `after` (a fixed delay, or the route's
// measured time to first byte at a percentile), a second try is started and
// whichever answers first is kept.
struct HedgeConfig {
  static constexpr uint32_t kMaxHedges = 3;
  absl::Duration after = absl::ZeroDuration();  // fixed delay; unused when percentile > 0
  int percentile = 0;  // 50..99: `after: p95` and the like; 0: the fixed delay
  uint32_t max = 1;    // hedges per try, 1..kMaxHedges
};

struct CircuitBreakerConfig {
  absl::Duration window = absl::Seconds(10);
  uint32_t minimum_calls = 20;
  double failure_rate = 0.5;
  absl::Duration slow_call_duration = absl::Seconds(5);
  double slow_call_rate = 1.0;  // 1.0 = off
  uint32_t consecutive_failures = 5;
  absl::Duration open_for = absl::Seconds(5);
  absl::Duration max_open_for = absl::Seconds(60);
  uint32_t half_open_calls = 3;
};

enum class CacheKeyBody { kRaw, kJsonCanonical, kNone };

struct CacheKeyConfig {
  CacheKeyBody body = CacheKeyBody::kJsonCanonical;
  std::vector<std::string> ignore;   // JSON pointers left out of the key
  std::vector<std::string> headers;  // lower-case header names in the key
  bool query = true;
};

struct RouteCacheConfig {
  absl::Duration ttl = absl::Seconds(30);
  absl::Duration stale_while_revalidate = absl::ZeroDuration();
  absl::Duration stale_if_error = absl::ZeroDuration();
  std::vector<int> statuses = {200};
  bool respect_cache_control = true;
  CacheKeyConfig key;
  uint64_t max_entry_bytes = 1024 * 1024;
  bool streams = false;
  bool shared = false;  // also use the fleet tier (cache.shared)
};

enum class JsonType { kObject, kArray, kString, kNumber, kBoolean, kNull };

struct JsonCheck {
  std::string pointer;  // RFC 6901
  std::optional<JsonType> type;
  std::optional<bool> exists;
  bool finite = false;
  std::optional<double> min;
  std::optional<double> max;
  std::optional<uint64_t> min_items;
  SourceLoc loc;
};

struct ValidateConfig {
  std::vector<int> status;  // empty = any 2xx
  std::vector<JsonCheck> json;
};

enum class PredicateOp { kEq, kNe, kGt, kGe, kLt, kLe, kIn, kExists, kMatches };

// The YAML spelling of a JSON type and of a predicate operator.
constexpr const char* jsonTypeName(JsonType t) {
  constexpr const char* kNames[] = {"object", "array", "string", "number", "boolean", "null"};
  return kNames[static_cast<int>(t)];
}
constexpr const char* predicateOpName(PredicateOp op) {
  constexpr const char* kNames[] = {"eq", "ne", "gt", "ge", "lt", "le", "in", "exists", "matches"};
  return kNames[static_cast<int>(op)];
}

struct Predicate {
  std::string pointer;
  PredicateOp op = PredicateOp::kEq;
  std::string value_json;  // operand as compact JSON text ("5000", "\"x\"", "[1,2]", "true")
  SourceLoc loc;
};

// A locally generated answer (a rule's or the default's).
struct RespondConfig {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string body;          // `json:` serialised compactly, or `body:` verbatim
  std::string content_type;  // "application/json" for `json:`, else from headers or text/plain
};

struct Rule {
  std::string name;
  std::vector<Predicate> when;  // all must hold
  RespondConfig respond;
};

struct FallbackStep {
  enum class Kind { kUpstream, kRules, kRespond };
  Kind kind = Kind::kRespond;
  std::string upstream;  // kUpstream: name in Config::upstreams
  absl::Duration timeout = absl::Seconds(2);  // kUpstream
  std::vector<Rule> rules;                    // kRules
  RespondConfig respond;                      // kRespond
  SourceLoc loc;
};

struct FaultConfig {
  double delay_percent = 0;  // 0..100
  absl::Duration delay = absl::ZeroDuration();
  double abort_percent = 0;  // 0..100
  int abort_status = 503;
};

struct RouteConfig {
  std::string name;
  MatchConfig match;
  std::string upstream;  // name in Config::upstreams
  Priority priority = Priority::kNormal;
  TimeoutConfig timeout;
  RetryConfig retry;
  BulkheadConfig bulkhead;
  std::optional<AdmissionConfig> admission;
  std::optional<HedgeConfig> hedge;
  std::optional<CircuitBreakerConfig> circuit_breaker;
  std::optional<RouteCacheConfig> cache;
  std::optional<ValidateConfig> validate;
  std::vector<FallbackStep> fallback;
  FaultConfig fault;
  SourceLoc loc;
};

struct ReadinessConfig {
  bool require_upstream = false;  // /readyz fails while a probed primary upstream is unhealthy
};

struct Config {
  std::string source_path;  // the file it was loaded from
  ListenConfig listen;
  ReadinessConfig readiness;
  AdminConfig admin;
  LogConfig log;
  std::optional<SheddingConfig> shedding;
  GlobalCacheConfig cache;
  std::vector<UpstreamConfig> upstreams;  // in file order
  std::vector<RouteConfig> routes;        // in file order; first match wins

  // Returns the upstream with this name, or nullptr.
  const UpstreamConfig* findUpstream(std::string_view name) const {
    for (const auto& u : upstreams)
      if (u.name == name) return &u;
    return nullptr;
  }
};

}  // namespace airbag
