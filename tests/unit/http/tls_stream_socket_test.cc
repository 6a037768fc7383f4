// Tests for StreamSocket speaking TLS (the server side of listen.tls) on a real
// event loop, against an OpenSSL client on the other end of a socket pair:
// the handshake and ALPN, reads and writes both ways, a large write held back
// by a slow reader (OpenSSL's retry rules), close_notify both ways, plain
// HTTP refused, and a context that does not load.
#include <event2/event.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "proxy/http/stream_socket.h"
#include "tests/unit/http/socket_test_util.h"
#include "proxy/http/tls.h"

namespace airbag::http {
namespace {

using testing::EventBasePtr;
using testing::pattern;

// A self-signed P-256 certificate for CN=`cn`, written as PEM to `dir`.
void writePair(const std::filesystem::path& dir, const std::string& name, const char* cn) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  ASSERT_NE(key, nullptr);
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME* n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                             -1, -1, 0);
  X509_set_issuer_name(x, n);
  ASSERT_GT(X509_sign(x, key, EVP_sha256()), 0);
  FILE* f = std::fopen((dir / (name + ".pem")).c_str(), "w");
  PEM_write_X509(f, x);
  std::fclose(f);
  f = std::fopen((dir / (name + ".key")).c_str(), "w");
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  X509_free(x);
  EVP_PKEY_free(key);
}

class Recorder : public StreamSocket::Listener {
 public:
  void onReadable() override {
    ++readable;
    if (on_readable) on_readable();
  }
  void onWriteError(int error) override { write_error = error; }
  std::function<void()> on_readable;
  int readable = 0;
  int write_error = 0;
};

class TlsStreamSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("airbag-tls-unit-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    writePair(dir_, "a", "alpha");
    writePair(dir_, "b", "beta");
    ServerTlsConfig c;
    c.cert = (dir_ / "a.pem").string();
    c.key = (dir_ / "a.key").string();
    auto ctx = makeServerContext(c, nullptr);
    ASSERT_TRUE(ctx.ok()) << ctx.status();
    server_ctx_ = *ctx;
    base_.reset(event_base_new());
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    mine_ = sv[0];
    peer_ = sv[1];
    client_ctx_ = SSL_CTX_new(TLS_client_method());
    static const unsigned char kAlpn[] = "\x02h2\x08http/1.1";
    SSL_CTX_set_alpn_protos(client_ctx_, kAlpn, sizeof(kAlpn) - 1);
    client_ = SSL_new(client_ctx_);
    SSL_set_fd(client_, peer_);
    SSL_set_connect_state(client_);
  }
  void TearDown() override {
    sock_.reset();
    SSL_free(client_);
    SSL_CTX_free(client_ctx_);
    ::close(peer_);
    std::filesystem::remove_all(dir_);
  }

  StreamSocket& adopt(bool small_send_buffer = false) {
    int small = 4096;
    if (small_send_buffer) ::setsockopt(mine_, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    sock_ = std::make_unique<StreamSocket>(base_.get(), &rec_);
    EXPECT_TRUE(sock_->adopt(mine_, server_ctx_.get()));
    sock_->setReading(true);
    // The server side reads whatever comes into got_.
    rec_.on_readable = [this] {
      char buf[65536];
      ssize_t n = sock_->read(buf, sizeof(buf));
      if (n > 0) got_.append(buf, static_cast<size_t>(n));
      if (n == 0) ended_ = true;
      if (n == StreamSocket::kFailed) failed_ = true;
    };
    return *sock_;
  }

  bool runUntil(const std::function<bool()>& done) { return testing::runUntil(base_.get(), done); }

  bool handshake() {
    return runUntil([&] {
      int r = SSL_do_handshake(client_);
      ERR_clear_error();
      return r == 1 && sock_->handshakeDone();
    });
  }

  // What the client can decrypt now (it reads until it would block).
  std::string clientRead(bool* closed = nullptr) {
    std::string out;
    char buf[65536];
    for (;;) {
      int n = SSL_read(client_, buf, sizeof(buf));
      if (n > 0) {
        out.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (closed && SSL_get_error(client_, n) == SSL_ERROR_ZERO_RETURN) *closed = true;
      ERR_clear_error();
      return out;
    }
  }

  std::filesystem::path dir_;
  std::shared_ptr<SSL_CTX> server_ctx_;
  EventBasePtr base_;
  Recorder rec_;
  std::unique_ptr<StreamSocket> sock_;
  SSL_CTX* client_ctx_ = nullptr;
  SSL* client_ = nullptr;
  int mine_ = -1;
  int peer_ = -1;
  std::string got_;
  bool ended_ = false;
  bool failed_ = false;
};

TEST_F(TlsStreamSocketTest, HandshakeAlpnAndBytesBothWays) {
  StreamSocket& s = adopt();
  // Written before the handshake ends: held until it does.
  s.write({"early "});
  ASSERT_TRUE(handshake());
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(client_, &alpn, &alpn_len);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(alpn), alpn_len), "http/1.1");
  EXPECT_FALSE(s.resumed());

  ASSERT_EQ(SSL_write(client_, "GET / HTTP/1.1\r\n\r\n", 18), 18);
  ASSERT_TRUE(runUntil([&] { return got_.size() == 18; }));
  EXPECT_EQ(got_, "GET / HTTP/1.1\r\n\r\n");

  s.write({"head ", "body ", "tail"});
  std::string seen;
  ASSERT_TRUE(runUntil([&] {
    seen += clientRead();
    return seen.size() >= 20;
  }));
  EXPECT_EQ(seen, "early head body tail");
}

TEST_F(TlsStreamSocketTest, LargeWritesWaitForASlowReaderAndArriveWhole) {
  StreamSocket& s = adopt(/*small_send_buffer=*/true);
  ASSERT_TRUE(handshake());
  const std::string a = pattern(700 * 1024, 'a');
  const std::string b = pattern(900 * 1024, 'k');
  s.write({a});
  EXPECT_GT(s.pending(), 0u);  // the reader has not read: most of it waits
  s.write({"-"}, StreamSocket::Keep::kCopy);
  s.write({b}, StreamSocket::Keep::kBorrow);
  std::string seen;
  ASSERT_TRUE(runUntil([&] {
    seen += clientRead();
    return s.pending() == 0 && seen.size() == a.size() + 1 + b.size();
  }));
  EXPECT_TRUE(seen == a + "-" + b);
  EXPECT_EQ(rec_.write_error, 0);
}

TEST_F(TlsStreamSocketTest, CloseSendsCloseNotifyAndReadsTheClients) {
  StreamSocket& s = adopt();
  ASSERT_TRUE(handshake());
  // The client's close_notify is the end of the stream.
  SSL_shutdown(client_);
  ASSERT_TRUE(runUntil([&] { return ended_; }));
  EXPECT_FALSE(failed_);
  s.close();
  bool closed = false;
  clientRead(&closed);
  EXPECT_TRUE(closed) << "no close_notify from the server";
}

TEST_F(TlsStreamSocketTest, PlainHttpFailsTheHandshakeAndIsRecognised) {
  StreamSocket& s = adopt();
  const char kGet[] = "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(peer_, kGet, sizeof(kGet) - 1, 0), static_cast<ssize_t>(sizeof(kGet) - 1));
  ASSERT_TRUE(runUntil([&] { return failed_; }));
  EXPECT_TRUE(s.plainHttp());
  EXPECT_FALSE(s.handshakeDone());
  // Answered in plain HTTP once TLS is dropped.
  s.dropTls();
  s.write({"HTTP/1.1 400 Bad Request\r\n\r\n"});
  char buf[64];
  ASSERT_TRUE(runUntil([&] { return ::recv(peer_, buf, sizeof(buf), MSG_PEEK) > 0; }));
  EXPECT_EQ(std::string(buf, 12), "HTTP/1.1 400");
}

TEST_F(TlsStreamSocketTest, AClientLeavingMidHandshakeIsTheEndNotAFailure) {
  adopt();
  ::shutdown(peer_, SHUT_WR);
  ASSERT_TRUE(runUntil([&] { return ended_ || failed_; }));
  EXPECT_TRUE(ended_);
}

TEST_F(TlsStreamSocketTest, ContextErrorsNameTheFile) {
  ServerTlsConfig c;
  c.cert = (dir_ / "a.pem").string();
  c.key = (dir_ / "b.key").string();
  auto mismatch = makeServerContext(c, nullptr);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.status().message().find("does not match the certificate in '" + c.cert),
            std::string_view::npos)
      << mismatch.status();
  c.key = (dir_ / "missing.key").string();
  auto missing = makeServerContext(c, nullptr);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("cannot load a private key from '" + c.key),
            std::string_view::npos)
      << missing.status();
  c.key = (dir_ / "a.key").string();
  c.client_ca = (dir_ / "missing-ca.pem").string();
  auto no_ca = makeServerContext(c, nullptr);
  ASSERT_FALSE(no_ca.ok());
  EXPECT_NE(no_ca.status().message().find("listen.tls.client_ca"), std::string_view::npos);
}

TEST_F(TlsStreamSocketTest, AReplacedContextKeepsTheTicketKeys) {
  ServerTlsConfig c;
  c.cert = (dir_ / "b.pem").string();
  c.key = (dir_ / "b.key").string();
  auto next = makeServerContext(c, server_ctx_.get());
  ASSERT_TRUE(next.ok()) << next.status();
  unsigned char old_keys[80], new_keys[80];
  ASSERT_EQ(SSL_CTX_get_tlsext_ticket_keys(server_ctx_.get(), old_keys, sizeof(old_keys)), 1);
  ASSERT_EQ(SSL_CTX_get_tlsext_ticket_keys(next->get(), new_keys, sizeof(new_keys)), 1);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(old_keys), 80),
            std::string(reinterpret_cast<char*>(new_keys), 80));
}

}  // namespace
}  // namespace airbag::http
