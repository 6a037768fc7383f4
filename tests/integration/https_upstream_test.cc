// Integration: https:// upstreams, through the keep-alive pool's own TLS (HTTP/1.1) and through
// the libcurl client (http2: true), against nginx terminating TLS in front of the demo model
// server. Certificates (a throwaway CA, a good, an expired and a wrong-host leaf) are made with
// the openssl command at test time, never kept.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/integration/tls_certs.h"

namespace airbag::testing {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// The CA and the leaves these tests use: good, expired, wrong host.
std::unique_ptr<Certs> makeCerts() {
  auto c = Certs::makeCa();
  if (!c) return nullptr;
  if (!c->leaf("good", "DNS:localhost,IP:127.0.0.1", 1)) return nullptr;
  if (!c->leaf("expired", "DNS:localhost,IP:127.0.0.1", -1)) return nullptr;
  if (!c->leaf("wronghost", "DNS:wrong.example", 1)) return nullptr;
  return c;
}

// nginx in the foreground, terminating TLS (HTTP/1.1 and h2) and passing to `model_port`. Its
// access log says, per request, the protocol and whether the TLS session was resumed ("r").
// With `keepalive_requests` > 0 it closes each connection after that many requests.
class Nginx {
 public:
  static std::unique_ptr<Nginx> start(const Certs& certs, const std::string& leaf,
                                      int model_port, int keepalive_requests = 0) {
    auto n = std::unique_ptr<Nginx>(new Nginx());
    auto d = TempDir::create("airbag-nginx");
    if (!d.ok()) return nullptr;
    n->dir_ = std::move(*d);
    const std::string dir = n->dir_->path().string();
    for (int attempt = 0; attempt < 3; ++attempt) {
      n->port_ = freePort();
      std::string conf = "daemon off;\nmaster_process off;\nworker_processes 1;\npid " + dir +
                         "/nginx.pid;\nerror_log stderr warn;\nevents { worker_connections 128; }\n"
                         "http {\n  log_format t '$server_protocol $ssl_session_reused';\n"
                         "  access_log " + dir + "/access.log t;\n" +
                         (keepalive_requests > 0
                              ? "  keepalive_requests " + std::to_string(keepalive_requests) +
                                    ";\n"
                              : std::string()) +
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
  // The access log's lines so far ("HTTP/1.1 ." or "HTTP/2.0 r", ...).
  std::vector<std::string> accessLog() const {
    std::vector<std::string> lines;
    std::ifstream in(dir_->path() / "access.log");
    std::string line;
    while (std::getline(in, line)) lines.push_back(line);
    return lines;
  }

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
    http2: ${HTTP2}
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
                                        const std::string& url = "", bool http2 = false) {
    auto a =
        AirbagProcess::start(kConfig, vars(url.empty() ? nginx.url() : url, verify, sni, http2));
    EXPECT_TRUE(a.ok()) << a.status();
    return a.ok() ? std::move(*a) : nullptr;
  }

  AirbagProcess::Vars vars(const std::string& url, bool verify, const std::string& sni = "",
                           bool http2 = false) {
    return {{"URL", url},
            {"CA", certs_->path("ca.pem")},
            {"VERIFY", verify ? "true" : "false"},
            {"SNI", sni.empty() ? "" : ", sni: " + sni},
            {"HTTP2", http2 ? "true" : "false"}};
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
  EXPECT_EQ(c["idle"], 1) << c.dump();  // HTTP/1.1 by ALPN, though nginx offers h2 too: the pool speaks HTTP/1.1 only.
  ASSERT_TRUE(pollUntil([&] { return nginx->accessLog().size() >= 6; }, milliseconds(3000)));
  EXPECT_THAT(nginx->accessLog(), Each(StartsWith("HTTP/1.1 ")));
}

// A server that closes every connection after one request: each new connection resumes the
// TLS session the pool kept from the one before, an abbreviated handshake instead of a full one.
TEST_F(HttpsUpstreamTest, NewPoolConnectionsResumeTheTlsSession) {
  auto nginx = Nginx::start(*certs_, "good", demo_->port(), /*keepalive_requests=*/1);
  ASSERT_NE(nginx, nullptr);
  auto a = airbag(*nginx, true);
  ASSERT_NE(a, nullptr);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(a->fetch("GET", "/v1/models").status, 200);
  EXPECT_EQ(a->metric(R"(airbag_upstream_connections_opened_total{upstream="model"})"), 4);
  // nginx writes a request's line after sending its answer: wait for the fourth.
  std::vector<std::string> log;
  ASSERT_TRUE(pollUntil(
      [&] {
        log = nginx->accessLog();
        return log.size() >= 4;
      },
      milliseconds(3000)));
  ASSERT_EQ(log.size(), 4u);
  EXPECT_EQ(log[0], "HTTP/1.1 .");  // the first handshake is a full one
  for (size_t i = 1; i < log.size(); ++i) EXPECT_EQ(log[i], "HTTP/1.1 r") << "request " << i;
}

// A peer that takes the TCP connection and never answers the ClientHello: the connect timeout
// covers the handshake, and it ends as a connect failure saying so.
TEST_F(HttpsUpstreamTest, AHandshakeThatNeverEndsIsAConnectTimeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ASSERT_EQ(::listen(fd, 16), 0);  // the kernel accepts; nobody ever reads
  const std::string url = "https://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  auto a = AirbagProcess::start(kConfig, vars(url, true));
  ASSERT_TRUE(a.ok()) << a.status();
  auto started = SteadyClock::now();
  EXPECT_EQ((*a)->fetch("GET", "/v1/models").status, 503);
  auto took = SteadyClock::now() - started;
  EXPECT_GE(took, milliseconds(900));  // connect_timeout: 1s
  EXPECT_LT(took, milliseconds(3000));
  EXPECT_EQ((*a)->metric(
                R"(airbag_upstream_attempts_total{route="r",upstream="model",outcome="connect"})"),
            1);
  auto line = (*a)->process().waitForLine("cannot connect", milliseconds(2000));
  ASSERT_TRUE(line.has_value());
  EXPECT_THAT(*line, HasSubstr("connect timeout"));
  ::close(fd);
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

  // An https upstream on HTTP/1.1 goes through the pool's own TLS: still no libcurl.
  auto nginx = Nginx::start(*certs_, "good", demo_->port());
  ASSERT_NE(nginx, nullptr);
  ASSERT_TRUE(a->rewriteConfig(kConfig, vars(nginx->url(), true)).ok());
  Response reload = a->admin("POST", "/reload");
  ASSERT_EQ(reload.status, 200) << reload.body;
  Response r = a->fetch("GET", "/v1/models");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-airbag-source"), "upstream");
  EXPECT_FALSE(mapsLibcurl(a->process().pid())) << "an https/1.1 upstream loaded libcurl";

  // A reload that asks for HTTP/2 loads it, and the upstream answers at once, over h2.
  ASSERT_TRUE(a->rewriteConfig(kConfig, vars(nginx->url(), true, "", /*http2=*/true)).ok());
  reload = a->admin("POST", "/reload");
  ASSERT_EQ(reload.status, 200) << reload.body;
  EXPECT_TRUE(mapsLibcurl(a->process().pid()));
  r = a->fetch("GET", "/v1/models");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-airbag-source"), "upstream");
  ASSERT_TRUE(pollUntil([&] { return nginx->accessLog().size() >= 2; }, milliseconds(3000)));
  EXPECT_THAT(nginx->accessLog(), ElementsAre(StartsWith("HTTP/1.1"), StartsWith("HTTP/2.0")));
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
  // And airbag closed its TLS connection to nginx: a half-read answer cannot be reused.
  EXPECT_TRUE(pollUntil([&] { return processConnectionsTo(a->process().pid(), nginx->port()) == 0; },
                        milliseconds(3000)));
}

// A client that stops reading a fast TLS stream: airbag stops reading the upstream instead of
// buffering it, so the model comes to a standstill and airbag's memory stays bounded; reading
// again resumes the stream.
TEST_F(HttpsUpstreamTest, AClientThatStopsReadingPausesTheTlsUpstreamWithBoundedMemory) {
  auto nginx = Nginx::start(*certs_, "good", demo_->port());
  ASSERT_NE(nginx, nullptr);
  auto a = airbag(*nginx, true);
  ASSERT_NE(a, nullptr);
  // 20,000 events of ~8 KiB (~160 MiB) with no pause between them.
  ASSERT_TRUE(demo_->setBehavior({{"stream_events", 20000},
                                  {"stream_interval_ms", 0},
                                  {"stream_event_bytes", 8192}})
                  .ok());
  const int64_t base_kib = processResidentKib(a->process().pid());
  ASSERT_GT(base_kib, 0);
  HttpClient c;
  HttpClient::ConnectOptions o;
  o.receive_buffer_bytes = 64 * 1024;
  ASSERT_TRUE(c.connect(a->port(), o).ok());
  ASSERT_TRUE(c.sendRequest("POST", "/v1/completions", {{"content-type", "application/json"}},
                            R"({"stream":true,"prompt":"x"})")
                  .ok());
  ASSERT_EQ(c.readHead(milliseconds(5000)).status, 200);
  auto bytes_sent = [&] { return demo_->stat("stream_bytes_sent").value_or(0); };
  std::optional<int64_t> stalled = waitForStandstill(bytes_sent, milliseconds(8000));
  ASSERT_TRUE(stalled.has_value()) << "the stream never came to a standstill";
  const int64_t last = *stalled;
  EXPECT_LT(last, 32 * 1024 * 1024) << "airbag kept reading for a client that does not read";
  EXPECT_LT(processResidentKib(a->process().pid()) - base_kib, 16 * 1024);
  // Reading again resumes the stream (once the socket buffers between have drained).
  EXPECT_TRUE(readUntilCounterPasses(c, bytes_sent, last, milliseconds(10000)));
}

}  // namespace
}  // namespace airbag::testing
