// The saturation-aware admission keys: `upstreams.*.saturation` and
// `routes[].admission`, and `routes[].hedge`: their defaults, and their
// errors with file:line:col.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxy/config/config_json.h"
#include "proxy/config/config_loader.h"

namespace airbag::config {
namespace {

using ::testing::ElementsAre;

std::vector<std::string> loadErrors(std::string_view yaml) {
  absl::StatusOr<std::shared_ptr<const Config>> c = loadString(yaml, "t.yaml");
  if (c.ok()) return {};
  std::vector<std::string> out;
  std::string text(c.status().message());
  std::string_view rest = text;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    out.emplace_back(rest.substr(0, nl));
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  }
  return out;
}

TEST(AdmissionConfigTest, ReadsSaturationAndAdmission) {
  absl::StatusOr<std::shared_ptr<const Config>> c = loadString(
      "upstreams:\n"
      "  model:\n"
      "    url: http://127.0.0.1:8000\n"
      "    saturation:\n"
      "      metrics_path: /stats/metrics\n"
      "      interval: 500ms\n"
      "      when_any: [ { metric: \"vllm:num_requests_waiting\", gt: 8 },\n"
      "                  { metric: \"vllm:kv_cache_usage_perc\", gt: 0.9 } ]\n"
      "  plain: {url: \"http://127.0.0.1:8001\", saturation: {when_any: [{metric: q, gt: 0}]}}\n"
      "routes:\n"
      "  - name: chat\n"
      "    upstream: model\n"
      "    match: {}\n"
      "    admission:\n"
      "      adaptive: { min: 2, max: 64 }\n"
      "      queue: { max: 16, timeout: 750ms }\n"
      "  - {name: other, upstream: model, match: {}, admission: {}}\n"
      "  - {name: none, upstream: model, match: {}}\n",
      "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  const SaturationConfig& s = *(*c)->upstreams[0].saturation;
  EXPECT_EQ(s.metrics_path, "/stats/metrics");
  EXPECT_EQ(s.interval, absl::Milliseconds(500));
  ASSERT_EQ(s.when_any.size(), 2u);
  EXPECT_EQ(s.when_any[0].metric, "vllm:num_requests_waiting");
  EXPECT_EQ(s.when_any[0].gt, 8);
  EXPECT_EQ(s.when_any[1].gt, 0.9);
  EXPECT_EQ(s.when_any[1].loc.line, 8);
  const SaturationConfig& p = *(*c)->upstreams[1].saturation;
  EXPECT_EQ(p.metrics_path, "/metrics");
  EXPECT_EQ(p.interval, absl::Seconds(1));
  const AdmissionConfig& a = *(*c)->routes[0].admission;
  ASSERT_TRUE(a.adaptive.has_value());
  EXPECT_EQ(a.adaptive->min, 2u);
  EXPECT_EQ(a.adaptive->max, 64u);
  EXPECT_EQ(a.queue_max, 16u);
  EXPECT_EQ(a.queue_timeout, absl::Milliseconds(750));
  const AdmissionConfig& d = *(*c)->routes[1].admission;
  EXPECT_FALSE(d.adaptive.has_value());
  EXPECT_EQ(d.queue_max, 256u);
  EXPECT_EQ(d.queue_timeout, absl::Seconds(2));
  EXPECT_FALSE((*c)->routes[2].admission.has_value());
  // GET /config shows both, in the file's own keys.
  nlohmann::json j = nlohmann::json::parse(toJson(**c));
  EXPECT_EQ(j["upstreams"]["model"]["saturation"]["when_any"][1]["metric"],
            "vllm:kv_cache_usage_perc");
  EXPECT_EQ(j["routes"][0]["admission"]["adaptive"]["max"], 64);
  EXPECT_EQ(j["routes"][0]["admission"]["queue"]["timeout"], "750ms");
}

TEST(AdmissionConfigTest, ErrorsNameFileLineAndColumn) {
  EXPECT_THAT(loadErrors("upstreams:\n"
                         "  m: {url: \"http://h:1\", saturation: {interval: 1s}}\n"
                         "routes: [{name: r, upstream: m, match: {}}]\n"),
              ElementsAre("t.yaml:2:38: missing required key 'when_any' in upstream 'm' "
                          "saturation"));
  EXPECT_THAT(loadErrors("upstreams:\n"
                         "  m: {url: \"http://h:1\", saturation: {when_any: []}}\n"
                         "routes: [{name: r, upstream: m, match: {}}]\n"),
              ElementsAre("t.yaml:2:49: 'when_any' must list at least one { metric, gt }"));
  EXPECT_THAT(
      loadErrors("upstreams:\n"
                 "  m: {url: \"http://h:1\", saturation: {when_any: [{metric: q, lt: 1}]}}\n"
                 "routes: [{name: r, upstream: m, match: {}}]\n"),
      ElementsAre("t.yaml:2:50: missing required key 'gt' in a 'when_any' threshold",
                  "t.yaml:2:62: unknown key 'lt' in a 'when_any' threshold (did you "
                  "mean 'gt'?)"));
  EXPECT_THAT(loadErrors("upstreams:\n"
                         "  m: {url: \"http://h:1\", saturation: {metrics_path: metrics, "
                         "when_any: [{metric: q, gt: 1}]}}\n"
                         "routes: [{name: r, upstream: m, match: {}}]\n"),
              ElementsAre("t.yaml:2:53: 'metrics_path' must start with '/'"));
  EXPECT_THAT(loadErrors("upstreams: {m: {url: \"http://h:1\"}}\n"
                         "routes:\n"
                         "  - {name: r, upstream: m, match: {}, admission: {adaptive: {min: 9, "
                         "max: 3}, queu: {}}}\n"),
              ElementsAre("t.yaml:3:61: admission adaptive max (3) is below min (9)",
                          "t.yaml:3:79: unknown key 'queu' in admission (did you mean 'queue'?)"));
}

TEST(AdmissionConfigTest, ReadsHedge) {
  absl::StatusOr<std::shared_ptr<const Config>> c = loadString(
      "upstreams: {m: {url: \"http://h:1\"}}\n"
      "routes:\n"
      "  - {name: fixed, upstream: m, match: {}, hedge: {after: 300ms}}\n"
      "  - {name: measured, upstream: m, match: {}, hedge: {after: p95, max: 3}}\n"
      "  - {name: none, upstream: m, match: {}}\n",
      "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  const HedgeConfig& fixed = *(*c)->routes[0].hedge;
  EXPECT_EQ(fixed.after, absl::Milliseconds(300));
  EXPECT_EQ(fixed.percentile, 0);
  EXPECT_EQ(fixed.max, 1u);
  const HedgeConfig& measured = *(*c)->routes[1].hedge;
  EXPECT_EQ(measured.percentile, 95);
  EXPECT_EQ(measured.max, 3u);
  EXPECT_FALSE((*c)->routes[2].hedge.has_value());
  nlohmann::json j = nlohmann::json::parse(toJson(**c));
  EXPECT_EQ(j["routes"][0]["hedge"]["after"], "300ms");
  EXPECT_EQ(j["routes"][1]["hedge"]["after"], "p95");
  EXPECT_EQ(j["routes"][1]["hedge"]["max"], 3);
  EXPECT_FALSE(j["routes"][2].contains("hedge"));
}

TEST(AdmissionConfigTest, HedgeErrorsNameFileLineAndColumn) {
  auto route = [](std::string_view hedge) {
    return loadErrors(
        "upstreams: {m: {url: \"http://h:1\"}}\n"
        "routes:\n"
        "  - {name: r, upstream: m, match: {}, hedge: " +
        std::string(hedge) + "}\n");
  };
  EXPECT_THAT(route("{after: soon}"),
              ElementsAre("t.yaml:3:54: hedge 'after' must be a duration such as 300ms or a "
                          "percentile of the route's time to first byte, p50..p99; got 'soon'"));
  EXPECT_THAT(route("{after: p40}"),
              ElementsAre("t.yaml:3:54: hedge 'after' percentile must be p50..p99, got 'p40'"));
  EXPECT_THAT(route("{after: 0s}"),
              ElementsAre(::testing::StartsWith("t.yaml:3:54: 'after' must be greater than 0s")));
  EXPECT_THAT(
      route("{after: 300ms, max: 0}"),
      ElementsAre(::testing::StartsWith("t.yaml:3:66: 'max' must be a whole number in 1..3")));
  EXPECT_THAT(
      route("{after: 300ms, max: 4}"),
      ElementsAre(::testing::StartsWith("t.yaml:3:66: 'max' must be a whole number in 1..3")));
  EXPECT_THAT(route("{max: 1}"), ElementsAre("t.yaml:3:46: missing required key 'after' in hedge"));
  EXPECT_THAT(route("{after: 1s, delay: 2s}"),
              ElementsAre(::testing::StartsWith("t.yaml:3:58: unknown key 'delay' in hedge")));
}

}  // namespace
}  // namespace airbag::config
