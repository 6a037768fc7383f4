// An incremental HTTP/1.1 message parser (requests or responses) on llhttp.
// It stores the head (start line + headers) itself and hands body bytes to a
// Listener as they arrive; it pauses after each complete message so that
// pipelined requests are answered one at a time and in order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "llhttp.h"
#include "proxy/http/headers.h"

namespace airbag::http {

class MessageParser {
 public:
  enum class Kind { kRequest, kResponse };

  // Receives the parts of a message. Return 0 to go on; onHeadersComplete may
  // return 1 to say "no body follows" (answer to HEAD); any negative value
  // stops parsing with an error.
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual int onHeadersComplete() = 0;
    virtual int onBody(std::string_view data) = 0;
    virtual int onMessageComplete() = 0;
  };

  enum class Result {
    kNeedMore,  // everything given was consumed; the message is not complete yet
    kComplete,  // one message ended; `consumed` tells where the next one starts
    kError,     // malformed input or a listener said stop; see error()
  };

  enum class Error {
    kNone,
    kMalformed,
    kHeadersTooLarge,
    kUnsupportedTransferCoding,  // a transfer coding other than a lone "chunked"
    kListener,
  };

  MessageParser(Kind kind, Listener* listener);
  MessageParser(const MessageParser&) = delete;
  MessageParser& operator=(const MessageParser&) = delete;

  // Head bytes (start line + headers) above this limit fail with kHeadersTooLarge.
  void setMaxHeaderBytes(uint64_t n) { max_header_bytes_ = n; }

  // Prepares for the next message (after kComplete or to start over).
  void reset();

  // Feeds bytes. Stops right after a complete message.
  Result execute(const char* data, size_t len, size_t* consumed);

  // The peer closed its side: completes a close-delimited response. Returns
  // kComplete, kError (message cut short), or kNeedMore (nothing in progress).
  Result finish();

  Error error() const { return error_; }
  // Why parsing failed, for a 400 reply or a log line.
  const char* errorReason() const {
    return own_reason_ ? own_reason_ : llhttp_get_error_reason(&parser_);
  }
  llhttp_errno_t errorCode() const { return llhttp_get_errno(&parser_); }

  // True once any byte of the current message has been parsed.
  bool started() const { return started_; }
  bool headersComplete() const { return headers_complete_; }

  // The head of the current message; valid until reset().
  std::string_view method() const { return method_; }
  std::string_view url() const { return url_; }
  int status() const { return llhttp_get_status_code(&parser_); }
  int versionMajor() const { return llhttp_get_http_major(&parser_); }
  int versionMinor() const { return llhttp_get_http_minor(&parser_); }
  const HeaderList& headers() const { return headers_; }
  // Valid from onHeadersComplete on.
  bool keepAlive() const { return llhttp_should_keep_alive(&parser_) != 0; }
  bool hasContentLength() const { return (parser_.flags & F_CONTENT_LENGTH) != 0; }
  uint64_t contentLength() const { return content_length_; }
  bool chunked() const { return (parser_.flags & F_CHUNKED) != 0; }
  uint64_t headBytes() const { return head_bytes_; }

 private:
  static int onMessageBeginCb(llhttp_t* p);
  static int onUrlCb(llhttp_t* p, const char* at, size_t len);
  static int onHeaderFieldCb(llhttp_t* p, const char* at, size_t len);
  static int onHeaderValueCb(llhttp_t* p, const char* at, size_t len);
  static int onHeadersCompleteCb(llhttp_t* p);
  static int onBodyCb(llhttp_t* p, const char* at, size_t len);
  static int onMessageCompleteCb(llhttp_t* p);

  bool countHead(size_t len);
  // Framing rules llhttp leaves to its user: 0, or fail()'s -1 when the head
  // must be refused.
  int checkHead();
  int fail(Error error, const char* reason) {
    error_ = error;
    own_reason_ = reason;
    return -1;
  }

  mutable llhttp_t parser_;  // llhttp's getters take a non-const pointer
  llhttp_settings_t settings_;
  Listener* listener_;
  HeaderList headers_;
  std::string url_;
  std::string_view method_;
  uint64_t max_header_bytes_ = 64 * 1024;
  uint64_t head_bytes_ = 0;
  uint64_t content_length_ = 0;
  Error error_ = Error::kNone;
  const char* own_reason_ = nullptr;  // set when our checks, not llhttp's, failed
  bool started_ = false;
  bool headers_complete_ = false;
  bool in_value_ = false;
  bool complete_ = false;
};

}  // namespace airbag::http
