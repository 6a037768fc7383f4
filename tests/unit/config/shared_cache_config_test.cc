// `cache.shared` and a route's `cache.shared`: the URL's parts, defaults, the
// errors (each at its line and column), GET /config's form of it, and that a
// reload keeps the running value (it is read only at start).
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proxy/config/config_json.h"
#include "proxy/config/config_loader.h"
#include "proxy/config/restart_only.h"

namespace airbag::config {
namespace {

using ::testing::HasSubstr;

// One upstream and one route; the route's `cache:` value follows on its line.
constexpr char kRoute[] =
    "upstreams:\n"
    "  model: {url: \"http://127.0.0.1:8000\"}\n"
    "routes:\n"
    "  - name: r\n"
    "    upstream: model\n"
    "    match: {}\n"
    "    cache: ";

// `cache.shared` set to `shared`, the route opting in.
std::string withShared(const std::string& shared) {
  return "cache:\n  shared: " + shared + "\n" + kRoute + "{shared: true}\n";
}

std::string errorOf(const std::string& yaml) {
  auto c = loadString(yaml, "t.yaml");
  return c.ok() ? "" : std::string(c.status().message());
}

TEST(SharedCacheConfig, UrlPartsAndDefaults) {
  auto c = loadString(withShared("{redis: \"redis://cache@redis.internal:6380/2\", "
                                 "password_file: pw}"),
                      "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE((*c)->cache.shared);
  const SharedCacheConfig& s = *(*c)->cache.shared;
  EXPECT_EQ(s.host, "redis.internal");
  EXPECT_EQ(s.port, 6380);
  EXPECT_EQ(s.db, 2);
  EXPECT_EQ(s.username, "cache");
  EXPECT_EQ(s.password_file, "pw");
  EXPECT_EQ(s.timeout, absl::Milliseconds(5));
  EXPECT_FALSE(s.coalesce);
  EXPECT_EQ(s.coalesce_wait, absl::Milliseconds(300));
  EXPECT_TRUE((*c)->routes[0].cache->shared);

  auto plain = loadString(withShared("{redis: \"redis://[::1]\", timeout: 20ms}"), "t.yaml");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ((*plain)->cache.shared->host, "::1");
  EXPECT_EQ((*plain)->cache.shared->port, 6379);
  EXPECT_EQ((*plain)->cache.shared->db, 0);
  EXPECT_EQ((*plain)->cache.shared->timeout, absl::Milliseconds(20));
  EXPECT_FALSE((*plain)->cache.shared->cluster);

  auto cluster = loadString(withShared("{redis: \"redis://10.0.0.5:7000\", cluster: true}"),
                            "t.yaml");
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  EXPECT_TRUE((*cluster)->cache.shared->cluster);
  EXPECT_EQ((*cluster)->cache.shared->port, 7000);
}

TEST(SharedCacheConfig, RedissTakesTheUpstreamsTlsBlock) {
  auto c = loadString(withShared("{redis: \"rediss://redis.internal\", "
                                 "tls: {ca: ca.pem, verify: false, sni: r.example}}"),
                      "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  const SharedCacheConfig& s = *(*c)->cache.shared;
  EXPECT_TRUE(s.tls);
  EXPECT_EQ(s.host, "redis.internal");
  EXPECT_EQ(s.port, 6379);
  EXPECT_EQ(s.tls_settings.ca, "ca.pem");
  EXPECT_FALSE(s.tls_settings.verify);
  EXPECT_EQ(s.tls_settings.sni, "r.example");
  nlohmann::json j = nlohmann::json::parse(toJson(**c));
  EXPECT_EQ(j["cache"]["shared"]["tls"]["ca"], "ca.pem");
  EXPECT_EQ(j["cache"]["shared"]["tls"]["verify"], false);
  auto again = loadString(j.dump(), "t.json");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->cache.shared->tls_settings.sni, "r.example");

  auto plain = loadString(withShared("{redis: \"redis://r\"}"), "t.yaml");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE((*plain)->cache.shared->tls);

  // A cluster over TLS: every node is checked against the seed's name (here sni).
  auto cluster = loadString(withShared("{redis: \"rediss://10.0.0.5:7000\", cluster: true, "
                                       "tls: {ca: ca.pem, sni: cluster.redis.example}}"),
                            "t.yaml");
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  EXPECT_TRUE(cluster.value()->cache.shared->cluster);
  EXPECT_TRUE(cluster.value()->cache.shared->tls);
  EXPECT_EQ(cluster.value()->cache.shared->tls_settings.sni, "cluster.redis.example");
}

TEST(SharedCacheConfig, ErrorsNameTheKeyAndItsPlace) {
  EXPECT_THAT(errorOf(withShared("{redis: \"http://r\"}")),
              HasSubstr("t.yaml:2:19: cache.shared.redis 'http://r' must start with redis:// or "
                        "rediss://"));
  EXPECT_THAT(errorOf(withShared("{redis: \"redis://r\", tls: {verify: false}}")),
              HasSubstr("t.yaml:2:37: cache.shared.tls applies to a rediss:// url only"));
  EXPECT_THAT(errorOf(withShared("{redis: \"rediss://r\", tls: {cert: x}}")),
              HasSubstr("unknown key 'cert' in cache.shared.tls"));
  EXPECT_THAT(errorOf(withShared("{redis: \"redis://u:secret@r\"}")),
              HasSubstr("holds a password; put it in password_file instead"));
  EXPECT_THAT(errorOf(withShared("{redis: \"redis://r/x\"}")),
              HasSubstr("database 'x' is not a number in 0..1023"));
  EXPECT_THAT(errorOf(withShared("{redis: \"redis://r\", timeout: 2s}")),
              HasSubstr("cache.shared.timeout must be at most 1s"));
  EXPECT_THAT(errorOf(withShared("{redis: \"redis://r\", coalesce: true, coalesce_wait: 1m}")),
              HasSubstr("t.yaml:2:63: cache.shared.coalesce_wait must be at most 30s"));
  EXPECT_THAT(errorOf(withShared("{redis: \"redis://r\", coalesce: true, coalesce_wait: 0s}")),
              HasSubstr("t.yaml:2:63: 'coalesce_wait' must be greater than 0s"));
  EXPECT_THAT(errorOf(withShared("{redis: \"redis://r\", coalesce: maybe}")),
              HasSubstr("t.yaml:2:42: 'coalesce' must be true or false"));
  EXPECT_THAT(errorOf(withShared("{redis: \"redis://r/2\", cluster: true}")),
              HasSubstr("t.yaml:2:43: cache.shared.cluster: Redis Cluster has database 0 only"));
  EXPECT_THAT(errorOf(withShared("{redis: \"rediss://r/1\", cluster: true}")),
              HasSubstr("t.yaml:2:44: cache.shared.cluster: Redis Cluster has database 0 only"));
  EXPECT_THAT(errorOf(withShared("{timeout: 5ms}")), HasSubstr("redis"));
  EXPECT_THAT(errorOf(withShared("{redis: \"redis://r\", colour: red}")),
              HasSubstr("unknown key 'colour' in cache.shared"));
  // A route asking for the tier when there is none.
  std::string no_tier = std::string(kRoute) + "{shared: true}\n";
  EXPECT_THAT(errorOf(no_tier), HasSubstr("t.yaml:7:21: cache.shared: true needs the global "
                                          "cache.shared (where Redis is)"));
}

TEST(SharedCacheConfig, CoalescingIsOptInWithItsWait) {
  auto c = loadString(withShared("{redis: \"redis://r\", coalesce: true, coalesce_wait: 750ms}"),
                      "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE((*c)->cache.shared->coalesce);
  EXPECT_EQ((*c)->cache.shared->coalesce_wait, absl::Milliseconds(750));
  nlohmann::json j = nlohmann::json::parse(toJson(**c));
  EXPECT_EQ(j["cache"]["shared"]["coalesce"], true);
  EXPECT_EQ(j["cache"]["shared"]["coalesce_wait"], "750ms");
  auto again = loadString(j.dump(), "t.json");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->cache.shared->coalesce_wait, absl::Milliseconds(750));
  // Read only at start, like the rest of cache.shared.
  Config n = **again;
  auto other = loadString(withShared("{redis: \"redis://r\", coalesce: true}"), "t.yaml");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(keepRestartOnly(**other, n).size(), 1u);
  EXPECT_EQ(n.cache.shared->coalesce_wait, absl::Milliseconds(300));
}

TEST(SharedCacheConfig, GetConfigShowsItWithoutThePasswordFileAndItLoadsBack) {
  auto c = loadString(withShared("{redis: \"redis://r:6379\", password_file: /secret/pw}"),
                      "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  nlohmann::json j = nlohmann::json::parse(toJson(**c));
  EXPECT_EQ(j["cache"]["shared"]["redis"], "redis://r:6379");
  EXPECT_EQ(j["cache"]["shared"]["password_file"], "<set>");
  EXPECT_EQ(j["cache"]["shared"]["timeout"], "5ms");
  EXPECT_EQ(j["routes"][0]["cache"]["shared"], true);
  auto again = loadString(j.dump(), "t.json");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->cache.shared->host, "r");
}

TEST(SharedCacheConfig, AReloadKeepsTheRunningTier) {
  auto running = loadString(withShared("{redis: \"redis://a\"}"), "t.yaml");
  auto next = loadString(withShared("{redis: \"redis://b\"}"), "t.yaml");
  ASSERT_TRUE(running.ok() && next.ok());
  Config n = **next;
  std::vector<std::string> warnings = keepRestartOnly(**running, n);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("cache.shared changed"));
  EXPECT_EQ(n.cache.shared->host, "a");
}

}  // namespace
}  // namespace airbag::config
