// The libcurl upstream client; see curl_client.h.
#include "proxy/upstream/curl_client.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <event2/event.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <mutex>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "proxy/http/headers.h"
#include "proxy/http/text.h"
#include "proxy/metrics/metrics.h"
#include "spdlog/spdlog.h"

namespace airbag::upstream {
namespace {

using SlistPtr = std::unique_ptr<curl_slist, void (*)(curl_slist*)>;

// Hop-by-hop and framing fields: libcurl frames the request itself (and
// HTTP/2 forbids the hop-by-hop ones).
bool droppedRequestHeader(std::string_view name) {
  static constexpr std::string_view kDropped[] = {
      "connection", "keep-alive",        "proxy-connection", "transfer-encoding",
      "te",         "upgrade",           "content-length",   "expect",
      "trailer"};
  for (std::string_view d : kDropped)
    if (http::iequals(name, d)) return true;
  return false;
}

// A transfer that never reached the upstream: connect, name lookup, the TLS
// handshake or the certificate check. The rest happened on a live connection.
bool isConnectFailure(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:  // no transfer timeout is set: only the connect one fires
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_USE_SSL_FAILED:
      return true;
    default:
      return false;
  }
}

std::string bracketed(const std::string& host) {
  return host.find(':') != std::string::npos ? absl::StrCat("[", host, "]") : host;
}

}  // namespace

CurlClientOptions curlOptions(const std::string& name, const UpstreamConfig& u,
                              const sockaddr_storage* address) {
  CurlClientOptions o;
  o.name = name;
  o.https = u.https;
  o.host = u.host;
  o.port = u.port;
  o.connect_timeout = u.connect_timeout;
  o.max_connections = u.max_connections;
  o.http2 = u.https && u.http2;
  if (u.tls) {
    o.ca = u.tls->ca;
    o.verify = u.tls->verify;
    o.sni = u.tls->sni;
  }
  if (address) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (address->ss_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, buf, sizeof buf);
      o.connect_ip = buf;
    } else if (address->ss_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, buf,
                sizeof buf);
      o.connect_ip = buf;
    }
  }
  return o;
}

// A socket curl asked us to watch, with its libevent event.
struct CurlClient::SocketWatch {
  std::unique_ptr<event, void (*)(event*)> ev{nullptr, &event_free};
};

// One transfer. Calls are reused (with their easy handle, reset) from try to try.
class CurlClient::Call final : public UpstreamCall {
 public:
  explicit Call(CurlClient* client) : client_(client), easy_(curl_easy_init(), &curl_easy_cleanup) {}

  bool start(const UpstreamRequest& request, UpstreamResponseHandler* handler);
  void cancel() override;
  void pauseReading() override { paused_ = true; }
  void resumeReading() override;

  // The transfer ended (curl says how); the easy handle is already out of the multi.
  void done(CURLcode rc);
  CURL* easy() const { return easy_.get(); }
  bool active() const { return handler_ != nullptr; }
  bool cancelled() const { return cancelled_; }
  bool inMulti() const { return in_multi_; }
  void setInMulti(bool v) { in_multi_ = v; }
  bool paused() const { return paused_; }
  bool wantsResume() const { return resume_; }
  void clearResume() { resume_ = false; }

 private:
  // The answer's head as the pipeline reads it.
  struct Head final : UpstreamResponseHead {
    std::vector<std::pair<std::string, std::string>> fields;
    size_t headerCount() const override { return fields.size(); }
    std::string_view headerName(size_t i) const override { return fields[i].first; }
    std::string_view headerValue(size_t i) const override { return fields[i].second; }
  };

  static size_t headerCb(char* data, size_t size, size_t n, void* arg) {
    auto* call = static_cast<Call*>(arg);
    return call->onHeaderLine(std::string_view(data, size * n)) ? size * n : 0;
  }
  static size_t writeCb(char* data, size_t size, size_t n, void* arg) {
    return static_cast<Call*>(arg)->onBody(std::string_view(data, size * n));
  }
  // False refuses the transfer (it was cancelled).
  bool onHeaderLine(std::string_view line);
  size_t onBody(std::string_view data);

  CurlClient* client_;
  std::unique_ptr<CURL, void (*)(CURL*)> easy_;
  SlistPtr headers_{nullptr, &curl_slist_free_all};
  UpstreamResponseHandler* handler_ = nullptr;
  std::string url_;
  std::string method_;
  Head head_;
  char error_[CURL_ERROR_SIZE] = {};
  bool head_sent_ = false;
  bool paused_ = false;
  bool resume_ = false;
  bool cancelled_ = false;
  bool in_multi_ = false;
};

bool CurlClient::Call::start(const UpstreamRequest& request, UpstreamResponseHandler* handler) {
  handler_ = handler;
  head_sent_ = paused_ = resume_ = cancelled_ = false;
  head_.fields.clear();
  head_.status = 0;
  head_.has_content_length = false;
  head_.content_length = 0;
  head_.chunked = false;
  error_[0] = '\0';
  headers_.reset();

  // The head the pipeline framed for HTTP/1.1, taken apart again.
  std::string_view rest = request.head;
  size_t eol = rest.find("\r\n");
  std::string_view line = rest.substr(0, eol);
  rest.remove_prefix(eol == std::string_view::npos ? rest.size() : eol + 2);
  size_t sp1 = line.find(' ');
  size_t sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 <= sp1) return false;
  method_.assign(line.substr(0, sp1));
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  url_.assign(client_->url_prefix_);
  url_.append(target);
  bool has_accept = false;
  curl_slist* list = nullptr;
  while (!rest.empty()) {
    eol = rest.find("\r\n");
    line = rest.substr(0, eol);
    rest.remove_prefix(eol == std::string_view::npos ? rest.size() : eol + 2);
    if (line.empty()) break;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = line.substr(0, colon);
    if (droppedRequestHeader(name)) continue;
    if (http::iequals(name, "accept")) has_accept = true;
    list = curl_slist_append(list, std::string(line).c_str());
  }
  // Headers curl would add on its own: none, unless the client sent them.
  list = curl_slist_append(list, "Expect:");
  if (!has_accept) list = curl_slist_append(list, "Accept:");
  headers_.reset(list);

  CURL* e = easy_.get();
  const CurlClientOptions& o = client_->options_;
  curl_easy_reset(e);
  curl_easy_setopt(e, CURLOPT_URL, url_.c_str());
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers_.get());
  curl_easy_setopt(e, CURLOPT_PRIVATE, this);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, error_);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Call::headerCb);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, this);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Call::writeCb);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, this);
  if (o.counts) {
    curl_opensocket_callback open = [](void* p, curlsocktype, curl_sockaddr* a) -> curl_socket_t {
      return static_cast<CurlClient*>(p)->openSocket(a);
    };
    curl_closesocket_callback close = [](void* p, curl_socket_t fd) {
      return static_cast<CurlClient*>(p)->closeSocket(fd);
    };
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, client_);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, client_);
  }
  // Bodies pass through as the upstream encoded them; only chunking is undone.
  curl_easy_setopt(e, CURLOPT_HTTP_CONTENT_DECODING, 0L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::max<int64_t>(1, absl::ToInt64Milliseconds(o.connect_timeout))));
  if (client_->connect_to_)
    curl_easy_setopt(e, CURLOPT_CONNECT_TO, static_cast<curl_slist*>(client_->connect_to_));
  if (o.https) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, o.verify ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, o.verify ? 2L : 0L);
    if (!o.ca.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, o.ca.c_str());
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     o.http2 ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1);
    // A new request waits for a connection being set up rather than opening
    // another, so it can share it once ALPN says HTTP/2.
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
  } else {
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
  }
  if (method_ == "HEAD" || request.head_only_response) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    if (method_ != "HEAD") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method_.c_str());
  } else if (request.body.empty() && method_ != "POST" && method_ != "PUT" && method_ != "PATCH") {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    if (method_ != "GET") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method_.c_str());
  } else {
    // The body stays the caller's until the try ends; curl reads it in place.
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, request.body.empty() ? "" : request.body.data());
    if (method_ != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method_.c_str());
  }
  in_multi_ = curl_multi_add_handle(client_->multi_.get(), e) == CURLM_OK;
  return in_multi_;
}

bool CurlClient::Call::onHeaderLine(std::string_view line) {
  if (cancelled_) return false;
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.substr(0, 5) == "HTTP/") {  // a status line: a new head begins (after a 1xx)
    head_.fields.clear();
    head_.has_content_length = false;
    head_.chunked = false;
    return true;
  }
  if (!line.empty()) {
    size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      std::string_view name = line.substr(0, colon);
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
      if (http::iequals(name, "content-length")) {
        uint64_t n = 0;
        auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (ec == std::errc() && p == value.data() + value.size()) {
          head_.has_content_length = true;
          head_.content_length = n;
        }
      } else if (http::iequals(name, "transfer-encoding")) {
        head_.chunked = http::headerHasToken(value, "chunked");
      }
      head_.fields.emplace_back(std::string(name), std::string(value));
    }
    return true;
  }
  // The blank line: the head is complete, unless it was an interim (1xx) one.
  long code = 0;
  curl_easy_getinfo(easy_.get(), CURLINFO_RESPONSE_CODE, &code);
  if (code < 200) return true;
  head_.status = static_cast<int>(code);
  if (head_.chunked) head_.has_content_length = false;
  head_sent_ = true;
  handler_->onUpstreamHeaders(head_);
  return !cancelled_;
}

size_t CurlClient::Call::onBody(std::string_view data) {
  if (cancelled_) return 0;
  // Flow control: curl keeps this piece and offers it again after the resume.
  if (paused_) return CURL_WRITEFUNC_PAUSE;
  if (!head_sent_) return 0;  // a body before a head: cannot happen with HTTP
  if (!data.empty()) handler_->onUpstreamData(data);
  if (cancelled_) return 0;
  handler_->onUpstreamReadDone();
  return cancelled_ ? 0 : data.size();
}

void CurlClient::Call::cancel() {
  if (!handler_ || cancelled_) return;
  cancelled_ = true;
  handler_ = nullptr;
  if (client_->depth_ > 0) {
    // Inside curl's own callbacks the handle may not leave the multi: the
    // callbacks now refuse the transfer, and the handle goes right after.
    client_->to_remove_.push_back(this);
    client_->kick();
    return;
  }
  client_->release(this);
}

void CurlClient::Call::resumeReading() {
  if (!paused_) return;
  paused_ = false;
  // Unpausing may deliver buffered data at once; never inside the caller's
  // own stack (it is usually in the middle of writing to the client).
  resume_ = true;
  client_->to_resume_.push_back(this);
  client_->kick();
}

void CurlClient::Call::done(CURLcode rc) {
  UpstreamResponseHandler* h = handler_;
  handler_ = nullptr;
  if (!h) return;
  if (rc == CURLE_OK && head_sent_) {
    h->onUpstreamComplete();
    return;
  }
  // Copied: the handler may start its next try on this very call object.
  const std::string why = error_[0] ? error_ : curl_easy_strerror(rc);
  if (!head_sent_ && isConnectFailure(rc)) {
    if (client_->logger_)
      client_->logger_->warn("upstream '{}': cannot connect to {}: {}", client_->options_.name,
                             client_->url_prefix_, why);
    h->onUpstreamFailure(AttemptOutcome::kConnect, why);
    return;
  }
  h->onUpstreamFailure(AttemptOutcome::kReset, rc == CURLE_OK ? "answer without a head" : why);
}

// ---------------------------------------------------------------------------

CurlClient::CurlClient(event_base* base, CurlClientOptions options,
                       metrics::WorkerMetrics* metrics, std::shared_ptr<spdlog::logger> logger)
    : base_(base),
      options_(std::move(options)),
      metrics_(metrics),
      logger_(std::move(logger)),
      // libcurl was loaded (loadCurl) when a configuration with an https
      // upstream was loaded; a process without one never loads it.
      multi_(curl_multi_init(), [](CURLM* m) { curl_multi_cleanup(m); }),
      timer_(evtimer_new(base, &CurlClient::timeoutCb, this), &event_free),
      kick_ev_(event_new(base, -1, 0, &CurlClient::kickCb, this), &event_free),
      share_(options_.counts) {
  const std::string& name = options_.sni.empty() ? options_.host : options_.sni;
  url_prefix_ =
      absl::StrCat(options_.https ? "https://" : "http://", bracketed(name), ":", options_.port);
  if (!options_.connect_ip.empty()) {
    // Connect to the address resolved at load, whatever name the url (and
    // so SNI and the certificate check) carries: no DNS on the worker loop.
    std::string rule = absl::StrCat(bracketed(name), ":", options_.port, ":",
                                    bracketed(options_.connect_ip), ":", options_.port);
    connect_to_ = curl_slist_append(nullptr, rule.c_str());
  }
  CURLM* m = multi_.get();
  curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, &CurlClient::socketCb);
  curl_multi_setopt(m, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, &CurlClient::timerCb);
  curl_multi_setopt(m, CURLMOPT_TIMERDATA, this);
  curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(options_.max_connections));
  curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, static_cast<long>(options_.max_connections));
  curl_multi_setopt(m, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
}

CurlClient::~CurlClient() {
  // Transfers leave the multi before it goes, and the multi before its handles.
  for (auto& c : calls_)
    if (c->inMulti()) curl_multi_remove_handle(multi_.get(), c->easy());
  multi_.reset();
  watches_.clear();
  calls_.clear();
  if (connect_to_) curl_slist_free_all(static_cast<curl_slist*>(connect_to_));
}

UpstreamCall* CurlClient::start(const UpstreamRequest& request, UpstreamResponseHandler* handler) {
  Call* call;
  if (!free_calls_.empty()) {
    call = free_calls_.back();
    free_calls_.pop_back();
  } else {
    calls_.push_back(std::make_unique<Call>(this));
    call = calls_.back().get();
  }
  ++active_;
  publish();
  if (!call->start(request, handler)) {
    // Never reached curl: report it from the loop, not from inside start().
    if (logger_) logger_->warn("upstream '{}': cannot start a transfer", options_.name);
    failed_starts_.push_back(call);
    kick();
  }
  return call;
}

void CurlClient::release(Call* call) {
  long connects = 0;
  if (curl_easy_getinfo(call->easy(), CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK &&
      connects > 0) {
    opened_ += static_cast<uint64_t>(connects);
    if (metrics_)
      for (long i = 0; i < connects; ++i) metrics_->upstreamConnectionOpened(options_.name);
  }
  curl_multi_remove_handle(multi_.get(), call->easy());
  call->setInMulti(false);
  --active_;
  free_calls_.push_back(call);
  publish();
}

int CurlClient::openSocket(const curl_sockaddr* address) {
  int fd = ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
  if (fd < 0) return CURL_SOCKET_BAD;
  ++open_sockets_;
  publish();
  return fd;
}

int CurlClient::closeSocket(int fd) {
  --open_sockets_;
  publish();
  return ::close(fd);
}

void CurlClient::publish() {
  share_.set(open_sockets_,
             std::max<int64_t>(0, open_sockets_ - static_cast<int64_t>(active_)));
}

int CurlClient::socketCb(CURL*, curl_socket_t fd, int what, void* clientp, void*) {
  return static_cast<CurlClient*>(clientp)->onSocket(fd, what);
}

int CurlClient::onSocket(int fd, int what) {
  if (what == CURL_POLL_REMOVE) {
    watches_.erase(fd);
    return 0;
  }
  std::unique_ptr<SocketWatch>& w = watches_[fd];
  if (!w) w = std::make_unique<SocketWatch>();
  short kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
               ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
  w->ev.reset(event_new(base_, fd, kind, &CurlClient::eventCb, this));
  event_add(w->ev.get(), nullptr);
  return 0;
}

int CurlClient::timerCb(CURLM*, long timeout_ms, void* clientp) {
  static_cast<CurlClient*>(clientp)->onTimerSet(timeout_ms);
  return 0;
}

void CurlClient::onTimerSet(long timeout_ms) {
  if (timeout_ms < 0) {
    evtimer_del(timer_.get());
    return;
  }
  // Zero means "as soon as possible": from the loop, never from inside curl.
  timeval tv = {timeout_ms / 1000, static_cast<suseconds_t>((timeout_ms % 1000) * 1000)};
  evtimer_add(timer_.get(), &tv);
}

void CurlClient::eventCb(int fd, short what, void* arg) {
  int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
  static_cast<CurlClient*>(arg)->socketAction(fd, action);
}

void CurlClient::timeoutCb(int, short, void* arg) {
  static_cast<CurlClient*>(arg)->socketAction(CURL_SOCKET_TIMEOUT, 0);
}

void CurlClient::kickCb(int, short, void* arg) { static_cast<CurlClient*>(arg)->onKick(); }

void CurlClient::kick() { event_active(kick_ev_.get(), 0, 0); }

void CurlClient::socketAction(int fd, int ev_bitmask) {
  int running = 0;
  ++depth_;
  curl_multi_socket_action(multi_.get(), fd, ev_bitmask, &running);
  --depth_;
  collectDone();
}

void CurlClient::onKick() {
  std::vector<Call*> resume;
  resume.swap(to_resume_);
  for (Call* c : resume) {
    if (!c->active() || !c->wantsResume()) continue;
    c->clearResume();
    if (c->paused()) continue;  // paused again meanwhile
    ++depth_;
    curl_easy_pause(c->easy(), CURLPAUSE_CONT);
    --depth_;
  }
  std::vector<Call*> failed;
  failed.swap(failed_starts_);
  for (Call* c : failed) {
    --active_;
    free_calls_.push_back(c);
    c->done(CURLE_FAILED_INIT);
  }
  collectDone();
}

void CurlClient::collectDone() {
  // Transfers cancelled from inside curl's callbacks leave now.
  if (!to_remove_.empty()) {
    std::vector<Call*> doomed;
    doomed.swap(to_remove_);
    for (Call* c : doomed) release(c);
  }
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_.get(), &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURLcode rc = msg->data.result;
    Call* call = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &call);
    if (!call) continue;
    release(call);
    // The handler may start the next try from here, on this very client.
    call->done(rc);
  }
}

}  // namespace airbag::upstream
