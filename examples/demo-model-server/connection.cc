// Request handling of the demo model server: routing, fault injection, flow-controlled streams
// and cancel detection for one client connection.
#include "connection.h"

#include <event2/buffer.h>
#include <sys/socket.h>

#include <cerrno>
#include <ctime>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server.h"

namespace demo {
namespace {

constexpr size_t kMaxBodyBytes = 64 << 20;
constexpr size_t kMaxHeaderBytes = 1 << 20;
// Pipelined requests wait in the input buffer while one is answered; beyond this, reading
// pauses until the current answer is done.
constexpr size_t kReadHighWater = 4 << 20;

absl::string_view reasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Status";
  }
}

// Header values are echoed into response headers; never let one break the framing.
void appendSafe(std::string& out, absl::string_view value) {
  for (char c : value) out.push_back(c == '\r' || c == '\n' ? ' ' : c);
}

Connection* self(llhttp_t* p) { return static_cast<Connection*>(p->data); }

}  // namespace

Connection::Connection(Server& server, bufferevent* bev)
    : server_(server),
      bev_(bev),
      timer_(evtimer_new(server.base(), &Connection::timerCb, this)),
      fd_(bufferevent_getfd(bev)) {
  llhttp_init(&parser_, HTTP_REQUEST, parserSettings());
  parser_.data = this;
  bufferevent_setcb(bev_.get(), &Connection::readCb, &Connection::writeCb, &Connection::eventCb,
                    this);
  bufferevent_setwatermark(bev_.get(), EV_READ, 0, kReadHighWater);
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
  ++server_.stats().connections_accepted;
  ++server_.stats().connections_open;
}

Connection::~Connection() {
  if (active_) endRequest();
  --server_.stats().connections_open;
}

// ---- libevent and llhttp trampolines ----

void Connection::readCb(bufferevent*, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  c->onRead();
  c->releaseIfDead();
}

void Connection::writeCb(bufferevent*, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  c->onWrite();
  c->releaseIfDead();
}

void Connection::eventCb(bufferevent*, short what, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  c->onEvent(what);
  c->releaseIfDead();
}

void Connection::timerCb(evutil_socket_t, short, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  c->onTimer();
  c->releaseIfDead();
}

void Connection::releaseIfDead() {
  if (dead_) server_.release(this);  // destroys *this
}

const llhttp_settings_t* Connection::parserSettings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &Connection::onMessageBegin;
    s.on_url = &Connection::onUrl;
    s.on_header_field = &Connection::onHeaderField;
    s.on_header_field_complete = &Connection::onHeaderFieldComplete;
    s.on_header_value = &Connection::onHeaderValue;
    s.on_headers_complete = &Connection::onHeadersComplete;
    s.on_body = &Connection::onBody;
    s.on_message_complete = &Connection::onMessageComplete;
    return s;
  }();
  return &settings;
}

int Connection::onMessageBegin(llhttp_t* p) {
  Connection* c = self(p);
  c->req_.clear();
  c->in_field_ = false;
  return HPE_OK;
}

int Connection::onUrl(llhttp_t* p, const char* at, size_t len) {
  Request& r = self(p)->req_;
  if (r.url.size() + len > kMaxHeaderBytes) return HPE_USER;
  r.url.append(at, len);
  return HPE_OK;
}

int Connection::onHeaderField(llhttp_t* p, const char* at, size_t len) {
  Connection* c = self(p);
  if (!c->in_field_) {
    if (c->req_.headers.size() >= 1000) return HPE_USER;
    c->req_.headers.emplace_back();
    c->in_field_ = true;
  }
  std::string& name = c->req_.headers.back().first;
  if (name.size() + len > kMaxHeaderBytes) return HPE_USER;
  name.append(at, len);
  return HPE_OK;
}

int Connection::onHeaderFieldComplete(llhttp_t* p) {
  Connection* c = self(p);
  absl::AsciiStrToLower(&c->req_.headers.back().first);
  c->in_field_ = false;
  return HPE_OK;
}

int Connection::onHeaderValue(llhttp_t* p, const char* at, size_t len) {
  Connection* c = self(p);
  std::string& value = c->req_.headers.back().second;
  if (value.size() + len > kMaxHeaderBytes) return HPE_USER;
  value.append(at, len);
  return HPE_OK;
}

int Connection::onHeadersComplete(llhttp_t* p) {
  Connection* c = self(p);
  Request& r = c->req_;
  for (auto& [name, value] : r.headers) {
    absl::StripTrailingAsciiWhitespace(&value);
  }
  r.method = llhttp_method_name(static_cast<llhttp_method_t>(llhttp_get_method(p)));
  r.http_major = llhttp_get_http_major(p);
  r.http_minor = llhttp_get_http_minor(p);
  r.keep_alive = llhttp_should_keep_alive(p) != 0;
  const size_t q = r.url.find('?');
  r.path = r.url.substr(0, q);
  r.query = q == std::string::npos ? "" : r.url.substr(q + 1);
  const std::string* expect = r.header("expect");
  if (expect != nullptr && absl::EqualsIgnoreCase(*expect, "100-continue") && r.http_minor >= 1) {
    c->send("HTTP/1.1 100 Continue\r\n\r\n");
  }
  return HPE_OK;
}

int Connection::onBody(llhttp_t* p, const char* at, size_t len) {
  Request& r = self(p)->req_;
  if (r.body.size() + len > kMaxBodyBytes) return HPE_USER;
  r.body.append(at, len);
  return HPE_OK;
}

int Connection::onMessageComplete(llhttp_t* p) {
  self(p)->message_done_ = true;
  // Stop parsing here: the next pipelined request waits until this one is answered.
  return HPE_PAUSED;
}

// ---- events ----

void Connection::onRead() {
  if (state_ == State::kReading) {
    parseInput();
  } else if (state_ == State::kClosing) {
    evbuffer* in = bufferevent_get_input(bev_.get());
    evbuffer_drain(in, evbuffer_get_length(in));
  }
}

void Connection::onWrite() {
  if (state_ == State::kClosing) {
    if (outputEmpty()) dead_ = true;
  } else if (state_ == State::kStreaming && awaiting_flush_ && outputEmpty()) {
    awaiting_flush_ = false;
    armTimer(behavior_.stream_interval_ms);
  }
}

void Connection::onEvent(short what) {
  if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) == 0) return;
  if (active_) {
    // The client left before its answer was complete: stop all work for it.
    ++server_.stats().cancelled;
    endRequest();
  }
  dead_ = true;
}

void Connection::onTimer() {
  if (state_ == State::kWaiting) {
    answer();
  } else if (state_ == State::kStreaming) {
    streamStep();
  }
}

void Connection::armTimer(int64_t ms) {
  timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
  evtimer_add(timer_.get(), &tv);
}

// ---- parsing ----

void Connection::parseInput() {
  in_parse_ = true;
  evbuffer* in = bufferevent_get_input(bev_.get());
  // Bounded: every pass consumes input or leaves the loop.
  while (state_ == State::kReading && !dead_) {
    const size_t available = evbuffer_get_length(in);
    if (available == 0) break;
    evbuffer_iovec vec;
    if (evbuffer_peek(in, -1, nullptr, &vec, 1) < 1) break;
    const char* data = static_cast<const char*>(vec.iov_base);
    message_done_ = false;
    const llhttp_errno_t err = llhttp_execute(&parser_, data, vec.iov_len);
    if (err == HPE_OK) {
      evbuffer_drain(in, vec.iov_len);
      continue;
    }
    if (err == HPE_PAUSED && message_done_) {
      evbuffer_drain(in, static_cast<size_t>(llhttp_get_error_pos(&parser_) - data));
      llhttp_resume(&parser_);
      dispatch();
      continue;
    }
    // Malformed or oversized request: answer once and close, as any server would.
    evbuffer_drain(in, evbuffer_get_length(in));
    req_.keep_alive = false;
    const bool too_big = err == HPE_USER;
    respond(too_big ? 413 : 400, "application/json",
            errorBody(too_big ? 413 : 400,
                      too_big ? "request too large" : llhttp_get_error_reason(&parser_)));
    state_ = State::kClosing;
    closeWhenFlushed();
  }
  in_parse_ = false;
}

// ---- routing ----

Connection::Endpoint Connection::classify(std::string& model) const {
  const std::string& m = req_.method;
  const std::string& p = req_.path;
  const bool get = m == "GET" || m == "HEAD";
  const bool post = m == "POST";
  auto only = [&](bool ok, Endpoint e) { return ok ? e : Endpoint::kMethodNotAllowed; };
  if (p == "/health") return only(get, Endpoint::kHealth);
  if (p == "/echo") return Endpoint::kEcho;
  if (p == "/predict") return only(post, Endpoint::kPredict);
  if (p == "/v1/models") return only(get, Endpoint::kModels);
  if (p == "/v1/chat/completions") return only(post, Endpoint::kChat);
  if (p == "/v1/completions") return only(post, Endpoint::kCompletions);
  if (p == "/v1/embeddings") return only(post, Endpoint::kEmbeddings);
  if (p == "/v1/stream-ndjson") return only(post, Endpoint::kStreamNdjson);
  if (p == "/v2") return only(get, Endpoint::kV2Server);
  if (p == "/v2/health/live") return only(get, Endpoint::kV2Live);
  if (p == "/v2/health/ready") return only(get, Endpoint::kV2Ready);
  constexpr absl::string_view kModelsPrefix = "/v2/models/";
  if (absl::StartsWith(p, kModelsPrefix)) {
    std::vector<absl::string_view> parts =
        absl::StrSplit(absl::string_view(p).substr(kModelsPrefix.size()), '/');
    if (parts.empty() || parts[0].empty()) return Endpoint::kNotFound;
    model = std::string(parts[0]);
    // Optional /versions/{v} between the model and the verb, as KServe allows.
    if (parts.size() >= 3 && parts[1] == "versions")
      parts.erase(parts.begin() + 1, parts.begin() + 3);
    if (parts.size() == 1) return only(get, Endpoint::kV2ModelMetadata);
    if (parts.size() == 2 && parts[1] == "ready") return only(get, Endpoint::kV2ModelReady);
    if (parts.size() == 2 && parts[1] == "infer") return only(post, Endpoint::kV2Infer);
  }
  return Endpoint::kNotFound;
}

void Connection::dispatch() {
  if (absl::StartsWith(req_.path, "/control/") || req_.path == "/metrics") {
    handleControl();
    afterAnswer();
    return;
  }
  Stats& stats = server_.stats();
  seq_ = ++stats.requests;
  ++stats.by_path[req_.path];
  active_ = true;
  ++stats.in_flight;
  if (stats.in_flight > stats.max_concurrent) stats.max_concurrent = stats.in_flight;

  model_.clear();
  endpoint_ = classify(model_);
  switch (endpoint_) {
    case Endpoint::kChat:
    case Endpoint::kCompletions:
    case Endpoint::kEmbeddings:
    case Endpoint::kV2Infer:
    case Endpoint::kPredict:
    case Endpoint::kStreamNdjson:
    case Endpoint::kEcho:
      break;
    default:
      answerPlain();
      return;
  }
  // Steerable: decide now, with the behaviour current on arrival; act after the latency.
  Behavior& current = server_.behavior();
  behavior_ = current;
  const Draws draws = server_.draw();
  drop_ = false;
  fail_ = false;
  if (current.drop_next > 0) {
    --current.drop_next;
    drop_ = true;
  } else if (current.fail_next > 0) {
    --current.fail_next;
    fail_ = true;
  } else {
    drop_ = draws.drop < behavior_.drop_rate;
    fail_ = !drop_ && draws.error < behavior_.error_rate;
  }
  // One slow answer among fast ones (a straggler), for hedged tries.
  int64_t base = behavior_.latency_ms;
  if (current.slow_next > 0) {
    --current.slow_next;
    base = current.slow_ms;
  }
  const int64_t delay =
      base +
      static_cast<int64_t>(draws.jitter * static_cast<double>(behavior_.latency_jitter_ms + 1));
  if (behavior_.capacity > 0) {
    // Saturation mode: wait for a slot of the model, then for service_ms.
    delay_ms_ = delay;
    state_ = State::kQueued;
    in_model_ = true;
    server_.enqueue(this);
    return;
  }
  if (delay > 0) {
    state_ = State::kWaiting;
    armTimer(delay);
    return;
  }
  answer();
}

void Connection::startService() {
  state_ = State::kWaiting;
  armTimer(delay_ms_ + behavior_.service_ms);
}

void Connection::handleControl() {
  const std::string& p = req_.path;
  const std::string& m = req_.method;
  if (p == "/metrics" && (m == "GET" || m == "HEAD")) {
    respond(200, "text/plain; version=0.0.4", server_.metricsText());
  } else if (p == "/control/stats" && m == "GET") {
    respond(200, "application/json", dumpJson(statsToJson(server_.stats())));
  } else if (p == "/control/reset" && m == "POST") {
    server_.reset();
    respond(200, "application/json", "{\"status\":\"reset\"}");
  } else if (p == "/control/behavior" && m == "GET") {
    respond(200, "application/json", dumpJson(behaviorToJson(server_.behavior())));
  } else if (p == "/control/behavior" && (m == "PUT" || m == "POST" || m == "PATCH")) {
    nlohmann::json patch = nlohmann::json::parse(req_.body, nullptr, false);
    absl::Status s = patch.is_discarded()
                         ? absl::InvalidArgumentError("behavior: body is not valid JSON")
                         : mergeBehavior(patch, server_.behavior());
    if (s.ok()) {
      respond(200, "application/json", dumpJson(behaviorToJson(server_.behavior())));
    } else {
      respond(400, "application/json", errorBody(400, s.message()));
    }
  } else {
    respond(404, "application/json", errorBody(404, "unknown control endpoint"));
  }
}

// ---- answers ----

void Connection::answerPlain() {
  const std::string& name = server_.options().name;
  const bool healthy = server_.behavior().healthy;
  const char* kJson = "application/json";
  switch (endpoint_) {
    case Endpoint::kHealth:
    case Endpoint::kV2Live:
    case Endpoint::kV2Ready:
      if (healthy) {
        respond(200, kJson, "{\"status\":\"ok\"}");
      } else {
        respond(503, kJson, "{\"status\":\"unhealthy\"}");
      }
      break;
    case Endpoint::kModels:
      respond(200, kJson, modelsBody(name, 1700000000));
      break;
    case Endpoint::kV2Server:
      respond(200, kJson, "{\"name\":\"demo-model-server\",\"version\":\"1\",\"extensions\":[]}");
      break;
    case Endpoint::kV2ModelMetadata:
      respond(200, kJson, kserveMetadataBody(model_));
      break;
    case Endpoint::kV2ModelReady:
      respond(healthy ? 200 : 503, kJson, healthy ? "{\"ready\":true}" : "{\"ready\":false}");
      break;
    case Endpoint::kMethodNotAllowed:
      respond(405, kJson, errorBody(405, "method not allowed"));
      break;
    default:
      respond(404, kJson, errorBody(404, absl::StrCat("no such endpoint: ", req_.path)));
      break;
  }
  completeRequest();
  afterAnswer();
}

void Connection::answer() {
  state_ = State::kReading;
  if (in_model_) {
    in_model_ = false;
    server_.leave(this);  // the slot goes to the next in the queue
  }
  if (drop_) {
    ++server_.stats().dropped;
    endRequest();
    dead_ = true;
    return;
  }
  const char* kJson = "application/json";
  const int override_status = behavior_.status_override;
  if (override_status != 0 || fail_) {
    const int status = override_status != 0 ? override_status : behavior_.error_status;
    ++server_.stats().errors;
    respond(status, kJson,
            errorBody(status, override_status != 0 ? "status override" : "injected error"),
            behavior_.retry_after);
    completeRequest();
    afterAnswer();
    return;
  }

  const Options& opts = server_.options();
  const bool nan = behavior_.nan;
  const bool missing = behavior_.missing_field;
  std::string body;
  switch (endpoint_) {
    case Endpoint::kChat:
    case Endpoint::kCompletions: {
      const bool completions = endpoint_ == Endpoint::kCompletions;
      std::optional<ChatPrompt> prompt = parseChatPrompt(req_.body, opts.name, completions);
      if (!prompt) {
        respond(400, kJson, errorBody(400, "body must be a JSON object"));
        break;
      }
      prompt_ = std::move(*prompt);
      created_ = static_cast<int64_t>(std::time(nullptr));
      stream_id_ = absl::StrCat(completions ? "cmpl-" : "chatcmpl-", seq_);
      if (prompt_.stream) {
        startStream(completions ? StreamKind::kCompletion : StreamKind::kChat);
        return;
      }
      body = completions ? completionBody(stream_id_, created_, prompt_, missing)
                         : chatBody(stream_id_, created_, prompt_, missing);
      break;
    }
    case Endpoint::kEmbeddings:
      body = embeddingsBody(opts.name, req_.body, opts.seed, nan, missing);
      break;
    case Endpoint::kV2Infer: {
      nlohmann::json j = nlohmann::json::parse(req_.body, nullptr, false);
      if (!j.is_object()) {
        respond(400, kJson, errorBody(400, "body must be a JSON object"));
        break;
      }
      body = inferBody(model_, j.contains("id") ? j["id"] : nlohmann::json(),
                       scoreFor(req_.body, opts.seed), nan, missing);
      break;
    }
    case Endpoint::kPredict: {
      const double score = scoreFor(req_.body, opts.seed);
      // Only bodies that mention "stream" pay for a JSON parse.
      if (absl::StrContains(req_.body, "\"stream\"")) {
        nlohmann::json j = nlohmann::json::parse(req_.body, nullptr, false);
        if (j.is_object() && j.contains("stream") && j["stream"] == true) {
          score_ = score;
          startStream(StreamKind::kNdjson);
          return;
        }
      }
      body = predictBody(opts.name, score, nan, missing);
      break;
    }
    case Endpoint::kStreamNdjson:
      score_ = scoreFor(req_.body, opts.seed);
      startStream(StreamKind::kNdjson);
      return;
    case Endpoint::kEcho:
      respond(200, kJson, echoBody(req_));
      break;
    default:
      break;
  }
  if (!body.empty()) {
    padJsonObject(body, behavior_.response_bytes);
    respond(200, kJson, body);
  }
  completeRequest();
  afterAnswer();
}

void Connection::startStream(StreamKind kind) {
  stream_kind_ = kind;
  events_sent_ = 0;
  awaiting_flush_ = false;
  chunked_ = req_.http_major > 1 || req_.http_minor >= 1;
  if (!chunked_) req_.keep_alive = false;  // HTTP/1.0: the close ends the body
  if (kind == StreamKind::kNdjson) {
    prompt_.model = server_.options().name;
    nlohmann::json j = nlohmann::json::parse(req_.body, nullptr, false);
    prompt_.content.clear();
    for (const char* key : {"prompt", "input"}) {
      if (prompt_.content.empty() && j.is_object() && j.contains(key) && j[key].is_string()) {
        prompt_.content = j[key].get<std::string>();
      }
    }
  }
  ++server_.stats().streams_started;
  scratch_.clear();
  appendHead(scratch_, 200,
             kind == StreamKind::kNdjson ? "application/x-ndjson" : "text/event-stream",
             chunked_ ? -1 : -2, -1);
  send(scratch_);
  state_ = State::kStreaming;
  streamStep();
}

void Connection::streamStep() {
  Stats& stats = server_.stats();
  const int64_t total = behavior_.stream_events;
  if (events_sent_ == behavior_.abort_after_events) {
    // Mid-stream failure: what was sent is flushed, then the connection closes with no
    // terminating chunk, so the reader sees a truncated body.
    ++stats.aborted;
    endRequest();
    state_ = State::kClosing;
    closeWhenFlushed();
    return;
  }
  if (events_sent_ == behavior_.stall_after_events) {
    state_ = State::kStalled;  // stays in flight until the client gives up
    return;
  }
  if (events_sent_ >= total) {
    if (stream_kind_ != StreamKind::kNdjson) {
      constexpr absl::string_view kDone = "data: [DONE]\n\n";
      stats.stream_bytes_sent += static_cast<int64_t>(kDone.size());
      sendChunk(kDone);
    }
    if (chunked_) send("0\r\n\r\n");
    ++stats.streams_completed;
    completeRequest();
    afterAnswer();
    return;
  }
  const int64_t i = events_sent_++;
  std::string event;
  if (stream_kind_ == StreamKind::kNdjson) {
    std::string token = prompt_.content.empty() ? absl::StrCat("token-", i)
                                                : std::string(pieceOf(prompt_.content, i, total));
    event = ndjsonLine(prompt_.model, i, total, token, score_, behavior_.nan,
                       behavior_.stream_event_bytes);
  } else {
    event = chatChunkEvent(stream_id_, created_, prompt_.model, pieceOf(prompt_.content, i, total),
                           i == 0, i + 1 == total, stream_kind_ == StreamKind::kCompletion,
                           behavior_.stream_event_bytes);
  }
  stats.stream_bytes_sent += static_cast<int64_t>(event.size());
  sendChunk(event);
  // Flow control: the next event is produced only once this one has left the output buffer,
  // so a reader that stops reading stops the stream.
  if (outputEmpty()) {
    armTimer(behavior_.stream_interval_ms);
  } else {
    awaiting_flush_ = true;
  }
}

// ---- request lifecycle ----

void Connection::completeRequest() {
  if (!active_) return;
  ++server_.stats().completed;
  endRequest();
}

void Connection::endRequest() {
  if (!active_) return;
  active_ = false;
  --server_.stats().in_flight;
  if (in_model_) {
    in_model_ = false;
    server_.leave(this);
  }
  evtimer_del(timer_.get());
}

void Connection::afterAnswer() {
  if (dead_ || state_ == State::kClosing) return;
  if (!req_.keep_alive) {
    state_ = State::kClosing;
    closeWhenFlushed();
    return;
  }
  state_ = State::kReading;
  if (!in_parse_) parseInput();
}

void Connection::closeWhenFlushed() {
  if (outputEmpty()) dead_ = true;  // else onWrite() finishes the job
}

// ---- output ----

bool Connection::outputEmpty() const {
  return evbuffer_get_length(bufferevent_get_output(bev_.get())) == 0;
}

void Connection::appendHead(std::string& out, int status, absl::string_view content_type,
                            int64_t length, int64_t retry_after) {
  absl::StrAppend(&out, "HTTP/1.1 ", status, " ", reasonPhrase(status),
                  "\r\nContent-Type: ", content_type, "\r\n");
  if (length >= 0) {
    absl::StrAppend(&out, "Content-Length: ", length, "\r\n");
  } else if (length == -1) {
    out += "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n";
  }
  absl::StrAppend(&out, "x-demo-server: ", server_.options().name,
                  "\r\nx-demo-request-seq: ", active_ ? seq_ : server_.stats().requests, "\r\n");
  struct Echo {
    absl::string_view from;
    absl::string_view to;
  };
  for (const Echo& e :
       {Echo{"x-request-id", "x-demo-saw-request-id: "},
        Echo{"traceparent", "x-demo-saw-traceparent: "}, Echo{"host", "x-demo-saw-host: "}}) {
    if (const std::string* v = req_.header(e.from)) {
      out.append(e.to.data(), e.to.size());
      appendSafe(out, *v);
      out += "\r\n";
    }
  }
  if (retry_after >= 0) absl::StrAppend(&out, "Retry-After: ", retry_after, "\r\n");
  if (!req_.keep_alive) {
    out += "Connection: close\r\n";
  } else if (req_.http_major == 1 && req_.http_minor == 0) {
    out += "Connection: keep-alive\r\n";
  }
  out += "\r\n";
}

void Connection::respond(int status, absl::string_view content_type, absl::string_view body,
                         int64_t retry_after) {
  scratch_.clear();
  appendHead(scratch_, status, content_type, static_cast<int64_t>(body.size()), retry_after);
  if (req_.method != "HEAD") scratch_.append(body.data(), body.size());
  send(scratch_);
}

void Connection::sendChunk(absl::string_view data) {
  if (!chunked_) {
    send(data);
    return;
  }
  scratch_.clear();
  absl::StrAppend(&scratch_, absl::Hex(data.size()), "\r\n", data, "\r\n");
  send(scratch_);
}

void Connection::send(absl::string_view data) {
  evbuffer* out = bufferevent_get_output(bev_.get());
  // Write-first: when nothing is queued, try the socket directly and queue only the rest;
  // this saves an epoll round trip per answer.
  if (evbuffer_get_length(out) == 0) {
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == static_cast<ssize_t>(data.size())) return;
    if (n > 0) data.remove_prefix(static_cast<size_t>(n));
    // On a hard error the bufferevent meets it again on its own write and reports it.
  }
  evbuffer_add(out, data.data(), data.size());
}

}  // namespace demo
