// Tests for the admin API: a real server on 127.0.0.1 port 0 with fake hooks,
// driven by a small blocking HTTP client.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proxy/admin/admin_server.h"
#include "spdlog/sinks/null_sink.h"

namespace airbag::admin {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-case
  std::string body;
  Json json() const { return Json::parse(body, nullptr, false); }
};

// Sends one request with Connection: close and reads to EOF. Every socket
// call is bounded by a 5 s timeout, so a hung server fails the test.
HttpResponse request(uint16_t port, const std::string& method, const std::string& path,
                     const std::string& body = "", const std::string& extra_headers = "") {
  HttpResponse out;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return out;
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return out;
  }
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
                    extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
                    body;
  size_t sent = 0;
  while (sent < req.size()) {
    ssize_t n = send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buf[4096];
  for (int i = 0; i < 10000; ++i) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  close(fd);

  size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) return out;
  std::string head = raw.substr(0, head_end);
  out.body = raw.substr(head_end + 4);
  size_t line_end = head.find("\r\n");
  std::string status_line = head.substr(0, line_end);
  out.status = std::stoi(status_line.substr(status_line.find(' ') + 1, 3));
  size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    if (end == std::string::npos) end = head.size();
    std::string line = head.substr(pos, end - pos);
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      size_t v = line.find_first_not_of(' ', colon + 1);
      out.headers[name] = v == std::string::npos ? "" : line.substr(v);
    }
    pos = end + 2;
  }
  return out;
}

std::shared_ptr<const Config> testConfig() {
  auto cfg = std::make_shared<Config>();
  UpstreamConfig model;
  model.name = "model";
  model.url = "http://127.0.0.1:8000";
  cfg->upstreams.push_back(model);
  RouteConfig predict;
  predict.name = "predict";
  predict.match.path_prefix = "/v1/";
  predict.upstream = "model";
  predict.priority = Priority::kCritical;
  cfg->routes.push_back(predict);
  RouteConfig spaced;
  spaced.name = "my route";
  spaced.match.path = "/x";
  spaced.upstream = "model";
  cfg->routes.push_back(spaced);
  return cfg;
}

// Shared with the admin thread through atomics and a mutex.
struct FakeState {
  std::atomic<bool> have_config{true};
  std::atomic<bool> listeners_up{true};
  std::atomic<bool> draining{false};
  std::atomic<int> drains{0};
  std::atomic<int> reloads{0};
  std::mutex mu;
  absl::Status reload_result;
  std::vector<std::string> reload_warnings;
  std::string last_circuit;
  Json last_fault;
  std::string last_purge;
};

AdminHooks fakeHooks(FakeState* s, std::shared_ptr<const Config> cfg) {
  AdminHooks h;
  h.config = [s, cfg]() -> std::shared_ptr<const Config> { return s->have_config ? cfg : nullptr; };
  h.config_json = [](const Config&) { return std::string("{\"effective\":true}"); };
  h.route_state = [](const Config&, std::string_view route) {
    return Json{{"circuit", "closed"}, {"of", route}};
  };
  h.listeners_up = [s] { return s->listeners_up.load(); };
  h.draining = [s] { return s->draining.load(); };
  h.drain = [s] {
    s->drains++;
    s->draining = true;
  };
  h.reload = [s]() -> absl::StatusOr<std::vector<std::string>> {
    s->reloads++;
    std::lock_guard<std::mutex> l(s->mu);
    if (!s->reload_result.ok()) return s->reload_result;
    return s->reload_warnings;
  };
  h.circuit = [s](std::string_view route, std::string_view state) {
    std::lock_guard<std::mutex> l(s->mu);
    s->last_circuit = std::string(route) + "=" + std::string(state);
    return absl::OkStatus();
  };
  h.set_fault = [s](std::string_view, const Json& fault) {
    std::lock_guard<std::mutex> l(s->mu);
    s->last_fault = fault;
    return absl::OkStatus();
  };
  h.clear_fault = [s](std::string_view) {
    std::lock_guard<std::mutex> l(s->mu);
    s->last_fault = "cleared";
    return absl::OkStatus();
  };
  h.cache_purge = [s](std::optional<std::string_view> route) {
    std::lock_guard<std::mutex> l(s->mu);
    s->last_purge = route ? std::string(*route) : "*";
    return absl::OkStatus();
  };
  return h;
}

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    logger_ =
        std::make_shared<spdlog::logger>("admin", std::make_shared<spdlog::sinks::null_sink_mt>());
  }

  void TearDown() override {
    if (!token_path_.empty()) unlink(token_path_.c_str());
  }

  std::unique_ptr<AdminServer> startServer(AdminHooks hooks, std::string token_file = "") {
    AdminConfig config;
    config.bind = {"127.0.0.1", 0};
    config.token_file = std::move(token_file);
    auto server = AdminServer::start(config, std::move(hooks), registry_, logger_);
    EXPECT_TRUE(server.ok()) << server.status();
    if (!server.ok()) return nullptr;
    EXPECT_NE((*server)->port(), 0);
    return std::move(*server);
  }

  std::string writeToken(const std::string& contents) {
    token_path_ = ::testing::TempDir() + "admin-token-" + std::to_string(getpid());
    std::ofstream(token_path_) << contents;
    return token_path_;
  }

  metrics::Registry registry_;
  std::shared_ptr<spdlog::logger> logger_;
  FakeState state_;
  std::string token_path_;
};

TEST_F(AdminServerTest, Healthz) {
  auto server = startServer(fakeHooks(&state_, testConfig()));
  ASSERT_NE(server, nullptr);
  HttpResponse r = request(server->port(), "GET", "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "application/json");
  EXPECT_EQ(r.json(), (Json{{"status", "ok"}}));
}

TEST_F(AdminServerTest, ReadyzReportsEveryReason) {
  auto server = startServer(fakeHooks(&state_, testConfig()));
  ASSERT_NE(server, nullptr);
  HttpResponse r = request(server->port(), "GET", "/readyz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json(), (Json{{"ready", true}}));

  state_.have_config = false;
  state_.listeners_up = false;
  state_.draining = true;
  r = request(server->port(), "GET", "/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.json()["ready"], false);
  EXPECT_EQ(r.json()["reasons"], (Json{"config_not_loaded", "listeners_down", "draining"}));

  state_.have_config = true;
  state_.listeners_up = true;
  r = request(server->port(), "GET", "/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.json()["reasons"], (Json{"draining"}));
}

TEST_F(AdminServerTest, MetricsExposition) {
  registry_.addShard()->recordRequest("predict", "upstream", 200, absl::Milliseconds(5));
  auto server = startServer(fakeHooks(&state_, testConfig()));
  ASSERT_NE(server, nullptr);
  HttpResponse r = request(server->port(), "GET", "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_THAT(r.body, HasSubstr("airbag_requests_total{route=\"predict\",source=\"upstream\","
                                "code=\"200\"} 1\n"));
  EXPECT_THAT(r.body, HasSubstr("# TYPE airbag_build_info gauge\n"));
}

TEST_F(AdminServerTest, RoutesListAndSingle) {
  auto server = startServer(fakeHooks(&state_, testConfig()));
  ASSERT_NE(server, nullptr);
  HttpResponse r = request(server->port(), "GET", "/routes");
  ASSERT_EQ(r.status, 200);
  Json all = r.json();
  ASSERT_TRUE(all.is_array());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0]["name"], "predict");
  EXPECT_EQ(all[0]["upstream"], "model");
  EXPECT_EQ(all[0]["priority"], "critical");
  EXPECT_EQ(all[0]["match"]["path_prefix"], "/v1/");
  EXPECT_TRUE(all[0].contains("timeout"));
  EXPECT_EQ(all[0]["state"], (Json{{"circuit", "closed"}, {"of", "predict"}}));
  EXPECT_EQ(all[1]["name"], "my route");

  r = request(server->port(), "GET", "/routes/predict");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json()["name"], "predict");
  EXPECT_EQ(r.json()["state"]["of"], "predict");

  r = request(server->port(), "GET", "/routes/my%20route");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json()["name"], "my route");

  r = request(server->port(), "GET", "/routes/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.json()["error"]["code"], "not_found");
  EXPECT_THAT(r.json()["error"]["message"].get<std::string>(), HasSubstr("nope"));
}

TEST_F(AdminServerTest, RoutesWithoutConfigIs503) {
  state_.have_config = false;
  auto server = startServer(fakeHooks(&state_, testConfig()));
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(request(server->port(), "GET", "/routes").status, 503);
  EXPECT_EQ(request(server->port(), "GET", "/config").status, 503);
}

TEST_F(AdminServerTest, Config) {
  auto server = startServer(fakeHooks(&state_, testConfig()));
  ASSERT_NE(server, nullptr);
  HttpResponse r = request(server->port(), "GET", "/config");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json(), (Json{{"effective", true}}));
}

TEST_F(AdminServerTest, DrainAndReload) {
  auto server = startServer(fakeHooks(&state_, testConfig()));
  ASSERT_NE(server, nullptr);
  HttpResponse r = request(server->port(), "POST", "/drain");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json(), (Json{{"draining", true}}));
  EXPECT_EQ(state_.drains.load(), 1);
  EXPECT_EQ(request(server->port(), "GET", "/readyz").status, 503);

  r = request(server->port(), "POST", "/reload");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json(), (Json{{"reloaded", true}, {"warnings", Json::array()}}));
  {
    std::lock_guard<std::mutex> l(state_.mu);
    state_.reload_warnings = {
        "listen.address changed to 127.0.0.1:1 in the file; 127.0.0.1:2 "
        "stays in force until a restart"};
  }
  r = request(server->port(), "POST", "/reload");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json()["warnings"], Json::array({state_.reload_warnings[0]}));
  {
    std::lock_guard<std::mutex> l(state_.mu);
    state_.reload_result = absl::InvalidArgumentError("airbag.yaml:3:5: unknown key \"tiemout\"");
  }
  r = request(server->port(), "POST", "/reload");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.json()["error"]["code"], "reload_failed");
  EXPECT_THAT(r.json()["error"]["message"].get<std::string>(), HasSubstr("tiemout"));
  {
    std::lock_guard<std::mutex> l(state_.mu);
    state_.reload_result = absl::UnimplementedError("reload is not wired yet");
  }
  r = request(server->port(), "POST", "/reload");
  EXPECT_EQ(r.status, 501);
  EXPECT_EQ(r.json()["error"]["code"], "not_implemented");
  EXPECT_EQ(state_.reloads.load(), 4);
}

TEST_F(AdminServerTest, UnknownPathAndWrongMethod) {
  auto server = startServer(fakeHooks(&state_, testConfig()));
  ASSERT_NE(server, nullptr);
  HttpResponse r = request(server->port(), "GET", "/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.json()["error"]["code"], "not_found");

  r = request(server->port(), "POST", "/healthz");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["allow"], "GET, HEAD");
  EXPECT_EQ(r.json()["error"]["code"], "method_not_allowed");

  r = request(server->port(), "GET", "/drain");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["allow"], "POST");
  EXPECT_EQ(state_.drains.load(), 0);

  r = request(server->port(), "GET", "/routes/predict/fault");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["allow"], "PUT, DELETE");

  EXPECT_EQ(request(server->port(), "DELETE", "/routes").status, 405);
  EXPECT_EQ(request(server->port(), "GET", "/routes/predict/other").status, 404);
}

// Methods evhttp does not handle by default must still reach the router and
// get the JSON error shape, not libevent's 501 HTML page.
TEST_F(AdminServerTest, EveryOtherMethodOnAKnownPathIs405Json) {
  auto server = startServer(fakeHooks(&state_, testConfig()));
  ASSERT_NE(server, nullptr);
  struct Case {
    std::string method, path, allow;
  };
  const Case cases[] = {
      {"PATCH", "/routes", "GET, HEAD"},
      {"DELETE", "/routes", "GET, HEAD"},
      {"OPTIONS", "/config", "GET, HEAD"},
      {"TRACE", "/healthz", "GET, HEAD"},
      {"PATCH", "/routes/predict", "GET, HEAD"},
      {"PATCH", "/routes/predict/fault", "PUT, DELETE"},
      {"OPTIONS", "/routes/predict/circuit", "POST"},
      {"PATCH", "/reload", "POST"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.method + " " + c.path);
    HttpResponse r = request(server->port(), c.method, c.path);
    EXPECT_EQ(r.status, 405);
    EXPECT_EQ(r.headers["content-type"], "application/json");
    EXPECT_EQ(r.headers["allow"], c.allow);
    EXPECT_EQ(r.json()["error"]["code"], "method_not_allowed");
    EXPECT_THAT(r.json()["error"]["message"].get<std::string>(), HasSubstr(c.method));
  }
  EXPECT_EQ(state_.reloads.load(), 0);
  HttpResponse r = request(server->port(), "PATCH", "/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.json()["error"]["code"], "not_found");
}

TEST_F(AdminServerTest, BodyOverOneMebibyteIs413Json) {
  auto server = startServer(fakeHooks(&state_, testConfig()));
  ASSERT_NE(server, nullptr);
  const std::string big(1024 * 1024 + 1, ' ');
  HttpResponse r = request(server->port(), "POST", "/cache/purge", big);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.headers["content-type"], "application/json");
  EXPECT_EQ(r.json()["error"]["code"], "body_too_large");
  {
    std::lock_guard<std::mutex> l(state_.mu);
    EXPECT_EQ(state_.last_purge, "");
  }
  // Exactly 1 MiB is still accepted.
  r = request(server->port(), "POST", "/cache/purge", std::string(1024 * 1024, ' '));
  EXPECT_EQ(r.status, 200);
}

TEST_F(AdminServerTest, HeadHasNoBody) {
  auto server = startServer(fakeHooks(&state_, testConfig()));
  ASSERT_NE(server, nullptr);
  HttpResponse r = request(server->port(), "HEAD", "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "");
}

TEST_F(AdminServerTest, TokenGuardsMutatingEndpoints) {
  auto server = startServer(fakeHooks(&state_, testConfig()), writeToken("s3cret-token\n"));
  ASSERT_NE(server, nullptr);
  HttpResponse r = request(server->port(), "POST", "/drain");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.json()["error"]["code"], "unauthorized");
  EXPECT_THAT(r.headers["www-authenticate"], HasSubstr("Bearer"));

  r = request(server->port(), "POST", "/drain", "", "Authorization: Bearer s3cret-toke\r\n");
  EXPECT_EQ(r.status, 401);
  r = request(server->port(), "POST", "/drain", "", "Authorization: Bearer s3cret-token-x\r\n");
  EXPECT_EQ(r.status, 401);
  r = request(server->port(), "POST", "/drain", "", "Authorization: Basic s3cret-token\r\n");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(state_.drains.load(), 0);
  r = request(server->port(), "PUT", "/routes/predict/fault", "{}");
  EXPECT_EQ(r.status, 401);

  r = request(server->port(), "POST", "/drain", "", "Authorization: Bearer s3cret-token\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(state_.drains.load(), 1);

  // Reads stay open.
  EXPECT_EQ(request(server->port(), "GET", "/healthz").status, 200);
  EXPECT_EQ(request(server->port(), "GET", "/routes").status, 200);
}

TEST_F(AdminServerTest, CircuitFaultAndPurge) {
  auto server = startServer(fakeHooks(&state_, testConfig()));
  ASSERT_NE(server, nullptr);
  uint16_t port = server->port();
  HttpResponse r = request(port, "POST", "/routes/predict/circuit", R"({"state":"open"})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json(), (Json{{"route", "predict"}, {"circuit", "open"}}));
  EXPECT_EQ(request(port, "POST", "/routes/predict/circuit", R"({"state":"ajar"})").status, 400);
  EXPECT_EQ(request(port, "POST", "/routes/predict/circuit", "not json").status, 400);
  EXPECT_EQ(request(port, "POST", "/routes/nope/circuit", R"({"state":"open"})").status, 404);

  r = request(port, "PUT", "/routes/predict/fault", R"({"abort":{"percent":50,"status":503}})");
  EXPECT_EQ(r.status, 200);
  r = request(port, "DELETE", "/routes/predict/fault");
  EXPECT_EQ(r.status, 200);

  r = request(port, "POST", "/cache/purge", R"({"route":"predict"})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json(), (Json{{"purged", "predict"}}));
  {
    std::lock_guard<std::mutex> l(state_.mu);
    EXPECT_EQ(state_.last_circuit, "predict=open");
    EXPECT_EQ(state_.last_fault, "cleared");
    EXPECT_EQ(state_.last_purge, "predict");
  }
  r = request(port, "POST", "/cache/purge");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json(), (Json{{"purged", "all"}}));
}

TEST_F(AdminServerTest, MissingHooksAnswerNotImplemented) {
  AdminHooks hooks;
  auto cfg = testConfig();
  hooks.config = [cfg] { return cfg; };
  auto server = startServer(std::move(hooks));
  ASSERT_NE(server, nullptr);
  uint16_t port = server->port();
  EXPECT_EQ(request(port, "POST", "/drain").status, 501);
  EXPECT_EQ(request(port, "POST", "/reload").status, 501);
  EXPECT_EQ(request(port, "POST", "/cache/purge").status, 501);
  EXPECT_EQ(request(port, "POST", "/routes/predict/circuit", R"({"state":"open"})").status, 501);
  // Without a route_state hook the state is an empty object, and without a
  // config_json hook /config renders the snapshot itself.
  HttpResponse r = request(port, "GET", "/routes/predict");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json()["state"], Json::object());
  r = request(port, "GET", "/config");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json()["routes"][0]["name"], "predict");
  EXPECT_EQ(request(port, "GET", "/readyz").status, 200);
}

TEST_F(AdminServerTest, StartErrorsAndStop) {
  AdminConfig config;
  config.bind = {"127.0.0.1", 0};
  config.token_file = ::testing::TempDir() + "no-such-admin-token";
  auto bad = AdminServer::start(config, AdminHooks{}, registry_, logger_);
  EXPECT_FALSE(bad.ok());

  config.token_file = writeToken("\n");
  EXPECT_FALSE(AdminServer::start(config, AdminHooks{}, registry_, logger_).ok());

  auto server = startServer(AdminHooks{});
  ASSERT_NE(server, nullptr);
  config.token_file.clear();
  config.bind.port = server->port();
  auto clash = AdminServer::start(config, AdminHooks{}, registry_, logger_);
  EXPECT_FALSE(clash.ok());

  uint16_t port = server->port();
  EXPECT_EQ(request(port, "GET", "/healthz").status, 200);
  server->stop();
  server->stop();  // idempotent
  EXPECT_EQ(request(port, "GET", "/healthz").status, 0) << "nothing listens after stop()";
}

TEST(ReadTokenFileTest, TrimsWhitespace) {
  std::string path = ::testing::TempDir() + "token-trim-" + std::to_string(getpid());
  std::ofstream(path) << "  abc123 \r\n";
  auto t = readTokenFile(path);
  unlink(path.c_str());
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, "abc123");
}

}  // namespace
}  // namespace airbag::admin
