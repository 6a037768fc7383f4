// One client (downstream) connection on a worker: reads and parses requests
// with llhttp, enforces listen.limits, hands each complete request to its
// Exchange, and writes answers write-first. Pipelined requests are answered
// one at a time, in order. Reads go to a buffer on the stack and are parsed in
// place; only bytes left unparsed (pipelined behind a request in progress) are
// copied into the connection's own buffer.
#pragma once

#include <event2/util.h>

#include <chrono>
#include <list>
#include <memory>
#include <string>

#include "proxy/http/message_parser.h"
#include "proxy/http/stream_socket.h"
#include "proxy/pipeline/downstream.h"
#include "proxy/pipeline/exchange.h"

namespace airbag::server {

class Worker;

class ClientConnection final : public http::MessageParser::Listener,
                               public http::StreamSocket::Listener,
                               public pipeline::Downstream {
 public:
  // Takes ownership of `fd`. With `tls`, the connection starts with a TLS
  // handshake, bounded by listen.limits.header_timeout. Worker thread only.
  ClientConnection(Worker& worker, evutil_socket_t fd, ssl_ctx_st* tls = nullptr);
  ~ClientConnection() override;
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;

  // The server is draining: close now if between requests, otherwise after
  // the answer in progress.
  void drain();

  // Position in the worker's list, for O(1) removal.
  std::list<std::unique_ptr<ClientConnection>>::iterator self_;

  // pipeline::Downstream
  void write(std::string_view a, std::string_view b, std::string_view c) override;
  size_t pendingBytes() const override;
  bool keepAlive() const override;
  void responseDone(bool close) override;
  void responseAborted() override;

  // http::MessageParser::Listener
  int onHeadersComplete() override;
  int onBody(std::string_view data) override;
  int onMessageComplete() override { return 0; }

  // http::StreamSocket::Listener
  void onReadable() override;
  void onFlushed() override;
  void onWriteError(int error) override;

 private:
  // kWaitingForReader: an answer is done but the client has not read enough
  // of what was sent; the next pipelined request waits, so a client that
  // never reads cannot make airbag hold every answer it asked for.
  enum class State { kReading, kProcessing, kWaitingForReader, kClosing, kClosed };

  static void timerCb(int, short, void* arg);
  // The TLS handshake ended (done, failed or cut); `n` is what read() said.
  void handshakeEnded(ssize_t n);
  void countHandshake(std::string_view result);
  void onEndOfInput();

  // Parses `fresh` bytes just read (after any kept from before) for as long
  // as the connection is reading requests; keeps what is left unparsed.
  void processInput(std::string_view fresh = {});
  // Parses from `data` while reading requests; returns the bytes consumed.
  size_t parseSome(std::string_view data);
  void updateReading();
  void startRequest();
  void refuse(int status, std::string_view code, std::string_view message);
  void closeWhenFlushed();
  void closeNow();
  using SteadyClock = std::chrono::steady_clock;
  // The idle, header or closing deadline is now + d (one deadline at a time).
  void armTimer(absl::Duration d);
  void setTimer(SteadyClock::time_point now);
  void onTimer();

  Worker& worker_;
  http::StreamSocket sock_;
  http::MessageParser parser_;
  std::string body_;
  // Bytes read but not parsed yet (requests pipelined behind the one being
  // answered), from in_off_ on.
  std::string in_;
  size_t in_off_ = 0;
  pipeline::Exchange exchange_;
  http::EventPtr timer_;
  SteadyClock::time_point deadline_;
  SteadyClock::time_point timer_at_;  // when the timer fires, while timer_set_
  bool timer_set_ = false;
  State state_ = State::kReading;
  bool in_process_input_ = false;
  bool header_timer_armed_ = false;
  bool handshaking_ = false;
  bool input_ended_ = false;  // the client half-closed: answer what it sent, then close
  int refuse_status_ = 0;  // set by a parser callback that refuses the request
};

}  // namespace airbag::server
