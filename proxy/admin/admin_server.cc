// Admin API routing and the evhttp server thread that serves it.
#include "proxy/admin/admin_server.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <exception>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "proxy/config/config_json.h"

namespace airbag::admin {

namespace {

using Json = nlohmann::json;

struct EvbufferDeleter {
  void operator()(evbuffer* b) const { evbuffer_free(b); }
};

constexpr size_t kMaxBodyBytes = 1024 * 1024;
constexpr size_t kHardBodyBytes = 8 * kMaxBodyBytes;
constexpr size_t kMaxHeaderBytes = 64 * 1024;
constexpr int kRequestTimeoutSeconds = 30;

AdminResponse notImplemented(std::string_view what) {
  return errorResponse(501, "not_implemented",
                       absl::StrCat(std::string(what), " is not available"));
}

AdminResponse methodNotAllowed(std::string_view method, std::string_view allow) {
  AdminResponse r = errorResponse(
      405, "method_not_allowed",
      absl::StrCat("method ", std::string(method), " not allowed; use ", std::string(allow)));
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

// Maps a hook's error to an HTTP status and error code.
AdminResponse statusResponse(const absl::Status& s) {
  std::string message(s.message());
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
      return errorResponse(400, "bad_request", message);
    case absl::StatusCode::kNotFound:
      return errorResponse(404, "not_found", message);
    case absl::StatusCode::kFailedPrecondition:
      return errorResponse(409, "conflict", message);
    case absl::StatusCode::kUnimplemented:
      return errorResponse(501, "not_implemented", message);
    case absl::StatusCode::kUnavailable:
      return errorResponse(503, "unavailable", message);
    default:
      return errorResponse(500, "internal", message);
  }
}

bool isRead(std::string_view method) { return method == "GET" || method == "HEAD"; }

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes one path segment; malformed escapes are kept verbatim.
std::string percentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hexValue(s[i + 1]);
      int lo = hexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

// Compares without an early exit so the time taken says nothing about how
// much of the token a guess got right.
bool constantTimeEquals(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

const RouteConfig* findRoute(const Config& config, std::string_view name) {
  for (const auto& r : config.routes)
    if (r.name == name) return &r;
  return nullptr;
}

// The request's method as the router and the log name it.
std::string_view methodName(evhttp_request* req) {
  switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_GET:
      return "GET";
    case EVHTTP_REQ_HEAD:
      return "HEAD";
    case EVHTTP_REQ_POST:
      return "POST";
    case EVHTTP_REQ_PUT:
      return "PUT";
    case EVHTTP_REQ_DELETE:
      return "DELETE";
    case EVHTTP_REQ_OPTIONS:
      return "OPTIONS";
    case EVHTTP_REQ_TRACE:
      return "TRACE";
    case EVHTTP_REQ_CONNECT:
      return "CONNECT";
    case EVHTTP_REQ_PATCH:
      return "PATCH";
    default:
      return "OTHER";
  }
}

// The request's path, without the query string; empty if it has none.
const char* pathOf(evhttp_request* req) {
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* path = uri != nullptr ? evhttp_uri_get_path(uri) : nullptr;
  return path != nullptr ? path : "";
}

}  // namespace

// Never throws on invalid UTF-8 (route names in paths are client bytes).
AdminResponse jsonResponse(int status, const Json& body) {
  AdminResponse r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  return r;
}

AdminResponse errorResponse(int status, std::string_view code, std::string_view message) {
  return jsonResponse(status, Json{{"error", {{"code", code}, {"message", message}}}});
}

absl::StatusOr<std::string> readTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read admin token file \"", path, "\": ", std::strerror(errno)));
  }
  std::string line;
  std::getline(in, line);
  constexpr std::string_view kSpace = " \t\r\n";
  size_t begin = line.find_first_not_of(kSpace);
  if (begin == std::string::npos) {
    return absl::FailedPreconditionError(
        absl::StrCat("admin token file \"", path, "\" holds no token"));
  }
  size_t end = line.find_last_not_of(kSpace);
  return line.substr(begin, end - begin + 1);
}

AdminRouter::AdminRouter(AdminHooks hooks, const metrics::Registry& registry, std::string token)
    : hooks_(std::move(hooks)), registry_(registry), token_(std::move(token)) {}

bool AdminRouter::authorized(std::string_view authorization) const {
  if (token_.empty()) return true;
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() < kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) return false;
  std::string_view presented = authorization.substr(kScheme.size());
  while (!presented.empty() && presented.front() == ' ') presented.remove_prefix(1);
  return constantTimeEquals(presented, token_);
}

std::variant<AdminResponse, Deferred> AdminRouter::handleAsync(const AdminRequest& request,
                                                              Respond later) const {
  // A hook that throws must not take the process down with it.
  try {
    return route(request, later);
  } catch (const std::exception& e) {
    return errorResponse(500, "internal", e.what());
  } catch (...) {
    return errorResponse(500, "internal", "unexpected error");
  }
}

std::variant<AdminResponse, Deferred> AdminRouter::route(const AdminRequest& req,
                                                        const Respond& later) const {
  const std::string_view m = req.method;
  const std::string_view path = req.path;
  if (req.body.size() > kMaxBodyBytes) {
    return errorResponse(413, "body_too_large",
                         absl::StrCat("request bodies are limited to ", kMaxBodyBytes, " bytes"));
  }
  if ((m == "POST" || m == "PUT" || m == "DELETE") && !authorized(req.authorization)) {
    AdminResponse r = errorResponse(401, "unauthorized", "missing or wrong bearer token");
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"airbag-admin\"");
    return r;
  }

  if (path == "/") {
    if (!isRead(m)) return methodNotAllowed(m, "GET, HEAD");
    return statusPage();
  }
  if (path == "/status") {
    if (!isRead(m)) return methodNotAllowed(m, "GET, HEAD");
    return jsonResponse(200, processStatus());
  }
  if (path == "/healthz") {
    if (!isRead(m)) return methodNotAllowed(m, "GET, HEAD");
    return jsonResponse(200, Json{{"status", "ok"}});
  }
  if (path == "/readyz") {
    if (!isRead(m)) return methodNotAllowed(m, "GET, HEAD");
    return readyz();
  }
  if (path == "/metrics") {
    if (!isRead(m)) return methodNotAllowed(m, "GET, HEAD");
    AdminResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = registry_.renderPrometheus();
    return r;
  }
  if (path == "/config") {
    if (!isRead(m)) return methodNotAllowed(m, "GET, HEAD");
    std::shared_ptr<const Config> cfg = hooks_.config ? hooks_.config() : nullptr;
    if (cfg == nullptr) return errorResponse(503, "no_config", "no configuration loaded");
    AdminResponse r;
    r.body = hooks_.config_json ? hooks_.config_json(*cfg) : config::toJson(*cfg);
    if (r.body.empty() || r.body.back() != '\n') r.body += '\n';
    return r;
  }
  if (path == "/routes") {
    if (!isRead(m)) return methodNotAllowed(m, "GET, HEAD");
    return routes({});
  }
  if (path == "/upstreams") {
    if (!isRead(m)) return methodNotAllowed(m, "GET, HEAD");
    if (!hooks_.upstreams) return notImplemented("upstreams");
    return jsonResponse(200, upstreams());
  }
  if (path == "/drain") {
    if (m != "POST") return methodNotAllowed(m, "POST");
    if (!hooks_.drain) return notImplemented("drain");
    hooks_.drain();
    return jsonResponse(200, Json{{"draining", true}});
  }
  if (path == "/reload") {
    if (m != "POST") return methodNotAllowed(m, "POST");
    if (!hooks_.reload) return notImplemented("reload");
    absl::StatusOr<std::vector<std::string>> warnings = hooks_.reload();
    if (warnings.ok()) return jsonResponse(200, Json{{"reloaded", true}, {"warnings", *warnings}});
    const absl::Status& s = warnings.status();
    if (s.code() == absl::StatusCode::kUnimplemented) return statusResponse(s);
    // The old config stays in force; say why the new one was refused.
    return errorResponse(400, "reload_failed", std::string(s.message()));
  }
  if (path == "/cache/purge") {
    if (m != "POST") return methodNotAllowed(m, "POST");
    if (!hooks_.cache_purge) return notImplemented("cache purge");
    std::optional<std::string> route;
    if (req.body.find_first_not_of(" \t\r\n") != std::string_view::npos) {
      Json body = Json::parse(req.body, nullptr, /*allow_exceptions=*/false);
      if (body.is_discarded() || !body.is_object())
        return errorResponse(400, "bad_request", "body must be a JSON object");
      if (body.contains("route")) {
        if (!body["route"].is_string())
          return errorResponse(400, "bad_request", "\"route\" must be a string");
        route = body["route"].get<std::string>();
      }
    }
    std::optional<std::string_view> which;
    if (route) which = *route;
    absl::Status s = hooks_.cache_purge(which);
    if (!s.ok()) return statusResponse(s);
    return sharedPurge(which, later);
  }

  constexpr std::string_view kRoutes = "/routes/";
  if (path.substr(0, kRoutes.size()) == kRoutes && path.size() > kRoutes.size()) {
    std::string_view rest = path.substr(kRoutes.size());
    size_t slash = rest.find('/');
    std::string name = percentDecode(rest.substr(0, slash));
    if (slash == std::string_view::npos) {
      if (!isRead(m)) return methodNotAllowed(m, "GET, HEAD");
      return routes(name);
    }
    std::string_view action = rest.substr(slash + 1);
    if (action == "circuit" || action == "fault") return routeAction(name, action, req);
    if (action == "history") {
      if (!isRead(m)) return methodNotAllowed(m, "GET, HEAD");
      return history(name);
    }
  }
  return errorResponse(404, "not_found", absl::StrCat("no admin endpoint at ", std::string(path)));
}

AdminResponse AdminRouter::readyz() const {
  Json reasons = Json::array();
  std::shared_ptr<const Config> cfg = hooks_.config ? hooks_.config() : nullptr;
  if (cfg == nullptr) reasons.push_back("config_not_loaded");
  if (hooks_.listeners_up && !hooks_.listeners_up()) reasons.push_back("listeners_down");
  if (hooks_.draining && hooks_.draining()) reasons.push_back("draining");
  if (hooks_.readiness_problems)
    for (std::string& r : hooks_.readiness_problems()) reasons.push_back(std::move(r));
  if (reasons.empty()) return jsonResponse(200, Json{{"ready", true}});
  return jsonResponse(503, Json{{"ready", false}, {"reasons", reasons}});
}

AdminResponse AdminRouter::routes(std::string_view name) const {
  std::shared_ptr<const Config> cfg = hooks_.config ? hooks_.config() : nullptr;
  if (cfg == nullptr) return errorResponse(503, "no_config", "no configuration loaded");
  auto render = [&](const RouteConfig& r) {
    Json j = config::routeToJson(r);
    Json state = hooks_.route_state ? hooks_.route_state(*cfg, r.name) : Json::object();
    j["state"] = state.is_null() ? Json::object() : std::move(state);
    return j;
  };
  if (name.empty()) {
    Json all = Json::array();
    for (const auto& r : cfg->routes) all.push_back(render(r));
    return jsonResponse(200, all);
  }
  const RouteConfig* r = findRoute(*cfg, name);
  if (r == nullptr)
    return errorResponse(404, "not_found",
                         absl::StrCat("no route named \"", std::string(name), "\""));
  return jsonResponse(200, render(*r));
}

AdminResponse AdminRouter::routeAction(std::string_view name, std::string_view action,
                                       const AdminRequest& req) const {
  const std::string_view m = req.method;
  if (action == "circuit" && m != "POST") return methodNotAllowed(m, "POST");
  if (action == "fault" && m != "PUT" && m != "DELETE") return methodNotAllowed(m, "PUT, DELETE");
  std::shared_ptr<const Config> cfg = hooks_.config ? hooks_.config() : nullptr;
  if (cfg == nullptr) return errorResponse(503, "no_config", "no configuration loaded");
  if (findRoute(*cfg, name) == nullptr)
    return errorResponse(404, "not_found",
                         absl::StrCat("no route named \"", std::string(name), "\""));

  if (action == "fault" && m == "DELETE") {
    if (!hooks_.clear_fault) return notImplemented("fault injection");
    absl::Status s = hooks_.clear_fault(name);
    if (!s.ok()) return statusResponse(s);
    return jsonResponse(200, Json{{"route", name}, {"fault", "cleared"}});
  }
  Json body = Json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object())
    return errorResponse(400, "bad_request", "body must be a JSON object");
  if (action == "circuit") {
    if (!hooks_.circuit) return notImplemented("circuit override");
    auto it = body.find("state");
    std::string state = it != body.end() && it->is_string() ? it->get<std::string>() : "";
    if (state != "open" && state != "closed" && state != "auto")
      return errorResponse(400, "bad_request",
                           "\"state\" must be \"open\", \"closed\" or \"auto\"");
    absl::Status s = hooks_.circuit(name, state);
    if (!s.ok()) return statusResponse(s);
    return jsonResponse(200, Json{{"route", name}, {"circuit", state}});
  }
  if (!hooks_.set_fault) return notImplemented("fault injection");
  absl::Status s = hooks_.set_fault(name, body);
  if (!s.ok()) return statusResponse(s);
  return jsonResponse(200, Json{{"route", name}, {"fault", body}});
}

AdminServer::Fd& AdminServer::Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

AdminServer::Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

AdminServer::AdminServer(AdminRouter router, std::shared_ptr<spdlog::logger> logger)
    : router_(std::move(router)), logger_(std::move(logger)) {}

AdminServer::~AdminServer() { stop(); }

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::start(
    const AdminConfig& config, AdminHooks hooks, const metrics::Registry& registry,
    std::shared_ptr<spdlog::logger> logger) {
  std::string token;
  if (!config.token_file.empty()) {
    absl::StatusOr<std::string> t = readTokenFile(config.token_file);
    if (!t.ok()) return t.status();
    token = *std::move(t);
  }
  std::unique_ptr<AdminServer> server(new AdminServer(
      AdminRouter(std::move(hooks), registry, std::move(token)), std::move(logger)));

  server->base_.reset(event_base_new());
  if (!server->base_) return absl::InternalError("admin: event_base_new failed");
  server->http_.reset(evhttp_new(server->base_.get()));
  if (!server->http_) return absl::InternalError("admin: evhttp_new failed");
  evhttp* http = server->http_.get();
  // Every method evhttp knows reaches the router, which answers the ones a
  // path does not take with 405 and the JSON error shape; evhttp itself would
  // answer them with a 501 HTML page.
  evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                       EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                       EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
  // evhttp's own refusal of a large body is an HTML page with no hook to
  // change it, so its limit sits above ours: the router answers bodies over
  // kMaxBodyBytes with JSON, and only bodies over kHardBodyBytes meet evhttp.
  evhttp_set_max_body_size(http, kHardBodyBytes);
  evhttp_set_max_headers_size(http, kMaxHeaderBytes);
  evhttp_set_timeout(http, kRequestTimeoutSeconds);
  evhttp_set_gencb(http, &AdminServer::onRequestCb, server.get());

  const std::string& host = config.bind.host;
  evhttp_bound_socket* bound = evhttp_bind_socket_with_handle(http, host.c_str(), config.bind.port);
  if (bound == nullptr) {
    return absl::UnavailableError(absl::StrCat("admin: cannot listen on ", host, ":",
                                               config.bind.port, ": ", std::strerror(errno)));
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(evhttp_bound_socket_get_fd(bound), reinterpret_cast<sockaddr*>(&addr), &len) !=
      0) {
    return absl::InternalError(absl::StrCat("admin: getsockname: ", std::strerror(errno)));
  }
  server->port_ = addr.ss_family == AF_INET6
                      ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                      : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);

  // stop() wakes the loop through this pipe, so no process-wide libevent
  // threading set-up is needed.
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
    return absl::InternalError(absl::StrCat("admin: pipe2: ", std::strerror(errno)));
  server->wake_read_ = Fd(fds[0]);
  server->wake_write_ = Fd(fds[1]);
  server->mailbox_ = std::make_shared<Mailbox>(fds[1]);
  server->wake_event_.reset(event_new(server->base_.get(), server->wake_read_.get(),
                                      EV_READ | EV_PERSIST, &AdminServer::onWakeCb, server.get()));
  if (!server->wake_event_ || event_add(server->wake_event_.get(), nullptr) != 0)
    return absl::InternalError("admin: cannot watch the wake pipe");
  server->history_tick_.reset(
      evtimer_new(server->base_.get(), &AdminServer::onHistoryTickCb, server.get()));
  if (!server->history_tick_ || !server->sampleHistoryAndRearm())
    return absl::InternalError("admin: cannot start the history timer");

  if (server->logger_) server->logger_->info("admin API listening on {}:{}", host, server->port_);
  event_base* base = server->base_.get();
  server->thread_ = std::thread([base] { event_base_dispatch(base); });
  return server;
}

void AdminServer::stop() {
  if (!thread_.joinable()) return;
  stopping_.store(true);
  mailbox_->wake();
  thread_.join();
  // A late answer now finds the mailbox closed; the held requests go with
  // their connections when evhttp is freed.
  mailbox_->close();
  held_.clear();
  // Close the listening socket now, not at destruction, so a stopped server
  // refuses connections instead of leaving them unanswered.
  http_.reset();
  wake_event_.reset();
  history_tick_.reset();
}

void AdminServer::onWakeCb(evutil_socket_t, short, void* self) {
  static_cast<AdminServer*>(self)->onWake();
}

void AdminServer::onWake() {
  char buf[64];
  while (::read(wake_read_.get(), buf, sizeof(buf)) > 0) {
  }
  if (stopping_.load()) {
    event_base_loopbreak(base_.get());
    return;
  }
  for (auto& [id, resp] : mailbox_->take()) answerHeld(id, std::move(resp));
}

void AdminServer::onHistoryTickCb(evutil_socket_t, short, void* self) {
  static_cast<AdminServer*>(self)->sampleHistoryAndRearm();
}

bool AdminServer::sampleHistoryAndRearm() {
  const absl::Time now = absl::Now();
  router_.sampleHistory(now);
  // The next sample half-way through the next wall-clock second: a timer that
  // fires a little early or late then still lands in the second it is meant
  // for, so no second of the history is skipped or counted twice.
  const absl::Duration into_second = now - absl::FromUnixSeconds(absl::ToUnixSeconds(now));
  timeval delay = absl::ToTimeval(absl::Milliseconds(1500) - into_second);
  return event_add(history_tick_.get(), &delay) == 0;
}

void AdminServer::onRequestCb(evhttp_request* req, void* self) {
  static_cast<AdminServer*>(self)->onRequest(req);
}

void AdminServer::onRequest(evhttp_request* req) {
  const std::string_view method = methodName(req);
  const char* auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
  std::string body;
  evbuffer* in = evhttp_request_get_input_buffer(req);
  body.resize(evbuffer_get_length(in));
  if (!body.empty()) evbuffer_copyout(in, body.data(), body.size());

  const uint64_t id = next_id_++;
  std::weak_ptr<Mailbox> mailbox = mailbox_;
  std::variant<AdminResponse, Deferred> handled = router_.handleAsync(
      AdminRequest{method, pathOf(req), auth != nullptr ? auth : "", body},
      [mailbox, id](AdminResponse resp) {
        if (std::shared_ptr<Mailbox> m = mailbox.lock()) m->post(id, std::move(resp));
      });
  if (AdminResponse* resp = std::get_if<AdminResponse>(&handled)) {
    send(req, std::move(*resp));
    return;
  }
  Deferred& deferred = std::get<Deferred>(handled);
  auto held = std::make_unique<Held>(
      Held{this, id, req, std::move(deferred.on_timeout), nullptr});
  held->timer.reset(evtimer_new(base_.get(), &AdminServer::onHeldTimeoutCb, held.get()));
  timeval tv = absl::ToTimeval(deferred.timeout);
  if (!held->timer || evtimer_add(held->timer.get(), &tv) != 0) {
    send(req, errorResponse(500, "internal", "cannot wait for the answer"));
    return;
  }
  held_.emplace(id, std::move(held));
}

void AdminServer::onHeldTimeoutCb(evutil_socket_t, short, void* arg) {
  auto* held = static_cast<Held*>(arg);
  held->server->answerHeld(held->id, std::move(held->on_timeout));
}

// The first answer of a held request wins: the timeout's, or the one that
// came through the mailbox; the other finds it gone.
void AdminServer::answerHeld(uint64_t id, AdminResponse resp) {
  auto it = held_.find(id);
  if (it == held_.end()) return;
  std::unique_ptr<Held> held = std::move(it->second);
  held_.erase(it);
  send(held->req, std::move(resp));
}

// Every answer, given at once or later, is written (and logged) here.
void AdminServer::send(evhttp_request* req, AdminResponse resp) {
  const std::string_view method = methodName(req);
  if (logger_) logger_->debug("admin {} {} -> {}", method, pathOf(req), resp.status);
  evkeyvalq* out_headers = evhttp_request_get_output_headers(req);
  evhttp_add_header(out_headers, "Content-Type", resp.content_type.c_str());
  evhttp_add_header(out_headers, "Cache-Control", "no-store");
  for (const auto& [k, v] : resp.headers) evhttp_add_header(out_headers, k.c_str(), v.c_str());
  if (method == "HEAD") {
    // evhttp would send the body even for HEAD; announce its length only.
    evhttp_add_header(out_headers, "Content-Length", std::to_string(resp.body.size()).c_str());
    resp.body.clear();
  }
  std::unique_ptr<evbuffer, EvbufferDeleter> out(evbuffer_new());
  if (out == nullptr) {
    evhttp_send_error(req, 500, "out of memory");
    return;
  }
  evbuffer_add(out.get(), resp.body.data(), resp.body.size());
  evhttp_send_reply(req, resp.status, nullptr, out.get());
}

}  // namespace airbag::admin
