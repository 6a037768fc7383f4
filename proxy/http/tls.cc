// Server- and client-side TLS; see tls.h.
#include "proxy/http/tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <openssl/x509err.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <fstream>
#include <sstream>

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

// The one protocol either side offers by ALPN, in its wire form.
constexpr unsigned char kAlpnHttp11[] = "\x08http/1.1";

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
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, out_len, kAlpnHttp11, sizeof(kAlpnHttp11) - 1, in, in_len) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

// The settings both sides share: TLS 1.2+, no renegotiation (a peer could
// make us spend CPU at will), no compression, a peer that closes without
// close_notify is a normal end (HTTP framing guards the data); partial writes
// (one record per SSL_write, so unsent bytes stay ours to queue); released
// buffers (an idle keep-alive connection holds no 34 KiB); whole records read
// in one recv, not header then body.
bool commonSettings(SSL_CTX* c, int min_version) {
  SSL_CTX_set_min_proto_version(c, min_version);
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                             SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_read_ahead(c, 1);
  return SSL_CTX_set_cipher_list(c, kTls12Ciphers) == 1;
}

// A client connection's new session (TLS 1.3: a ticket that arrives after the
// handshake) goes to its pool's cache, which the SSL's app data points at.
int storeSession(SSL* ssl, SSL_SESSION* session) {
  auto* cache = static_cast<TlsSessionCache*>(SSL_get_app_data(ssl));
  if (cache == nullptr || SSL_SESSION_is_resumable(session) != 1) return 0;
  cache->put(session);
  return 1;  // the cache owns it now
}

bool isIpAddress(const std::string& name) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const ClientTls>> makeClientTls(
    const ClientTlsSettings& settings, const std::string& what,
    std::shared_ptr<const ClientTls> previous) {
  std::string pem;
  if (!settings.ca.empty()) {
    std::ifstream in(settings.ca, std::ios::binary);
    std::stringstream text;
    if (in) text << in.rdbuf();
    if (!in || text.str().empty())
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": cannot read CA certificates from '", settings.ca, "'"));
    pem = text.str();
  }
  if (previous && previous->settings.ca == settings.ca &&
      previous->settings.verify == settings.verify && previous->ca_pem == pem)
    return previous;
  ERR_clear_error();
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_client_method()), SslCtxFree());
  if (!ctx) return failed(absl::StrCat(what, ": cannot make a TLS context"));
  SSL_CTX* c = ctx.get();
  if (!commonSettings(c, TLS1_2_VERSION))
    return failed(absl::StrCat(what, ": cannot set the cipher list"));
  SSL_CTX_set_alpn_protos(c, kAlpnHttp11, sizeof(kAlpnHttp11) - 1);
  // Sessions are kept per pool (TlsSessionCache), not in the context.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(c, &storeSession);
  if (settings.verify) {
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
    if (settings.ca.empty()) {
      if (SSL_CTX_set_default_verify_paths(c) != 1)
        return failed(absl::StrCat(what, ": cannot load the system's CA certificates"));
    } else if (SSL_CTX_load_verify_locations(c, settings.ca.c_str(), nullptr) != 1) {
      return failed(
          absl::StrCat(what, ": cannot load CA certificates from '", settings.ca, "'"));
    }
  } else {
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
  }
  ERR_clear_error();
  auto out = std::make_shared<ClientTls>();
  out->settings = settings;
  out->ca_pem = std::move(pem);
  out->ctx = std::move(ctx);
  return std::shared_ptr<const ClientTls>(std::move(out));
}

absl::StatusOr<std::shared_ptr<SSL_CTX>> makeServerContext(const ServerTlsConfig& config,
                                                           SSL_CTX* previous) {
  ERR_clear_error();
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_server_method()), SslCtxFree());
  if (!ctx) return failed("listen.tls: cannot make a TLS context");
  SSL_CTX* c = ctx.get();
  if (!commonSettings(c, config.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION))
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

std::unique_ptr<TlsSession> TlsSession::connect(const TlsClientTarget& target, int fd) {
  SslPtr ssl(SSL_new(target.ctx));
  if (!ssl || SSL_set_fd(ssl.get(), fd) != 1) {
    ERR_clear_error();
    return nullptr;
  }
  SSL* s = ssl.get();
  SSL_set_connect_state(s);
  const bool ip = isIpAddress(target.name);
  // RFC 6066: SNI carries host names only, never an address.
  if (!ip && !target.name.empty()) SSL_set_tlsext_host_name(s, target.name.c_str());
  if ((SSL_get_verify_mode(s) & SSL_VERIFY_PEER) != 0 && !target.name.empty()) {
    X509_VERIFY_PARAM* param = SSL_get0_param(s);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, target.name.c_str())
                : X509_VERIFY_PARAM_set1_host(param, target.name.c_str(), 0);
    if (ok != 1) {
      ERR_clear_error();
      return nullptr;
    }
  }
  if (target.sessions != nullptr) {
    SSL_set_app_data(s, target.sessions);
    if (SSL_SESSION* last = target.sessions->get()) SSL_set_session(s, last);
  }
  ERR_clear_error();
  return std::unique_ptr<TlsSession>(new TlsSession(std::move(ssl)));
}

void TlsSession::noteHandshakeError(int ret) {
  int e = SSL_get_error(ssl_.get(), ret);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
  long verdict = SSL_get_verify_result(ssl_.get());
  if (verdict != X509_V_OK) {
    error_ = absl::StrCat("certificate verify failed: ", X509_verify_cert_error_string(verdict));
  } else if (e == SSL_ERROR_SSL && ERR_peek_error() != 0) {
    const char* reason = ERR_reason_error_string(ERR_peek_error());
    error_ = absl::StrCat("TLS handshake failed: ", reason ? reason : "unknown error");
  } else {
    error_ = "the peer closed the connection during the TLS handshake";
  }
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
  noteHandshakeError(r);
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
