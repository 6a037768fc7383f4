// Integration: the TLS listener (listen.tls) with curl, openssl s_client and a small OpenSSL
// client of the test's own (for a keep-alive connection held across a reload) as clients.
// Certificates are made with the openssl command at test time, never kept.
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/integration/tls_certs.h"

namespace airbag::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kConfig[] = R"(
listen:
  address: ${LISTEN}
  workers: 2
  tls: { address: "127.0.0.1:0", cert: ${PAIR}/server.pem, key: ${PAIR}/server.key${EXTRA} }
  limits: { header_timeout: ${HEADER_TIMEOUT} }
admin: { address: ${ADMIN} }
log: { level: info, access_log: off }
upstreams:
  model: { url: ${MODEL} }
routes:
  - name: r
    match: { path_prefix: / }
    upstream: model
)";

constexpr char kRequest[] = "GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n";
constexpr char kLastRequest[] =
    "GET /v1/models HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

// A blocking TLS client on one connection, every wait bounded by socket timeouts.
class TlsClient {
 public:
  struct Options {
    std::string ca;
    int max_version = 0;  // e.g. TLS1_2_VERSION; 0 = the library's highest
    std::string cert, key;
  };

  static std::unique_ptr<TlsClient> connect(int port, const Options& o) {
    auto c = std::unique_ptr<TlsClient>(new TlsClient());
    c->ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(c->ctx_, o.ca.c_str(), nullptr);
    SSL_CTX_set_verify(c->ctx_, SSL_VERIFY_PEER, nullptr);
    if (o.max_version) SSL_CTX_set_max_proto_version(c->ctx_, o.max_version);
    if (!o.cert.empty()) {
      SSL_CTX_use_certificate_chain_file(c->ctx_, o.cert.c_str());
      SSL_CTX_use_PrivateKey_file(c->ctx_, o.key.c_str(), SSL_FILETYPE_PEM);
    }
    static const unsigned char kAlpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(c->ctx_, kAlpn, sizeof(kAlpn) - 1);
    c->fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{10, 0};
    setsockopt(c->fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(c->fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return nullptr;
    c->ssl_ = SSL_new(c->ctx_);
    SSL_set_fd(c->ssl_, c->fd_);
    SSL_set_tlsext_host_name(c->ssl_, "localhost");
    SSL_set1_host(c->ssl_, "localhost");
    if (SSL_connect(c->ssl_) != 1) {
      ERR_clear_error();
      return nullptr;
    }
    return c;
  }
  ~TlsClient() {
    if (ssl_) SSL_free(ssl_);
    if (ctx_) SSL_CTX_free(ctx_);
    if (fd_ >= 0) ::close(fd_);
  }

  // Sends `raw` and reads one answer with a Content-Length body; "" on failure.
  std::string exchange(std::string_view raw) {
    if (SSL_write(ssl_, raw.data(), static_cast<int>(raw.size())) <= 0) return "";
    std::string in;
    char buf[16384];
    size_t want = std::string::npos;
    while (in.size() < want) {
      int n = SSL_read(ssl_, buf, sizeof(buf));
      if (n <= 0) return "";
      in.append(buf, static_cast<size_t>(n));
      size_t end = in.find("\r\n\r\n");
      if (want == std::string::npos && end != std::string::npos) {
        size_t cl = in.find("content-length: ");
        if (cl == std::string::npos) cl = in.find("Content-Length: ");
        if (cl == std::string::npos || cl > end) return in;
        want = end + 4 + std::stoul(in.substr(cl + 16));
      }
    }
    return in;
  }

  // True once the server's close_notify arrives (a clean TLS close, not a bare TCP one).
  bool readsCloseNotify() {
    char c;
    int n = SSL_read(ssl_, &c, 1);
    bool clean = n == 0 && SSL_get_error(ssl_, n) == SSL_ERROR_ZERO_RETURN;
    ERR_clear_error();
    return clean;
  }

  // The subject common name of the server's certificate.
  std::string peerName() {
    X509* cert = SSL_get1_peer_certificate(ssl_);
    if (cert == nullptr) return "";
    char cn[256] = {0};
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
    X509_free(cert);
    return cn;
  }
  std::string version() const { return SSL_get_version(ssl_); }

 private:
  TlsClient() = default;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
};

class TlsListenerTest : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    certs_ = Certs::makeCa().release();
    ASSERT_NE(certs_, nullptr);
    const std::string san = "DNS:localhost,IP:127.0.0.1";
    ASSERT_TRUE(certs_->leaf("first", san, 1));
    ASSERT_TRUE(certs_->leaf("second", san, 1));
    ASSERT_TRUE(certs_->leaf("client", "DNS:client", 1, "extendedKeyUsage=clientAuth\n"));
    // A client certificate from a CA the server does not trust.
    other_ = Certs::makeCa("other-ca").release();
    ASSERT_NE(other_, nullptr);
    ASSERT_TRUE(other_->leaf("stranger", "DNS:client", 1, "extendedKeyUsage=clientAuth\n"));
  }
  static void TearDownTestSuite() {
    delete certs_;
    delete other_;
    certs_ = nullptr;
    other_ = nullptr;
  }

  void SetUp() override {
    auto demo = DemoServer::start();
    ASSERT_TRUE(demo.ok()) << demo.status();
    demo_ = std::move(*demo);
    auto pair = TempDir::create("airbag-pair");
    ASSERT_TRUE(pair.ok()) << pair.status();
    pair_ = std::move(*pair);
  }

  AirbagProcess::Vars vars(const std::string& extra = "", const std::string& header_timeout = "10s") {
    return {{"MODEL", demo_->url()},
            {"PAIR", pair_->path().string()},
            {"EXTRA", extra},
            {"HEADER_TIMEOUT", header_timeout}};
  }

  // airbag serving the `leaf` pair (copied to ${PAIR}/server.{pem,key}) on the TLS port.
  std::unique_ptr<AirbagProcess> startWith(const std::string& leaf, const std::string& extra = "",
                                           const std::string& header_timeout = "10s") {
    if (!installPair(leaf)) return nullptr;
    auto a = AirbagProcess::start(kConfig, vars(extra, header_timeout));
    if (!a.ok()) {
      ADD_FAILURE() << a.status();
      return nullptr;
    }
    // The TLS port is the kernel's choice (port 0); the start-up line names it.
    auto m = (*a)->process().waitForRegex(R"(and 127\.0\.0\.1:(\d+) \(TLS\))",
                                          scaled(milliseconds(5000)));
    if (!m) {
      ADD_FAILURE() << "no TLS port in the start-up line";
      return nullptr;
    }
    tls_port_ = std::stoi((*m)[1]);
    return std::move(*a);
  }

  // Copies the `leaf` pair to ${PAIR}/server.{pem,key}.
  bool installPair(const std::string& leaf) {
    std::error_code ec;
    for (const char* ext : {".pem", ".key"}) {
      std::filesystem::copy_file(certs_->path(leaf + ext),
                                 pair_->path() / (std::string("server") + ext),
                                 std::filesystem::copy_options::overwrite_existing, ec);
      if (ec) {
        ADD_FAILURE() << "copy " << leaf << ext << ": " << ec.message();
        return false;
      }
    }
    return true;
  }

  TlsClient::Options trusting() const {
    TlsClient::Options o;
    o.ca = certs_->path("ca.pem");
    return o;
  }

  // curl over https to the TLS port; `args` go before the URL.
  CommandResult curl(std::vector<std::string> args, const std::string& path = "/v1/models") {
    std::vector<std::string> argv = {"curl", "-sS", "-v", "--max-time", "10", "--cacert",
                                     certs_->path("ca.pem")};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("https://localhost:" + std::to_string(tls_port_) + path);
    argv.push_back("--resolve");
    argv.push_back("localhost:" + std::to_string(tls_port_) + ":127.0.0.1");
    auto r = runCommand(argv);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : CommandResult{};
  }

  // openssl s_client sending one request (Connection: close) and printing what it saw.
  CommandResult sClient(const std::string& args) {
    std::string cmd = "printf 'GET /v1/models HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: "
                      "close\\r\\n\\r\\n' | openssl s_client -connect 127.0.0.1:" +
                      std::to_string(tls_port_) + " -servername localhost -verify_return_error "
                      "-CAfile " + certs_->path("ca.pem") + " -ign_eof " + args + " 2>&1";
    auto r = runCommand({"sh", "-c", cmd});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : CommandResult{};
  }

  std::optional<double> handshakes(AirbagProcess& a, const std::string& result) {
    return a.metric("airbag_tls_handshakes_total{result=\"" + result + "\"}");
  }

 protected:
  static Certs* certs_;
  static Certs* other_;
  std::unique_ptr<DemoServer> demo_;
  std::unique_ptr<TempDir> pair_;  // the pair the config names
  int tls_port_ = 0;
};

Certs* TlsListenerTest::certs_ = nullptr;
Certs* TlsListenerTest::other_ = nullptr;

TEST_F(TlsListenerTest, Tls12And13WithAlpnBesideThePlainListener) {
  auto a = startWith("first");
  ASSERT_NE(a, nullptr);
  CommandResult v12 = curl({"--tlsv1.2", "--tls-max", "1.2"});
  EXPECT_TRUE(v12.exit.success()) << v12.err;
  EXPECT_THAT(v12.err, HasSubstr("SSL connection using TLSv1.2"));
  EXPECT_THAT(v12.err, HasSubstr("ALPN: server accepted http/1.1"));
  EXPECT_THAT(v12.out, HasSubstr("\"data\""));
  CommandResult v13 = curl({"--tlsv1.3"});
  EXPECT_TRUE(v13.exit.success()) << v13.err;
  EXPECT_THAT(v13.err, HasSubstr("SSL connection using TLSv1.3"));
  EXPECT_THAT(v13.err, HasSubstr("ALPN: server accepted http/1.1"));

  CommandResult s = sClient("-tls1_2 -alpn http/1.1");
  EXPECT_THAT(s.out, HasSubstr("Protocol  : TLSv1.2"));
  EXPECT_THAT(s.out, HasSubstr("ALPN protocol: http/1.1"));
  EXPECT_THAT(s.out, HasSubstr("HTTP/1.1 200"));
  s = sClient("-tls1_3 -alpn h2,http/1.1");
  EXPECT_THAT(s.out, HasSubstr("New, TLSv1.3"));
  EXPECT_THAT(s.out, HasSubstr("ALPN protocol: http/1.1"));
  EXPECT_THAT(s.out, HasSubstr("HTTP/1.1 200"));

  // The plain listener answers beside it.
  EXPECT_EQ(a->fetch("GET", "/v1/models").status, 200);
  EXPECT_EQ(handshakes(*a, "ok"), 4);
}

TEST_F(TlsListenerTest, MinVersion13RefusesTls12) {
  auto a = startWith("first", ", min_version: \"1.3\"");
  ASSERT_NE(a, nullptr);
  CommandResult v12 = curl({"--tlsv1.2", "--tls-max", "1.2"});
  EXPECT_FALSE(v12.exit.success());
  EXPECT_THAT(v12.err, HasSubstr("alert protocol version"));
  CommandResult v13 = curl({"--tlsv1.3"});
  EXPECT_TRUE(v13.exit.success()) << v13.err;
  EXPECT_EQ(handshakes(*a, "failed"), 1);
  EXPECT_EQ(handshakes(*a, "ok"), 1);
}

TEST_F(TlsListenerTest, SessionsResumeWithTickets) {
  auto a = startWith("first");
  ASSERT_NE(a, nullptr);
  for (const std::string version : {"-tls1_2", "-tls1_3"}) {
    const std::string file = (a->dir() / ("session" + version)).string();
    CommandResult first = sClient(version + " -sess_out " + file);
    EXPECT_THAT(first.out, HasSubstr("New, TLSv1."));
    EXPECT_THAT(first.out, HasSubstr("HTTP/1.1 200"));
    CommandResult again = sClient(version + " -sess_in " + file);
    EXPECT_THAT(again.out, HasSubstr("Reused, TLSv1."));
    EXPECT_THAT(again.out, HasSubstr("HTTP/1.1 200"));
  }
  EXPECT_EQ(handshakes(*a, "resumed"), 2);
  EXPECT_EQ(handshakes(*a, "ok"), 2);
}

TEST_F(TlsListenerTest, ClientCertificatesAreRequiredAndVerified) {
  auto a = startWith("first", ", client_ca: " + certs_->path("ca.pem"));
  ASSERT_NE(a, nullptr);
  CommandResult none = curl({});
  EXPECT_FALSE(none.exit.success());
  CommandResult stranger =
      curl({"--cert", other_->path("stranger.pem"), "--key", other_->path("stranger.key")});
  EXPECT_FALSE(stranger.exit.success());
  CommandResult good =
      curl({"--cert", certs_->path("client.pem"), "--key", certs_->path("client.key")});
  EXPECT_TRUE(good.exit.success()) << good.err;
  EXPECT_THAT(good.out, HasSubstr("\"data\""));
  EXPECT_EQ(handshakes(*a, "failed"), 2);
  EXPECT_EQ(handshakes(*a, "ok"), 1);
  // The verification ran on our side: the model never saw the refused ones.
  EXPECT_EQ(demo_->stat("requests").value_or(-1), 1);
}

TEST_F(TlsListenerTest, ReloadSwapsTheCertificateAndKeepsOpenConnections) {
  auto a = startWith("first");
  ASSERT_NE(a, nullptr);
  auto kept = TlsClient::connect(tls_port_, trusting());
  ASSERT_NE(kept, nullptr);
  EXPECT_EQ(kept->peerName(), "first");
  EXPECT_THAT(kept->exchange(kRequest), HasSubstr("HTTP/1.1 200"));

  ASSERT_TRUE(installPair("second"));
  Response r = a->admin("POST", "/reload");
  ASSERT_EQ(r.status, 200) << r.body;

  // New connections get the new certificate ...
  auto fresh = TlsClient::connect(tls_port_, trusting());
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(fresh->peerName(), "second");
  EXPECT_THAT(fresh->exchange(kRequest), HasSubstr("HTTP/1.1 200"));
  // ... and the one opened before goes on, then ends with close_notify.
  EXPECT_THAT(kept->exchange(kLastRequest), HasSubstr("HTTP/1.1 200"));
  EXPECT_TRUE(kept->readsCloseNotify());
  EXPECT_EQ(handshakes(*a, "ok"), 2);
}

TEST_F(TlsListenerTest, BadPairOnReloadKeepsTheOldOneAndSaysWhy) {
  auto a = startWith("first");
  ASSERT_NE(a, nullptr);
  // The second certificate with the first key: a pair that does not match.
  std::error_code ec;
  std::filesystem::copy_file(certs_->path("second.pem"), pair_->path() / "server.pem",
                             std::filesystem::copy_options::overwrite_existing, ec);
  ASSERT_FALSE(ec) << ec.message();
  Response r = a->admin("POST", "/reload");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("does not match the certificate"));
  EXPECT_TRUE(
      a->process().waitForLine("does not match the certificate", scaled(milliseconds(5000))));
  EXPECT_EQ(a->metric(R"(airbag_config_reloads_total{result="failure"})"), 1);

  auto c = TlsClient::connect(tls_port_, trusting());
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->peerName(), "first");
  EXPECT_THAT(c->exchange(kRequest), HasSubstr("HTTP/1.1 200"));

  // A missing key file is named too.
  ASSERT_TRUE(std::filesystem::remove(pair_->path() / "server.key"));
  r = a->admin("POST", "/reload");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("cannot load a private key from"));
  auto again = TlsClient::connect(tls_port_, trusting());
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->peerName(), "first");
}

TEST_F(TlsListenerTest, PlainHttpToTheTlsPortIsToldAndClosed) {
  auto a = startWith("first");
  ASSERT_NE(a, nullptr);
  HttpClient plain;
  ASSERT_TRUE(plain.connect(tls_port_).ok());
  Response r = plain.request("GET", "/v1/models");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.json().value("error", nlohmann::json::object()).value("code", ""),
            "plain_http_to_tls_port")
      << r.body;
  EXPECT_TRUE(plain.waitForPeerClose(scaled(milliseconds(5000))));

  // Bytes that are neither TLS nor HTTP: closed, nothing else.
  HttpClient junk;
  ASSERT_TRUE(junk.connect(tls_port_).ok());
  ASSERT_TRUE(junk.sendRaw(std::string(64, '\x01')).ok());
  EXPECT_TRUE(junk.waitForPeerClose(scaled(milliseconds(5000))));

  auto c = TlsClient::connect(tls_port_, trusting());
  ASSERT_NE(c, nullptr);
  EXPECT_THAT(c->exchange(kRequest), HasSubstr("HTTP/1.1 200"));
  EXPECT_EQ(handshakes(*a, "failed"), 2);
  EXPECT_EQ(demo_->stat("requests").value_or(-1), 1);
}

TEST_F(TlsListenerTest, HandshakeIsBoundByTheHeaderTimeout) {
  auto a = startWith("first", "", "300ms");
  ASSERT_NE(a, nullptr);
  HttpClient silent;
  ASSERT_TRUE(silent.connect(tls_port_).ok());
  Stopwatch w;
  EXPECT_TRUE(silent.waitForPeerClose(scaled(milliseconds(5000))));
  EXPECT_GE(w.elapsedMs().count(), 250);
  EXPECT_TRUE(
      pollUntil([&] { return handshakes(*a, "timeout") == 1; }, scaled(milliseconds(5000))));
}

TEST_F(TlsListenerTest, TlsOnTheListenAddressItself) {
  std::string config = R"(
listen: { address: ${LISTEN}, workers: 1, tls: { cert: ${CERT}, key: ${KEY} } }
admin: { address: ${ADMIN} }
log: { level: info, access_log: off }
upstreams:
  model: { url: ${MODEL} }
routes:
  - { name: r, match: { path_prefix: / }, upstream: model }
)";
  auto a = AirbagProcess::start(config, {{"MODEL", demo_->url()},
                                         {"CERT", certs_->path("first.pem")},
                                         {"KEY", certs_->path("first.key")}});
  ASSERT_TRUE(a.ok()) << a.status();
  tls_port_ = (*a)->port();
  CommandResult ok = curl({});
  EXPECT_TRUE(ok.exit.success()) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("\"data\""));
  EXPECT_EQ((*a)->fetch("GET", "/v1/models").status, 400);  // plain HTTP there is refused
  EXPECT_TRUE((*a)->process().waitForLine("(TLS)", scaled(milliseconds(5000))));
}

TEST_F(TlsListenerTest, UnreadablePairFailsTheStartNamingTheFile) {
  // --check-config checks the keys; the files are read when serving starts.
  auto check = AirbagProcess::checkConfig(kConfig, vars());
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE(check->exit.success()) << check->out << check->err;

  auto expanded = expandPlaceholders(
      kConfig, {{"LISTEN", "127.0.0.1:0"}, {"ADMIN", "127.0.0.1:0"}, {"MODEL", demo_->url()},
                {"PAIR", pair_->path().string()}, {"EXTRA", ""},
                {"HEADER_TIMEOUT", "10s"}});
  ASSERT_TRUE(expanded.ok()) << expanded.status();
  auto file = pair_->write("airbag.yaml", *expanded);
  ASSERT_TRUE(file.ok());
  // server.pem was never installed.
  auto run = runCommand({airbagBinary(), "-c", file->string()}, scaled(milliseconds(15000)));
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_FALSE(run->exit.success());
  EXPECT_THAT(run->out + run->err,
              HasSubstr("cannot load a certificate chain from '" +
                        (pair_->path() / "server.pem").string() + "'"));
}

}  // namespace
}  // namespace airbag::testing
