// Tests of the admin API's JSON view of a config: shape, units, redaction.
#include "proxy/config/config_json.h"

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
  EXPECT_EQ(j["source_path"], "airbag.yaml");
}

TEST_F(ConfigJsonTest, UnsetTokenFileIsOmitted) {
  auto c = loadString(
      "upstreams: {m: {url: \"http://h:1\"}}\nroutes: [{name: r, upstream: m, "
      "match: {}}]\n",
      "a.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  nlohmann::json j = nlohmann::json::parse(toJson(**c));
  EXPECT_FALSE(j["admin"].contains("token_file"));
  EXPECT_TRUE(j["shedding"].is_null());
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
  EXPECT_TRUE(r["circuit_breaker"].is_null());
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

}  // namespace
}  // namespace airbag::config
