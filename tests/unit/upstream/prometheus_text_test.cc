// The Prometheus text parser and the saturation verdict drawn from a scrape:
// real exposition from vLLM, TGI and Triton, and the malformed lines a
// scrape must refuse.
#include "proxy/upstream/prometheus_text.h"

#include <cmath>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "proxy/upstream/upstream_saturation.h"

namespace airbag::upstream {
namespace {

struct Seen {
  std::string name;
  std::string labels;
  double value;
};

std::vector<Seen> parseAll(std::string_view text, absl::Status* status = nullptr) {
  std::vector<Seen> out;
  absl::Status s = forEachPromSample(text, [&](const PromSample& p) {
    out.push_back({std::string(p.name), std::string(p.labels), p.value});
  });
  if (status) *status = s;
  return out;
}

TEST(PrometheusTextTest, ReadsVllmExposition) {
  constexpr std::string_view kText =
      "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
      "# TYPE vllm:num_requests_waiting gauge\n"
      "vllm:num_requests_waiting{model_name=\"meta-llama/Llama-3.1-8B\"} 12.0\n"
      "vllm:kv_cache_usage_perc{model_name=\"meta-llama/Llama-3.1-8B\"} 0.93\n"
      "vllm:time_to_first_token_seconds_bucket{le=\"+Inf\",model_name=\"m\"} 42\n";
  absl::Status s;
  std::vector<Seen> got = parseAll(kText, &s);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].name, "vllm:num_requests_waiting");
  EXPECT_EQ(got[0].labels, "model_name=\"meta-llama/Llama-3.1-8B\"");
  EXPECT_EQ(got[0].value, 12.0);
  EXPECT_EQ(got[1].value, 0.93);
  EXPECT_EQ(got[2].name, "vllm:time_to_first_token_seconds_bucket");
  EXPECT_EQ(got[2].value, 42);
}

TEST(PrometheusTextTest, ReadsSpecialValuesTimestampsEscapesAndExemplars) {
  constexpr std::string_view kText =
      "a +Inf\n"
      "b -Inf 1700000000000\n"
      "c NaN\n"
      "d{path=\"/x\\\"y\\\\z\\n\",} 1e+06\r\n"
      "  e 3 # {trace_id=\"abc\"} 1.0\n"
      "\n"
      "f{} -0.5\n"
      "tgi_queue_size 7\n";
  absl::Status s;
  std::vector<Seen> got = parseAll(kText, &s);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_EQ(got.size(), 7u);
  EXPECT_TRUE(std::isinf(got[0].value) && got[0].value > 0);
  EXPECT_TRUE(std::isinf(got[1].value) && got[1].value < 0);
  EXPECT_TRUE(std::isnan(got[2].value));
  EXPECT_EQ(got[3].labels, "path=\"/x\\\"y\\\\z\\n\",");
  EXPECT_EQ(got[3].value, 1e6);
  EXPECT_EQ(got[4].name, "e");
  EXPECT_EQ(got[4].value, 3);
  EXPECT_EQ(got[5].value, -0.5);
  EXPECT_EQ(got[6].name, "tgi_queue_size");
}

TEST(PrometheusTextTest, RefusesMalformedLinesWithTheirNumber) {
  const std::pair<std::string_view, std::string_view> kBad[] = {
      {"ok 1\n9bad 1\n", "line 2: expected a metric name"},
      {"m\n", "line 1: expected a space before the value"},
      {"m{a=\"1\" 2\n", "line 1: expected ',' or '}' after a label value"},
      {"m{a=1} 2\n", "line 1: expected a quoted label value"},
      {"m{a=\"1} 2\n", "line 1: unterminated label value"},
      {"m{a=\"\\x\"} 2\n", "line 1: bad escape in a label value"},
      {"m{=\"1\"} 2\n", "line 1: expected a label name"},
      {"m{a} 2\n", "line 1: expected '=' after a label name"},
      {"m twelve\n", "line 1: the value is not a number"},
      {"m 0x10\n", "line 1: the value is not a number"},
      {"m 1 soon\n", "line 1: the timestamp is not a number"},
      {"m 1 2 3\n", "line 1: unexpected text after the timestamp"},
      {"m{a=\"1\"", "line 1: unterminated label set"},
  };
  for (const auto& [text, why] : kBad) {
    absl::Status s;
    parseAll(text, &s);
    EXPECT_EQ(std::string(s.message()), why) << text;
  }
}

SaturationConfig vllmConfig() {
  SaturationConfig c;
  c.when_any = {{"vllm:num_requests_waiting", 8, {}}, {"vllm:kv_cache_usage_perc", 0.9, {}}};
  return c;
}

TEST(SaturationVerdictTest, AnyReadingOverItsThresholdIsSaturation) {
  std::vector<SaturationReading> r;
  std::string error;
  EXPECT_EQ(
      judgeSaturation(vllmConfig(), "vllm:num_requests_waiting 3\nvllm:kv_cache_usage_perc 0.5\n",
                      r, error),
      SaturationState::kOk);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(*r[0].value, 3);
  EXPECT_EQ(
      judgeSaturation(vllmConfig(), "vllm:num_requests_waiting 3\nvllm:kv_cache_usage_perc 0.95\n",
                      r, error),
      SaturationState::kSaturated);
  // Equal to the threshold is not over it.
  EXPECT_EQ(judgeSaturation(vllmConfig(), "vllm:num_requests_waiting 8\n", r, error),
            SaturationState::kOk);
}

TEST(SaturationVerdictTest, TheHighestSeriesCountsAndNaNIsIgnored) {
  std::vector<SaturationReading> r;
  std::string error;
  EXPECT_EQ(judgeSaturation(vllmConfig(),
                            "vllm:num_requests_waiting{model_name=\"a\"} 1\n"
                            "vllm:num_requests_waiting{model_name=\"b\"} 9\n"
                            "vllm:kv_cache_usage_perc NaN\n",
                            r, error),
            SaturationState::kSaturated);
  EXPECT_EQ(*r[0].value, 9);
  EXPECT_FALSE(r[1].value.has_value());
}

TEST(SaturationVerdictTest, AScrapeThatSaysNothingIsUnknownNeverSaturated) {
  std::vector<SaturationReading> r;
  std::string error;
  EXPECT_EQ(judgeSaturation(vllmConfig(), "other_metric 100\n", r, error),
            SaturationState::kUnknown);
  EXPECT_EQ(error, "none of the when_any metrics is in the scrape");
  // A body that does not parse tells nothing, even if an earlier line was over.
  EXPECT_EQ(judgeSaturation(vllmConfig(), "vllm:num_requests_waiting 100\n<html>\n", r, error),
            SaturationState::kUnknown);
  EXPECT_EQ(error, "the metrics do not parse: line 2: expected a metric name");
  EXPECT_FALSE(r[0].value.has_value());
}

TEST(UpstreamSaturationTest, AFailedScrapeMakesASaturatedUpstreamUnknown) {
  UpstreamSaturation s("model");
  const absl::Time t0 = absl::FromUnixSeconds(1'700'000'000);
  EXPECT_EQ(s.state(), SaturationState::kUnknown);
  EXPECT_TRUE(s.recordScrape(vllmConfig(), "vllm:num_requests_waiting 20\n", t0));
  EXPECT_TRUE(s.saturated());
  EXPECT_FALSE(s.recordScrape(vllmConfig(), "vllm:num_requests_waiting 21\n", t0));
  EXPECT_TRUE(s.recordFailure("cannot connect: refused", t0 + absl::Seconds(1)));
  EXPECT_FALSE(s.saturated());
  UpstreamSaturation::View v = s.view();
  EXPECT_EQ(v.state, SaturationState::kUnknown);
  EXPECT_EQ(v.error, "cannot connect: refused");
  EXPECT_EQ(v.scrapes_ok, 2u);
  EXPECT_EQ(v.scrapes_failed, 1u);
  EXPECT_EQ(v.last_scrape, t0 + absl::Seconds(1));
  EXPECT_TRUE(s.recordScrape(vllmConfig(), "vllm:num_requests_waiting 0\n", t0));
  EXPECT_EQ(s.state(), SaturationState::kOk);
  s.reset();
  EXPECT_EQ(s.state(), SaturationState::kUnknown);
  EXPECT_EQ(s.view().scrapes_ok, 0u);
}

}  // namespace
}  // namespace airbag::upstream
