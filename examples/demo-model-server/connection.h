// One client connection of the demo model server: HTTP/1.1 framing with llhttp on a
// bufferevent, one request answered at a time (pipelined requests wait in the input buffer).
#pragma once

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <llhttp.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "answers.h"
#include "behavior.h"

namespace demo {

class Server;

// Owned by the Server; destroys itself only through Server::release(), and only at the end of
// a libevent callback, so no member runs on a freed object.
class Connection {
 public:
  // Takes ownership of `bev` (a socket bufferevent with BEV_OPT_CLOSE_ON_FREE).
  Connection(Server& server, bufferevent* bev);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Saturation mode: the model's queue reached this request; it is served
  // for service_ms (then answered, or its stream starts).
  void startService();

 private:
  enum class State {
    kReading,    // parsing the next request
    kQueued,     // saturation mode: waiting in the model's queue
    kWaiting,    // holding a request for its injected latency
    kStreaming,  // sending a stream, one event per flushed write
    kStalled,    // stream stopped on purpose; waits for the client to leave
    kClosing,    // flushing the last bytes, then closing
  };
  enum class Endpoint {
    kHealth,
    kModels,
    kChat,
    kCompletions,
    kEmbeddings,
    kV2Server,
    kV2Live,
    kV2Ready,
    kV2ModelMetadata,
    kV2ModelReady,
    kV2Infer,
    kPredict,
    kStreamNdjson,
    kEcho,
    kNotFound,
    kMethodNotAllowed,
  };
  enum class StreamKind { kChat, kCompletion, kNdjson };

  struct BevDeleter {
    void operator()(bufferevent* b) const { bufferevent_free(b); }
  };
  struct EventDeleter {
    void operator()(event* e) const { event_free(e); }
  };

  static void readCb(bufferevent* bev, void* arg);
  static void writeCb(bufferevent* bev, void* arg);
  static void eventCb(bufferevent* bev, short what, void* arg);
  static void timerCb(evutil_socket_t fd, short what, void* arg);
  static const llhttp_settings_t* parserSettings();
  static int onMessageBegin(llhttp_t* p);
  static int onUrl(llhttp_t* p, const char* at, size_t len);
  static int onHeaderField(llhttp_t* p, const char* at, size_t len);
  static int onHeaderFieldComplete(llhttp_t* p);
  static int onHeaderValue(llhttp_t* p, const char* at, size_t len);
  static int onHeadersComplete(llhttp_t* p);
  static int onBody(llhttp_t* p, const char* at, size_t len);
  static int onMessageComplete(llhttp_t* p);

  void onRead();
  void onWrite();
  void onEvent(short what);
  void onTimer();
  void releaseIfDead();

  void parseInput();
  void dispatch();
  void handleControl();
  Endpoint classify(std::string& model) const;
  void answer();
  void answerPlain();
  void startStream(StreamKind kind);
  void streamStep();
  void armTimer(int64_t ms);

  void completeRequest();
  void endRequest();
  void afterAnswer();
  void closeWhenFlushed();

  void respond(int status, absl::string_view content_type, absl::string_view body,
               int64_t retry_after = -1);
  void appendHead(std::string& out, int status, absl::string_view content_type, int64_t length,
                  int64_t retry_after);
  void sendChunk(absl::string_view data);
  void send(absl::string_view data);
  bool outputEmpty() const;

  Server& server_;
  std::unique_ptr<bufferevent, BevDeleter> bev_;
  std::unique_ptr<event, EventDeleter> timer_;
  evutil_socket_t fd_;
  llhttp_t parser_;
  Request req_;
  bool in_field_ = false;
  bool message_done_ = false;
  State state_ = State::kReading;
  bool dead_ = false;
  bool in_parse_ = false;

  // The model request being answered.
  bool active_ = false;
  int64_t seq_ = 0;
  Behavior behavior_;
  Endpoint endpoint_ = Endpoint::kNotFound;
  std::string model_;
  bool drop_ = false;
  bool fail_ = false;
  bool in_model_ = false;  // saturation mode: queued or served by the Server
  int64_t delay_ms_ = 0;   // latency still to wait once served

  // The stream being sent.
  StreamKind stream_kind_ = StreamKind::kChat;
  bool chunked_ = true;
  bool awaiting_flush_ = false;
  int64_t events_sent_ = 0;
  int64_t created_ = 0;
  double score_ = 0;
  std::string stream_id_;
  ChatPrompt prompt_;

  std::string scratch_;
};

}  // namespace demo
