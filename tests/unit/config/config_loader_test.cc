// Tests of the YAML loader: defaults, the full schema, and every error path
// with the exact file:line:col it reports.
#include "proxy/config/config_loader.h"

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace airbag::config {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::StartsWith;

std::vector<std::string> splitLines(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = text.find('\n', start);
    out.emplace_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return out;
}

// The errors of loading `yaml` as "t.yaml", one per element; empty on success.
std::vector<std::string> loadErrors(std::string_view yaml) {
  absl::StatusOr<std::shared_ptr<const Config>> c = loadString(yaml, "t.yaml");
  if (c.ok()) return {};
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  return splitLines(std::string(c.status().message()));
}

std::shared_ptr<const Config> loadOk(std::string_view yaml) {
  absl::StatusOr<std::shared_ptr<const Config>> c = loadString(yaml, "t.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : nullptr;
}

// Lines 1-7; route-level test snippets are appended from line 8, indented 4.
constexpr std::string_view kBase =
    "upstreams:\n"
    "  model: {url: \"http://127.0.0.1:8000\"}\n"
    "  small: {url: \"http://127.0.0.1:8001\"}\n"
    "routes:\n"
    "  - name: r\n"
    "    upstream: model\n"
    "    match: {}\n";

TEST(ConfigLoaderTest, MinimalConfigGetsDocumentedDefaults) {
  auto c = loadOk(kBase);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->source_path, "t.yaml");
  EXPECT_EQ(c->listen.bind.host, "0.0.0.0");
  EXPECT_EQ(c->listen.bind.port, 8080);
  EXPECT_EQ(c->listen.workers, 0);
  EXPECT_FALSE(c->listen.tls.has_value());
  EXPECT_EQ(c->listen.limits.max_header_bytes, 64u * 1024);
  EXPECT_EQ(c->listen.limits.max_body_bytes, 16u * 1024 * 1024);
  EXPECT_EQ(c->admin.bind.host, "127.0.0.1");
  EXPECT_EQ(c->admin.bind.port, 9901);
  EXPECT_EQ(c->admin.token_file, "");
  EXPECT_EQ(c->log.level, "info");
  EXPECT_EQ(c->log.access_log, "stdout");
  EXPECT_EQ(c->log.format, LogFormat::kJson);
  EXPECT_FALSE(c->shedding.has_value());
  EXPECT_EQ(c->cache.max_bytes, 256ull * 1024 * 1024);

  ASSERT_THAT(c->upstreams, SizeIs(2));
  const UpstreamConfig& u = c->upstreams[0];
  EXPECT_EQ(u.name, "model");
  EXPECT_FALSE(u.https);
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 8000);
  EXPECT_EQ(u.host_header, "127.0.0.1:8000");
  EXPECT_EQ(u.base_path, "");
  EXPECT_EQ(u.connect_timeout, absl::Seconds(1));
  EXPECT_EQ(u.max_connections, 256u);
  EXPECT_EQ(u.loc.line, 2);
  EXPECT_EQ(u.loc.column, 3);

  ASSERT_THAT(c->routes, SizeIs(1));
  const RouteConfig& r = c->routes[0];
  EXPECT_EQ(r.name, "r");
  EXPECT_EQ(r.upstream, "model");
  EXPECT_EQ(r.loc.line, 5);
  EXPECT_EQ(r.loc.column, 5);
  EXPECT_EQ(r.match.path, "");
  EXPECT_EQ(r.match.path_prefix, "");
  EXPECT_EQ(r.match.path_regex, "");
  EXPECT_TRUE(r.match.methods.empty());
  EXPECT_EQ(r.priority, Priority::kNormal);
  EXPECT_EQ(r.timeout.total, absl::Seconds(30));
  EXPECT_EQ(r.timeout.per_try, absl::Seconds(30));
  EXPECT_EQ(r.timeout.first_byte, absl::Seconds(30));
  EXPECT_EQ(r.timeout.idle, absl::Seconds(60));
  EXPECT_EQ(r.retry.attempts, 1);
  EXPECT_EQ(r.retry.on, kRetryOnConnectFailure | kRetryOnReset | kRetryOn5xx);
  EXPECT_EQ(r.retry.backoff.base, absl::Milliseconds(25));
  EXPECT_EQ(r.retry.backoff.max, absl::Milliseconds(250));
  EXPECT_EQ(r.retry.backoff.jitter, Jitter::kFull);
  EXPECT_TRUE(r.retry.honor_retry_after);
  EXPECT_DOUBLE_EQ(r.retry.budget.ratio, 0.2);
  EXPECT_DOUBLE_EQ(r.retry.budget.min_per_second, 10);
  EXPECT_EQ(r.bulkhead.max_in_flight, 1024u);
  EXPECT_EQ(r.bulkhead.max_queue, 0u);
  EXPECT_FALSE(r.circuit_breaker.has_value());
  EXPECT_FALSE(r.cache.has_value());
  EXPECT_FALSE(r.validate.has_value());
  EXPECT_TRUE(r.fallback.empty());
  EXPECT_EQ(r.fault.delay_percent, 0);
  EXPECT_EQ(r.fault.abort_percent, 0);
}

TEST(ConfigLoaderTest, PerTryDefaultsToTotalAndFirstByteToPerTry) {
  auto c = loadOk(std::string(kBase) + "    timeout: {total: 5s}\n");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->routes[0].timeout.per_try, absl::Seconds(5));
  EXPECT_EQ(c->routes[0].timeout.first_byte, absl::Seconds(5));

  c = loadOk(std::string(kBase) + "    timeout: {total: 5s, per_try: 2s}\n");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->routes[0].timeout.total, absl::Seconds(5));
  EXPECT_EQ(c->routes[0].timeout.per_try, absl::Seconds(2));
  EXPECT_EQ(c->routes[0].timeout.first_byte, absl::Seconds(2));
}

TEST(ConfigLoaderTest, PresentButEmptySectionsTakeStructDefaults) {
  auto c = loadOk(std::string(kBase) +
                  "    circuit_breaker: {}\n"
                  "    cache:\n"
                  "    retry: {attempts: 3}\n");
  ASSERT_NE(c, nullptr);
  const RouteConfig& r = c->routes[0];
  ASSERT_TRUE(r.circuit_breaker.has_value());
  EXPECT_EQ(r.circuit_breaker->window, absl::Seconds(10));
  EXPECT_EQ(r.circuit_breaker->minimum_calls, 20u);
  EXPECT_DOUBLE_EQ(r.circuit_breaker->failure_rate, 0.5);
  EXPECT_EQ(r.circuit_breaker->half_open_calls, 3u);
  ASSERT_TRUE(r.cache.has_value());
  EXPECT_EQ(r.cache->ttl, absl::Seconds(30));
  EXPECT_THAT(r.cache->statuses, ElementsAre(200));
  EXPECT_EQ(r.cache->key.body, CacheKeyBody::kJsonCanonical);
  EXPECT_EQ(r.retry.attempts, 3);
  EXPECT_EQ(r.retry.on, kRetryOnConnectFailure | kRetryOnReset | kRetryOn5xx);
}

TEST(ConfigLoaderTest, UpstreamUrlFillsHostPortHeaderAndBasePath) {
  auto c = loadOk(
      "upstreams:\n"
      "  a: {url: http://model.local/v1/}\n"
      "  b: {url: \"http://[::1]:8000/base/path\"}\n"
      "  c: {url: http://localhost:80}\n"
      "routes: [{name: r, upstream: a, match: {}}]\n");
  ASSERT_NE(c, nullptr);
  const UpstreamConfig* a = c->findUpstream("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->host, "model.local");
  EXPECT_EQ(a->port, 80);
  EXPECT_EQ(a->host_header, "model.local");
  EXPECT_EQ(a->base_path, "/v1");
  const UpstreamConfig* b = c->findUpstream("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 8000);
  EXPECT_EQ(b->host_header, "[::1]:8000");
  EXPECT_EQ(b->base_path, "/base/path");
  EXPECT_EQ(c->findUpstream("c")->host_header, "localhost");
}

TEST(ConfigLoaderTest, PlainNumbersAreBytesAndFractions) {
  auto c = loadOk(
      "listen: {limits: {max_body_bytes: 1024}}\n"
      "upstreams: {m: {url: \"http://127.0.0.1:1\"}}\n"
      "routes:\n"
      "  - {name: r, upstream: m, match: {}, circuit_breaker: {failure_rate: 0.25}}\n");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->listen.limits.max_body_bytes, 1024u);
  EXPECT_DOUBLE_EQ(c->routes[0].circuit_breaker->failure_rate, 0.25);
}

TEST(ConfigLoaderTest, MatchRespondAndPredicatesAreNormalised) {
  auto c = loadOk(
      "upstreams: {m: {url: \"http://127.0.0.1:1\"}}\n"
      "routes:\n"
      "  - name: r\n"
      "    upstream: m\n"
      "    match: {path_regex: '^/v2/models/[^/]+/infer$', methods: [post, GET],\n"
      "            headers: {X-Tenant: gold}}\n"
      "    fallback:\n"
      "      - rules:\n"
      "          - name: high\n"
      "            when:\n"
      "              - {pointer: /amount, gt: 5000}\n"
      "              - {pointer: /ratio, le: 0.5}\n"
      "              - {pointer: /kind, in: [a, 1, true]}\n"
      "              - {pointer: /name, eq: \"5000\"}\n"
      "              - {pointer: /opt, exists: false}\n"
      "              - {pointer: /id, matches: '^[a-z]+$'}\n"
      "            respond: {status: 200, json: {score: 0.7, reasons: [high_amount]}}\n"
      "      - respond:\n"
      "          status: 503\n"
      "          headers: {X-Degraded: \"true\", Content-Type: text/csv}\n"
      "          body: \"a,b\\n\"\n");
  ASSERT_NE(c, nullptr);
  const RouteConfig& r = c->routes[0];
  EXPECT_EQ(r.match.path_regex, "^/v2/models/[^/]+/infer$");
  EXPECT_THAT(r.match.methods, ElementsAre("POST", "GET"));
  ASSERT_THAT(r.match.headers, SizeIs(1));
  EXPECT_EQ(r.match.headers[0].name, "x-tenant");
  EXPECT_EQ(r.match.headers[0].value, "gold");

  ASSERT_THAT(r.fallback, SizeIs(2));
  ASSERT_EQ(r.fallback[0].kind, FallbackStep::Kind::kRules);
  ASSERT_THAT(r.fallback[0].rules, SizeIs(1));
  const Rule& rule = r.fallback[0].rules[0];
  EXPECT_EQ(rule.name, "high");
  ASSERT_THAT(rule.when, SizeIs(6));
  EXPECT_EQ(rule.when[0].pointer, "/amount");
  EXPECT_EQ(rule.when[0].op, PredicateOp::kGt);
  EXPECT_EQ(rule.when[0].value_json, "5000");
  EXPECT_EQ(rule.when[0].loc.line, 11);
  EXPECT_EQ(rule.when[1].op, PredicateOp::kLe);
  EXPECT_EQ(rule.when[1].value_json, "0.5");
  EXPECT_EQ(rule.when[2].op, PredicateOp::kIn);
  EXPECT_EQ(rule.when[2].value_json, "[\"a\",1,true]");
  EXPECT_EQ(rule.when[3].op, PredicateOp::kEq);
  EXPECT_EQ(rule.when[3].value_json, "\"5000\"");
  EXPECT_EQ(rule.when[4].op, PredicateOp::kExists);
  EXPECT_EQ(rule.when[4].value_json, "false");
  EXPECT_EQ(rule.when[5].op, PredicateOp::kMatches);
  EXPECT_EQ(rule.when[5].value_json, "\"^[a-z]+$\"");
  EXPECT_EQ(rule.respond.status, 200);
  EXPECT_EQ(rule.respond.body, "{\"score\":0.7,\"reasons\":[\"high_amount\"]}");
  EXPECT_EQ(rule.respond.content_type, "application/json");

  ASSERT_EQ(r.fallback[1].kind, FallbackStep::Kind::kRespond);
  const RespondConfig& def = r.fallback[1].respond;
  EXPECT_EQ(def.status, 503);
  EXPECT_EQ(def.body, "a,b\n");
  EXPECT_EQ(def.content_type, "text/csv");
  EXPECT_THAT(def.headers, ElementsAre(std::pair<std::string, std::string>("x-degraded", "true")));
}

// The complete example of DESIGN.md §3, verbatim.
constexpr std::string_view kDesignExample = R"yaml(listen:
  address: 0.0.0.0:8080
  workers: auto                      # event-loop threads; auto = CPU count
  tls: { cert: tls.crt, key: tls.key }        # optional: terminate TLS
  limits: { max_header_bytes: 64KiB, max_body_bytes: 16MiB,
            header_timeout: 10s, idle_timeout: 60s }
admin:
  address: 127.0.0.1:9901            # loopback by default
  token_file: admin-token            # optional: mutating endpoints need Bearer
log: { level: info, access_log: stdout, format: json }
  # access_log: stdout | stderr | off | a file path; format: json | text
shedding:                            # optional, global
  max_in_flight: 1024                # lowest priority shed first
cache:
  max_bytes: 256MiB                  # one in-memory cap for all routes
upstreams:
  model:
    url: http://127.0.0.1:8000       # http or https
    connect_timeout: 1s
    max_connections: 256
    tls: { ca: ca.pem, verify: true, sni: model.local }   # https only
    health: { path: /health, interval: 5s, timeout: 1s }  # optional active probe
  small-model:
    url: http://127.0.0.1:8001
routes:                              # first match wins
  - name: predict
    match: { path_prefix: /v1/, methods: [POST], headers: { x-tenant: gold } }
    # also: path: /exact, path_regex: '^/v2/models/[^/]+/infer$'
    upstream: model
    priority: critical               # critical | normal (default) | optional
    timeout: { total: 30s, per_try: 10s, first_byte: 5s, idle: 60s }
    retry:
      attempts: 3                    # total tries, including the first
      on: [connect-failure, reset, timeout, 5xx, retriable-status, invalid]
      retriable_status: [429, 503]
      backoff: { base: 25ms, max: 250ms, jitter: full }   # full | equal | decorrelated | none
      honor_retry_after: true
      budget: { ratio: 0.2, min_per_second: 10 }           # retries <= 20% of requests
    bulkhead: { max_in_flight: 64, max_queue: 128, queue_timeout: 100ms }
    circuit_breaker:
      window: 10s                    # sliding time window
      minimum_calls: 20
      failure_rate: 50%
      slow_call_duration: 5s
      slow_call_rate: 100%           # 100% = off
      consecutive_failures: 5
      open_for: 5s                   # doubles on each failed probe, up to max_open_for
      max_open_for: 60s
      half_open_calls: 3
    cache:
      ttl: 30s
      stale_while_revalidate: 60s
      stale_if_error: 10m
      statuses: [200]
      respect_cache_control: true    # upstream no-store / max-age / s-maxage win
      key: { body: json-canonical,   # raw | json-canonical | none
             ignore: [/id],          # JSON pointers left out of the key
             headers: [x-model-version], query: true }
      max_entry_bytes: 1MiB
      streams: true                  # cache a complete stream, replay it
    validate:                        # a 2xx that fails a check is a model failure
      status: [200]
      json:
        - { pointer: /predictions, type: array, min_items: 1 }
        - { pointer: /predictions/0/score, finite: true, min: 0, max: 1 }
    fallback:                        # tried in order
      - upstream: small-model
        timeout: 2s
      - rules:
          - name: high-amount
            when: [ { pointer: /amount, gt: 5000 } ]   # eq ne gt ge lt le in exists matches
            respond: { status: 200, json: { score: 0.7, reasons: [high_amount] } }
      - respond:                     # the safe default: no I/O, cannot fail
          status: 200
          headers: { x-degraded: "true" }
          json: { score: 0.0, action: allow, flag_for_review: true }
    fault:                           # chaos; also settable at runtime via admin
      delay: { percent: 0, duration: 0s }
      abort: { percent: 0, status: 503 }
)yaml";

TEST(ConfigLoaderTest, DesignExampleLoadsCompletely) {
  auto c = loadOk(kDesignExample);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->listen.workers, 0);
  ASSERT_TRUE(c->listen.tls.has_value());
  EXPECT_EQ(c->listen.tls->key, "tls.key");
  EXPECT_EQ(c->listen.tls->min_version, "1.2");
  EXPECT_EQ(c->listen.tls->address, "");
  EXPECT_EQ(c->listen.limits.idle_timeout, absl::Seconds(60));
  EXPECT_EQ(c->admin.token_file, "admin-token");
  ASSERT_TRUE(c->shedding.has_value());
  EXPECT_EQ(c->shedding->max_in_flight, 1024u);
  const UpstreamConfig* model = c->findUpstream("model");
  ASSERT_NE(model, nullptr);
  ASSERT_TRUE(model->tls.has_value());
  EXPECT_EQ(model->tls->sni, "model.local");
  ASSERT_TRUE(model->health.has_value());
  EXPECT_EQ(model->health->interval, absl::Seconds(5));

  ASSERT_THAT(c->routes, SizeIs(1));
  const RouteConfig& r = c->routes[0];
  EXPECT_EQ(r.priority, Priority::kCritical);
  EXPECT_EQ(r.timeout.per_try, absl::Seconds(10));
  EXPECT_EQ(r.timeout.first_byte, absl::Seconds(5));
  EXPECT_EQ(r.retry.attempts, 3);
  EXPECT_EQ(r.retry.on, kRetryOnConnectFailure | kRetryOnReset | kRetryOnTimeout | kRetryOn5xx |
                            kRetryOnRetriableStatus | kRetryOnInvalid);
  EXPECT_THAT(r.retry.retriable_status, ElementsAre(429, 503));
  EXPECT_EQ(r.bulkhead.max_queue, 128u);
  EXPECT_EQ(r.bulkhead.queue_timeout, absl::Milliseconds(100));
  ASSERT_TRUE(r.circuit_breaker.has_value());
  EXPECT_DOUBLE_EQ(r.circuit_breaker->slow_call_rate, 1.0);
  EXPECT_EQ(r.circuit_breaker->max_open_for, absl::Seconds(60));
  ASSERT_TRUE(r.cache.has_value());
  EXPECT_EQ(r.cache->stale_if_error, absl::Minutes(10));
  EXPECT_THAT(r.cache->key.ignore, ElementsAre("/id"));
  EXPECT_THAT(r.cache->key.headers, ElementsAre("x-model-version"));
  EXPECT_EQ(r.cache->max_entry_bytes, 1024u * 1024);
  EXPECT_TRUE(r.cache->streams);
  ASSERT_TRUE(r.validate.has_value());
  ASSERT_THAT(r.validate->json, SizeIs(2));
  EXPECT_EQ(r.validate->json[0].type, JsonType::kArray);
  EXPECT_EQ(r.validate->json[0].min_items, 1u);
  EXPECT_TRUE(r.validate->json[1].finite);
  EXPECT_EQ(r.validate->json[1].max, 1.0);
  ASSERT_THAT(r.fallback, SizeIs(3));
  EXPECT_EQ(r.fallback[0].kind, FallbackStep::Kind::kUpstream);
  EXPECT_EQ(r.fallback[0].upstream, "small-model");
  EXPECT_EQ(r.fallback[0].timeout, absl::Seconds(2));
  EXPECT_EQ(r.fallback[1].rules[0].name, "high-amount");
  EXPECT_EQ(r.fallback[2].respond.body,
            "{\"score\":0.0,\"action\":\"allow\",\"flag_for_review\":true}");
  EXPECT_EQ(r.fault.abort_status, 503);
}

struct ErrorCase {
  std::string name;
  std::string yaml;      // appended to kBase (from line 8) unless `whole`
  std::string expected;  // the one error, exactly "t.yaml:LINE:COL: message" (prefix)
  bool whole = false;
};

class ConfigErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ConfigErrorTest, ReportsExactlyThisError) {
  const ErrorCase& c = GetParam();
  const std::string yaml = c.whole ? c.yaml : std::string(kBase) + c.yaml;
  std::vector<std::string> errors = loadErrors(yaml);
  ASSERT_THAT(errors, SizeIs(1)) << testing::PrintToString(errors);
  EXPECT_THAT(errors[0], StartsWith(c.expected));
}

const ErrorCase kRouteErrors[] = {
    {"UnknownKeySuggestsClosest", "    time_out: 1s\n",
     "t.yaml:8:5: unknown key 'time_out' in route (did you mean 'timeout'?)"},
    {"UnknownKeyWithoutSuggestion", "    colour: red\n",
     "t.yaml:8:5: unknown key 'colour' in route"},
    {"SectionMustBeMap", "    timeout: 5s\n", "t.yaml:8:14: timeout must be a map, got a scalar"},
    {"DurationNeedsUnit", "    timeout:\n      total: 5\n",
     "t.yaml:9:14: 'total': invalid duration '5': missing unit"},
    {"NegativeDuration", "    timeout:\n      idle: -1s\n",
     "t.yaml:9:13: 'idle': invalid duration '-1s': negative durations are not allowed"},
    {"ZeroTotal", "    timeout:\n      total: 0s\n",
     "t.yaml:9:14: 'total' must be greater than 0s"},
    {"PerTryAboveTotal", "    timeout:\n      total: 10s\n      per_try: 20s\n",
     "t.yaml:10:16: timeout.per_try (20s) exceeds timeout.total (10s)"},
    {"FirstByteAbovePerTry", "    timeout:\n      per_try: 2s\n      first_byte: 3s\n",
     "t.yaml:10:19: timeout.first_byte (3s) exceeds timeout.per_try (2s)"},
    {"DurationIsNotAList", "    timeout:\n      total: [1s]\n",
     "t.yaml:9:14: 'total' must be a single value, got a list"},
    {"BadSize", "    cache:\n      max_entry_bytes: 1XB\n",
     "t.yaml:9:24: 'max_entry_bytes': invalid size '1XB': unknown unit 'XB'"},
    {"RatioAboveOne", "    circuit_breaker:\n      failure_rate: 150%\n",
     "t.yaml:9:21: 'failure_rate': invalid ratio '150%': must be within 0%..100%"},
    {"MaxOpenForBelowOpenFor",
     "    circuit_breaker:\n      open_for: 10s\n      max_open_for: 5s\n",
     "t.yaml:10:21: circuit_breaker.max_open_for (5s) is below open_for (10s)"},
    {"AttemptsBelowOne", "    retry:\n      attempts: 0\n",
     "t.yaml:9:17: 'attempts' must be a whole number in 1..100, got '0'"},
    {"AttemptsNotANumber", "    retry:\n      attempts: three\n",
     "t.yaml:9:17: 'attempts' must be a whole number in 1..100, got 'three'"},
    {"UnknownRetryCondition", "    retry:\n      on: [reset, 5xxx]\n",
     "t.yaml:9:19: 'retry.on' must be one of connect-failure, reset, timeout, 5xx, "
     "retriable-status, invalid; got '5xxx' (did you mean '5xx'?)"},
    {"RetriableStatusNeedsStatuses", "    retry:\n      on: [retriable-status]\n",
     "t.yaml:9:11: retry.on includes 'retriable-status' but retriable_status lists no statuses"},
    {"RetriableStatusOutOfRange", "    retry:\n      retriable_status: [429, 600]\n",
     "t.yaml:9:31: a status in 'retriable_status' must be a whole number in 100..599, got '600'"},
    {"BackoffMaxBelowBase", "    retry:\n      backoff: {base: 1s}\n",
     "t.yaml:9:16: retry.backoff.max (250ms) is below backoff.base (1s)"},
    {"UnknownJitter", "    retry:\n      backoff: {jitter: ful}\n",
     "t.yaml:9:25: 'jitter' must be one of full, equal, decorrelated, none; got 'ful' "
     "(did you mean 'full'?)"},
    {"BudgetRatio", "    retry:\n      budget: {ratio: 2}\n",
     "t.yaml:9:23: 'ratio': invalid ratio '2': must be within 0..1"},
    {"UnknownPriority", "    priority: urgent\n",
     "t.yaml:8:15: 'priority' must be one of critical, normal, optional; got 'urgent'"},
    {"BulkheadZero", "    bulkhead: {max_in_flight: 0}\n",
     "t.yaml:8:31: 'max_in_flight' must be a whole number in 1..4294967295, got '0'"},
    {"UnknownCacheKeyBody", "    cache:\n      key:\n        body: canonical\n",
     "t.yaml:10:15: 'body' must be one of raw, json-canonical, none; got 'canonical'"},
    {"CacheIgnoreNotAPointer", "    cache:\n      key: {ignore: [id]}\n",
     "t.yaml:9:22: 'id' is not a JSON pointer such as /id"},
    {"CacheBoolean", "    cache:\n      streams: yes\n",
     "t.yaml:9:16: 'streams' must be true or false, got 'yes'"},
    {"UnknownJsonType", "    validate:\n      json:\n        - pointer: /a\n          type: list\n",
     "t.yaml:11:17: 'type' must be one of object, array, string, number, boolean, null; got "
     "'list'"},
    {"ValidateStatusOutOfRange", "    validate:\n      status: [99]\n",
     "t.yaml:9:16: a status in 'status' must be a whole number in 100..599, got '99'"},
    {"ValidateBadPointer", "    validate:\n      json: [{pointer: predictions}]\n",
     "t.yaml:9:24: 'pointer' must be a JSON pointer such as /a/0/b, got 'predictions'"},
    {"ValidateMinAboveMax", "    validate:\n      json: [{pointer: /s, min: 2, max: 1}]\n",
     "t.yaml:9:41: 'max' is below 'min'"},
    {"FaultPercentAbove100", "    fault:\n      abort: {percent: 101}\n",
     "t.yaml:9:24: 'percent' must be within 0..100, got 101"},
    {"FaultPercentNegative", "    fault:\n      delay: {percent: -1, duration: 1s}\n",
     "t.yaml:9:24: 'percent' must be within 0..100, got -1"},
    {"FaultAbortStatus", "    fault:\n      abort: {status: 99}\n",
     "t.yaml:9:23: 'status' must be a whole number in 100..599, got '99'"},
    {"RespondBothJsonAndBody", "    fallback:\n      - respond: {json: {a: 1}, body: x}\n",
     "t.yaml:9:33: respond takes either 'json' or 'body', not both"},
    {"RespondStatusOutOfRange", "    fallback:\n      - respond: {status: 600}\n",
     "t.yaml:9:27: 'status' must be a whole number in 100..599, got '600'"},
    {"RespondJsonNotANumber", "    fallback:\n      - respond: {json: {score: .nan}}\n",
     "t.yaml:9:33: '.nan' cannot be written as JSON"},
    {"PredicateWithoutOperator",
     "    fallback:\n      - rules:\n          - name: x\n            when: [{pointer: /a}]\n"
     "            respond: {status: 200}\n",
     "t.yaml:11:20: a predicate needs one operator: eq, ne, gt, ge, lt, le, in, exists or matches"},
    {"PredicateWithTwoOperators",
     "    fallback:\n      - rules:\n          - name: x\n            when: [{pointer: /a, eq: 1, "
     "gt: 2}]\n"
     "            respond: {status: 200}\n",
     "t.yaml:11:41: a predicate takes exactly one operator; 'eq' is already given"},
    {"InWithoutList",
     "    fallback:\n      - rules:\n          - name: x\n            when: [{pointer: /a, in: "
     "5}]\n"
     "            respond: {status: 200}\n",
     "t.yaml:11:38: 'in' needs a list of values, got a scalar"},
    {"MatchesBadRegex",
     "    fallback:\n      - rules:\n          - name: x\n            when: [{pointer: /a, "
     "matches: '(x'}]\n"
     "            respond: {status: 200}\n",
     "t.yaml:11:43: 'matches' is not a valid RE2 regular expression: missing ): (x"},
    {"GtNeedsNumber",
     "    fallback:\n      - rules:\n          - name: x\n            when: [{pointer: /a, gt: "
     "big}]\n"
     "            respond: {status: 200}\n",
     "t.yaml:11:38: 'gt' must be a number, got 'big'"},
    {"RuleWithoutRespond", "    fallback:\n      - rules:\n          - name: x\n",
     "t.yaml:10:13: missing required key 'respond' in rule"},
    {"EmptyRules", "    fallback:\n      - rules: []\n",
     "t.yaml:9:16: 'rules' must list at least one rule"},
    {"DuplicateRuleNames",
     "    fallback:\n      - rules:\n          - {name: x, respond: {}}\n"
     "          - {name: x, respond: {}}\n",
     "t.yaml:10:11: duplicate rule name 'x' in route"},
    {"DanglingFallbackUpstream", "    fallback:\n      - upstream: smal\n",
     "t.yaml:9:19: unknown upstream 'smal' (did you mean 'small'?)"},
    {"FallbackStepWithTwoKinds", "    fallback:\n      - {upstream: small, respond: {}}\n",
     "t.yaml:9:9: a fallback step takes only one of upstream, rules and respond"},
    {"FallbackStepWithNoKind", "    fallback:\n      - {timeout: 1s}\n",
     "t.yaml:9:9: a fallback step needs one of upstream, rules or respond"},
    {"FallbackStepAfterRespond", "    fallback:\n      - respond: {}\n      - upstream: small\n",
     "t.yaml:10:9: this fallback step is never reached"},
    {"FallbackIsAList", "    fallback: {upstream: small}\n",
     "t.yaml:8:15: 'fallback' must be a list, got a map"},
    {"DuplicateKeyInRoute", "    upstream: small\n",
     "t.yaml:8:5: duplicate key 'upstream' in route (first at line 6)"},
};

INSTANTIATE_TEST_SUITE_P(Route, ConfigErrorTest, ::testing::ValuesIn(kRouteErrors),
                         [](const auto& info) { return info.param.name; });

const ErrorCase kFileErrors[] = {
    {"Empty", "", "t.yaml:1:1: the configuration is empty", true},
    {"CommentsOnly", "# nothing here\n", "t.yaml:1:1: the configuration is empty", true},
    {"SyntaxError", "upstreams:\n  model: {url: x\nroutes: []\n",
     "t.yaml:3:7: YAML syntax error: end of map flow not found", true},
    {"RootIsAList", "- a\n", "t.yaml:1:1: the configuration must be a map, got a list", true},
    {"UnknownTopLevelKey",
     "listn: {}\nupstreams: {m: {url: \"http://h:1\"}}\nroutes: [{name: r, upstream: m, match: "
     "{}}]\n",
     "t.yaml:1:1: unknown key 'listn' in the configuration (did you mean 'listen'?)", true},
    {"MissingRoutes", "upstreams: {m: {url: \"http://h:1\"}}\n",
     "t.yaml:1:1: missing required key 'routes' in the configuration", true},
    {"EmptyRoutes", "upstreams: {m: {url: \"http://h:1\"}}\nroutes: []\n",
     "t.yaml:2:9: 'routes' must list at least one route", true},
    {"RouteMissingMatch",
     "upstreams: {m: {url: \"http://h:1\"}}\nroutes:\n  - {name: r, upstream: m}\n",
     "t.yaml:3:5: missing required key 'match' in route", true},
    {"RouteMissingName",
     "upstreams: {m: {url: \"http://h:1\"}}\nroutes:\n  - {match: {}, upstream: m}\n",
     "t.yaml:3:5: missing required key 'name' in route", true},
    {"RouteMissingUpstream",
     "upstreams: {m: {url: \"http://h:1\"}}\nroutes:\n  - {name: r, match: {}}\n",
     "t.yaml:3:5: missing required key 'upstream' in route", true},
    {"UpstreamMissingUrl",
     "upstreams:\n  m: {connect_timeout: 1s}\nroutes: [{name: r, upstream: m, match: {}}]\n",
     "t.yaml:2:6: missing required key 'url' in upstream 'm'", true},
    {"DanglingRouteUpstream",
     "upstreams:\n  model: {url: \"http://h:1\"}\nroutes:\n  - {name: r, upstream: modle, match: "
     "{}}\n",
     "t.yaml:4:25: unknown upstream 'modle' (did you mean 'model'?)", true},
    {"DuplicateRouteName",
     "upstreams: {m: {url: \"http://h:1\"}}\nroutes:\n  - {name: r, upstream: m, match: {}}\n"
     "  - {name: r, upstream: m, match: {}}\n",
     "t.yaml:4:12: duplicate route name 'r' (first at line 3)", true},
    {"DuplicateUpstreamName",
     "upstreams:\n  m: {url: \"http://h:1\"}\n  m: {url: \"http://h:2\"}\n"
     "routes: [{name: r, upstream: m, match: {}}]\n",
     "t.yaml:3:3: duplicate key 'm' in upstreams (first at line 2)", true},
    {"DuplicateTopLevelKey",
     "upstreams: {m: {url: \"http://h:1\"}}\nroutes: [{name: r, upstream: m, match: {}}]\n"
     "upstreams: {}\n",
     "t.yaml:3:1: duplicate key 'upstreams' in the configuration (first at line 1)", true},
    {"HealthRiseZero",
     "upstreams:\n  m: {url: \"http://h:1\", health: {rise: 0}}\nroutes: [{name: r, upstream: m, "
     "match: {}}]\n",
     "t.yaml:2:41: 'rise' must be a whole number in 1..100, got '0'", true},
    {"HealthExpectEmpty",
     "upstreams:\n  m: {url: \"http://h:1\", health: {expect: []}}\nroutes: [{name: r, upstream: "
     "m, match: {}}]\n",
     "t.yaml:2:43: 'expect' must list at least one status", true},
    {"PassiveUnknownKey",
     "upstreams:\n  m: {url: \"http://h:1\", passive: {down: 1s}}\nroutes: [{name: r, upstream: m, "
     "match: {}}]\n",
     "t.yaml:2:36: unknown key 'down' in upstream 'm' passive (did you mean 'down_for'?)", true},
    {"ReadinessUnknownKey",
     "readiness: {require: true}\nupstreams: {m: {url: \"http://h:1\"}}\nroutes: [{name: r, "
     "upstream: m, match: {}}]\n",
     "t.yaml:1:13: unknown key 'require' in readiness", true},
    {"UrlWithoutScheme",
     "upstreams:\n  m: {url: \"127.0.0.1:8000\"}\nroutes: [{name: r, upstream: m, match: {}}]\n",
     "t.yaml:2:12: invalid upstream url '127.0.0.1:8000': expected "
     "http[s]://host[:port][/base/path]",
     true},
    {"UrlWithQuery",
     "upstreams:\n  m: {url: \"http://h:1/a?b=c\"}\nroutes: [{name: r, upstream: m, match: {}}]\n",
     "t.yaml:2:12: invalid upstream url 'http://h:1/a?b=c': a query or fragment is not allowed",
     true},
    {"UrlBadPort",
     "upstreams:\n  m: {url: \"http://h:99999\"}\nroutes: [{name: r, upstream: m, match: {}}]\n",
     "t.yaml:2:12: invalid upstream url 'http://h:99999': port must be a number in 0..65535", true},
    {"InvalidPathRegex",
     "upstreams: {m: {url: \"http://h:1\"}}\nroutes:\n  - name: r\n    upstream: m\n"
     "    match: {path_regex: '^/v2/(models'}\n",
     "t.yaml:5:25: 'path_regex' is not a valid RE2 regular expression", true},
    {"TwoPathMatchers",
     "upstreams: {m: {url: \"http://h:1\"}}\nroutes:\n  - name: r\n    upstream: m\n"
     "    match: {path: /a, path_prefix: /b}\n",
     "t.yaml:5:23: match takes at most one of path, path_prefix and path_regex", true},
    {"PathWithoutSlash",
     "upstreams: {m: {url: \"http://h:1\"}}\nroutes:\n  - name: r\n    upstream: m\n"
     "    match: {path_prefix: v1}\n",
     "t.yaml:5:26: 'path_prefix' must start with '/'", true},
    {"InvalidMethod",
     "upstreams: {m: {url: \"http://h:1\"}}\nroutes:\n  - name: r\n    upstream: m\n"
     "    match: {methods: [POST, FETCH]}\n",
     "t.yaml:5:29: invalid method 'FETCH'", true},
    {"ListenAddress",
     "listen: {address: \"8080\"}\nupstreams: {m: {url: \"http://h:1\"}}\n"
     "routes: [{name: r, upstream: m, match: {}}]\n",
     "t.yaml:1:19: 'address': invalid address '8080': missing ':port'", true},
    {"Workers",
     "listen: {workers: many}\nupstreams: {m: {url: \"http://h:1\"}}\n"
     "routes: [{name: r, upstream: m, match: {}}]\n",
     "t.yaml:1:19: 'workers' must be 'auto' or a whole number in 1..256", true},
    {"LogLevel",
     "log: {level: verbose}\nupstreams: {m: {url: \"http://h:1\"}}\n"
     "routes: [{name: r, upstream: m, match: {}}]\n",
     "t.yaml:1:14: 'level' must be one of trace, debug, info, warn, error, critical, off; got "
     "'verbose'",
     true},
    {"LogFormat",
     "log: {format: yaml}\nupstreams: {m: {url: \"http://h:1\"}}\n"
     "routes: [{name: r, upstream: m, match: {}}]\n",
     "t.yaml:1:15: 'format' must be one of json, text; got 'yaml'", true},
    {"ListenTlsNeedsKey",
     "listen: {tls: {cert: c.pem}}\nupstreams: {m: {url: \"http://h:1\"}}\n"
     "routes: [{name: r, upstream: m, match: {}}]\n",
     "t.yaml:1:15: missing required key 'key' in listen.tls", true},
    {"ListenTlsMinVersion",
     "listen: {tls: {cert: c.pem, key: k.pem, min_version: 1.1}}\n"
     "upstreams: {m: {url: \"http://h:1\"}}\nroutes: [{name: r, upstream: m, match: {}}]\n",
     "t.yaml:1:54: 'min_version' must be one of 1.2, 1.3; got '1.1' (did you mean '1.2'?)", true},
    {"ListenTlsAddressCollides",
     "listen: {address: \"127.0.0.1:9000\", tls: {address: \"0.0.0.0:9000\", cert: c, key: k}}\n"
     "upstreams: {m: {url: \"http://h:1\"}}\nroutes: [{name: r, upstream: m, match: {}}]\n",
     "t.yaml:1:1: listen.tls.address 0.0.0.0:9000 collides with listen.address 127.0.0.1:9000",
     true},
    {"AdminCollidesWithListen",
     "listen: {address: \"0.0.0.0:9000\"}\nadmin: {address: \"127.0.0.1:9000\"}\n"
     "upstreams: {m: {url: \"http://h:1\"}}\nroutes: [{name: r, upstream: m, match: {}}]\n",
     "t.yaml:2:1: admin.address 127.0.0.1:9000 collides with listen.address 0.0.0.0:9000", true},
    {"TwoDocuments",
     "upstreams: {m: {url: \"http://h:1\"}}\nroutes: [{name: r, upstream: m, match: {}}]\n---\na: "
     "1\n",
     "t.yaml:4:1: only one YAML document is allowed", true},
};

INSTANTIATE_TEST_SUITE_P(File, ConfigErrorTest, ::testing::ValuesIn(kFileErrors),
                         [](const auto& info) { return info.param.name; });

TEST(ConfigLoaderTest, ReportsEveryErrorSortedByPosition) {
  std::vector<std::string> errors = loadErrors(
      "listen: {address: nowhere}\n"
      "upstreams:\n"
      "  model: {url: \"ftp://x\"}\n"
      "routes:\n"
      "  - name: a\n"
      "    upstream: model\n"
      "    match: {path_regex: '('}\n"
      "    timeout: {total: 1s, per_try: 2s}\n"
      "    retyr: {attempts: 2}\n"
      "  - name: a\n"
      "    upstream: nope\n"
      "    match: {}\n");
  EXPECT_THAT(
      errors,
      ElementsAre("t.yaml:1:19: 'address': invalid address 'nowhere': missing ':port'",
                  "t.yaml:3:16: invalid upstream url 'ftp://x': expected "
                  "http[s]://host[:port][/base/path]",
                  "t.yaml:7:25: 'path_regex' is not a valid RE2 regular expression: missing ): (",
                  "t.yaml:8:35: timeout.per_try (2s) exceeds timeout.total (1s)",
                  "t.yaml:9:5: unknown key 'retyr' in route (did you mean 'retry'?)",
                  "t.yaml:10:11: duplicate route name 'a' (first at line 5)",
                  "t.yaml:11:15: unknown upstream 'nope'; defined upstreams: model"));
}

TEST(ConfigLoaderTest, HttpsUpstreamWithHealthPassiveAndReadiness) {
  auto c = loadOk(
      "readiness: {require_upstream: true}\n"
      "upstreams:\n"
      "  hosted:\n"
      "    url: https://api.example.com/v1/\n"
      "    tls: {ca: ca.pem, verify: false, sni: other.example.com}\n"
      "    health: {path: /ready, interval: 2s, timeout: 500ms, rise: 1, fall: 4, "
      "expect: [200, 204]}\n"
      "    passive: {consecutive_connect_failures: 5, down_for: 2s}\n"
      "  local: {url: \"https://10.0.0.1:8443\", health: {}, passive: {down_for: 1m}}\n"
      "routes: [{name: r, upstream: hosted, match: {}}]\n");
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->readiness.require_upstream);
  const UpstreamConfig& u = c->upstreams[0];
  EXPECT_TRUE(u.https);
  EXPECT_EQ(u.host, "api.example.com");
  EXPECT_EQ(u.port, 443);
  EXPECT_EQ(u.host_header, "api.example.com");
  EXPECT_EQ(u.base_path, "/v1");
  ASSERT_TRUE(u.tls.has_value());
  EXPECT_EQ(u.tls->ca, "ca.pem");
  EXPECT_FALSE(u.tls->verify);
  EXPECT_EQ(u.tls->sni, "other.example.com");
  ASSERT_TRUE(u.health.has_value());
  EXPECT_EQ(u.health->path, "/ready");
  EXPECT_EQ(u.health->rise, 1u);
  EXPECT_EQ(u.health->fall, 4u);
  EXPECT_THAT(u.health->expect, ElementsAre(200, 204));
  ASSERT_TRUE(u.passive.has_value());
  EXPECT_EQ(u.passive->consecutive_connect_failures, 5u);
  EXPECT_EQ(u.passive->down_for, absl::Seconds(2));
  EXPECT_EQ(u.passive->max_down_for, absl::Seconds(30));
  const UpstreamConfig& l = c->upstreams[1];
  EXPECT_EQ(l.port, 8443);
  EXPECT_EQ(l.host_header, "10.0.0.1:8443");
  ASSERT_TRUE(l.health.has_value());
  EXPECT_EQ(l.health->rise, 2u);
  EXPECT_EQ(l.health->fall, 3u);
  EXPECT_THAT(l.health->expect, ElementsAre(200));
  ASSERT_TRUE(l.passive.has_value());
  EXPECT_EQ(l.passive->consecutive_connect_failures, 3u);
  // A down_for above the default cap raises the cap with it.
  EXPECT_EQ(l.passive->max_down_for, absl::Minutes(1));
}

// http2: true picks HTTP/2 by ALPN, so it needs an https url; off by default.
TEST(ConfigLoaderTest, Http2IsForHttpsUpstreamsOnly) {
  auto c = loadOk(
      "upstreams:\n"
      "  hosted: {url: \"https://api.example.com\", http2: true}\n"
      "  plain: {url: \"https://10.0.0.1\"}\n"
      "routes: [{name: r, upstream: hosted, match: {}}]\n");
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->upstreams[0].http2);
  EXPECT_FALSE(c->upstreams[1].http2);
  std::vector<std::string> errors = loadErrors(
      "upstreams:\n"
      "  m: {url: \"http://h:1\", http2: true}\n"
      "routes: [{name: r, upstream: m, match: {}}]\n");
  EXPECT_THAT(errors, ElementsAre("t.yaml:2:33: upstream 'm' http2: needs an https:// url (HTTP/2 "
                                  "is negotiated by ALPN during the TLS handshake)"));
}

// Invalid UTF-8 is a config error at its exact byte (yaml-cpp passes such
// bytes through, and JSON serialisation would throw on them later).
TEST(ConfigLoaderTest, InvalidUtf8InRespondJsonIsAnErrorAtItsByte) {
  std::vector<std::string> errors = loadErrors(std::string(kBase) +
                                               "    fallback:\n"
                                               "      - respond: {json: {msg: \"\xff\xfe\"}}\n");
  EXPECT_THAT(errors, ElementsAre("t.yaml:9:32: invalid UTF-8 (byte 0xFF); the configuration "
                                  "must be UTF-8 text"));
}

TEST(ConfigLoaderTest, OverlongSequenceInRouteNameIsAnError) {
  std::vector<std::string> errors = loadErrors(
      "upstreams: {m: {url: \"http://h:1\"}}\n"
      "routes: [{name: \"a\xc0\xaf\", upstream: m, match: {}}]\n");
  EXPECT_THAT(errors, ElementsAre("t.yaml:2:19: invalid UTF-8 (byte 0xC0); the configuration "
                                  "must be UTF-8 text"));
}

TEST(ConfigLoaderTest, SequenceTruncatedAtEndOfFileIsAnError) {
  std::vector<std::string> errors = loadErrors(std::string(kBase) +
                                               "    fallback:\n"
                                               "      - respond:\n"
                                               "          body: ok\xe2\x82");
  EXPECT_THAT(errors, ElementsAre("t.yaml:10:19: invalid UTF-8 (byte 0xE2); the configuration "
                                  "must be UTF-8 text"));
}

TEST(ConfigLoaderTest, InvalidUtf8IsReportedWithEveryOtherError) {
  // In a key, a header value, a predicate operand and a comment, beside an
  // ordinary error: one error per line with bad bytes, and the others too.
  std::vector<std::string> errors =
      loadErrors(std::string(kBase) +
                 "    priority: urgent\n"
                 "    fallback:\n"
                 "      - rules:\n"
                 "          - name: x\n"
                 "            when: [{pointer: /a, eq: \"\xed\xa0\x80\"}]\n"
                 "            respond: {headers: {x-a: \"v\x80\"}, body: ok}\n"
                 "    # \xf5 comment\n");
  EXPECT_THAT(errors,
              ElementsAre("t.yaml:8:15: 'priority' must be one of critical, normal, optional; "
                          "got 'urgent'",
                          StartsWith("t.yaml:12:39: invalid UTF-8 (byte 0xED)"),
                          StartsWith("t.yaml:13:40: invalid UTF-8 (byte 0x80)"),
                          StartsWith("t.yaml:14:7: invalid UTF-8 (byte 0xF5)")));
}

TEST(ConfigLoaderTest, Utf16FileIsToldToBeUtf8) {
  std::vector<std::string> errors = loadErrors(std::string("\xff\xfeu\0p\0", 6));
  ASSERT_THAT(errors, Not(::testing::IsEmpty()));
  EXPECT_THAT(errors[0], StartsWith("t.yaml:1:1: invalid UTF-8 (byte 0xFF)"));
  EXPECT_THAT(errors[0], HasSubstr("UTF-16"));
}

TEST(ConfigLoaderTest, ValidUtf8LoadsAndKeepsItsBytes) {
  auto c =
      loadOk(std::string(kBase) +
             "    fallback:\n"
             "      - respond: {json: {msg: \"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}}\n");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->routes[0].fallback[0].respond.body,
            "{\"msg\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}");
}

TEST(ConfigLoaderTest, UnknownUpstreamSuggestsByPrefixAndListsTheDefinedOnes) {
  std::vector<std::string> errors = loadErrors(
      "upstreams:\n"
      "  model: {url: \"http://h:1\"}\n"
      "  small-model: {url: \"http://h:2\"}\n"
      "routes: [{name: r, upstream: smal, match: {}}]\n");
  EXPECT_THAT(errors, ElementsAre("t.yaml:4:30: unknown upstream 'smal' (did you mean "
                                  "'small-model'?); defined upstreams: model, small-model"));
}

TEST(ConfigLoaderTest, TabIndentationSaysUseSpaces) {
  std::vector<std::string> errors = loadErrors(std::string(kBase) + "\tpriority: normal\n");
  ASSERT_THAT(errors, SizeIs(1));
  EXPECT_THAT(errors[0], StartsWith("t.yaml:8:2: YAML syntax error: "));
  EXPECT_THAT(errors[0], HasSubstr("indent with spaces, not tabs"));
}

TEST(ConfigLoaderTest, UnquotedIpv6AddressSaysQuoteIt) {
  for (const std::string admin :
       {"admin:\n  address: [::1]:9901\n", "admin: { address: [::1]:9901 }\n"}) {
    SCOPED_TRACE(admin);
    std::vector<std::string> errors = loadErrors(admin + std::string(kBase));
    ASSERT_THAT(errors, SizeIs(1));
    EXPECT_THAT(errors[0], HasSubstr("YAML syntax error: "));
    EXPECT_THAT(errors[0], HasSubstr("quote an IPv6 address: '[::1]:9901'"));
  }
}

TEST(ConfigLoaderTest, RespondWithJsonAndBodyStillReportsItsOtherErrors) {
  std::vector<std::string> errors = loadErrors(
      std::string(kBase) +
      "    fallback:\n"
      "      - respond: {status: 700, json: {a: .nan}, body: x, headers: {\"a b\": c}}\n");
  EXPECT_THAT(errors, ElementsAre("t.yaml:9:27: 'status' must be a whole number in 100..599, "
                                  "got '700'",
                                  "t.yaml:9:42: '.nan' cannot be written as JSON",
                                  "t.yaml:9:49: respond takes either 'json' or 'body', not both",
                                  "t.yaml:9:68: invalid header name 'a b'"));
}

TEST(ConfigLoaderTest, LoadFileReadsFromDiskAndNamesTheFile) {
  const std::string path = ::testing::TempDir() + "/config_loader_test.yaml";
  {
    std::ofstream out(path);
    out << kBase << "    priority: urgent\n";
  }
  absl::StatusOr<std::shared_ptr<const Config>> c = loadFile(path);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), StartsWith(path + ":8:15: 'priority'"));
  {
    std::ofstream out(path);
    out << kBase;
  }
  c = loadFile(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->source_path, path);
  std::remove(path.c_str());
}

TEST(ConfigLoaderTest, LoadFileOfMissingFileIsNotFound) {
  absl::StatusOr<std::shared_ptr<const Config>> c =
      loadFile(::testing::TempDir() + "/does-not-exist.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("does-not-exist.yaml: cannot read"));
}

}  // namespace
}  // namespace airbag::config

namespace airbag::config {
namespace {

// Found by tests/fuzz/config_fuzz: yaml-cpp 0.7's LoadAll never returned (and
// kept allocating) on a line starting with ','. It must be an error, at once.
TEST(ConfigLoaderTest, ALeadingCommaIsAnErrorNotAHang) {
  for (std::string_view yaml : {",", ", a", "# comment\n, \"b\" c\n", ",\n---\n,\n"}) {
    EXPECT_FALSE(loadErrors(yaml).empty()) << yaml;
  }
}

TEST(ConfigLoaderTest, EveryExtraDocumentIsReported) {
  std::string yaml(kBase);
  yaml += "---\na: 1\n---\n- b\n";
  std::vector<std::string> errors = loadErrors(yaml);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0], "t.yaml:9:1: only one YAML document is allowed in the configuration");
  EXPECT_EQ(errors[1], "t.yaml:11:1: only one YAML document is allowed in the configuration");
}

}  // namespace
}  // namespace airbag::config
