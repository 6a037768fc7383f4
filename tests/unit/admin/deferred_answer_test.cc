// Admin answers given later (POST /cache/purge's shared-tier half): the answer
// comes from another thread and reaches the client, the admin keeps serving
// meanwhile, a shared tier that never answers is a 504 after the bound, a
// late answer after that is dropped, answers after the server stopped touch
// nothing, and every answer, at once or later, is logged with its status.
#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "proxy/admin/admin_server.h"
#include "spdlog/sinks/ringbuffer_sink.h"
#include "tests/integration/harness.h"

namespace airbag::admin {
namespace {

using Json = nlohmann::json;
using testing::fetch;
using testing::milliseconds;

// The shared tier's side: which purges were asked, and their `done`s, kept
// for the test to answer when it likes.
struct SharedSide {
  std::mutex mu;
  std::vector<std::string> asked;
  std::vector<std::function<void(Json)>> pending;
  bool uses_shared = true;

  size_t pendingCount() {
    std::lock_guard<std::mutex> l(mu);
    return pending.size();
  }
  // Answers the oldest pending purge from a thread of its own.
  void answerFromAnotherThread(Json shared) {
    std::function<void(Json)> done;
    {
      std::lock_guard<std::mutex> l(mu);
      ASSERT_FALSE(pending.empty());
      done = std::move(pending.front());
      pending.erase(pending.begin());
    }
    std::thread([done = std::move(done), shared = std::move(shared)] { done(shared); }).join();
  }
};

class DeferredAnswerTest : public ::testing::Test {
 protected:
  AdminHooks hooks(absl::Duration timeout = absl::Seconds(10)) {
    AdminHooks h;
    h.cache_purge = [](std::optional<std::string_view>) { return absl::OkStatus(); };
    h.shared_purge = [s = shared_](std::optional<std::string_view> route,
                                   std::function<void(Json)> done) {
      std::lock_guard<std::mutex> l(s->mu);
      s->asked.push_back(route ? std::string(*route) : "*");
      if (!s->uses_shared) return false;
      s->pending.push_back(std::move(done));
      return true;
    };
    h.shared_purge_timeout = timeout;
    return h;
  }
  std::unique_ptr<AdminServer> start(AdminHooks h) {
    AdminConfig config;
    config.bind = {"127.0.0.1", 0};
    auto logger = std::make_shared<spdlog::logger>("admin", log_);
    logger->set_level(spdlog::level::debug);
    log_->set_pattern("%v");
    auto server = AdminServer::start(config, std::move(h), registry_, logger);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? std::move(*server) : nullptr;
  }
  // Sends a purge on a thread of its own and returns its eventual answer.
  std::thread purgeAsync(int port, std::string body, testing::Response* out) {
    return std::thread([port, body = std::move(body), out] {
      *out = fetch(port, "POST", "/cache/purge", {}, body, milliseconds(20000));
    });
  }
  bool waitPending(size_t n) {
    return testing::pollUntil([&] { return shared_->pendingCount() >= n; }, milliseconds(10000));
  }
  // A purge whose shared half, once held, is answered `shared` from another
  // thread (after `while_held`, if given).
  testing::Response purgeAnsweredWith(int port, std::string body, Json shared,
                                      const std::function<void()>& while_held = {}) {
    testing::Response r;
    std::thread client = purgeAsync(port, std::move(body), &r);
    const bool held = waitPending(1);
    if (held) {
      if (while_held) while_held();
      shared_->answerFromAnotherThread(std::move(shared));
    }
    client.join();
    EXPECT_TRUE(held) << "the purge was never held";
    return r;
  }

  // Whether the admin logged `line`, among its last lines.
  bool logged(std::string_view line) {
    for (const std::string& l : log_->last_formatted())
      if (l.substr(0, l.find_last_not_of("\r\n") + 1) == line) return true;
    return false;
  }

  metrics::Registry registry_;
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> log_ =
      std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
  std::shared_ptr<SharedSide> shared_ = std::make_shared<SharedSide>();
};

TEST_F(DeferredAnswerTest, TheSharedTiersAnswerFromAnotherThreadReachesTheClient) {
  auto server = start(hooks());
  ASSERT_NE(server, nullptr);
  testing::Response r = purgeAnsweredWith(
      server->port(), R"({"route":"predict"})",
      Json{{"purged", 12}, {"complete", true}, {"nodes", 1}}, [&] {
        // Held, not blocking: the admin port answers others meanwhile.
        EXPECT_EQ(fetch(server->port(), "GET", "/healthz").status, 200);
      });
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json(), (Json{{"purged", "predict"},
                            {"shared", {{"purged", 12}, {"complete", true}, {"nodes", 1}}}}));
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  EXPECT_EQ(shared_->asked, std::vector<std::string>{"predict"});
}

TEST_F(DeferredAnswerTest, TwoHeldPurgesAreAnsweredEachWithItsOwn) {
  auto server = start(hooks());
  ASSERT_NE(server, nullptr);
  testing::Response first, second;
  std::thread a = purgeAsync(server->port(), R"({"route":"a"})", &first);
  EXPECT_TRUE(waitPending(1));
  std::thread b = purgeAsync(server->port(), "", &second);
  EXPECT_TRUE(waitPending(2));
  shared_->answerFromAnotherThread(Json{{"purged", 1}, {"complete", true}});
  shared_->answerFromAnotherThread(Json{{"purged", 2}, {"complete", true}});
  a.join();
  b.join();
  EXPECT_EQ(first.json()["purged"], "a");
  EXPECT_EQ(first.json()["shared"]["purged"], 1);
  EXPECT_EQ(second.json()["purged"], "all");
  EXPECT_EQ(second.json()["shared"]["purged"], 2);
}

TEST_F(DeferredAnswerTest, AFailedSharedPurgeIs502WithTheLocalPartStillSaid) {
  auto server = start(hooks());
  ASSERT_NE(server, nullptr);
  testing::Response r = purgeAnsweredWith(
      server->port(), R"({"route":"predict"})",
      Json{{"purged", 0}, {"complete", false}, {"error", "Redis at redis://x: connection failed"}});
  EXPECT_EQ(r.status, 502);
  EXPECT_EQ(r.json()["purged"], "predict");
  EXPECT_EQ(r.json()["shared"]["error"], "Redis at redis://x: connection failed");
}

TEST_F(DeferredAnswerTest, NoAnswerInTimeIs504AndALateOneIsDropped) {
  auto server = start(hooks(absl::Milliseconds(200)));
  ASSERT_NE(server, nullptr);
  testing::Response r;
  std::thread client = purgeAsync(server->port(), R"({"route":"predict"})", &r);
  client.join();
  EXPECT_EQ(r.status, 504);
  EXPECT_EQ(r.json()["purged"], "predict");
  EXPECT_EQ(r.json()["shared"]["complete"], false);
  EXPECT_EQ(r.json()["shared"]["error"], "no answer from the shared tier within 200ms");
  // The answer that comes after: dropped, and the server carries on.
  ASSERT_EQ(shared_->pendingCount(), 1u);
  shared_->answerFromAnotherThread(Json{{"purged", 3}, {"complete", true}});
  EXPECT_EQ(fetch(server->port(), "GET", "/healthz").status, 200);
}

TEST_F(DeferredAnswerTest, ARouteOutsideTheSharedTierIsAnsweredAtOnce) {
  shared_->uses_shared = false;
  auto server = start(hooks());
  ASSERT_NE(server, nullptr);
  testing::Response r = fetch(server->port(), "POST", "/cache/purge", {}, R"({"route":"local"})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json(), (Json{{"purged", "local"}}));
}

TEST_F(DeferredAnswerTest, AnAnswerAfterTheServerStoppedTouchesNothing) {
  auto server = start(hooks());
  ASSERT_NE(server, nullptr);
  testing::Response r;
  std::thread client = purgeAsync(server->port(), R"({"route":"predict"})", &r);
  EXPECT_TRUE(waitPending(1));
  server->stop();
  client.join();
  EXPECT_NE(r.status, 200);  // the connection went with the server
  shared_->answerFromAnotherThread(Json{{"purged", 1}, {"complete", true}});
  server.reset();
  // And after it is gone altogether.
  auto again = start(hooks());
  ASSERT_NE(again, nullptr);
  std::thread c2 = purgeAsync(again->port(), "", &r);
  EXPECT_TRUE(waitPending(1));
  again.reset();
  c2.join();
  shared_->answerFromAnotherThread(Json{{"purged", 1}, {"complete", true}});
}

TEST_F(DeferredAnswerTest, TheRouterCalledDirectlyWaitsForTheAnswer) {
  AdminRouter router(hooks(), registry_, "");
  std::thread answerer([this] {
    ASSERT_TRUE(waitPending(1));
    shared_->answerFromAnotherThread(Json{{"purged", 5}, {"complete", true}});
  });
  AdminResponse r = router.handle(AdminRequest{"POST", "/cache/purge", "", ""});
  answerer.join();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Json::parse(r.body)["shared"]["purged"], 5);
}

TEST_F(DeferredAnswerTest, EveryAnswerIsLoggedWithItsStatusBeforeItIsSent) {
  auto server = start(hooks(absl::Milliseconds(200)));
  ASSERT_NE(server, nullptr);
  // The line is written before the answer, so it is there once the answer came.
  EXPECT_EQ(fetch(server->port(), "GET", "/healthz").status, 200);
  EXPECT_TRUE(logged("admin GET /healthz -> 200"));
  EXPECT_EQ(fetch(server->port(), "DELETE", "/healthz").status, 405);
  EXPECT_TRUE(logged("admin DELETE /healthz -> 405"));
  // Answered later: through the mailbox, then by the timeout.
  testing::Response r = purgeAnsweredWith(server->port(), R"({"route":"predict"})",
                                          Json{{"purged", 0}, {"complete", false}, {"error", "x"}});
  EXPECT_EQ(r.status, 502);
  EXPECT_TRUE(logged("admin POST /cache/purge -> 502"));
  EXPECT_EQ(fetch(server->port(), "POST", "/cache/purge", {}, "").status, 504);
  EXPECT_TRUE(logged("admin POST /cache/purge -> 504"));
}

}  // namespace
}  // namespace airbag::admin
