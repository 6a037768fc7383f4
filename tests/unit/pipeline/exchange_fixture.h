// The fixture of the Exchange tests: a worker context with a simulated
// clock, an inbox, two scripted upstreams ("model" and "small", the first two
// of the configuration loaded) and clients that send requests by hand.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "proxy/config/config_loader.h"
#include "proxy/pipeline/exchange.h"
#include "tests/unit/pipeline/pipeline_fakes.h"

namespace airbag::pipeline {

using testing::RecordingDownstream;
using testing::ScriptedUpstream;
using testing::SimDispatcher;

class ExchangeFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    ctx_.dispatcher = &dispatcher_;
    ctx_.inbox = &inbox_;
  }

  void load(std::string_view yaml) {
    auto config = config::loadString(yaml, "test.yaml");
    ASSERT_TRUE(config.ok()) << config.status();
    auto snapshot = Snapshot::build(*config, ctx_.snapshot.get());
    ASSERT_TRUE(snapshot.ok()) << snapshot.status();
    (*snapshot)->commit();
    ctx_.snapshot = *snapshot;
    ctx_.upstreams = {&model_, &small_};
  }

  // A client connection with its exchange.
  struct Client {
    explicit Client(WorkerContext& ctx) : exchange(ctx, down) {}
    RecordingDownstream down;
    http::HeaderList headers;
    std::string method, path, body;
    Exchange exchange;
  };
  std::unique_ptr<Client> client() { return std::make_unique<Client>(ctx_); }

  void send(Client& c, std::string method, std::string path, std::string body = "") {
    c.down.reset();
    c.method = std::move(method);
    c.path = std::move(path);
    c.body = std::move(body);
    c.headers.clear();
    c.headers.add("Host", "client.test");
    RequestView r;
    r.method = c.method;
    r.url = c.path;
    r.path = c.path;
    r.headers = &c.headers;
    r.body = c.body;
    c.exchange.start(r);
  }

  // Delivers what other threads posted to this worker's inbox.
  int deliverInbox() {
    std::vector<InboxMessage> messages;
    inbox_.take(&messages);
    for (const InboxMessage& m : messages) ctx_.deliverWake(m);
    return static_cast<int>(messages.size());
  }

  // The first upstream's saturation reading: a scrape of `waiting n` (its
  // `when_any` must name the metric `waiting`).
  void setWaiting(int n) {
    upstream::UpstreamSaturation& s = *ctx_.snapshot->upstreams[0].saturation;
    s.recordScrape(*ctx_.snapshot->config->upstreams[0].saturation,
                   "waiting " + std::to_string(n) + "\n", dispatcher_.now());
  }

  RouteRuntime& runtime(std::string_view route) { return *ctx_.snapshot->runtime(route); }

  SimDispatcher dispatcher_;
  Inbox inbox_;
  WorkerContext ctx_;
  ScriptedUpstream model_, small_;
};

}  // namespace airbag::pipeline
