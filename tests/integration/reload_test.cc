// Integration: hot reload of the real binary. A reload builds the new
// configuration completely before anything live changes; routes come and go,
// timeouts change for new requests, breaker state carries over by route name,
// an invalid file changes nothing, and a stream in flight keeps going.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace airbag::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kBefore[] = R"(
listen: { address: ${LISTEN}, workers: 2 }
admin: { address: ${ADMIN} }
log: { level: warn, access_log: off }
upstreams:
  model: { url: ${MODEL} }
routes:
  - name: slow
    match: { path: /echo }
    upstream: model
    timeout: { total: 3s, per_try: 3s }
  - name: old-only
    match: { path: /v1/models }
    upstream: model
  - name: guarded
    match: { path: /predict }
    upstream: model
    circuit_breaker: { consecutive_failures: 2, minimum_calls: 100, open_for: 30s, max_open_for: 60s }
  - name: chat
    match: { path_prefix: /v1/chat/ }
    upstream: model
)";

constexpr char kAfter[] = R"(
listen: { address: ${LISTEN}, workers: 2 }
admin: { address: ${ADMIN} }
log: { level: warn, access_log: off }
upstreams:
  model: { url: ${MODEL} }
routes:
  - name: slow
    match: { path: /echo }
    upstream: model
    timeout: { total: 150ms, per_try: 150ms }
  - name: new-only
    match: { path: /v2/models/iris/infer }
    upstream: model
  - name: guarded
    match: { path: /predict }
    upstream: model
    circuit_breaker: { consecutive_failures: 2, minimum_calls: 100, open_for: 30s, max_open_for: 60s }
  - name: chat
    match: { path_prefix: /v1/chat/ }
    upstream: model
)";

constexpr char kChat[] =
    R"({"stream":true,"messages":[{"role":"user","content":"one two three four five six"}]})";

class ReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto demo = DemoServer::start();
    ASSERT_TRUE(demo.ok()) << demo.status();
    demo_ = std::move(*demo);
    auto airbag = AirbagProcess::start(kBefore, vars());
    ASSERT_TRUE(airbag.ok()) << airbag.status();
    airbag_ = std::move(*airbag);
  }
  AirbagProcess::Vars vars() { return {{"MODEL", demo_->url()}}; }

  // Rewrites the file and reloads through the admin port; the answer.
  Response reloadWith(const char* yaml) {
    EXPECT_TRUE(airbag_->rewriteConfig(yaml, vars()).ok());
    return airbag_->admin("POST", "/reload");
  }

  // Every worker takes a new snapshot at its next loop pass: poll a request
  // until it shows the new configuration (or the bound passes).
  bool eventually(const std::function<bool()>& check) {
    return pollUntil(check, milliseconds(5000), milliseconds(10));
  }

  std::unique_ptr<DemoServer> demo_;
  std::unique_ptr<AirbagProcess> airbag_;
};

TEST_F(ReloadTest, ChangedTimeoutAppliesToNewRequests) {
  ASSERT_TRUE(demo_->setBehavior({{"latency_ms", 400}}).ok());
  EXPECT_EQ(airbag_->fetch("GET", "/echo").status, 200);
  ASSERT_EQ(reloadWith(kAfter).status, 200);
  EXPECT_TRUE(eventually([&] { return airbag_->fetch("GET", "/echo").status == 504; }));
  // Both workers: every request now times out.
  for (int i = 0; i < 6; ++i) EXPECT_EQ(airbag_->fetch("GET", "/echo").status, 504);
  EXPECT_EQ(airbag_->metric(R"(airbag_config_reloads_total{result="success"})"), 1);
}

TEST_F(ReloadTest, RoutesAreAddedAndRemovedOnSighup) {
  EXPECT_EQ(airbag_->fetch("GET", "/v1/models").status, 200);
  EXPECT_EQ(airbag_->fetch("POST", "/v2/models/iris/infer", {}, R"({"inputs":[]})").status, 404);
  ASSERT_TRUE(airbag_->rewriteConfig(kAfter, vars()).ok());
  ASSERT_TRUE(airbag_->reload().ok());  // SIGHUP
  EXPECT_TRUE(eventually([&] {
    return airbag_->fetch("POST", "/v2/models/iris/infer", {}, R"({"inputs":[]})").status == 200;
  }));
  EXPECT_TRUE(eventually([&] { return airbag_->fetch("GET", "/v1/models").status == 404; }));
  Response routes = airbag_->admin("GET", "/routes");
  EXPECT_THAT(routes.body, HasSubstr("new-only"));
  EXPECT_THAT(routes.body, ::testing::Not(HasSubstr("old-only")));
}

TEST_F(ReloadTest, BreakerStateCarriesOverByRouteName) {
  ASSERT_TRUE(demo_->setBehavior({{"error_rate", 1}}).ok());
  for (int i = 0; i < 2; ++i) EXPECT_EQ(airbag_->fetch("POST", "/predict", {}, "{}").status, 500);
  Response open = airbag_->fetch("POST", "/predict", {}, "{}");
  ASSERT_EQ(open.status, 503);
  ASSERT_EQ(open.json()["error"]["code"], "circuit_open");
  ASSERT_EQ(reloadWith(kAfter).status, 200);
  ASSERT_TRUE(eventually([&] { return airbag_->fetch("GET", "/v1/models").status == 404; }));
  ASSERT_TRUE(demo_->setBehavior({{"error_rate", 0}}).ok());
  Response still = airbag_->fetch("POST", "/predict", {}, "{}");
  EXPECT_EQ(still.status, 503);
  EXPECT_EQ(still.json()["error"]["code"], "circuit_open") << "the reload did not reset the breaker";
  EXPECT_EQ(airbag_->metric(R"(airbag_circuit_state{route="guarded"})"), 1);
}

TEST_F(ReloadTest, InvalidFileChangesNothing) {
  Response r = reloadWith("routes: [ { name: broken } ]\nbogus_key: 1\n");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("airbag.yaml:"));
  EXPECT_EQ(airbag_->metric(R"(airbag_config_reloads_total{result="failure"})"), 1);
  EXPECT_EQ(airbag_->fetch("GET", "/v1/models").status, 200) << "the old routes still serve";
  Response config = airbag_->admin("GET", "/config");
  EXPECT_THAT(config.body, HasSubstr("old-only"));
}

TEST_F(ReloadTest, StreamInFlightKeepsGoingThroughAReload) {
  ASSERT_TRUE(demo_->setBehavior({{"stream_events", 6}, {"stream_interval_ms", 100}}).ok());
  HttpClient c;
  ASSERT_TRUE(c.connect(airbag_->port()).ok());
  ASSERT_TRUE(c.sendRequest("POST", "/v1/chat/completions", {}, kChat).ok());
  Response head = c.readHead(milliseconds(3000));
  ASSERT_EQ(head.status, 200);
  std::string first = c.readUntil("\n\n", milliseconds(3000));
  ASSERT_THAT(first, HasSubstr("data: {"));
  ASSERT_EQ(reloadWith(kAfter).status, 200);
  Response rest = head;
  c.readRest(rest, milliseconds(5000));
  EXPECT_TRUE(rest.complete) << rest.error;
  EXPECT_THAT(first + rest.body, HasSubstr("data: [DONE]"));
}

}  // namespace
}  // namespace airbag::testing
