// Tests of the admin API's JSON view of a config: shape, units, redaction.
#include "proxy/config/config_json.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxy/config/config_loader.h"
#include "proxy/config/units.h"

namespace airbag::config {
namespace {

constexpr std::string_view kConfig = R"yaml(
listen: {address: "127.0.0.1:8080", tls: {cert: /etc/airbag/tls.crt, key: /etc/airbag/tls.key}}
admin: {address: "127.0.0.1:9901", token_file: /run/secrets/admin-token}
upstreams:
  model: {url: "http://127.0.0.1:8000"}
  small: {url: "http://127.0.0.1:8001"}
routes:
  - name: predict
    match: {path_prefix: /v1/, methods: [POST]}
    upstream: model
    timeout: {total: 90s, per_try: 1500ms}
    retry: {attempts: 2, on: [timeout, 5xx]}
    cache: {ttl: 30s}
    fallback:
      - upstream: small
      - rules:
          - name: big
            when: [{pointer: /amount, gt: 5000}]
            respond: {json: {score: 0.7}}
      - respond: {status: 503, body: "try later"}
)yaml";

class ConfigJsonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = loadString(kConfig, "airbag.yaml");
    ASSERT_TRUE(c.ok()) << c.status();
    config_ = *c;
  }
  std::shared_ptr<const Config> config_;
};

TEST_F(ConfigJsonTest, TokenFileIsRedactedAndKeyPathsShown) {
  const std::string text = toJson(*config_);
  EXPECT_EQ(text.find("/run/secrets/admin-token"), std::string::npos);
  nlohmann::json j = nlohmann::json::parse(text);
  EXPECT_EQ(j["admin"]["token_file"], "<set>");
  EXPECT_EQ(j["listen"]["tls"]["key"], "/etc/airbag/tls.key");
}

TEST_F(ConfigJsonTest, UnsetTokenFileIsOmitted) {
  auto c = loadString(
      "upstreams: {m: {url: \"http://h:1\"}}\nroutes: [{name: r, upstream: m, "
      "match: {}}]\n",
      "a.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  nlohmann::json j = nlohmann::json::parse(toJson(**c));
  EXPECT_FALSE(j["admin"].contains("token_file"));
  EXPECT_FALSE(j.contains("shedding"));
  EXPECT_EQ(j["listen"]["workers"], "auto");
}

TEST_F(ConfigJsonTest, DurationsUseConfigSyntaxAndParseBack) {
  nlohmann::json j = nlohmann::json::parse(toJson(*config_));
  const nlohmann::json& timeout = j["routes"][0]["timeout"];
  EXPECT_EQ(timeout["total"], "1m30s");
  EXPECT_EQ(timeout["per_try"], "1.5s");
  EXPECT_EQ(timeout["first_byte"], "1.5s");
  for (const char* key : {"total", "per_try", "first_byte", "idle"}) {
    absl::StatusOr<absl::Duration> d = parseDuration(timeout[key].get<std::string>());
    EXPECT_TRUE(d.ok()) << key << ": " << d.status();
  }
  EXPECT_EQ(j["routes"][0]["fault"]["delay"]["duration"], "0s");
}

TEST_F(ConfigJsonTest, RouteShowsLadderWithValuesNotJsonStrings) {
  nlohmann::json r = routeToJson(config_->routes[0]);
  EXPECT_EQ(r["name"], "predict");
  EXPECT_EQ(r["upstream"], "model");
  EXPECT_EQ(r["match"]["path_prefix"], "/v1/");
  EXPECT_EQ(r["retry"]["on"], nlohmann::json({"timeout", "5xx"}));
  EXPECT_FALSE(r.contains("circuit_breaker"));
  EXPECT_EQ(r["cache"]["ttl"], "30s");
  ASSERT_EQ(r["fallback"].size(), 3u);
  EXPECT_EQ(r["fallback"][0]["upstream"], "small");
  EXPECT_EQ(r["fallback"][0]["timeout"], "2s");
  const nlohmann::json& rule = r["fallback"][1]["rules"][0];
  EXPECT_EQ(rule["when"][0]["gt"], 5000);
  EXPECT_EQ(rule["respond"]["json"]["score"], 0.7);
  EXPECT_EQ(r["fallback"][2]["respond"]["body"], "try later");
  EXPECT_EQ(r["fallback"][2]["respond"]["status"], 503);
}

TEST_F(ConfigJsonTest, ToJsonRoutesMatchRouteToJson) {
  nlohmann::json j = nlohmann::json::parse(toJson(*config_));
  EXPECT_EQ(j["routes"][0], routeToJson(config_->routes[0]));
  EXPECT_EQ(j["upstreams"]["small"]["url"], "http://127.0.0.1:8001");
}

// Every key and shape the file can hold, so the round trip below covers them.
constexpr std::string_view kEverything = R"yaml(
listen:
  address: "127.0.0.1:8080"
  workers: 3
  tls: {cert: c.pem, key: k.pem}
  limits: {max_header_bytes: 32KiB, max_body_bytes: 1MiB, header_timeout: 5s, idle_timeout: 1m}
admin: {address: "[::1]:9901", token_file: /run/token}
log: {level: debug, access_log: /var/log/a.log, format: text}
shedding: {max_in_flight: 100}
cache: {max_bytes: 64MiB}
upstreams:
  model:
    url: "http://127.0.0.1:8000/v1/"
    connect_timeout: 250ms
    max_connections: 10
    tls: {verify: false}
    health: {path: /ready, interval: 2s, timeout: 500ms}
  small: {url: "http://[::1]:8001", tls: {ca: ca.pem, sni: small.local}}
routes:
  - name: "caf\u00e9 route"
    match: {path_regex: '^/v2/models/[^/]+/infer$', methods: [post, GET], headers: {X-Tenant: gold}}
    upstream: model
    priority: critical
    timeout: {total: 1m30s, per_try: 10s, first_byte: 1.5s, idle: 2m}
    retry:
      attempts: 3
      on: [connect-failure, retriable-status, invalid]
      retriable_status: [429, 503]
      backoff: {base: 10ms, max: 1s, jitter: decorrelated}
      honor_retry_after: false
      budget: {ratio: 10%, min_per_second: 2.5}
    bulkhead: {max_in_flight: 8, max_queue: 16, queue_timeout: 50ms}
    circuit_breaker: {window: 20s, minimum_calls: 5, failure_rate: 0.3, slow_call_duration: 2s,
                      slow_call_rate: 80%, consecutive_failures: 0, open_for: 1s,
                      max_open_for: 30s, half_open_calls: 1}
    cache:
      ttl: 10s
      stale_while_revalidate: 5s
      stale_if_error: 1h
      statuses: [200, 203]
      respect_cache_control: false
      key: {body: json-canonical, ignore: [/id, /meta/ts], headers: [X-Model-Version], query: false}
      max_entry_bytes: 2048
      streams: true
    validate:
      status: [200]
      json:
        - {pointer: "", type: object}
        - {pointer: /p, exists: false}
        - {pointer: /s, finite: true, min: -1.5, max: 1e3}
        - {pointer: /a, min_items: 2}
    fallback:
      - upstream: small
        timeout: 750ms
      - rules:
          - name: eq
            when: [{pointer: /n, eq: "5000"}, {pointer: /m, ne: null}, {pointer: /g, gt: 1.25}]
            respond: {status: 202, headers: {x-why: eq}, json: {a: [1, "two", true, null, 0.0]}}
          - name: rest
            when: [{pointer: /i, in: [1, "1", [2]]}, {pointer: /e, exists: true},
                   {pointer: /r, matches: '^a.*\d$'}, {pointer: /l, le: -3}]
            respond: {headers: {content-type: application/problem+json}, json: {type: about}}
          - name: always
            respond: {body: ""}
      - respond: {status: 503, headers: {Content-Type: text/html, x-degraded: "true"}, body: "<b>later</b>"}
    fault:
      delay: {percent: 12.5, duration: 20ms}
      abort: {percent: 1, status: 502}
  - name: plain
    match: {path: /x}
    upstream: small
)yaml";

// What the admin API shows must load back: YAML is a superset of JSON, so the
// JSON itself is a config file, and loading it must give the same JSON again.
void expectRoundTrip(std::string_view yaml, std::string_view name) {
  SCOPED_TRACE(name);
  auto first = loadString(yaml, name);
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string shown = toJson(**first);
  auto second = loadString(shown, "shown.json");
  ASSERT_TRUE(second.ok()) << second.status() << "\n" << shown;
  EXPECT_EQ(toJson(**second), shown);
  // GET /routes shows each route in the same keys.
  const nlohmann::json upstreams = nlohmann::json::parse(shown)["upstreams"];
  for (const RouteConfig& r : (*first)->routes) {
    const nlohmann::json alone = {{"upstreams", upstreams}, {"routes", {routeToJson(r)}}};
    auto route_alone = loadString(alone.dump(), "route.json");
    EXPECT_TRUE(route_alone.ok()) << route_alone.status();
  }
}

TEST(ConfigJsonRoundTripTest, EveryKeyLoadsBackToTheSameConfig) {
  expectRoundTrip(kEverything, "everything.yaml");
  expectRoundTrip(kConfig, "airbag.yaml");
}

TEST(ConfigJsonRoundTripTest, EveryExampleLoadsBackToTheSameConfig) {
  int seen = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(AIRBAG_SOURCE_DIR) + "/examples")) {
    if (entry.path().extension() != ".yaml") continue;
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    expectRoundTrip(text.str(), entry.path().filename().string());
    ++seen;
  }
  EXPECT_GT(seen, 0);
}

TEST(ConfigJsonRoundTripTest, RespondShowsItsContentTypeAsAHeader) {
  auto c = loadString(kEverything, "everything.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  nlohmann::json r = routeToJson(c.value()->routes[0]);
  const nlohmann::json& rules = r["fallback"][1]["rules"];
  EXPECT_FALSE(rules[0]["respond"].contains("content_type"));
  EXPECT_FALSE(rules[0]["respond"]["headers"].contains("content-type"));
  EXPECT_EQ(rules[0]["respond"]["json"]["a"][1], "two");
  EXPECT_EQ(rules[1]["respond"]["headers"]["content-type"], "application/problem+json");
  EXPECT_EQ(rules[1]["respond"]["body"], "{\"type\":\"about\"}");
  const nlohmann::json& last = r["fallback"][2]["respond"];
  EXPECT_EQ(last["headers"]["content-type"], "text/html");
  EXPECT_EQ(last["body"], "<b>later</b>");
}

TEST(FaultFromJsonTest, ReadsTheDocumentedKeysWithDefaults) {
  auto f = faultFromJson(nlohmann::json::parse(
      R"({"delay":{"percent":10,"duration":"200ms"},"abort":{"percent":5,"status":502}})"));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->delay_percent, 10);
  EXPECT_EQ(f->delay, absl::Milliseconds(200));
  EXPECT_EQ(f->abort_percent, 5);
  EXPECT_EQ(f->abort_status, 502);
  auto d = faultFromJson(nlohmann::json::parse(R"({"abort":{"percent":5}})"));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->abort_status, 503);
  EXPECT_EQ(d->delay, absl::ZeroDuration());
}

TEST(FaultFromJsonTest, UnknownKeysAtAnyLevelAreRefused) {
  auto a = faultFromJson(nlohmann::json::parse(R"({"abort":{"percent":5,"code":502}})"));
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.status().message(), "unknown key \"code\" in abort (expected percent, status)");
  auto d = faultFromJson(nlohmann::json::parse(R"({"delay":{"percent":5,"time":"1s"}})"));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(), "unknown key \"time\" in delay (expected percent, duration)");
  auto top = faultFromJson(nlohmann::json::parse(R"({"delya":{}})"));
  ASSERT_FALSE(top.ok());
  EXPECT_EQ(top.status().message(), "unknown key \"delya\" in the fault (expected delay, abort)");
}

TEST(FaultFromJsonTest, BadDurationSaysWhatAGoodOneLooksLike) {
  for (const char* body :
       {R"({"delay":{"duration":"2 seconds"}})", R"({"delay":{"duration":2}})"}) {
    SCOPED_TRACE(body);
    auto f = faultFromJson(nlohmann::json::parse(body));
    ASSERT_FALSE(f.ok());
    EXPECT_THAT(std::string(f.status().message()), ::testing::StartsWith("delay.duration: "));
    EXPECT_THAT(std::string(f.status().message()),
                ::testing::HasSubstr("write a string such as \"200ms\", \"1.5s\" or \"1m\""));
  }
}

}  // namespace
}  // namespace airbag::config
