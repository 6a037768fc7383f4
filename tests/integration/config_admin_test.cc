// Integration: what the config checker and the admin port promise, on the
// real binary: bad bytes in the file, admin error shapes, and reloads.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace airbag::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kConfig[] = R"(listen: { address: ${LISTEN}, workers: 1 }
admin: { address: ${ADMIN} }
log: { level: info, access_log: off }
upstreams:
  model: { url: ${MODEL} }
routes:
  - name: predict
    match: { path: /predict }
    upstream: model
)";

TEST(CheckConfigTest, InvalidUtf8InRespondJsonIsAnErrorNotAnAbort) {
  const std::string bad = std::string(kConfig) +
                          "    fallback:\n"
                          "      - respond: {json: {msg: \"\xff\xfe\"}}\n";
  auto r = AirbagProcess::checkConfig(bad, {{"MODEL", "http://127.0.0.1:1"}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->exit.exited()) << r->exit.toString();
  EXPECT_EQ(r->exit.code, 1) << r->err;
  EXPECT_THAT(r->err, HasSubstr("airbag.yaml:11:32: invalid UTF-8 (byte 0xFF)"));
}

TEST(CheckConfigTest, RouteNamedWithInvalidUtf8IsRefused) {
  std::string bad = kConfig;
  bad.replace(bad.find("predict\n"), 7, "pre\xc0\xaf");
  auto r = AirbagProcess::checkConfig(bad, {{"MODEL", "http://127.0.0.1:1"}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit.code, 1) << r->err;
  EXPECT_THAT(r->err, HasSubstr("airbag.yaml:7:14: invalid UTF-8 (byte 0xC0)"));
  EXPECT_THAT(r->out, Not(HasSubstr("valid")));
}

class RunningAirbagTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto demo = DemoServer::start();
    ASSERT_TRUE(demo.ok()) << demo.status();
    demo_ = std::move(*demo);
    auto proc = AirbagProcess::start(kConfig, {{"MODEL", demo_->url()}});
    ASSERT_TRUE(proc.ok()) << proc.status();
    airbag_ = std::move(*proc);
  }

  std::unique_ptr<DemoServer> demo_;
  std::unique_ptr<AirbagProcess> airbag_;
};

TEST_F(RunningAirbagTest, AdminWrongMethodIs405JsonWithAllow) {
  for (const char* method : {"PATCH", "DELETE"}) {
    SCOPED_TRACE(method);
    Response r = airbag_->admin(method, "/routes");
    EXPECT_EQ(r.status, 405);
    EXPECT_EQ(r.header("content-type"), "application/json");
    EXPECT_EQ(r.header("allow"), "GET, HEAD");
    EXPECT_EQ(r.json()["error"]["code"], "method_not_allowed");
  }
  Response r = airbag_->admin("PATCH", "/no/such/thing");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.json()["error"]["code"], "not_found");
}

TEST_F(RunningAirbagTest, ReloadOfAFileWithInvalidUtf8IsRefusedWithTheError) {
  const std::string bad = std::string(kConfig) +
                          "    fallback:\n"
                          "      - respond: {body: \"\xed\xa0\x80\"}\n";
  ASSERT_TRUE(airbag_->rewriteConfig(bad, {{"MODEL", demo_->url()}}).ok());
  Response r = airbag_->admin("POST", "/reload");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.json()["error"]["code"], "reload_failed");
  EXPECT_THAT(r.json()["error"]["message"].get<std::string>(),
              HasSubstr("airbag.yaml:11:26: invalid UTF-8 (byte 0xED)"));
  // The running configuration stays and still answers.
  Response routes = airbag_->admin("GET", "/routes");
  EXPECT_EQ(routes.status, 200);
  EXPECT_EQ(routes.json()[0]["name"], "predict");
}

TEST_F(RunningAirbagTest, ConfigShownByTheAdminPortPassesTheChecker) {
  Response config = airbag_->admin("GET", "/config");
  ASSERT_EQ(config.status, 200);
  auto shown = TempDir::create("airbag-shown");
  ASSERT_TRUE(shown.ok()) << shown.status();
  auto path = (*shown)->write("shown.yaml", config.body);
  ASSERT_TRUE(path.ok()) << path.status();
  auto r = runCommand({airbagBinary(), "--check-config", path->string()});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->exit.success()) << r->err << "\n" << config.body;
}

TEST_F(RunningAirbagTest, FaultWithUnknownKeyIs400AndChangesNothing) {
  Response r =
      airbag_->admin("PUT", "/routes/predict/fault", R"({"abort":{"percent":5,"code":502}})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.json()["error"]["code"], "bad_request");
  EXPECT_THAT(r.json()["error"]["message"].get<std::string>(), HasSubstr("\"code\""));
  Response route = airbag_->admin("GET", "/routes/predict");
  ASSERT_EQ(route.status, 200);
  EXPECT_EQ(route.json()["state"]["fault"]["source"], "config");

  r = airbag_->admin("PUT", "/routes/predict/fault", R"({"delay":{"duration":"soon"}})");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.json()["error"]["message"].get<std::string>(), HasSubstr("\"200ms\""));
}

TEST_F(RunningAirbagTest, ReloadKeepsRestartOnlyKeysAndSaysSo) {
  const std::string moved = std::to_string(freePort());
  std::string changed = kConfig;
  changed.replace(changed.find("level: info"), 11, "level: debug");
  ASSERT_TRUE(
      airbag_->rewriteConfig(changed, {{"MODEL", demo_->url()}, {"LISTEN", "127.0.0.1:" + moved}})
          .ok());
  Response r = airbag_->admin("POST", "/reload");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["reloaded"], true);
  ASSERT_EQ(r.json()["warnings"].size(), 1u) << r.body;
  EXPECT_THAT(r.json()["warnings"][0].get<std::string>(),
              HasSubstr("listen.address changed to 127.0.0.1:" + moved + " in the file"));
  // What /config shows is what is in force, and the old port still serves.
  const std::string running = "127.0.0.1:" + std::to_string(airbag_->port());
  EXPECT_EQ(airbag_->admin("GET", "/config").json()["listen"]["address"], running);
  EXPECT_EQ(airbag_->admin("GET", "/config").json()["log"]["level"], "debug");
  EXPECT_EQ(airbag_->fetch("GET", "/predict").header("x-airbag-source"), "upstream");
  EXPECT_TRUE(airbag_->process().waitForLine("listen.address changed to", milliseconds(5000)));
  EXPECT_TRUE(
      airbag_->process().waitForLine("log.level is now debug (was info)", milliseconds(5000)));
}

}  // namespace
}  // namespace airbag::testing
