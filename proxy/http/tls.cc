// Server-side TLS; see tls.h.
#include "proxy/http/tls.h"

#include <openssl/err.h>
#include <openssl/x509err.h>

#include <algorithm>
#include <cerrno>
#include <climits>

#include "absl/strings/str_cat.h"

namespace airbag::http {
namespace {

// TLS 1.2 suites with forward secrecy and AEAD only (Mozilla's "intermediate"
// list without finite-field DHE). TLS 1.3 keeps OpenSSL's own three suites.
constexpr char kTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// Session-ticket key material: name, HMAC secret, AES key (OpenSSL 3).
constexpr size_t kTicketKeysBytes = 80;

constexpr unsigned char kSessionContext[] = "airbag";

// What OpenSSL's error queue says, oldest first; the queue is left empty.
std::string sslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(e);
    char buf[256];
    if (reason == nullptr) {
      ERR_error_string_n(e, buf, sizeof(buf));
      reason = buf;
    }
    if (!out.empty()) out += "; ";
    out += reason;
  }
  return out.empty() ? "unknown error" : out;
}

absl::Status failed(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", sslErrors()));
}

// ALPN: http/1.1 when the client offers it; otherwise no ALPN at all rather
// than a failed handshake (a client offering only h2 may still fall back).
int selectAlpn(SSL*, const unsigned char** out, unsigned char* out_len, const unsigned char* in,
               unsigned int in_len, void*) {
  static const unsigned char kHttp11[] = "\x08http/1.1";
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, out_len, kHttp11, sizeof(kHttp11) - 1, in, in_len) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

absl::StatusOr<std::shared_ptr<SSL_CTX>> makeServerContext(const ServerTlsConfig& config,
                                                           SSL_CTX* previous) {
  ERR_clear_error();
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_server_method()), SslCtxFree());
  if (!ctx) return failed("listen.tls: cannot make a TLS context");
  SSL_CTX* c = ctx.get();
  SSL_CTX_set_min_proto_version(c, config.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
  // No renegotiation (a client could make us spend CPU at will); a peer that
  // closes without close_notify is a normal end: HTTP framing guards the data.
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                             SSL_OP_NO_COMPRESSION);
  // Partial writes: one record per SSL_write, so unsent bytes stay ours to
  // queue. Released buffers: an idle keep-alive connection holds no 34 KiB.
  SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_RELEASE_BUFFERS);
  // Read whole records (and what follows) in one recv, not header then body.
  SSL_CTX_set_read_ahead(c, 1);
  if (SSL_CTX_set_cipher_list(c, kTls12Ciphers) != 1)
    return failed("listen.tls: cannot set the cipher list");
  SSL_CTX_set_session_id_context(c, kSessionContext, sizeof(kSessionContext) - 1);
  SSL_CTX_set_alpn_select_cb(c, &selectAlpn, nullptr);

  if (SSL_CTX_use_certificate_chain_file(c, config.cert.c_str()) != 1)
    return failed(absl::StrCat("listen.tls.cert: cannot load a certificate chain from '",
                               config.cert, "'"));
  // OpenSSL checks the key against the certificate as it loads it.
  if (SSL_CTX_use_PrivateKey_file(c, config.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(c) != 1) {
    unsigned long e = ERR_peek_last_error();
    bool mismatch = ERR_GET_LIB(e) == ERR_LIB_X509 &&
                    (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH ||
                     ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH);
    if (mismatch)
      return failed(absl::StrCat("listen.tls: the key in '", config.key,
                                 "' does not match the certificate in '", config.cert, "'"));
    return failed(
        absl::StrCat("listen.tls.key: cannot load a private key from '", config.key, "'"));
  }
  if (!config.client_ca.empty()) {
    if (SSL_CTX_load_verify_locations(c, config.client_ca.c_str(), nullptr) != 1)
      return failed(absl::StrCat("listen.tls.client_ca: cannot load CA certificates from '",
                                 config.client_ca, "'"));
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(config.client_ca.c_str());
    if (names == nullptr)
      return failed(absl::StrCat("listen.tls.client_ca: no CA certificate in '",
                                 config.client_ca, "'"));
    SSL_CTX_set_client_CA_list(c, names);  // takes ownership
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  if (previous != nullptr) {
    unsigned char keys[kTicketKeysBytes];
    if (SSL_CTX_get_tlsext_ticket_keys(previous, keys, sizeof(keys)) == 1)
      SSL_CTX_set_tlsext_ticket_keys(c, keys, sizeof(keys));
    OPENSSL_cleanse(keys, sizeof(keys));
  }
  ERR_clear_error();
  return ctx;
}

absl::StatusOr<std::unique_ptr<TlsServerContext>> TlsServerContext::create(
    const ServerTlsConfig& config) {
  auto ctx = makeServerContext(config, nullptr);
  if (!ctx.ok()) return ctx.status();
  auto out = std::make_unique<TlsServerContext>();
  out->set(*std::move(ctx));
  return out;
}

absl::StatusOr<std::shared_ptr<SSL_CTX>> TlsServerContext::prepare(
    const ServerTlsConfig& config) const {
  std::shared_ptr<SSL_CTX> now = current();
  return makeServerContext(config, now.get());
}

void TlsServerContext::set(std::shared_ptr<SSL_CTX> ctx) {
  absl::MutexLock l(&mu_);
  ctx_ = std::move(ctx);
}

std::shared_ptr<SSL_CTX> TlsServerContext::current() const {
  absl::MutexLock l(&mu_);
  return ctx_;
}

std::unique_ptr<TlsSession> TlsSession::accept(SSL_CTX* ctx, int fd) {
  SslPtr ssl(SSL_new(ctx));
  if (!ssl || SSL_set_fd(ssl.get(), fd) != 1) {
    ERR_clear_error();
    return nullptr;
  }
  SSL_set_accept_state(ssl.get());
  return std::unique_ptr<TlsSession>(new TlsSession(std::move(ssl)));
}

TlsSession::Handshake TlsSession::handshake() {
  if (established_) return Handshake::kDone;
  ERR_clear_error();
  int r = SSL_do_handshake(ssl_.get());
  if (r == 1) {
    established_ = true;
    want_ = Want::kNothing;
    return Handshake::kDone;
  }
  if (SSL_get_error(ssl_.get(), r) == SSL_ERROR_SSL &&
      ERR_GET_REASON(ERR_peek_error()) == SSL_R_HTTP_REQUEST)
    plain_http_ = true;
  ssize_t f = failure(r);
  if (f == kWouldBlock) return Handshake::kWouldBlock;
  return f == 0 ? Handshake::kClosed : Handshake::kFailed;
}

bool TlsSession::resumed() const { return SSL_session_reused(ssl_.get()) == 1; }

ssize_t TlsSession::failure(int ret) {
  int error = SSL_get_error(ssl_.get(), ret);
  int saved_errno = errno;
  ssize_t out = kFailed;
  switch (error) {
    case SSL_ERROR_WANT_READ:
      want_ = Want::kRead;
      out = kWouldBlock;
      break;
    case SSL_ERROR_WANT_WRITE:
      want_ = Want::kWrite;
      out = kWouldBlock;
      break;
    case SSL_ERROR_ZERO_RETURN:  // close_notify, or a bare close (IGNORE_UNEXPECTED_EOF)
      out = 0;
      break;
    case SSL_ERROR_SYSCALL:
      fatal_ = true;
      out = (ERR_peek_error() == 0 && saved_errno == 0) ? 0 : kFailed;
      break;
    default:
      fatal_ = true;
      break;
  }
  // The thread's error queue is shared with libcurl on the same worker: it
  // must not see our leftovers.
  ERR_clear_error();
  errno = saved_errno;
  return out;
}

ssize_t TlsSession::read(char* buf, size_t capacity) {
  ERR_clear_error();
  int n = SSL_read(ssl_.get(), buf, static_cast<int>(std::min<size_t>(capacity, INT_MAX)));
  if (n > 0) return n;
  return failure(n);
}

ssize_t TlsSession::write(std::string_view data) {
  size_t done = 0;
  while (done < data.size()) {
    ERR_clear_error();
    int n = SSL_write(ssl_.get(), data.data() + done,
                      static_cast<int>(std::min<size_t>(data.size() - done, INT_MAX)));
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    ssize_t f = failure(n);
    // Bytes already taken count; a failure shows again on the next call.
    if (done > 0) break;
    return f == kWouldBlock ? kWouldBlock : kFailed;
  }
  return static_cast<ssize_t>(done);
}

void TlsSession::shutdown() {
  if (!established_ || fatal_ || shut_) return;
  shut_ = true;
  ERR_clear_error();
  SSL_shutdown(ssl_.get());
  ERR_clear_error();
}

}  // namespace airbag::http
