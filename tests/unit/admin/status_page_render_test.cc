// Tests for the status page as the admin router serves it: the embedded
// asset, the server-side tables, and the status and history endpoints.
#include <regex>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxy/admin/admin_server.h"
#include "proxy/admin/status_page.h"

namespace airbag::admin {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

size_t count(std::string_view hay, std::string_view needle) {
  size_t n = 0;
  for (size_t at = hay.find(needle); at != std::string_view::npos; at = hay.find(needle, at + 1))
    ++n;
  return n;
}

// Anything a browser would fetch from somewhere else.
bool fetchesElsewhere(const std::string& html) {
  static const std::regex kExternal(
      R"((src|href|action)\s*=\s*["']?\s*(https?:)?//|url\(\s*["']?\s*(https?:)?//|@import|<link\b|<script[^>]*\bsrc\b)",
      std::regex::icase);
  return std::regex_search(html, kExternal);
}

TEST(StatusPageAssetTest, IsSelfContained) {
  std::string page(kStatusPageHtml);
  EXPECT_THAT(page, HasSubstr("<!doctype html>"));
  EXPECT_EQ(count(page, kStateTablesMarker), 1u);
  EXPECT_FALSE(fetchesElsewhere(page));
  EXPECT_THAT(page, Not(HasSubstr("http://")));
  EXPECT_THAT(page, Not(HasSubstr("https://")));
}

TEST(StatusPageTest, ExternalFetchCheckCatchesEachKind) {
  // The check above must be able to fail.
  EXPECT_TRUE(fetchesElsewhere(R"(<img src="https://cdn.example/x.png">)"));
  EXPECT_TRUE(fetchesElsewhere(R"(<a href='//cdn.example/'>)"));
  EXPECT_TRUE(fetchesElsewhere(R"(<script src="app.js"></script>)"));
  EXPECT_TRUE(fetchesElsewhere(R"(body { background: url(http://x/y.png) })"));
  EXPECT_TRUE(fetchesElsewhere(R"(<link rel="stylesheet" href="s.css">)"));
  EXPECT_FALSE(fetchesElsewhere(R"(<td>http://127.0.0.1:8000</td>)"));
}

TEST(StatusPageTest, TablesEscapeEveryValue) {
  Json status = {{"version", "0.1.0"},
                 {"workers", 2},
                 {"draining", false},
                 {"config_file", "/etc/a<b>.yaml"},
                 {"last_reload",
                  {{"at", "2026-01-01T00:00:00Z"},
                   {"ok", false},
                   {"error", "x.yaml:3:1: unknown key '<script>'"}}}};
  Json routes = Json::array(
      {{{"name", "<script>alert(1)</script>"},
        {"upstream", "model"},
        {"state",
         {{"circuit", {{"state", "open"}, {"override", "auto"}, {"seconds_until_half_open", 2.5}}},
          {"bulkhead", {{"in_flight", 1}, {"queued", 0}, {"rejected", 4}}},
          {"fault", {{"source", "config"}}}}}}});
  Json upstreams = {{"model",
                     {{"url", "http://127.0.0.1:8000"},
                      {"health", {{"usable", true}, {"active", nullptr}, {"passive", nullptr}}}}}};
  std::string html = renderStateTables(status, routes, upstreams);
  EXPECT_THAT(html, Not(HasSubstr("<script>")));
  EXPECT_THAT(html, HasSubstr("&lt;script&gt;alert(1)&lt;/script&gt;"));
  EXPECT_THAT(html, HasSubstr("/etc/a&lt;b&gt;.yaml"));
  EXPECT_THAT(html, HasSubstr("failed: x.yaml:3:1: unknown key &#39;&lt;script&gt;&#39;"));
  EXPECT_THAT(html, HasSubstr("<td>open</td><td>2.5</td><td>1 / 0 / 4</td>"));
  EXPECT_THAT(html, HasSubstr("<td>model</td><td>http://127.0.0.1:8000</td><td>yes</td>"));
  EXPECT_FALSE(fetchesElsewhere(html));

  std::string page = renderStatusPage(status, routes, upstreams);
  EXPECT_EQ(count(page, kStateTablesMarker), 0u);
  size_t noscript = page.find("<noscript>");
  size_t table = page.find("id=\"plain-routes\"");
  ASSERT_NE(noscript, std::string::npos);
  ASSERT_NE(table, std::string::npos);
  EXPECT_LT(noscript, table);
  EXPECT_LT(table, page.find("</noscript>"));
}

std::shared_ptr<const Config> twoRoutes() {
  auto cfg = std::make_shared<Config>();
  for (const char* name : {"predict", "chat"}) {
    RouteConfig r;
    r.name = name;
    r.upstream = "model";
    cfg->routes.push_back(r);
  }
  return cfg;
}

class RouterTest : public ::testing::Test {
 protected:
  AdminResponse get(AdminRouter& router, std::string_view path, std::string_view method = "GET") {
    return router.handle(AdminRequest{method, path, "", ""});
  }
  // Hooks that know the configuration only.
  AdminHooks configOnly() {
    AdminHooks hooks;
    hooks.config = [this] { return cfg_; };
    return hooks;
  }
  metrics::Registry registry_;
  std::shared_ptr<const Config> cfg_ = twoRoutes();
};

TEST_F(RouterTest, ServesThePageAsHtml) {
  AdminRouter router(configOnly(), registry_, "");
  AdminResponse r = get(router, "/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
  EXPECT_THAT(r.body, HasSubstr("<td>predict</td>"));
  EXPECT_THAT(r.body, HasSubstr("<td>chat</td>"));
  EXPECT_FALSE(fetchesElsewhere(r.body));
  bool csp = false;
  for (const auto& [k, v] : r.headers)
    csp = csp || (k == "Content-Security-Policy" && v.find("default-src 'none'") == 0);
  EXPECT_TRUE(csp);
  EXPECT_EQ(get(router, "/", "POST").status, 405);
  EXPECT_EQ(get(router, "/status", "DELETE").status, 405);
}

TEST_F(RouterTest, StatusAddsWhatTheRouterKnows) {
  AdminHooks hooks = configOnly();
  hooks.process_status = [] { return Json{{"workers", 3}, {"config_file", "a.yaml"}}; };
  hooks.draining = [] { return true; };
  AdminRouter router(hooks, registry_, "sekrit");
  AdminResponse r = get(router, "/status");
  ASSERT_EQ(r.status, 200);
  Json j = Json::parse(r.body);
  EXPECT_EQ(j["workers"], 3);
  EXPECT_EQ(j["config_file"], "a.yaml");
  EXPECT_EQ(j["draining"], true);
  EXPECT_EQ(j["token_required"], true);
  EXPECT_FALSE(j["version"].get<std::string>().empty());
  EXPECT_GT(j["rss_bytes"].get<uint64_t>(), 0u);
  EXPECT_THAT(r.body, Not(HasSubstr("sekrit")));
}

TEST_F(RouterTest, HistoryOfEachRouteFromTheMetrics) {
  AdminRouter router(configOnly(), registry_, "");
  metrics::WorkerMetrics* shard = registry_.addShard();
  router.sampleHistory(kT0);
  for (int i = 0; i < 5; ++i)
    shard->recordRequest("predict", "upstream", 200, absl::Milliseconds(2));
  router.sampleHistory(kT0 + absl::Seconds(1));
  for (int i = 0; i < 3; ++i)
    shard->recordRequest("predict", "fallback:small", 200, absl::Milliseconds(2));
  router.sampleHistory(kT0 + absl::Seconds(2));

  AdminResponse r = get(router, "/routes/predict/history");
  ASSERT_EQ(r.status, 200);
  Json j = Json::parse(r.body);
  EXPECT_EQ(j["requests"], Json::array({5, 3}));
  EXPECT_EQ(j["levels"]["upstream"], Json::array({5, 0}));
  EXPECT_EQ(j["levels"]["fallback"], Json::array({0, 3}));
  EXPECT_EQ(j["latency_ms"]["p50"][0].get<double>() > 1.0, true);
  Json chat = Json::parse(get(router, "/routes/chat/history").body);
  EXPECT_EQ(chat["requests"], Json::array({0, 0}));

  AdminResponse missing = get(router, "/routes/nope/history");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(Json::parse(missing.body)["error"]["code"], "not_found");
  EXPECT_EQ(get(router, "/routes/predict/history", "POST").status, 405);
}

TEST_F(RouterTest, UpstreamsCarryTheConnectionsOpened) {
  AdminHooks hooks = configOnly();
  hooks.upstreams = [] {
    return Json{{"model", {{"url", "http://127.0.0.1:1"}}},
                {"small", {{"url", "http://127.0.0.1:2"}}}};
  };
  AdminRouter router(hooks, registry_, "");
  metrics::WorkerMetrics* shard = registry_.addShard();
  shard->upstreamConnectionOpened("model");
  shard->upstreamConnectionOpened("model");
  shard->upstreamConnectionOpened("gone");  // an upstream no longer configured
  Json j = Json::parse(get(router, "/upstreams").body);
  EXPECT_EQ(j["model"]["connections_opened"], 2);
  EXPECT_EQ(j["small"]["connections_opened"], 0);
  EXPECT_FALSE(j.contains("gone"));
  EXPECT_THAT(get(router, "/").body, HasSubstr("<td>http://127.0.0.1:1</td>"));
}

TEST_F(RouterTest, HistoryOfARouteNotSampledYetIsEmpty) {
  AdminRouter router(configOnly(), registry_, "");
  AdminResponse r = get(router, "/routes/chat/history");
  ASSERT_EQ(r.status, 200);
  Json j = Json::parse(r.body);
  EXPECT_EQ(j["route"], "chat");
  EXPECT_EQ(j["t"], Json::array());
}

}  // namespace
}  // namespace airbag::admin
