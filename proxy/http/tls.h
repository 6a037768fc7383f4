// TLS for both sides of the data plane: the server context of listen.tls
// (swapped whole on reload), the client context of an https upstream or a
// rediss:// shared tier, and one non-blocking session per connection that
// StreamSocket drives over its own socket.
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
struct SslSessionFree {
  void operator()(SSL_SESSION* s) const { SSL_SESSION_free(s); }
};

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

// What a client context checks: `ca` (a PEM bundle; empty: the system's
// store) and whether the peer's certificate and name are verified at all.
struct ClientTlsSettings {
  std::string ca;
  bool verify = true;
};

// A client context (TLS 1.2+, ALPN http/1.1, the listener's cipher list),
// with the CA file's text it was built from so a reload can tell whether it
// changed. Shared by every worker: OpenSSL makes SSL_CTX safe for that.
struct ClientTls {
  ClientTlsSettings settings;
  std::string ca_pem;  // the CA file as read; empty with the system's store
  std::shared_ptr<SSL_CTX> ctx;
};

// Builds a client context for `settings` (reads the CA file now: blocking,
// never on a worker loop). When `previous` (may be null) was built from the
// same settings and the same CA file content it is returned as is, so pools
// made from it (and their connections) survive a reload. Errors start with
// `what` (e.g. "upstream 'model' tls.ca") and name the file.
absl::StatusOr<std::shared_ptr<const ClientTls>> makeClientTls(
    const ClientTlsSettings& settings, const std::string& what,
    std::shared_ptr<const ClientTls> previous);

// The last session one pool of client connections got from its server, so
// the next connection resumes it (an abbreviated handshake) instead of a
// full one. Worker thread only; must outlive the sessions that store into it.
class TlsSessionCache {
 public:
  SSL_SESSION* get() const { return session_.get(); }
  // Takes ownership.
  void put(SSL_SESSION* session) { session_.reset(session); }
  void clear() { session_.reset(); }

 private:
  std::unique_ptr<SSL_SESSION, SslSessionFree> session_;
};

// Where a client connection goes: the context, the name it is for (sent as
// SNI unless it is an IP address, and checked against the certificate when
// the context verifies), and the pool's session cache (may be null).
struct TlsClientTarget {
  SSL_CTX* ctx = nullptr;
  std::string name;
  TlsSessionCache* sessions = nullptr;
};

// One TLS session (either side) on a non-blocking socket the caller owns.
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
  // The client side of a connection to `target`; null as above.
  static std::unique_ptr<TlsSession> connect(const TlsClientTarget& target, int fd);

  // Drives the handshake on. kClosed: the peer left before finishing.
  Handshake handshake();
  bool established() const { return established_; }
  bool resumed() const;
  // The handshake failed because the peer spoke plain HTTP.
  bool plainHttp() const { return plain_http_; }
  // Why the handshake failed, in words (the certificate check's verdict
  // first); empty before a failure.
  const std::string& error() const { return error_; }

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
  // Notes why a handshake failed, before failure() empties OpenSSL's queue.
  void noteHandshakeError(int ret);
  // Sorts out an SSL_* call's failure: kWouldBlock, 0 (the end) or kFailed.
  ssize_t failure(int ret);

  SslPtr ssl_;
  Want want_ = Want::kNothing;
  bool established_ = false;
  bool fatal_ = false;
  bool plain_http_ = false;
  bool shut_ = false;
  std::string error_;
};

}  // namespace airbag::http
