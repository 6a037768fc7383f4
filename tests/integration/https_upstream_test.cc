// Integration: https:// upstreams through the libcurl client, against nginx terminating TLS in
// front of the demo model server. Certificates (a throwaway CA, a good, an expired and a
// wrong-host leaf) are made with the openssl command at test time, never kept.
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/integration/tls_certs.h"

namespace airbag::testing {
namespace {

using ::testing::HasSubstr;

// The CA and the leaves these tests use: good, expired, wrong host.
std::unique_ptr<Certs> makeCerts() {
  auto c = Certs::makeCa();
  if (!c) return nullptr;
  if (!c->leaf("good", "DNS:localhost,IP:127.0.0.1", 1)) return nullptr;
  if (!c->leaf("expired", "DNS:localhost,IP:127.0.0.1", -1)) return nullptr;
  if (!c->leaf("wronghost", "DNS:wrong.example", 1)) return nullptr;
  return c;
}

// nginx in the foreground, terminating TLS (HTTP/1.1 and h2) and passing to `model_port`.
class Nginx {
 public:
  static std::unique_ptr<Nginx> start(const Certs& certs, const std::string& leaf,
                                      int model_port) {
    auto n = std::unique_ptr<Nginx>(new Nginx());
    auto d = TempDir::create("airbag-nginx");
    if (!d.ok()) return nullptr;
    n->dir_ = std::move(*d);
    const std::string dir = n->dir_->path().string();
    for (int attempt = 0; attempt < 3; ++attempt) {
      n->port_ = freePort();
      std::string conf = "daemon off;\nmaster_process off;\nworker_processes 1;\npid " + dir +
                         "/nginx.pid;\nerror_log stderr warn;\nevents { worker_connections 128; }\n"
                         "http {\n  access_log off;\n"
                         "  client_body_temp_path " + dir + "/b;\n  proxy_temp_path " + dir +
                         "/p;\n  fastcgi_temp_path " + dir + "/f;\n  uwsgi_temp_path " + dir +
                         "/u;\n  scgi_temp_path " + dir + "/s;\n"
                         "  server {\n    listen 127.0.0.1:" + std::to_string(n->port_) +
                         " ssl http2;\n    ssl_certificate " + certs.path(leaf + ".pem") +
                         ";\n    ssl_certificate_key " + certs.path(leaf + ".key") +
                         ";\n    location / {\n      proxy_pass http://127.0.0.1:" +
                         std::to_string(model_port) +
                         ";\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n"
                         "      proxy_buffering off;\n      proxy_request_buffering off;\n    }\n"
                         "  }\n}\n";
      auto path = n->dir_->write("nginx.conf", conf);
      if (!path.ok()) return nullptr;
      auto p = Process::spawn({"nginx", "-p", dir, "-e", "stderr", "-c", path->string()});
      if (!p.ok()) {
        ADD_FAILURE() << "cannot start nginx: " << p.status();
        return nullptr;
      }
      n->process_ = std::move(*p);
      if (waitForPort(n->port_, milliseconds(5000)) && n->process_->running()) return n;
      n->process_.reset();
    }
    ADD_FAILURE() << "nginx did not start";
    return nullptr;
  }
  int port() const { return port_; }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }

 private:
  Nginx() = default;
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<Process> process_;
  int port_ = 0;
};

constexpr char kConfig[] = R"(
listen: { address: ${LISTEN}, workers: 1 }
admin: { address: ${ADMIN} }
log: { level: warn, access_log: off }
upstreams:
  model:
    url: ${URL}
    connect_timeout: 1s
    tls: { ca: ${CA}, verify: ${VERIFY}${SNI} }
routes:
  - name: r
    match: { path_prefix: / }
    upstream: model
    timeout: { total: 5s, idle: 5s }
)";

class HttpsUpstreamTest : public ::testing::Test {
 public:
  void SetUp() override {
    certs_ = makeCerts();
    ASSERT_NE(certs_, nullptr);
    auto demo = DemoServer::start();
    ASSERT_TRUE(demo.ok()) << demo.status();
    demo_ = std::move(*demo);
  }

  std::unique_ptr<AirbagProcess> airbag(const Nginx& nginx, bool verify,
                                        const std::string& sni = "",
                                        const std::string& url = "") {
    auto a = AirbagProcess::start(
        kConfig, {{"URL", url.empty() ? nginx.url() : url},
                  {"CA", certs_->path("ca.pem")},
                  {"VERIFY", verify ? "true" : "false"},
                  {"SNI", sni.empty() ? "" : ", sni: " + sni}});
    EXPECT_TRUE(a.ok()) << a.status();
    return a.ok() ? std::move(*a) : nullptr;
  }

 protected:
  std::unique_ptr<Certs> certs_;
  std::unique_ptr<DemoServer> demo_;
};

TEST_F(HttpsUpstreamTest, AnswersComeThroughTlsOnReusedConnections) {
  auto nginx = Nginx::start(*certs_, "good", demo_->port());
  ASSERT_NE(nginx, nullptr);
  auto a = airbag(*nginx, true);
  ASSERT_NE(a, nullptr);
  for (int i = 0; i < 5; ++i) {
    Response r = a->fetch("POST", "/predict", {{"content-type", "application/json"}},
                          R"({"amount": 10})");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("x-airbag-source"), "upstream");
    EXPECT_THAT(r.body, HasSubstr("score"));
  }
  Response g = a->fetch("GET", "/v1/models");
  EXPECT_EQ(g.status, 200) << g.body;
  // Five requests, one TLS connection: libcurl keeps it (HTTP/2 or keep-alive).
  EXPECT_EQ(a->metric(R"(airbag_upstream_connections_opened_total{upstream="model"})"), 1);
  EXPECT_EQ(a->metric(R"(airbag_upstream_attempts_total{route="r",upstream="model",outcome="ok"})"),
            6);
  // /upstreams counts it: open, and idle between requests.
  nlohmann::json c = a->admin("GET", "/upstreams").json()["model"]["connections"];
  EXPECT_EQ(c["open"], 1) << c.dump();
  EXPECT_EQ(c["idle"], 1) << c.dump();
}

// Whether the process has libcurl mapped (/proc/PID/maps).
bool mapsLibcurl(pid_t pid) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.find("libcurl") != std::string::npos) return true;
  return false;
}

TEST_F(HttpsUpstreamTest, LibcurlIsLoadedOnlyOnceAConfigurationNeedsIt) {
  constexpr char kPlain[] = R"(
listen: { address: ${LISTEN}, workers: 1 }
admin: { address: ${ADMIN} }
log: { level: warn, access_log: off }
upstreams:
  model: { url: "${MODEL}" }
routes:
  - name: r
    match: { path_prefix: / }
    upstream: model
)";
  auto started = AirbagProcess::start(kPlain, {{"MODEL", demo_->url()}});
  ASSERT_TRUE(started.ok()) << started.status();
  auto& a = *started;
  EXPECT_EQ(a->fetch("GET", "/v1/models").status, 200);
  EXPECT_FALSE(mapsLibcurl(a->process().pid())) << "a plain-http configuration loaded libcurl";

  // A reload that adds an https upstream loads it, and the new upstream answers at once.
  auto nginx = Nginx::start(*certs_, "good", demo_->port());
  ASSERT_NE(nginx, nullptr);
  ASSERT_TRUE(a->rewriteConfig(kConfig, {{"URL", nginx->url()},
                                         {"CA", certs_->path("ca.pem")},
                                         {"VERIFY", "true"},
                                         {"SNI", ""}})
                  .ok());
  Response reload = a->admin("POST", "/reload");
  ASSERT_EQ(reload.status, 200) << reload.body;
  EXPECT_TRUE(mapsLibcurl(a->process().pid()));
  Response r = a->fetch("GET", "/v1/models");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-airbag-source"), "upstream");
}

TEST_F(HttpsUpstreamTest, SniNameIsTheOneVerified) {
  auto nginx = Nginx::start(*certs_, "wronghost", demo_->port());
  ASSERT_NE(nginx, nullptr);
  // The url names 127.0.0.1, the certificate only wrong.example: sni makes it match.
  auto a = airbag(*nginx, true, "wrong.example");
  ASSERT_NE(a, nullptr);
  Response r = a->fetch("GET", "/v1/models");
  EXPECT_EQ(r.status, 200) << r.body;
}

// With verification on, a certificate that fails it is a connect failure with a log line
// saying why, and the model sees nothing; with verify: false the same peer answers.
void expectVerificationFails(HttpsUpstreamTest& t, const Nginx& nginx, const std::string& why) {
  auto a = t.airbag(nginx, true);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->fetch("GET", "/v1/models").status, 503);
  EXPECT_EQ(
      a->metric(R"(airbag_upstream_attempts_total{route="r",upstream="model",outcome="connect"})"),
      1);
  auto line = a->process().waitForLine("cannot connect", milliseconds(2000));
  ASSERT_TRUE(line.has_value());
  EXPECT_THAT(*line, HasSubstr(why));
  auto lax = t.airbag(nginx, false);
  ASSERT_NE(lax, nullptr);
  EXPECT_EQ(lax->fetch("GET", "/v1/models").status, 200);
}

TEST_F(HttpsUpstreamTest, WrongHostFailsVerificationAsConnectFailure) {
  auto nginx = Nginx::start(*certs_, "wronghost", demo_->port());
  ASSERT_NE(nginx, nullptr);
  expectVerificationFails(*this, *nginx, "127.0.0.1");
}

TEST_F(HttpsUpstreamTest, ExpiredCertificateFailsVerificationAsConnectFailure) {
  auto nginx = Nginx::start(*certs_, "expired", demo_->port());
  ASSERT_NE(nginx, nullptr);
  expectVerificationFails(*this, *nginx, "expired");
}

TEST_F(HttpsUpstreamTest, StreamsPieceByPieceAndAClientThatLeavesEndsTheTransfer) {
  auto nginx = Nginx::start(*certs_, "good", demo_->port());
  ASSERT_NE(nginx, nullptr);
  auto a = airbag(*nginx, true);
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(demo_->setBehavior({{"stream_events", 2000}, {"stream_interval_ms", 10}}).ok());
  HttpClient c;
  ASSERT_TRUE(c.connect(a->port()).ok());
  ASSERT_TRUE(c.sendRequest("POST", "/v1/chat/completions",
                            {{"content-type", "application/json"}},
                            R"({"stream": true, "messages": [{"role": "user", "content": "hi"}]})")
                  .ok());
  Response head = c.readHead(milliseconds(5000));
  ASSERT_EQ(head.status, 200);
  EXPECT_THAT(head.header("content-type"), HasSubstr("text/event-stream"));
  // Pieces arrive while the stream is still running (20 s in all).
  std::string got = c.readUntil("data:", milliseconds(3000));
  EXPECT_THAT(got, HasSubstr("data:"));
  got = c.readUntil("data:", milliseconds(3000));
  EXPECT_THAT(got, HasSubstr("data:"));
  EXPECT_EQ(*demo_->stat("streams_started"), 1);
  c.closeAbruptly();
  // The upstream transfer ends with the client: nginx drops its connection to the model.
  EXPECT_TRUE(pollUntil([&] { return *demo_->stat("connections_open") <= 1; },
                        milliseconds(3000)));
  EXPECT_EQ(*demo_->stat("streams_completed"), 0);
}

}  // namespace
}  // namespace airbag::testing
