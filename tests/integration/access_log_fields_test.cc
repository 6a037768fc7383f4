// Integration: the access log says what docs/operations.md says it says: the
// whole request target in `path`, the breaker spelled as everywhere else, and
// the text format carrying the JSON line's fields in the JSON line's order.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace airbag::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kConfig[] = R"(
listen: { address: ${LISTEN}, workers: 1 }
admin: { address: ${ADMIN} }
log: { level: info, access_log: stdout, format: ${FORMAT} }
upstreams:
  model: { url: ${MODEL} }
routes:
  - name: predict
    match: { path: /predict, methods: [POST] }
    upstream: model
    circuit_breaker: { half_open_calls: 3, open_for: 1s }
)";

class AccessLogFieldsTest : public ::testing::Test {
 protected:
  void start(const std::string& format) {
    auto demo = DemoServer::start();
    ASSERT_TRUE(demo.ok()) << demo.status();
    demo_ = std::move(*demo);
    auto airbag = AirbagProcess::start(kConfig, {{"MODEL", demo_->url()}, {"FORMAT", format}});
    ASSERT_TRUE(airbag.ok()) << airbag.status();
    airbag_ = std::move(*airbag);
  }

  nlohmann::json jsonLine(const std::string& request_id) {
    std::optional<std::string> line = airbag_->process().waitForLine(request_id, milliseconds(3000));
    if (!line) return nlohmann::json();
    return nlohmann::json::parse(*line, nullptr, false);
  }

  std::unique_ptr<DemoServer> demo_;
  std::unique_ptr<AirbagProcess> airbag_;
};

TEST_F(AccessLogFieldsTest, PathKeepsTheQueryStringEscaped) {
  start("json");
  const std::string target = "/predict?explain=1&q=%22a%20b%22&r=\"x\"";
  Response r = airbag_->fetch("POST", target, {{"x-request-id", "log-query-1"}}, "{}");
  ASSERT_EQ(r.status, 200);
  nlohmann::json j = jsonLine("log-query-1");
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["route"], "predict");  // the route matched on the path alone
  EXPECT_EQ(j["path"], target);
}

TEST_F(AccessLogFieldsTest, BreakerHalfOpenIsSpelledAsInTheAdminApiAndMetrics) {
  start("json");
  ASSERT_EQ(airbag_->admin("POST", "/routes/predict/circuit", R"({"state":"open"})").status, 200);
  // From a forced open, `auto` resumes with a half-open round of probes (3 here): one successful
  // probe leaves the breaker half-open.
  ASSERT_EQ(airbag_->admin("POST", "/routes/predict/circuit", R"({"state":"auto"})").status, 200);
  Response r = airbag_->fetch("POST", "/predict", {{"x-request-id", "log-half-open-1"}}, "{}");
  ASSERT_EQ(r.status, 200) << r.body;
  nlohmann::json j = jsonLine("log-half-open-1");
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["breaker"], "half_open");
  Response state = airbag_->admin("GET", "/routes/predict");
  ASSERT_EQ(state.status, 200);
  EXPECT_EQ(state.json()["state"]["circuit"]["state"], "half_open");
  EXPECT_TRUE(
      airbag_->metric(R"(airbag_circuit_transitions_total{route="predict",to="half_open"})")
          .has_value());
}

TEST_F(AccessLogFieldsTest, TextFormatHasTheJsonFieldsInOrder) {
  start("text");
  Response r = airbag_->fetch("POST", "/predict?a=1", {{"x-request-id", "log-text-2"}}, "{}");
  ASSERT_EQ(r.status, 200);
  std::optional<std::vector<std::string>> m = airbag_->process().waitForRegex(
      R"(^(\S+Z) "log-text-2" "predict" "POST" "/predict\?a=1" 200 "upstream" 1 - "closed" )"
      R"((\d+\.\d{3}) (\d+\.\d{3}) (\d+)$)",
      milliseconds(3000));
  ASSERT_TRUE(m.has_value()) << airbag_->process().stdoutText();
  EXPECT_GT(std::stoll((*m)[4]), 0);  // bytes_sent
}

}  // namespace
}  // namespace airbag::testing
