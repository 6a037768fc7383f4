// The upstream seam: how the request pipeline talks to a model server.
// Implementations: the keep-alive HTTP/1.1 pool for http:// upstreams
// (proxy/upstream/http_pool.h); a libcurl one for https:// upstreams plugs in
// here too. Tests wrap faults around it. All calls and callbacks happen on the
// owning worker's event loop thread; nothing here is thread-safe.
#pragma once

#include <cstdint>
#include <string_view>

#include "airbag/outcome.h"

namespace airbag {

// One try's request, fully framed by the caller. The bytes must stay valid
// until the try ends (a terminal callback or cancel()).
struct UpstreamRequest {
  std::string_view head;  // request line + headers + the blank line
  std::string_view body;  // sent after the head (Content-Length is in the head)
  bool head_only_response = false;  // the request was HEAD: the answer has no body
};

// The status line and headers of an answer. Views are valid only during the
// onUpstreamHeaders call.
struct UpstreamResponseHead {
  int status = 0;
  // Iterate headers as name/value views.
  virtual size_t headerCount() const = 0;
  virtual std::string_view headerName(size_t i) const = 0;
  virtual std::string_view headerValue(size_t i) const = 0;
  bool has_content_length = false;
  uint64_t content_length = 0;
  bool chunked = false;  // framed with chunked encoding upstream

 protected:
  ~UpstreamResponseHead() = default;
};

// Receives one try's answer. After onUpstreamComplete or onUpstreamFailure no
// further call is made; the handler may start a new try from inside them.
class UpstreamResponseHandler {
 public:
  virtual ~UpstreamResponseHandler() = default;
  virtual void onUpstreamHeaders(const UpstreamResponseHead& head) = 0;
  // A piece of the decoded body (chunk framing removed); valid during the call.
  virtual void onUpstreamData(std::string_view data) = 0;
  // Everything read from the socket so far has been delivered: a handler that
  // relays a stream flushes here, once per read rather than once per piece.
  virtual void onUpstreamReadDone() {}
  // The answer ended with its framing intact.
  virtual void onUpstreamComplete() = 0;
  // The try failed (connect, reset, truncated answer, ...). `outcome` is
  // kConnect or kReset from the client; timeouts are the caller's own.
  virtual void onUpstreamFailure(AttemptOutcome outcome, std::string_view detail) = 0;
};

// A try in flight. Owned by the client; valid until a terminal callback or cancel().
class UpstreamCall {
 public:
  // Abandons the try: no further callbacks; the connection is closed, not reused.
  virtual void cancel() = 0;
  // Flow control: stop / resume reading the answer (the client is slow).
  virtual void pauseReading() = 0;
  virtual void resumeReading() = 0;

 protected:
  ~UpstreamCall() = default;
};

class UpstreamClient {
 public:
  virtual ~UpstreamClient() = default;
  // Starts a try. Never calls `handler` before returning; returns the call
  // handle (never null). A call may wait for a free connection first.
  virtual UpstreamCall* start(const UpstreamRequest& request, UpstreamResponseHandler* handler) = 0;
  // Connections opened since start (keep-alive reuse shows as a flat count).
  virtual uint64_t connectionsOpened() const = 0;
};

}  // namespace airbag
