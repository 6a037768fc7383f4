// Integration: the command line (--check-config, --version, --help), the
// admin endpoints as the real process serves them, and SIGTERM draining.
#include <signal.h>

#include <string>
#include <thread>
#include <fstream>
#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace airbag::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kConfig[] = R"(
listen: { address: ${LISTEN}, workers: 2 }
admin: { address: ${ADMIN} }
log: { level: info, access_log: stdout }
upstreams:
  model: { url: ${MODEL} }
routes:
  - name: predict
    match: { path: /predict, methods: [POST] }
    upstream: model
    timeout: { total: 10s }
)";

TEST(CommandLineTest, CheckConfigAcceptsAGoodFile) {
  auto r = AirbagProcess::checkConfig(kConfig, {{"MODEL", "http://127.0.0.1:1"}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->exit.success()) << r->err;
  EXPECT_THAT(r->out, HasSubstr("valid"));
}

TEST(CommandLineTest, CheckConfigReportsEveryErrorWithLineAndColumn) {
  constexpr char kBad[] = R"(listen: { address: ${LISTEN} }
admin: { address: ${ADMIN} }
upstreams:
  model: { url: http://127.0.0.1:1, conect_timeout: 1s }
routes:
  - name: a
    match: { path: /a }
    upstream: missing
    timeout: { total: 5 parsecs }
)";
  auto r = AirbagProcess::checkConfig(kBad);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->exit.success());
  // Three distinct errors, each located.
  EXPECT_THAT(r->err, HasSubstr(":4:37: "));
  EXPECT_THAT(r->err, HasSubstr("conect_timeout"));
  EXPECT_THAT(r->err, HasSubstr(":8:15: "));
  EXPECT_THAT(r->err, HasSubstr("missing"));
  EXPECT_THAT(r->err, HasSubstr(":9:23: "));
}

TEST(CommandLineTest, VersionAndHelp) {
  auto v = runCommand({airbagBinary(), "--version"});
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->exit.success());
  EXPECT_THAT(v->out, HasSubstr("airbag "));
  auto h = runCommand({airbagBinary(), "--help"});
  ASSERT_TRUE(h.ok());
  EXPECT_TRUE(h->exit.success());
  EXPECT_THAT(h->out, HasSubstr("--check-config"));
  auto bad = runCommand({airbagBinary(), "--frobnicate"});
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->exit.code, 2);
}

class RunningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto demo = DemoServer::start();
    ASSERT_TRUE(demo.ok()) << demo.status();
    demo_ = std::move(*demo);
    auto airbag = AirbagProcess::start(kConfig, {{"MODEL", demo_->url()}});
    ASSERT_TRUE(airbag.ok()) << airbag.status();
    airbag_ = std::move(*airbag);
  }
  std::unique_ptr<DemoServer> demo_;
  std::unique_ptr<AirbagProcess> airbag_;
};

TEST_F(RunningTest, AdminEndpointsAnswer) {
  Response r = airbag_->admin("GET", "/healthz");
  EXPECT_EQ(r.status, 200);
  r = airbag_->admin("GET", "/readyz");
  EXPECT_EQ(r.status, 200) << r.body;
  r = airbag_->admin("GET", "/routes");
  ASSERT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("\"predict\""));
  r = airbag_->admin("GET", "/routes/predict");
  EXPECT_EQ(r.status, 200);
  r = airbag_->admin("GET", "/routes/nope");
  EXPECT_EQ(r.status, 404);
  r = airbag_->admin("GET", "/config");
  ASSERT_EQ(r.status, 200);
  EXPECT_FALSE(r.json().is_discarded());
  r = airbag_->admin("GET", "/no/such/thing");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.header("content-type"), "application/json");
}

TEST_F(RunningTest, MetricsCountRequestsAndPassPromtool) {
  for (int i = 0; i < 3; ++i) ASSERT_EQ(airbag_->fetch("POST", "/predict", {}, "{}").status, 200);
  airbag_->fetch("GET", "/nope");
  auto text = airbag_->metrics();
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, HasSubstr(R"(airbag_requests_total{route="predict",source="upstream",code="200"} 3)"));
  EXPECT_THAT(*text, HasSubstr(R"(airbag_request_duration_seconds_count{route="predict",source="upstream"} 3)"));
  EXPECT_THAT(*text, HasSubstr(R"(airbag_upstream_attempts_total{route="predict",upstream="model",outcome="ok"} 3)"));
  if (!std::filesystem::exists("/usr/bin/promtool")) GTEST_SKIP() << "promtool not installed";
  auto file = airbag_->dir() / "metrics.txt";
  {
    std::ofstream f(file);
    f << *text;
  }
  auto check = runCommand({"/bin/sh", "-c", "promtool check metrics < " + file.string()});
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->exit.success()) << check->out << check->err;
}

TEST_F(RunningTest, AccessLogWritesOneJsonLinePerRequest) {
  ASSERT_EQ(airbag_->fetch("POST", "/predict", {{"x-request-id", "log-me-1"}}, "{}").status, 200);
  std::optional<std::string> line =
      airbag_->process().waitForLine("log-me-1", milliseconds(3000));
  ASSERT_TRUE(line.has_value());
  nlohmann::json j = nlohmann::json::parse(*line, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << *line;
  EXPECT_EQ(j["route"], "predict");
  EXPECT_EQ(j["status"], 200);
  EXPECT_EQ(j["source"], "upstream");
  EXPECT_EQ(j["attempts"], 1);
  EXPECT_EQ(j["method"], "POST");
  EXPECT_EQ(j["path"], "/predict");
}

TEST_F(RunningTest, SigtermFinishesTheRequestInFlightThenExitsZero) {
  ASSERT_TRUE(demo_->setBehavior({{"latency_ms", 600}}).ok());
  HttpClient c;
  ASSERT_TRUE(c.connect(airbag_->port()).ok());
  ASSERT_TRUE(c.sendRequest("POST", "/predict", {}, "{}").ok());
  ASSERT_TRUE(pollUntil([&] { return demo_->stat("in_flight").value_or(0) == 1; },
                        milliseconds(3000)));
  ASSERT_TRUE(airbag_->process().signal(SIGTERM).ok());
  // Draining: the admin port says not ready while the request finishes.
  EXPECT_TRUE(pollUntil([&] { return airbag_->admin("GET", "/readyz").status == 503; },
                        milliseconds(2000)));
  Response r = c.readResponse(milliseconds(5000));
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.header("connection"), "close");
  auto exit = airbag_->process().waitExit(milliseconds(5000));
  ASSERT_TRUE(exit.has_value());
  EXPECT_TRUE(exit->success()) << exit->toString();
  // No longer accepting.
  HttpClient late;
  EXPECT_FALSE(late.connect(airbag_->port()).ok());
}

TEST_F(RunningTest, PostDrainStopsAcceptingButKeepsServingAdmin) {
  Response r = airbag_->admin("POST", "/drain");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(pollUntil([&] { return airbag_->admin("GET", "/readyz").status == 503; },
                        milliseconds(2000)));
  EXPECT_EQ(airbag_->admin("GET", "/healthz").status, 200);
  EXPECT_TRUE(airbag_->process().running());
}

}  // namespace
}  // namespace airbag::testing
