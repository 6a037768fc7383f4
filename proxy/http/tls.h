// TLS for client connections (listen.tls): the server context built from the
// config, swapped whole on reload, and one non-blocking session per
// connection that StreamSocket drives over its own socket.
#pragma once

#include <openssl/ssl.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "airbag/config.h"

namespace airbag::http {

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;

// A server context for `config`: certificate chain, key and the optional
// client CA read now (blocking file reads: never on a worker loop), TLS 1.2+
// (or 1.3 only), a modern cipher list, ALPN http/1.1, session tickets. The
// session-ticket keys of `previous` (may be null) are carried over, so clients
// keep resuming across a reload. The error names the file and what is wrong.
absl::StatusOr<std::shared_ptr<SSL_CTX>> makeServerContext(const ServerTlsConfig& config,
                                                           SSL_CTX* previous);

// The context one TLS listener hands new connections. Connections keep the
// context they started with (OpenSSL counts its users), so replacing it never
// touches an open connection. Thread-safe.
class TlsServerContext {
 public:
  // Builds the first context; fails as makeServerContext does.
  static absl::StatusOr<std::unique_ptr<TlsServerContext>> create(const ServerTlsConfig& config);

  // A context for `config` to install later with set(), tickets carried over
  // from the current one. Nothing changes on failure.
  absl::StatusOr<std::shared_ptr<SSL_CTX>> prepare(const ServerTlsConfig& config) const;
  void set(std::shared_ptr<SSL_CTX> ctx);
  std::shared_ptr<SSL_CTX> current() const;

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<SSL_CTX> ctx_ ABSL_GUARDED_BY(mu_);
};

// One server-side TLS session on a non-blocking socket the caller owns.
// Worker thread only.
class TlsSession {
 public:
  // What a call that could not finish waits for.
  enum class Want { kNothing, kRead, kWrite };
  enum class Handshake { kDone, kWouldBlock, kFailed, kClosed };
  static constexpr ssize_t kWouldBlock = -1;
  static constexpr ssize_t kFailed = -2;

  // Null if OpenSSL could not make the session (no memory).
  static std::unique_ptr<TlsSession> accept(SSL_CTX* ctx, int fd);

  // Drives the handshake on. kClosed: the peer left before finishing.
  Handshake handshake();
  bool established() const { return established_; }
  bool resumed() const;
  // The handshake failed because the peer spoke plain HTTP.
  bool plainHttp() const { return plain_http_; }

  // Decrypted bytes (> 0), 0 at the end of the stream (close_notify or a
  // bare TCP close), kWouldBlock (want() says on what) or kFailed.
  ssize_t read(char* buf, size_t capacity);
  // Encrypts and sends from `data`: the count taken (> 0), kWouldBlock or
  // kFailed. After kWouldBlock the next call must start with the same bytes
  // (it may pass more, and from another address).
  ssize_t write(std::string_view data);
  Want want() const { return want_; }
  // Bytes OpenSSL has read off the socket and not handed out yet: the socket
  // will not say it is readable for them.
  bool buffered() const { return SSL_has_pending(ssl_.get()) == 1; }
  // Sends close_notify, once, without waiting for the peer's; skipped after
  // a fatal error.
  void shutdown();

 private:
  explicit TlsSession(SslPtr ssl) : ssl_(std::move(ssl)) {}
  // Sorts out an SSL_* call's failure: kWouldBlock, 0 (the end) or kFailed.
  ssize_t failure(int ret);

  SslPtr ssl_;
  Want want_ = Want::kNothing;
  bool established_ = false;
  bool fatal_ = false;
  bool plain_http_ = false;
  bool shut_ = false;
};

}  // namespace airbag::http
