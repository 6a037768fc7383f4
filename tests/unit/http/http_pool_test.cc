// Tests for the keep-alive upstream pool against a scripted loopback server:
// reuse, idle close, the stale keep-alive race, connect and mid-answer
// failures, cancel, flow control and the connection limit.
#include "proxy/upstream/http_pool.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace airbag::upstream {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kWait{5000};

// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    reset(o.release());
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

sockaddr_in loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// A listening socket on 127.0.0.1, port chosen by the kernel.
Fd listenLoopback(int backlog, uint16_t* port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a = loopback(0);
  if (fd.get() < 0 || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::listen(fd.get(), backlog) != 0)
    return Fd();
  socklen_t len = sizeof(a);
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

// One accepted connection on the server side, with its unread bytes.
struct Peer {
  Fd fd;
  std::string pending;
};

// A loopback HTTP server driven by a script on its own thread. Every wait is
// bounded and is cut short when the test ends.
class ScriptedServer {
 public:
  explicit ScriptedServer(int backlog = 16) {
    listen_ = listenLoopback(backlog, &port_);
    int p[2];
    if (::pipe2(p, O_CLOEXEC) == 0) {
      wake_r_.reset(p[0]);
      wake_w_.reset(p[1]);
    }
  }
  ~ScriptedServer() {
    stop_ = true;
    if (wake_w_.get() >= 0) (void)!::write(wake_w_.get(), "x", 1);
    if (thread_.joinable()) thread_.join();
  }

  bool ok() const { return listen_.get() >= 0 && wake_r_.get() >= 0; }
  uint16_t port() const { return port_; }
  int accepts() const { return accepts_.load(); }
  int requestsSeen() const { return requests_seen_.load(); }
  bool scriptDone() const { return script_done_.load(); }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

  void run(std::function<void(ScriptedServer&)> script) {
    thread_ = std::thread([this, script = std::move(script)] {
      script(*this);
      script_done_ = true;
    });
  }

  // Lets a script that waits in waitForGo() go on.
  void go() { go_count_.fetch_add(1); }

  // ---- Script side ----

  std::optional<Peer> accept() {
    if (!waitReadable(listen_.get())) return std::nullopt;
    int fd = ::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return std::nullopt;
    accepts_.fetch_add(1);
    Peer peer;
    peer.fd.reset(fd);
    return peer;
  }

  // Reads one request (head, then a Content-Length body). nullopt on EOF,
  // error, timeout or stop.
  std::optional<std::string> readRequest(Peer& peer) {
    while (true) {
      size_t end = peer.pending.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t head_len = end + 4;
        size_t body_len = contentLength(std::string_view(peer.pending).substr(0, head_len));
        if (peer.pending.size() >= head_len + body_len) {
          std::string req = peer.pending.substr(0, head_len + body_len);
          peer.pending.erase(0, head_len + body_len);
          {
            std::lock_guard<std::mutex> lock(mu_);
            requests_.push_back(req);
          }
          requests_seen_.fetch_add(1);
          return req;
        }
      }
      if (!readSome(peer)) return std::nullopt;
    }
  }

  // Waits until the client closes its side; true if it did.
  bool waitEof(Peer& peer) {
    while (true) {
      if (!waitReadable(peer.fd.get())) return false;
      char buf[4096];
      ssize_t n = ::recv(peer.fd.get(), buf, sizeof(buf), 0);
      if (n <= 0) return true;
    }
  }

  void write(Peer& peer, std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(peer.fd.get(), data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        ADD_FAILURE() << "server write failed: " << std::strerror(errno);
        return;
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
  }

  // Closes with a reset instead of a FIN.
  void abort(Peer& peer) {
    linger l{1, 0};
    ::setsockopt(peer.fd.get(), SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    peer.fd.reset();
  }

  // Waits for the n-th go() from the test.
  bool waitForGo(int n) {
    auto deadline = Clock::now() + kWait;
    while (go_count_.load() < n) {
      if (stop_ || Clock::now() > deadline) return false;
      pollFor(nullptr, 0, 2);
    }
    return true;
  }

  // Marks a point the test can wait for.
  void mark() { marks_.fetch_add(1); }
  int marks() const { return marks_.load(); }

 private:
  static size_t contentLength(std::string_view head) {
    std::string lower(head);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    size_t at = lower.find("\r\ncontent-length:");
    if (at == std::string::npos) return 0;
    return static_cast<size_t>(std::strtoull(lower.c_str() + at + 17, nullptr, 10));
  }

  bool readSome(Peer& peer) {
    if (!waitReadable(peer.fd.get())) return false;
    char buf[4096];
    ssize_t n = ::recv(peer.fd.get(), buf, sizeof(buf), 0);
    if (n <= 0) return false;
    peer.pending.append(buf, static_cast<size_t>(n));
    return true;
  }

  // Polls `fd` and the wake pipe; false on timeout or stop.
  bool waitReadable(int fd) {
    auto deadline = Clock::now() + kWait;
    while (!stop_) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      pollfd fds[2] = {{fd, POLLIN, 0}, {wake_r_.get(), POLLIN, 0}};
      int n = pollFor(fds, 2, static_cast<int>(left.count()));
      if (n > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) return true;
      if (n > 0 && fds[1].revents) return false;
    }
    return false;
  }

  static int pollFor(pollfd* fds, nfds_t n, int ms) { return ::poll(fds, n, ms); }

  Fd listen_;
  Fd wake_r_, wake_w_;
  uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> script_done_{false};
  std::atomic<int> accepts_{0};
  std::atomic<int> requests_seen_{0};
  std::atomic<int> go_count_{0};
  std::atomic<int> marks_{0};
  std::mutex mu_;
  std::vector<std::string> requests_;
};

// Records every callback of one try.
class RecordingHandler : public UpstreamResponseHandler {
 public:
  explicit RecordingHandler(std::string tag = "", std::vector<std::string>* shared_log = nullptr)
      : tag_(std::move(tag)), shared_log_(shared_log) {}

  void onUpstreamHeaders(const UpstreamResponseHead& head) override {
    log("headers");
    status = head.status;
    has_content_length = head.has_content_length;
    content_length = head.content_length;
    chunked = head.chunked;
    for (size_t i = 0; i < head.headerCount(); ++i)
      headers.emplace_back(std::string(head.headerName(i)), std::string(head.headerValue(i)));
    if (on_headers) on_headers();
  }
  void onUpstreamData(std::string_view data) override {
    log("data");
    body.append(data);
    if (on_data) on_data();
  }
  void onUpstreamComplete() override {
    log("complete");
    completed = true;
  }
  void onUpstreamFailure(AttemptOutcome o, std::string_view d) override {
    log("failure");
    failed = true;
    outcome = o;
    detail = std::string(d);
  }

  bool done() const { return completed || failed; }
  int callbacks() const { return static_cast<int>(events.size()); }
  // Events with consecutive "data" collapsed.
  std::vector<std::string> shape() const {
    std::vector<std::string> out;
    for (const std::string& e : events)
      if (out.empty() || out.back() != e || e != "data") out.push_back(e);
    return out;
  }

  std::vector<std::string> events;
  int status = 0;
  bool has_content_length = false;
  uint64_t content_length = 0;
  bool chunked = false;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool completed = false;
  bool failed = false;
  AttemptOutcome outcome = AttemptOutcome::kOk;
  std::string detail;
  std::function<void()> on_headers;
  std::function<void()> on_data;

 private:
  void log(const std::string& e) {
    events.push_back(e);
    if (shared_log_) shared_log_->push_back(tag_ + ":" + e);
  }
  std::string tag_;
  std::vector<std::string>* shared_log_;
};

struct EventBaseDeleter {
  void operator()(event_base* b) const { event_base_free(b); }
};
struct EventDeleter {
  void operator()(event* e) const { event_free(e); }
};

constexpr std::string_view kGet = "GET /v1/models HTTP/1.1\r\nHost: upstream\r\n\r\n";
constexpr std::string_view kPostHead =
    "POST /v1/completions HTTP/1.1\r\nHost: upstream\r\nContent-Length: 13\r\n\r\n";
constexpr std::string_view kPostBody = "{\"prompt\":42}";
constexpr std::string_view kOk = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
constexpr std::string_view kOk2 = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nworld";

class HttpPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_.reset(event_base_new());
    ASSERT_NE(base_, nullptr);
    // A steady tick keeps EVLOOP_ONCE from blocking forever when nothing happens.
    tick_.reset(event_new(
        base_.get(), -1, EV_PERSIST, [](int, short, void*) {}, nullptr));
    timeval tv{0, 10 * 1000};
    event_add(tick_.get(), &tv);
  }
  void TearDown() override {
    pool_.reset();
    tick_.reset();
    base_.reset();
  }

  HttpPool& makePool(uint16_t port, uint32_t max_connections = 8,
                     absl::Duration connect_timeout = absl::Seconds(2), uint32_t max_idle = 64) {
    HttpPoolOptions o;
    o.name = "model";
    sockaddr_in a = loopback(port);
    std::memcpy(&o.address, &a, sizeof(a));
    o.address_len = sizeof(a);
    o.connect_timeout = connect_timeout;
    o.max_connections = max_connections;
    o.max_idle = max_idle;
    pool_ = std::make_unique<HttpPool>(base_.get(), o, nullptr);
    return *pool_;
  }

  // Runs the loop until `done` holds or the deadline passes.
  bool runUntil(const std::function<bool()>& done,
                std::chrono::milliseconds limit = std::chrono::milliseconds(kWait)) {
    auto deadline = Clock::now() + limit;
    while (!done()) {
      if (Clock::now() > deadline) return false;
      event_base_loop(base_.get(), EVLOOP_ONCE);
    }
    return true;
  }

  // Runs the loop for a fixed window: only for asserting that nothing happens.
  void runFor(std::chrono::milliseconds window) {
    auto deadline = Clock::now() + window;
    while (Clock::now() < deadline) event_base_loop(base_.get(), EVLOOP_ONCE);
  }

  static UpstreamRequest get() {
    UpstreamRequest r;
    r.head = kGet;
    return r;
  }

  std::unique_ptr<event_base, EventBaseDeleter> base_;
  std::unique_ptr<event, EventDeleter> tick_;
  std::unique_ptr<HttpPool> pool_;
};

TEST_F(HttpPoolTest, RequestGetsItsAnswer) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.run([](ScriptedServer& s) {
    auto peer = s.accept();
    if (!peer) return;
    if (!s.readRequest(*peer)) return;
    s.write(*peer,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n");
    s.write(*peer, "hello");
    s.waitEof(*peer);
  });
  HttpPool& pool = makePool(server.port());
  RecordingHandler h;
  UpstreamRequest req;
  req.head = kPostHead;
  req.body = kPostBody;
  UpstreamCall* call = pool.start(req, &h);
  ASSERT_NE(call, nullptr);
  EXPECT_EQ(h.callbacks(), 0) << "start() must not call the handler";
  ASSERT_TRUE(runUntil([&] { return h.done(); }));
  EXPECT_TRUE(h.completed) << h.detail;
  EXPECT_EQ(h.status, 200);
  EXPECT_TRUE(h.has_content_length);
  EXPECT_EQ(h.content_length, 5u);
  EXPECT_FALSE(h.chunked);
  EXPECT_EQ(h.body, "hello");
  EXPECT_EQ(h.shape(), (std::vector<std::string>{"headers", "data", "complete"}));
  bool saw_type = false;
  for (auto& [n, v] : h.headers) saw_type |= n == "Content-Type" && v == "application/json";
  EXPECT_TRUE(saw_type);
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0], std::string(kPostHead) + std::string(kPostBody));
  EXPECT_EQ(pool.connectionsOpened(), 1u);
  EXPECT_EQ(pool.idleConnections(), 1u);
}

TEST_F(HttpPoolTest, ChunkedAnswerArrivesDeChunked) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.run([](ScriptedServer& s) {
    auto peer = s.accept();
    if (!peer || !s.readRequest(*peer)) return;
    s.write(*peer,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            "6\r\ndata: \r\n5\r\nhello\r\n0\r\n\r\n");
    s.waitEof(*peer);
  });
  HttpPool& pool = makePool(server.port());
  RecordingHandler h;
  pool.start(get(), &h);
  ASSERT_TRUE(runUntil([&] { return h.done(); }));
  EXPECT_TRUE(h.completed) << h.detail;
  EXPECT_TRUE(h.chunked);
  EXPECT_EQ(h.body, "data: hello");
  EXPECT_EQ(pool.idleConnections(), 1u);
}

TEST_F(HttpPoolTest, SequentialRequestsReuseOneConnection) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.run([](ScriptedServer& s) {
    auto peer = s.accept();
    if (!peer) return;
    if (!s.readRequest(*peer)) return;
    s.write(*peer, kOk);
    if (!s.readRequest(*peer)) return;
    s.write(*peer, kOk2);
    s.waitEof(*peer);
  });
  HttpPool& pool = makePool(server.port());
  RecordingHandler h1, h2;
  pool.start(get(), &h1);
  ASSERT_TRUE(runUntil([&] { return h1.done(); }));
  EXPECT_TRUE(h1.completed) << h1.detail;
  EXPECT_EQ(h1.body, "hello");
  pool.start(get(), &h2);
  ASSERT_TRUE(runUntil([&] { return h2.done(); }));
  EXPECT_TRUE(h2.completed) << h2.detail;
  EXPECT_EQ(h2.body, "world");
  EXPECT_EQ(pool.connectionsOpened(), 1u);
  EXPECT_EQ(server.accepts(), 1);
  EXPECT_EQ(server.requestsSeen(), 2);
}

TEST_F(HttpPoolTest, ConnectionCloseAnswerIsNotReused) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.run([](ScriptedServer& s) {
    for (int i = 0; i < 2; ++i) {
      auto peer = s.accept();
      if (!peer || !s.readRequest(*peer)) return;
      s.write(*peer, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
    }
  });
  HttpPool& pool = makePool(server.port());
  RecordingHandler h1, h2;
  pool.start(get(), &h1);
  ASSERT_TRUE(runUntil([&] { return h1.done(); }));
  EXPECT_TRUE(h1.completed);
  EXPECT_EQ(pool.idleConnections(), 0u);
  pool.start(get(), &h2);
  ASSERT_TRUE(runUntil([&] { return h2.done(); }));
  EXPECT_TRUE(h2.completed) << h2.detail;
  EXPECT_EQ(pool.connectionsOpened(), 2u);
  EXPECT_EQ(server.accepts(), 2);
}

TEST_F(HttpPoolTest, IdleConnectionClosedByServerIsReplaced) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.run([](ScriptedServer& s) {
    {
      auto peer = s.accept();
      if (!peer || !s.readRequest(*peer)) return;
      s.write(*peer, kOk);
    }  // closes the kept-alive connection while it is idle
    auto peer = s.accept();
    if (!peer || !s.readRequest(*peer)) return;
    s.write(*peer, kOk2);
    s.waitEof(*peer);
  });
  HttpPool& pool = makePool(server.port());
  RecordingHandler h1, h2;
  pool.start(get(), &h1);
  ASSERT_TRUE(runUntil([&] { return h1.done(); }));
  EXPECT_TRUE(h1.completed) << h1.detail;
  // The pool notices the close while the connection is idle.
  ASSERT_TRUE(runUntil([&] { return pool.idleConnections() == 0 && pool.openConnections() == 0; }));
  pool.start(get(), &h2);
  ASSERT_TRUE(runUntil([&] { return h2.done(); }));
  EXPECT_TRUE(h2.completed) << h2.detail;
  EXPECT_EQ(h2.body, "world");
  EXPECT_EQ(pool.connectionsOpened(), 2u);
  EXPECT_EQ(server.accepts(), 2);
}

TEST_F(HttpPoolTest, StaleKeptAliveConnectionIsRetriedOnAFreshOne) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.run([](ScriptedServer& s) {
    {
      auto peer = s.accept();
      if (!peer || !s.readRequest(*peer)) return;
      s.write(*peer, kOk);
      // The next request arrives just as the upstream gives up on the
      // connection: it is read and dropped, never answered.
      if (!s.readRequest(*peer)) return;
    }
    auto peer = s.accept();
    if (!peer || !s.readRequest(*peer)) return;
    s.write(*peer, kOk2);
    s.waitEof(*peer);
  });
  HttpPool& pool = makePool(server.port());
  RecordingHandler h1, h2;
  pool.start(get(), &h1);
  ASSERT_TRUE(runUntil([&] { return h1.done(); }));
  ASSERT_TRUE(h1.completed) << h1.detail;
  ASSERT_EQ(pool.idleConnections(), 1u);

  UpstreamRequest req;
  req.head = kPostHead;
  req.body = kPostBody;
  pool.start(req, &h2);
  ASSERT_TRUE(runUntil([&] { return h2.done(); }));
  EXPECT_TRUE(h2.completed) << "outcome " << attemptOutcomeLabel(h2.outcome) << ": " << h2.detail;
  EXPECT_EQ(h2.body, "world");
  EXPECT_EQ(h2.shape(), (std::vector<std::string>{"headers", "data", "complete"}));
  EXPECT_EQ(server.accepts(), 2);
  EXPECT_EQ(pool.connectionsOpened(), 2u);
  // The same request, whole, reached the upstream twice.
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[1], std::string(kPostHead) + std::string(kPostBody));
  EXPECT_EQ(reqs[2], reqs[1]);
}

TEST_F(HttpPoolTest, FreshConnectionClosedWithoutAnswerIsReset) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.run([](ScriptedServer& s) {
    auto peer = s.accept();
    if (!peer) return;
    s.readRequest(*peer);
  });
  HttpPool& pool = makePool(server.port());
  RecordingHandler h;
  pool.start(get(), &h);
  ASSERT_TRUE(runUntil([&] { return h.done(); }));
  EXPECT_TRUE(h.failed);
  EXPECT_EQ(h.outcome, AttemptOutcome::kReset) << attemptOutcomeLabel(h.outcome);
  EXPECT_EQ(h.events, (std::vector<std::string>{"failure"}));
  // No transparent retry on a connection that never served anything.
  EXPECT_EQ(pool.connectionsOpened(), 1u);
  EXPECT_EQ(server.accepts(), 1);
}

TEST_F(HttpPoolTest, ClosedPortIsConnectFailure) {
  uint16_t port = 0;
  {
    // Bound but never listening: connects are refused.
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a = loopback(0);
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    socklen_t len = sizeof(a);
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    HttpPool& pool = makePool(port);
    RecordingHandler h;
    pool.start(get(), &h);
    EXPECT_EQ(h.callbacks(), 0) << "start() must not call the handler";
    ASSERT_TRUE(runUntil([&] { return h.done(); }));
    EXPECT_TRUE(h.failed);
    EXPECT_EQ(h.outcome, AttemptOutcome::kConnect) << attemptOutcomeLabel(h.outcome);
    EXPECT_EQ(h.events, (std::vector<std::string>{"failure"}));
    ASSERT_TRUE(runUntil([&] { return pool.openConnections() == 0; }));
  }
}

TEST_F(HttpPoolTest, ConnectTimeoutIsConnectFailure) {
  // A listener that never accepts, with its backlog filled: further SYNs are
  // dropped, so a connect neither succeeds nor fails until the timeout.
  uint16_t port = 0;
  Fd listener = listenLoopback(1, &port);
  ASSERT_GE(listener.get(), 0);
  std::vector<Fd> fillers;
  for (int i = 0; i < 4; ++i) {
    Fd f(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_in a = loopback(port);
    ::connect(f.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a));
    fillers.push_back(std::move(f));
  }
  HttpPool& pool = makePool(port, 8, absl::Milliseconds(200));
  RecordingHandler h;
  pool.start(get(), &h);
  if (!runUntil([&] { return h.done(); }, std::chrono::milliseconds(3000)))
    GTEST_SKIP() << "the filled backlog did not hold the connect pending on this kernel";
  if (h.completed) GTEST_SKIP() << "unexpected answer from a listener that never accepts";
  EXPECT_TRUE(h.failed);
  EXPECT_EQ(h.outcome, AttemptOutcome::kConnect) << attemptOutcomeLabel(h.outcome) << h.detail;
  EXPECT_EQ(h.detail, "connect timeout");
}

TEST_F(HttpPoolTest, AnswerCutMidBodyIsReset) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.run([](ScriptedServer& s) {
    auto peer = s.accept();
    if (!peer || !s.readRequest(*peer)) return;
    s.write(*peer, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
  });
  HttpPool& pool = makePool(server.port());
  RecordingHandler h;
  pool.start(get(), &h);
  ASSERT_TRUE(runUntil([&] { return h.done(); }));
  EXPECT_TRUE(h.failed);
  EXPECT_EQ(h.outcome, AttemptOutcome::kReset) << attemptOutcomeLabel(h.outcome);
  EXPECT_EQ(h.body, "partial");
  EXPECT_EQ(h.shape(), (std::vector<std::string>{"headers", "data", "failure"}));
  EXPECT_EQ(pool.connectionsOpened(), 1u);
}

TEST_F(HttpPoolTest, ChunkedAnswerCutMidChunkIsReset) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.run([](ScriptedServer& s) {
    auto peer = s.accept();
    if (!peer || !s.readRequest(*peer)) return;
    s.write(*peer, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n10\r\nabc");
  });
  HttpPool& pool = makePool(server.port());
  RecordingHandler h;
  pool.start(get(), &h);
  ASSERT_TRUE(runUntil([&] { return h.done(); }));
  EXPECT_TRUE(h.failed);
  EXPECT_EQ(h.outcome, AttemptOutcome::kReset);
  EXPECT_EQ(h.body, "helloabc");
}

TEST_F(HttpPoolTest, CloseDelimitedAnswerCompletesAtEof) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.run([](ScriptedServer& s) {
    auto peer = s.accept();
    if (!peer || !s.readRequest(*peer)) return;
    s.write(*peer, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end");
  });
  HttpPool& pool = makePool(server.port());
  RecordingHandler h;
  pool.start(get(), &h);
  ASSERT_TRUE(runUntil([&] { return h.done(); }));
  EXPECT_TRUE(h.completed) << h.detail;
  EXPECT_EQ(h.body, "to the end");
  EXPECT_EQ(pool.idleConnections(), 0u);
}

TEST_F(HttpPoolTest, HeadRequestAnswerHasNoBody) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.run([](ScriptedServer& s) {
    auto peer = s.accept();
    if (!peer || !s.readRequest(*peer)) return;
    s.write(*peer, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
    if (!s.readRequest(*peer)) return;
    s.write(*peer, kOk);
    s.waitEof(*peer);
  });
  HttpPool& pool = makePool(server.port());
  RecordingHandler h1, h2;
  UpstreamRequest head;
  head.head = "HEAD /v1/models HTTP/1.1\r\nHost: upstream\r\n\r\n";
  head.head_only_response = true;
  pool.start(head, &h1);
  ASSERT_TRUE(runUntil([&] { return h1.done(); }));
  EXPECT_TRUE(h1.completed) << h1.detail;
  EXPECT_EQ(h1.content_length, 1234u);
  EXPECT_TRUE(h1.body.empty());
  pool.start(get(), &h2);
  ASSERT_TRUE(runUntil([&] { return h2.done(); }));
  EXPECT_TRUE(h2.completed) << h2.detail;
  EXPECT_EQ(h2.body, "hello");
  EXPECT_EQ(pool.connectionsOpened(), 1u);
}

TEST_F(HttpPoolTest, CancelDuringAnswerStopsCallbacksAndDropsConnection) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  std::atomic<bool> saw_close{false};
  server.run([&saw_close](ScriptedServer& s) {
    {
      auto peer = s.accept();
      if (!peer || !s.readRequest(*peer)) return;
      s.write(*peer, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
      if (!s.waitForGo(1)) return;
      s.write(*peer, "defghij");
      saw_close = s.waitEof(*peer);
    }
    auto peer = s.accept();
    if (!peer || !s.readRequest(*peer)) return;
    s.write(*peer, kOk2);
    s.waitEof(*peer);
  });
  HttpPool& pool = makePool(server.port());
  RecordingHandler h1, h2;
  UpstreamCall* call = pool.start(get(), &h1);
  ASSERT_TRUE(runUntil([&] { return h1.body == "abc"; }));
  int before = h1.callbacks();
  call->cancel();
  server.go();
  // The pool closes the connection; the server sees it.
  ASSERT_TRUE(runUntil([&] { return saw_close.load(); }));
  EXPECT_EQ(h1.callbacks(), before) << "no callback after cancel()";
  EXPECT_EQ(h1.body, "abc");
  EXPECT_FALSE(h1.done());
  EXPECT_EQ(pool.idleConnections(), 0u);

  pool.start(get(), &h2);
  ASSERT_TRUE(runUntil([&] { return h2.done(); }));
  EXPECT_TRUE(h2.completed) << h2.detail;
  EXPECT_EQ(h2.body, "world");
  EXPECT_EQ(pool.connectionsOpened(), 2u);
  EXPECT_EQ(server.accepts(), 2);
  EXPECT_EQ(h1.callbacks(), before);
}

TEST_F(HttpPoolTest, CancelFromInsideDataCallback) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  std::atomic<bool> saw_close{false};
  server.run([&saw_close](ScriptedServer& s) {
    auto peer = s.accept();
    if (!peer || !s.readRequest(*peer)) return;
    s.write(*peer, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n");
    saw_close = s.waitEof(*peer);
  });
  HttpPool& pool = makePool(server.port());
  RecordingHandler h;
  UpstreamCall* call = pool.start(get(), &h);
  h.on_data = [&] { call->cancel(); };
  ASSERT_TRUE(runUntil([&] { return saw_close.load(); }));
  EXPECT_EQ(h.events, (std::vector<std::string>{"headers", "data"}));
  EXPECT_EQ(h.body, "abc");
  EXPECT_EQ(pool.idleConnections(), 0u);
  ASSERT_TRUE(runUntil([&] { return pool.openConnections() == 0; }));
}

TEST_F(HttpPoolTest, PauseAndResumeReading) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.run([](ScriptedServer& s) {
    auto peer = s.accept();
    if (!peer || !s.readRequest(*peer)) return;
    s.write(*peer, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\npart1");
    if (!s.waitForGo(1)) return;
    s.write(*peer, "part2");
    s.mark();
    s.waitEof(*peer);
  });
  HttpPool& pool = makePool(server.port());
  RecordingHandler h;
  UpstreamCall* call = pool.start(get(), &h);
  ASSERT_TRUE(runUntil([&] { return h.body == "part1"; }));
  call->pauseReading();
  server.go();
  ASSERT_TRUE(runUntil([&] { return server.marks() == 1; }));
  // The rest is sitting in the socket now; while paused it must stay there.
  runFor(std::chrono::milliseconds(200));
  EXPECT_EQ(h.body, "part1");
  EXPECT_FALSE(h.done());
  call->resumeReading();
  ASSERT_TRUE(runUntil([&] { return h.done(); }));
  EXPECT_TRUE(h.completed) << h.detail;
  EXPECT_EQ(h.body, "part1part2");
  EXPECT_EQ(pool.idleConnections(), 1u);
}

TEST_F(HttpPoolTest, PausedBeforeConnectReadsNothingUntilResumed) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.run([](ScriptedServer& s) {
    auto peer = s.accept();
    if (!peer || !s.readRequest(*peer)) return;
    s.write(*peer, kOk);
    s.mark();
    s.waitEof(*peer);
  });
  HttpPool& pool = makePool(server.port());
  RecordingHandler h;
  UpstreamCall* call = pool.start(get(), &h);
  call->pauseReading();
  ASSERT_TRUE(runUntil([&] { return server.marks() == 1; }));
  runFor(std::chrono::milliseconds(200));
  EXPECT_EQ(h.callbacks(), 0);
  call->resumeReading();
  ASSERT_TRUE(runUntil([&] { return h.done(); }));
  EXPECT_TRUE(h.completed) << h.detail;
  EXPECT_EQ(h.body, "hello");
}

TEST_F(HttpPoolTest, MaxConnectionsQueuesUntilFirstCompletes) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.run([](ScriptedServer& s) {
    auto peer = s.accept();
    if (!peer || !s.readRequest(*peer)) return;
    if (!s.waitForGo(1)) return;
    s.write(*peer, kOk);
    if (!s.readRequest(*peer)) return;
    s.write(*peer, kOk2);
    s.waitEof(*peer);
  });
  HttpPool& pool = makePool(server.port(), /*max_connections=*/1);
  std::vector<std::string> log;
  RecordingHandler h1("1", &log), h2("2", &log);
  pool.start(get(), &h1);
  pool.start(get(), &h2);
  ASSERT_TRUE(runUntil([&] { return server.requestsSeen() == 1; }));
  // Give the loop a few turns: the second request must not get a connection.
  runFor(std::chrono::milliseconds(50));
  EXPECT_EQ(pool.connectionsOpened(), 1u);
  EXPECT_EQ(pool.openConnections(), 1u);
  EXPECT_EQ(h2.callbacks(), 0);
  EXPECT_EQ(server.requestsSeen(), 1);
  server.go();
  ASSERT_TRUE(runUntil([&] { return h1.done() && h2.done(); }));
  EXPECT_TRUE(h1.completed) << h1.detail;
  EXPECT_TRUE(h2.completed) << h2.detail;
  EXPECT_EQ(h1.body, "hello");
  EXPECT_EQ(h2.body, "world");
  EXPECT_EQ(log, (std::vector<std::string>{"1:headers", "1:data", "1:complete", "2:headers",
                                           "2:data", "2:complete"}));
  EXPECT_EQ(pool.connectionsOpened(), 1u);
  EXPECT_EQ(server.accepts(), 1);
}

TEST_F(HttpPoolTest, CancelWhileQueuedNeverCallsBack) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.run([](ScriptedServer& s) {
    auto peer = s.accept();
    if (!peer || !s.readRequest(*peer)) return;
    s.write(*peer, kOk);
    if (!s.readRequest(*peer)) return;
    s.write(*peer, kOk2);
    s.waitEof(*peer);
  });
  HttpPool& pool = makePool(server.port(), /*max_connections=*/1);
  RecordingHandler h1, h2, h3;
  pool.start(get(), &h1);
  UpstreamCall* queued = pool.start(get(), &h2);
  queued->cancel();
  ASSERT_TRUE(runUntil([&] { return h1.done(); }));
  EXPECT_TRUE(h1.completed);
  pool.start(get(), &h3);
  ASSERT_TRUE(runUntil([&] { return h3.done(); }));
  EXPECT_TRUE(h3.completed) << h3.detail;
  EXPECT_EQ(h3.body, "world");
  EXPECT_EQ(h2.callbacks(), 0);
  EXPECT_EQ(pool.connectionsOpened(), 1u);
}

TEST_F(HttpPoolTest, StaleConnectionResetIsRetriedOnAFreshOne) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.run([](ScriptedServer& s) {
    {
      auto peer = s.accept();
      if (!peer || !s.readRequest(*peer)) return;
      s.write(*peer, kOk);
      if (!s.readRequest(*peer)) return;
      s.abort(*peer);
    }
    auto peer = s.accept();
    if (!peer || !s.readRequest(*peer)) return;
    s.write(*peer, kOk2);
    s.waitEof(*peer);
  });
  HttpPool& pool = makePool(server.port());
  RecordingHandler h1, h2;
  pool.start(get(), &h1);
  ASSERT_TRUE(runUntil([&] { return h1.done(); }));
  ASSERT_TRUE(h1.completed) << h1.detail;
  pool.start(get(), &h2);
  ASSERT_TRUE(runUntil([&] { return h2.done(); }));
  EXPECT_TRUE(h2.completed) << "outcome " << attemptOutcomeLabel(h2.outcome) << ": " << h2.detail;
  EXPECT_EQ(h2.body, "world");
  EXPECT_EQ(server.accepts(), 2);
}

TEST_F(HttpPoolTest, IdleCloseRacingANewRequestIsRetried) {
  // The upstream closes the idle connection, and the FIN is already in the
  // socket when the next request is written on it (the loop has not seen it).
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.run([](ScriptedServer& s) {
    {
      auto peer = s.accept();
      if (!peer || !s.readRequest(*peer)) return;
      s.write(*peer, kOk);
    }
    s.mark();
    auto peer = s.accept();
    if (!peer || !s.readRequest(*peer)) return;
    s.write(*peer, kOk2);
    s.waitEof(*peer);
  });
  HttpPool& pool = makePool(server.port());
  RecordingHandler h1, h2;
  pool.start(get(), &h1);
  ASSERT_TRUE(runUntil([&] { return h1.done(); }));
  ASSERT_TRUE(h1.completed) << h1.detail;
  // Wait for the close without running the loop, so the pool cannot notice it.
  auto deadline = Clock::now() + kWait;
  while (server.marks() < 1 && Clock::now() < deadline) ::poll(nullptr, 0, 1);
  ASSERT_EQ(server.marks(), 1);
  if (pool.idleConnections() != 1) GTEST_SKIP() << "the pool noticed the close first";
  pool.start(get(), &h2);
  ASSERT_TRUE(runUntil([&] { return h2.done(); }));
  EXPECT_TRUE(h2.completed) << "outcome " << attemptOutcomeLabel(h2.outcome) << ": " << h2.detail;
  EXPECT_EQ(h2.body, "world");
  EXPECT_EQ(pool.connectionsOpened(), 2u);
  EXPECT_EQ(server.accepts(), 2);
}

TEST_F(HttpPoolTest, NextTryStartedFromCompleteReusesTheConnection) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.run([](ScriptedServer& s) {
    auto peer = s.accept();
    if (!peer || !s.readRequest(*peer)) return;
    s.write(*peer, kOk);
    if (!s.readRequest(*peer)) return;
    s.write(*peer, kOk2);
    s.waitEof(*peer);
  });
  HttpPool& pool = makePool(server.port());
  RecordingHandler h2;
  // Starts the second try from inside the first one's onUpstreamComplete.
  class Chaining : public RecordingHandler {
   public:
    Chaining(HttpPool* pool, RecordingHandler* next) : pool_(pool), next_(next) {}
    void onUpstreamComplete() override {
      RecordingHandler::onUpstreamComplete();
      UpstreamRequest r;
      r.head = kGet;
      pool_->start(r, next_);
      EXPECT_EQ(next_->callbacks(), 0);
    }

   private:
    HttpPool* pool_;
    RecordingHandler* next_;
  } h1(&pool, &h2);
  pool.start(get(), &h1);
  ASSERT_TRUE(runUntil([&] { return h2.done(); }));
  EXPECT_TRUE(h1.completed);
  EXPECT_TRUE(h2.completed) << h2.detail;
  EXPECT_EQ(h2.body, "world");
  EXPECT_EQ(pool.connectionsOpened(), 1u);
  EXPECT_EQ(server.accepts(), 1);
}

TEST_F(HttpPoolTest, InterimAnswerIsSkipped) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.run([](ScriptedServer& s) {
    auto peer = s.accept();
    if (!peer || !s.readRequest(*peer)) return;
    s.write(*peer, "HTTP/1.1 100 Continue\r\n\r\n");
    s.write(*peer, kOk);
    s.waitEof(*peer);
  });
  HttpPool& pool = makePool(server.port());
  RecordingHandler h;
  pool.start(get(), &h);
  ASSERT_TRUE(runUntil([&] { return h.done(); }));
  EXPECT_TRUE(h.completed) << h.detail;
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body, "hello");
  EXPECT_EQ(h.shape(), (std::vector<std::string>{"headers", "data", "complete"}));
}

TEST_F(HttpPoolTest, MalformedAnswerIsReset) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.run([](ScriptedServer& s) {
    auto peer = s.accept();
    if (!peer || !s.readRequest(*peer)) return;
    s.write(*peer, "SMTP ready\r\n\r\n");
    s.waitEof(*peer);
  });
  HttpPool& pool = makePool(server.port());
  RecordingHandler h;
  pool.start(get(), &h);
  ASSERT_TRUE(runUntil([&] { return h.done(); }));
  EXPECT_TRUE(h.failed);
  EXPECT_EQ(h.outcome, AttemptOutcome::kReset);
  EXPECT_EQ(h.events, (std::vector<std::string>{"failure"}));
}

TEST_F(HttpPoolTest, LargeRequestBodyArrivesWhole) {
  std::string body(1 << 20, 'x');
  for (size_t i = 0; i < body.size(); i += 997) body[i] = static_cast<char>('a' + i % 26);
  const std::string head =
      "POST /big HTTP/1.1\r\nHost: upstream\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n";
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.run([](ScriptedServer& s) {
    auto peer = s.accept();
    if (!peer || !s.readRequest(*peer)) return;
    s.write(*peer, kOk);
    s.waitEof(*peer);
  });
  HttpPool& pool = makePool(server.port());
  RecordingHandler h;
  UpstreamRequest req;
  req.head = head;
  req.body = body;
  pool.start(req, &h);
  ASSERT_TRUE(runUntil([&] { return h.done(); }));
  EXPECT_TRUE(h.completed) << h.detail;
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_TRUE(reqs[0] == head + body) << "the upstream got " << reqs[0].size() << " bytes";
  EXPECT_EQ(pool.idleConnections(), 1u);
}

TEST_F(HttpPoolTest, IdleConnectionsBeyondMaxIdleAreClosed) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.run([](ScriptedServer& s) {
    auto a = s.accept();
    auto b = s.accept();
    if (!a || !b || !s.readRequest(*a) || !s.readRequest(*b)) return;
    s.write(*a, kOk);
    s.write(*b, kOk);
    s.waitEof(*a);
    s.waitEof(*b);
  });
  HttpPool& pool = makePool(server.port(), 8, absl::Seconds(2), /*max_idle=*/1);
  RecordingHandler h1, h2;
  pool.start(get(), &h1);
  pool.start(get(), &h2);
  ASSERT_TRUE(runUntil([&] { return h1.done() && h2.done(); }));
  EXPECT_TRUE(h1.completed && h2.completed);
  EXPECT_EQ(pool.connectionsOpened(), 2u);
  ASSERT_TRUE(runUntil([&] { return pool.openConnections() == 1; }));
  EXPECT_EQ(pool.idleConnections(), 1u);
}

TEST_F(HttpPoolTest, CancelWhileConnectingNeverCallsBack) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  std::atomic<bool> saw_close{false};
  server.run([&saw_close](ScriptedServer& s) {
    auto peer = s.accept();
    if (!peer) return;
    saw_close = s.waitEof(*peer);
  });
  HttpPool& pool = makePool(server.port());
  RecordingHandler h;
  UpstreamCall* call = pool.start(get(), &h);
  call->cancel();
  ASSERT_TRUE(runUntil([&] { return pool.openConnections() == 0; }));
  ASSERT_TRUE(runUntil([&] { return saw_close.load() || server.scriptDone(); }));
  EXPECT_EQ(h.callbacks(), 0);
  EXPECT_EQ(server.requestsSeen(), 0);
}

TEST_F(HttpPoolTest, ConnectFailureAlsoFailsQueuedCalls) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a = loopback(0);
  ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  socklen_t len = sizeof(a);
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
  HttpPool& pool = makePool(ntohs(a.sin_port), /*max_connections=*/1);
  RecordingHandler h1, h2, h3;
  pool.start(get(), &h1);
  pool.start(get(), &h2);
  pool.start(get(), &h3);
  ASSERT_TRUE(runUntil([&] { return h1.done() && h2.done() && h3.done(); }));
  for (RecordingHandler* h : {&h1, &h2, &h3}) {
    EXPECT_TRUE(h->failed);
    EXPECT_EQ(h->outcome, AttemptOutcome::kConnect);
    EXPECT_EQ(h->callbacks(), 1);
  }
  EXPECT_EQ(pool.connectionsOpened(), 3u);
}


// A client that leaves while its upstream connection is still being set up
// cancels the call in the same loop pass that completes the connect. The
// connection must die with the call, not come back as an idle one: it is
// freed right after, and the next request would use it.
TEST_F(HttpPoolTest, CancelInTheLoopPassThatConnectsLeavesNoIdleConnection) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.run([](ScriptedServer& s) {
    auto first = s.accept();  // the cancelled call's connection
    if (!first) return;
    s.mark();
    auto second = s.accept();
    if (!second) return;
    if (s.readRequest(*second)) s.write(*second, kOk);
    s.waitEof(*second);
  });
  HttpPool& pool = makePool(server.port());

  // A pipe made readable before the connection exists comes first in the
  // loop pass; its callback plays the client that leaves.
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  Fd pipe_r(p[0]), pipe_w(p[1]);
  UpstreamCall* call = nullptr;
  std::unique_ptr<event, EventDeleter> leave(event_new(
      base_.get(), pipe_r.get(), EV_READ,
      [](int, short, void* arg) {
        auto** c = static_cast<UpstreamCall**>(arg);
        if (*c) (*c)->cancel();
        *c = nullptr;
      },
      &call));
  ASSERT_EQ(event_add(leave.get(), nullptr), 0);
  ASSERT_EQ(::write(pipe_w.get(), "x", 1), 1);

  RecordingHandler cancelled;
  call = pool.start(get(), &cancelled);
  // Once the server has accepted, the connect is complete: the next loop
  // pass sees the pipe and the connected socket together.
  auto deadline = Clock::now() + kWait;
  while (server.marks() < 1 && Clock::now() < deadline) ::poll(nullptr, 0, 1);
  ASSERT_EQ(server.marks(), 1);
  ASSERT_TRUE(runUntil([&] { return call == nullptr && pool.openConnections() == 0; }));
  EXPECT_EQ(pool.idleConnections(), 0u);
  EXPECT_EQ(cancelled.callbacks(), 0);

  // The pool goes on serving on a new connection.
  RecordingHandler next;
  pool.start(get(), &next);
  ASSERT_TRUE(runUntil([&] { return next.done(); }));
  EXPECT_TRUE(next.completed);
  EXPECT_EQ(next.body, "hello");
  EXPECT_EQ(server.accepts(), 2);
}

}  // namespace
}  // namespace airbag::upstream
