// Non-blocking socket I/O for the data plane; see stream_socket.h.
#include "proxy/http/stream_socket.h"

#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>

#include "proxy/http/tls.h"

namespace airbag::http {
namespace {

// An output buffer that one slow client grew past this is freed once drained.
constexpr size_t kMaxKeptOutput = 256 * 1024;

// Small pieces written together go out as one TLS record: one MAC, one send.
constexpr size_t kTlsCoalesceBytes = 16 * 1024;

bool wouldBlock(int error) { return error == EAGAIN || error == EWOULDBLOCK || error == EINTR; }

}  // namespace

void EventFree::operator()(event* e) const { event_free(e); }

StreamSocket::StreamSocket(event_base* base, Listener* listener)
    : base_(base), listener_(listener) {}

StreamSocket::~StreamSocket() { close(); }

bool StreamSocket::makeEvents() {
  read_ev_.reset(event_new(base_, fd_, EV_READ | EV_PERSIST, &StreamSocket::readCb, this));
  write_ev_.reset(event_new(base_, fd_, EV_WRITE | EV_PERSIST, &StreamSocket::writeCb, this));
  return read_ev_ && write_ev_;
}

bool StreamSocket::adopt(int fd, ssl_ctx_st* tls) {
  close();
  fd_ = fd;
  if (tls != nullptr) {
    tls_ = TlsSession::accept(tls, fd);
    if (!tls_) {
      close();
      return false;
    }
  }
  if (makeEvents()) return true;
  close();
  return false;
}

bool StreamSocket::connect(const sockaddr* address, socklen_t length, absl::Duration timeout,
                           const TlsClientTarget* tls) {
  close();
  fd_ = ::socket(address->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return false;
  if (!makeEvents()) {
    close();
    return false;
  }
  if (tls != nullptr) {
    // Made now, so output written while connecting is kept for TLS (owned,
    // never borrowed); the handshake starts once TCP is up.
    tls_ = TlsSession::connect(*tls, fd_);
    if (!tls_) {
      close();
      return false;
    }
    connect_deadline_ = absl::Now() + timeout;
  }
  if (address->sa_family == AF_INET || address->sa_family == AF_INET6) {
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  connecting_ = true;
  if (::connect(fd_, address, length) == 0 || errno == EINPROGRESS) {
    // Writable once the handshake ends either way; the timeout bounds the wait.
    timeval tv = absl::ToTimeval(timeout);
    event_add(write_ev_.get(), &tv);
    writing_ = true;
  } else {
    connect_error_ = errno;  // refused at once: reported from the loop like any other end
    event_active(write_ev_.get(), EV_WRITE, 0);
  }
  return true;
}

ssize_t StreamSocket::read(char* buf, size_t capacity) {
  if (tls_) return readTls(buf, capacity);
  ssize_t n = ::recv(fd_, buf, capacity, 0);
  if (n >= 0) return n;
  return wouldBlock(errno) ? kWouldBlock : kFailed;
}

bool StreamSocket::handshakeDone() const { return !tls_ || tls_->established(); }
bool StreamSocket::resumed() const { return tls_ && tls_->resumed(); }
bool StreamSocket::plainHttp() const { return tls_ && tls_->plainHttp(); }
std::string StreamSocket::tlsError() const { return tls_ ? tls_->error() : std::string(); }

void StreamSocket::dropTls() {
  tls_.reset();
  tls_read_wants_write_ = false;
  tls_write_wants_read_ = false;
}

ssize_t StreamSocket::readTls(char* buf, size_t capacity) {
  if (!tls_->established()) {
    switch (tls_->handshake()) {
      case TlsSession::Handshake::kWouldBlock:
        waitForTls();
        return kWouldBlock;
      case TlsSession::Handshake::kFailed:
        if (errno == 0) errno = EPROTO;
        return kFailed;
      case TlsSession::Handshake::kClosed:
        return 0;
      case TlsSession::Handshake::kDone:
        if (pending() > 0) armWrite();  // output that waited for the handshake
        break;
    }
  }
  ssize_t n = tls_->read(buf, capacity);
  if (n == TlsSession::kWouldBlock) {
    waitForTls();
    return kWouldBlock;
  }
  if (n > 0) replayBuffered();
  return n;
}

void StreamSocket::waitForTls() {
  if (tls_->want() != TlsSession::Want::kWrite) return;  // the read event is on already
  tls_read_wants_write_ = true;
  armWrite();
}

void StreamSocket::replayBuffered() {
  // OpenSSL reads ahead: a record it holds does not make the socket readable.
  if (reading_ && tls_ && tls_->buffered()) event_active(read_ev_.get(), EV_READ, 0);
}

void StreamSocket::setReading(bool on) {
  read_wanted_ = on;
  if (handshaking_) return;  // the handshake owns the read event until it ends
  if (on == reading_ || !read_ev_) return;
  if (on)
    event_add(read_ev_.get(), nullptr);
  else
    event_del(read_ev_.get());
  reading_ = on;
  if (on) replayBuffered();
}

void StreamSocket::write(std::initializer_list<std::string_view> parts, Keep keep) {
  if (fd_ < 0) return;
  size_t skip = 0;
  // TLS output waits for the handshake (and for a write that needs a read).
  bool tls_waits = tls_ && (!tls_->established() || tls_write_wants_read_);
  if (pending() == 0 && !connecting_ && tls_) {
    if (!tls_waits) skip = writeTlsNow(parts);
  } else if (pending() == 0 && !connecting_) {
    iovec iov[4];
    size_t n = 0;
    assert(parts.size() <= 4);
    for (std::string_view p : parts)
      if (!p.empty() && n < 4) iov[n++] = {const_cast<char*>(p.data()), p.size()};
    if (n == 0) return;
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    ssize_t w = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) skip = static_cast<size_t>(w);
    // On an error the rest is queued; the write event then finds the error
    // again and reports it from the loop.
  }
  bool queued = false;
  for (std::string_view p : parts) {
    if (skip >= p.size()) {
      skip -= p.size();
      continue;
    }
    queue(p.substr(skip), keep);
    skip = 0;
    queued = true;
  }
  if (queued && !tls_waits) armWrite();
}

size_t StreamSocket::writeTlsNow(std::initializer_list<std::string_view> parts) {
  size_t total = 0;
  size_t pieces = 0;
  for (std::string_view p : parts) {
    total += p.size();
    pieces += p.empty() ? 0 : 1;
  }
  if (pieces > 1 && total <= kTlsCoalesceBytes) {
    char buf[kTlsCoalesceBytes];
    size_t at = 0;
    for (std::string_view p : parts) {
      if (p.empty()) continue;
      std::memcpy(buf + at, p.data(), p.size());
      at += p.size();
    }
    ssize_t n = tls_->write(std::string_view(buf, total));
    return n > 0 ? static_cast<size_t>(n) : 0;
  }
  size_t taken = 0;
  for (std::string_view p : parts) {
    if (p.empty()) continue;
    ssize_t n = tls_->write(p);
    if (n <= 0) break;  // the rest is queued; the write event retries (or finds the error)
    taken += static_cast<size_t>(n);
    if (static_cast<size_t>(n) < p.size()) break;
  }
  return taken;
}

void StreamSocket::queue(std::string_view part, Keep keep) {
  if (!borrowed_.empty()) {  // what comes after a borrowed piece follows it in out_
    out_.append(borrowed_);
    borrowed_ = {};
  }
  // TLS keeps every queued byte in one run: a write OpenSSL could not finish
  // must be retried with at least the bytes it was first given.
  if (keep == Keep::kBorrow && !tls_) {
    borrowed_ = part;
    return;
  }
  if (out_off_ > 0 && out_off_ >= out_.size() / 2) {
    out_.erase(0, out_off_);
    out_off_ = 0;
  }
  out_.append(part);
}

void StreamSocket::armWrite() {
  if (writing_ || !write_ev_) return;
  event_add(write_ev_.get(), nullptr);
  writing_ = true;
}

bool StreamSocket::flush() {
  if (tls_) return flushTls();
  std::string_view owned(out_);
  owned.remove_prefix(out_off_);
  iovec iov[2];
  size_t n = 0;
  if (!owned.empty()) iov[n++] = {const_cast<char*>(owned.data()), owned.size()};
  if (!borrowed_.empty()) iov[n++] = {const_cast<char*>(borrowed_.data()), borrowed_.size()};
  if (n == 0) return true;
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = n;
  ssize_t w = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (w < 0) return wouldBlock(errno);
  consume(static_cast<size_t>(w));
  return true;
}

void StreamSocket::consume(size_t sent) {
  size_t from_owned = std::min(sent, out_.size() - out_off_);
  out_off_ += from_owned;
  borrowed_.remove_prefix(sent - from_owned);
  if (out_off_ == out_.size()) {
    out_.clear();
    out_off_ = 0;
    if (out_.capacity() > kMaxKeptOutput) std::string().swap(out_);
  }
}

bool StreamSocket::flushTls() {
  if (!tls_->established()) return true;  // the handshake goes first
  std::string_view owned(out_);  // no borrowed bytes under TLS: see queue()
  owned.remove_prefix(out_off_);
  if (owned.empty()) return true;
  ssize_t n = tls_->write(owned);
  if (n == TlsSession::kFailed) {
    if (errno == 0) errno = EPROTO;
    return false;
  }
  if (n == TlsSession::kWouldBlock) {
    if (tls_->want() == TlsSession::Want::kRead) {
      // Rare (renegotiation is off): the next read event re-arms the write.
      tls_write_wants_read_ = true;
      event_del(write_ev_.get());
      writing_ = false;
    }
    return true;
  }
  consume(static_cast<size_t>(n));
  return true;
}

void StreamSocket::readCb(int, short what, void* arg) {
  auto* self = static_cast<StreamSocket*>(arg);
  if (self->handshaking_) {
    self->continueHandshake(what);
    return;
  }
  if (self->tls_write_wants_read_) {
    self->tls_write_wants_read_ = false;
    self->armWrite();
  }
  self->listener_->onReadable();
}

void StreamSocket::writeCb(int, short what, void* arg) {
  static_cast<StreamSocket*>(arg)->onWriteEvent(what);
}

void StreamSocket::onWriteEvent(short what) {
  if (handshaking_) {
    continueHandshake(what);
    return;
  }
  if (connecting_) {
    int error = connect_error_;
    if (error == 0 && (what & EV_TIMEOUT)) error = ETIMEDOUT;
    if (error == 0) {
      socklen_t len = sizeof(error);
      if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &len) != 0) error = errno;
    }
    if (error == 0 && tls_) {
      handshaking_ = true;
      event_del(write_ev_.get());
      writing_ = false;
      continueHandshake(0);
      return;
    }
    endConnect(error);
    return;
  }
  if (tls_read_wants_write_) {
    // A TLS read (the handshake, mostly) waited to send: let it go on.
    tls_read_wants_write_ = false;
    if (pending() == 0 || !tls_->established()) {
      event_del(write_ev_.get());
      writing_ = false;
    }
    listener_->onReadable();
    return;
  }
  if (!flush()) {
    int error = errno;
    stop();
    listener_->onWriteError(error);
    return;
  }
  if (pending() == 0) {
    event_del(write_ev_.get());
    writing_ = false;
  }
  listener_->onFlushed();
}

void StreamSocket::endConnect(int error) {
  // The connect wait (and its timeout) ends here; output written meanwhile
  // goes out now, and anything left keeps the write event, without a timeout.
  event_del(write_ev_.get());
  writing_ = false;
  if (handshaking_) {
    event_del(read_ev_.get());  // its timeout goes with it
    reading_ = false;
    handshaking_ = false;
    if (read_wanted_) setReading(true);
  }
  if (error == 0) {
    connecting_ = false;
    if (pending() > 0) {
      flush();  // an error here shows on the next write event
      if (pending() > 0) armWrite();
    }
  }
  listener_->onConnected(error);
}

void StreamSocket::continueHandshake(short what) {
  if (what & EV_TIMEOUT) {
    endConnect(ETIMEDOUT);
    return;
  }
  switch (tls_->handshake()) {
    case TlsSession::Handshake::kDone:
      endConnect(0);
      return;
    case TlsSession::Handshake::kFailed:
    case TlsSession::Handshake::kClosed:
      endConnect(EPROTO);
      return;
    case TlsSession::Handshake::kWouldBlock:
      break;
  }
  absl::Duration left = connect_deadline_ - absl::Now();
  if (left <= absl::ZeroDuration()) {
    endConnect(ETIMEDOUT);
    return;
  }
  // Wait on the one direction the handshake needs, bounded by what is left
  // of the connect timeout.
  timeval tv = absl::ToTimeval(left);
  bool wants_write = tls_->want() == TlsSession::Want::kWrite;
  event_del(wants_write ? read_ev_.get() : write_ev_.get());
  event_add(wants_write ? write_ev_.get() : read_ev_.get(), &tv);
  writing_ = wants_write;
  reading_ = !wants_write;
}

void StreamSocket::stop() {
  if (read_ev_) event_del(read_ev_.get());
  if (write_ev_) event_del(write_ev_.get());
  reading_ = false;
  writing_ = false;
}

void StreamSocket::close() {
  if (tls_) {
    if (pending() == 0 && !connecting_) tls_->shutdown();
    tls_.reset();
  }
  tls_read_wants_write_ = false;
  tls_write_wants_read_ = false;
  read_ev_.reset();
  write_ev_.reset();
  reading_ = false;
  writing_ = false;
  connecting_ = false;
  handshaking_ = false;
  read_wanted_ = false;
  connect_error_ = 0;
  out_.clear();
  out_off_ = 0;
  borrowed_ = {};
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

}  // namespace airbag::http
