// Listener side of the demo model server and the state shared by its connections.
#include "server.h"

#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "connection.h"

namespace demo {
namespace {

std::string formatAddress(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
    return absl::StrCat("[", host, "]:", ntohs(a->sin6_port));
  }
  const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
  inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
  return absl::StrCat(host, ":", ntohs(a->sin_port));
}

// "host:port" or "[v6]:port"; port 0 is allowed (the kernel picks one), which
// evutil_parse_sockaddr_port refuses.
bool parseListen(const std::string& text, sockaddr_storage& ss, socklen_t& len) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  std::string host = text.substr(0, colon);
  uint32_t port = 0;
  if (!absl::SimpleAtoi(text.substr(colon + 1), &port) || port > 65535) return false;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof(*a);
    return inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &a->sin6_addr) == 1;
  }
  if (host == "localhost") host = "127.0.0.1";
  auto* a = reinterpret_cast<sockaddr_in*>(&ss);
  a->sin_family = AF_INET;
  a->sin_port = htons(static_cast<uint16_t>(port));
  len = sizeof(*a);
  return inet_pton(AF_INET, host.c_str(), &a->sin_addr) == 1;
}

}  // namespace

Server::Server(event_base* base, Options options)
    : base_(base), options_(std::move(options)), rng_(options_.seed) {}

Server::~Server() {
  connections_.clear();  // before the listener and the counters they update
}

absl::StatusOr<std::unique_ptr<Server>> Server::create(event_base* base, Options options) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (!parseListen(options.listen, ss, len)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--listen: expected host:port (e.g. 127.0.0.1:8000), got \"", options.listen, "\""));
  }
  std::unique_ptr<Server> server(new Server(base, std::move(options)));
  server->listener_.reset(evconnlistener_new_bind(
      base, &Server::acceptCb, server.get(), LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
      reinterpret_cast<sockaddr*>(&ss), static_cast<int>(len)));
  if (!server->listener_) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", server->options_.listen, ": ", std::strerror(errno)));
  }
  sockaddr_storage bound{};
  socklen_t bound_len = sizeof(bound);
  if (getsockname(evconnlistener_get_fd(server->listener_.get()),
                  reinterpret_cast<sockaddr*>(&bound), &bound_len) != 0) {
    return absl::InternalError(absl::StrCat("getsockname: ", std::strerror(errno)));
  }
  server->bound_address_ = formatAddress(bound);
  return server;
}

void Server::acceptCb(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
  static_cast<Server*>(arg)->onAccept(fd);
}

void Server::onAccept(evutil_socket_t fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  evutil_make_socket_nonblocking(fd);
  bufferevent* bev = bufferevent_socket_new(base_, fd, BEV_OPT_CLOSE_ON_FREE);
  if (bev == nullptr) {
    evutil_closesocket(fd);
    return;
  }
  auto connection = std::make_unique<Connection>(*this, bev);
  Connection* key = connection.get();
  connections_.emplace(key, std::move(connection));
}

void Server::release(Connection* connection) { connections_.erase(connection); }

void Server::enqueue(Connection* c) {
  waiting_.push_back(c);
  admitWaiting();
}

void Server::leave(Connection* c) {
  if (running_.erase(c) == 0) {
    for (auto it = waiting_.begin(); it != waiting_.end(); ++it)
      if (*it == c) {
        waiting_.erase(it);
        break;
      }
  }
  admitWaiting();
}

void Server::admitWaiting() {
  const int64_t capacity = behavior_.capacity;
  while (!waiting_.empty() && (capacity == 0 || static_cast<int64_t>(running_.size()) < capacity)) {
    Connection* c = waiting_.front();
    waiting_.pop_front();
    running_.insert(c);
    c->startService();
  }
  stats_.waiting = static_cast<int64_t>(waiting_.size());
  stats_.running = static_cast<int64_t>(running_.size());
}

std::string Server::metricsText() const {
  const std::string& m = options_.name;
  const double capacity = static_cast<double>(behavior_.capacity);
  const double usage = capacity > 0 ? static_cast<double>(running_.size()) / capacity : 0.0;
  return absl::StrCat(
      "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
      "# TYPE vllm:num_requests_running gauge\n"
      "vllm:num_requests_running{model_name=\"",
      m, "\"} ", running_.size(), "\n",
      "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
      "# TYPE vllm:num_requests_waiting gauge\n"
      "vllm:num_requests_waiting{model_name=\"",
      m, "\"} ", waiting_.size(), "\n",
      "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
      "# TYPE vllm:kv_cache_usage_perc gauge\n"
      "vllm:kv_cache_usage_perc{model_name=\"",
      m, "\"} ", usage, "\n");
}

Draws Server::draw() {
  auto unit = [this] { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; };
  Draws d;
  d.drop = unit();
  d.error = unit();
  d.jitter = unit();
  return d;
}

void Server::reset() {
  Stats fresh;
  fresh.in_flight = stats_.in_flight;
  fresh.max_concurrent = stats_.in_flight;
  fresh.connections_open = stats_.connections_open;
  fresh.waiting = stats_.waiting;
  fresh.running = stats_.running;
  stats_ = std::move(fresh);
  behavior_ = Behavior{};
  rng_.seed(options_.seed);
  admitWaiting();  // capacity is off again: whoever waits is served
}

}  // namespace demo
