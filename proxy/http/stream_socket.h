// A non-blocking TCP socket on one worker's event loop, for the data plane's
// two sides (client connections and upstream connections): one persistent
// read event, a write event armed only while output is queued, reads into
// memory the caller owns (no FIONREAD round trip before each read), and
// write-first sends whose unsent remainder is kept in a buffer we own. A
// socket adopted with a TLS context speaks TLS through the same calls.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include "absl/time/clock.h"
#include "absl/time/time.h"

struct event;
struct ssl_ctx_st;
struct event_base;

namespace airbag::http {

class TlsSession;
struct TlsClientTarget;

struct EventFree {
  void operator()(event* e) const;
};
// An event made with event_new; freed (and so removed) with its owner.
using EventPtr = std::unique_ptr<event, EventFree>;

class StreamSocket {
 public:
  // Told what happened on the socket; every call comes from the event loop,
  // never from inside a StreamSocket method the listener called.
  class Listener {
   public:
    // The socket is readable (data, the end of the stream or an error waits):
    // call read().
    virtual void onReadable() = 0;
    // Queued output was sent; pending() says how much is left (0: drained, and
    // the write event is off).
    virtual void onFlushed() {}
    // Sending queued output failed: the peer is gone. `error` is the errno.
    virtual void onWriteError(int error) = 0;
    // connect() finished: 0, or the errno (ETIMEDOUT when the timeout passed).
    virtual void onConnected(int error) { (void)error; }

   protected:
    ~Listener() = default;
  };

  // What the caller promises about the bytes given to write().
  enum class Keep {
    kCopy,    // the bytes may go away after write() returns: keep a copy of the rest
    kBorrow,  // the bytes stay valid until the socket is drained or closed
  };

  // `base` and `listener` must outlive the socket. Worker thread only.
  StreamSocket(event_base* base, Listener* listener);
  ~StreamSocket();
  StreamSocket(const StreamSocket&) = delete;
  StreamSocket& operator=(const StreamSocket&) = delete;

  // Takes ownership of a connected, non-blocking socket. Reading starts off.
  // With `tls`, the socket is the server side of a TLS connection: read()
  // drives the handshake first, and output written before it ends waits.
  // False if the events (or the TLS session) could not be made (the socket is
  // closed then).
  bool adopt(int fd, ssl_ctx_st* tls = nullptr);
  // Starts a non-blocking connect; onConnected reports how it ended, from the
  // loop. False only when no socket could be made. Output written meanwhile is
  // queued and sent once connected. With `tls` (the target must outlive the
  // call only; its context and session cache the socket), the socket is the
  // client side of a TLS connection: onConnected comes after the handshake,
  // `timeout` bounds both, and a failed handshake reports EPROTO with
  // tlsError() saying why.
  bool connect(const sockaddr* address, socklen_t length, absl::Duration timeout,
               const TlsClientTarget* tls = nullptr);

  bool connecting() const { return connecting_; }
  bool tls() const { return tls_ != nullptr; }
  // Plain sockets: always. TLS: once the handshake has completed.
  bool handshakeDone() const;
  // TLS: the handshake resumed an earlier session (a ticket).
  bool resumed() const;
  // TLS: the handshake failed because the client spoke plain HTTP. Call
  // dropTls() to answer it in plain HTTP.
  bool plainHttp() const;
  void dropTls();
  // TLS: why the handshake failed (empty if it did not).
  std::string tlsError() const;
  int fd() const { return fd_; }

  // Reads at most `capacity` bytes into `buf`. Returns the count (> 0), 0 at
  // the end of the stream, kWouldBlock when nothing is there yet (or the TLS
  // handshake is still under way), kFailed on an error (errno says which).
  static constexpr ssize_t kWouldBlock = -1;
  static constexpr ssize_t kFailed = -2;
  ssize_t read(char* buf, size_t capacity);

  // Turns the read event on or off (cheap when it already is).
  void setReading(bool on);
  bool reading() const { return reading_; }

  // Sends `parts` in order after whatever is queued: straight to the socket
  // when nothing is (write-first, one sendmsg for all parts), the rest queued
  // and the write event armed until it drains. An error is reported through
  // onWriteError from the loop, never from here.
  void write(std::initializer_list<std::string_view> parts, Keep keep = Keep::kCopy);
  // Bytes queued and not yet taken by the kernel.
  size_t pending() const { return out_.size() - out_off_ + borrowed_.size(); }
  // True while the write event is on: queued output, or a connect under way.
  bool writeArmed() const { return writing_; }

  // No further callbacks: both events off. The socket stays open until close()
  // or destruction.
  void stop();
  // Frees the events and closes the socket (a TLS socket with nothing left
  // to send sends close_notify first).
  void close();

 private:
  static void readCb(int, short what, void* arg);
  // Client TLS: drives the handshake on after the TCP connect; `what` is the
  // event that fired (EV_TIMEOUT: the connect timeout passed).
  void continueHandshake(short what);
  // The connect (TCP and TLS) ended: both events off, then onConnected.
  void endConnect(int error);
  static void writeCb(int, short what, void* arg);
  void onWriteEvent(short what);
  bool makeEvents();
  void queue(std::string_view part, Keep keep);
  void armWrite();
  // Sends what is queued; false on an error (errno set).
  bool flush();
  ssize_t readTls(char* buf, size_t capacity);
  // TLS: sends `parts` now; returns the count taken.
  size_t writeTlsNow(std::initializer_list<std::string_view> parts);
  bool flushTls();
  // `sent` bytes from the front of the queue are gone.
  void consume(size_t sent);
  // TLS: a call could not go on; wait for what the session wants.
  void waitForTls();
  // TLS: bytes already read off the socket come back as a read event.
  void replayBuffered();

  event_base* base_;
  Listener* listener_;
  int fd_ = -1;
  EventPtr read_ev_;
  EventPtr write_ev_;
  std::string out_;  // owned bytes not yet sent, from out_off_ on
  size_t out_off_ = 0;
  std::string_view borrowed_;  // queued after out_: the caller keeps it alive
  int connect_error_ = 0;      // a connect() that failed at once, reported from the loop
  std::unique_ptr<TlsSession> tls_;
  bool reading_ = false;
  bool writing_ = false;
  bool connecting_ = false;
  bool handshaking_ = false;   // client TLS: the TCP connect is done, the handshake is not
  bool read_wanted_ = false;   // what the owner last asked of setReading()
  absl::Time connect_deadline_;
  bool tls_read_wants_write_ = false;  // a TLS read waits for the socket to be writable
  bool tls_write_wants_read_ = false;  // a TLS write waits for it to be readable
};

}  // namespace airbag::http
