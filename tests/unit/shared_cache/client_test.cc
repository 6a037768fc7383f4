// The per-worker Redis client against a real redis-server on loopback, on a
// real event loop: commands and AUTH, a timeout that leaves the connection in
// step, failures reported from the loop (never from inside command()), and
// the breaker that stops asking after repeated failures and tries again; in
// cluster mode, against a fake node that keeps redirecting, a bounded number
// of tries ending as a miss, never a loop; and a cluster node's TLS settings.
#include "proxy/shared_cache/client.h"

#include <event2/event.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "airbag/clock.h"
#include "proxy/http/tls.h"
#include "proxy/pipeline/event_dispatcher.h"
#include "proxy/shared_cache/cluster.h"
#include "tests/integration/redis_server.h"

namespace airbag::shared_cache {
namespace {

using testing::RedisServer;

struct EventBaseFree {
  void operator()(event_base* b) const { event_base_free(b); }
};

// A one-thread fake cluster node: serves the whole slot range itself, and
// answers every GET with a redirection back to itself (MOVED or ASK).
class RedirectingNode {
 public:
  explicit RedirectingNode(bool ask) : ask_(ask) {
    listen_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (bind(listen_, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(listen_, 8) != 0 ||
        getsockname(listen_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      return;
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~RedirectingNode() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (auto& c : conns_) close(c.fd);
    close(listen_);
  }
  int port() const { return port_; }
  int gets() const { return gets_; }
  int askings() const { return askings_; }
  int slots() const { return slots_; }

 private:
  struct Conn {
    int fd;
    std::unique_ptr<ReplyReader> reader;
  };
  void serve() {
    while (!stop_) {
      std::vector<pollfd> fds = {{listen_, POLLIN, 0}};
      for (auto& c : conns_) fds.push_back({c.fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), 20) <= 0) continue;
      if (fds[0].revents & POLLIN)
        conns_.push_back({accept(listen_, nullptr, nullptr), std::make_unique<ReplyReader>()});
      for (size_t i = 1; i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP))) continue;
        Conn& c = conns_[i - 1];
        char buf[4096];
        ssize_t n = read(c.fd, buf, sizeof buf);
        if (n <= 0) continue;
        c.reader->feed(std::string_view(buf, static_cast<size_t>(n)));
        bool broken = false;
        while (auto cmd = c.reader->next(&broken)) answer(c.fd, *cmd);
      }
    }
  }
  void answer(int fd, const Reply& cmd) {
    std::string out;
    std::string me = "127.0.0.1:" + std::to_string(port_);
    const std::string& name = cmd.elements.empty() ? std::string() : cmd.elements[0].str;
    if (name == "CLUSTER") {
      ++slots_;
      out =
          "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:" + std::to_string(port_) + "\r\n";
    } else if (name == "ASKING") {
      ++askings_;
      out = "+OK\r\n";
    } else {
      ++gets_;
      out = std::string(ask_ ? "-ASK " : "-MOVED ") + "42 " + me + "\r\n";
    }
    (void)!write(fd, out.data(), out.size());
  }

  bool ask_;
  int listen_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> gets_{0}, askings_{0}, slots_{0};
  std::vector<Conn> conns_;
  std::thread thread_;
};

class ClientTest : public ::testing::Test {
 protected:
  void startRedis(std::string password = "") {
    RedisServer::Options options;
    options.password = password;
    auto r = RedisServer::start(options);
    ASSERT_TRUE(r.ok()) << r.status();
    redis_ = *std::move(r);
  }

  std::shared_ptr<const Tier> tierFor(int port, std::string password = "",
                                      std::string username = "", bool cluster = false) {
    TierSettings s;
    s.url = "redis://127.0.0.1:" + std::to_string(port);
    s.host = "127.0.0.1";
    s.port = port;
    auto* in = reinterpret_cast<sockaddr_in*>(&s.address);
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<uint16_t>(port));
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s.address_len = sizeof(sockaddr_in);
    s.password = std::move(password);
    s.username = std::move(username);
    s.cluster = cluster;
    return std::make_shared<const Tier>(std::move(s));
  }

  void makeClient(std::shared_ptr<const Tier> tier) {
    client_ = std::make_unique<Client>(base_.get(), dispatcher_, std::move(tier), nullptr);
  }

  // Runs the loop until `done` or 5 s have passed.
  template <typename Fn>
  bool runUntil(Fn done) {
    absl::Time end = absl::Now() + absl::Seconds(5);
    while (!done()) {
      if (absl::Now() > end) return false;
      timeval tv{0, 5000};
      event_base_loopexit(base_.get(), &tv);
      event_base_dispatch(base_.get());
    }
    return true;
  }

  // Sends one command and waits for its result.
  std::optional<Result> call(std::initializer_list<std::string_view> args,
                             absl::Duration timeout = absl::Seconds(2)) {
    std::optional<Result> got;
    if (!client_->command(args, timeout, [&](Result&& r) { got = std::move(r); }))
      return std::nullopt;
    EXPECT_TRUE(runUntil([&] { return got.has_value(); }));
    return got;
  }

  std::unique_ptr<event_base, EventBaseFree> base_{event_base_new()};
  RealClock clock_;
  pipeline::EventDispatcher dispatcher_{base_.get(), clock_};
  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<Client> client_;
};

TEST_F(ClientTest, SetGetAndUnlink) {
  startRedis();
  makeClient(tierFor(redis_->port()));
  std::string value("bin\0ary\r\n", 9);
  auto set = call({"SET", "k", value, "PX", "10000"});
  ASSERT_TRUE(set);
  EXPECT_TRUE(set->ok());
  EXPECT_TRUE(set->reply.isOk());
  auto get = call({"GET", "k"});
  ASSERT_TRUE(get && get->ok());
  EXPECT_EQ(get->reply.str, value);
  auto nx = call({"SET", "k", "other", "NX", "PX", "10000"});
  ASSERT_TRUE(nx && nx->ok());
  EXPECT_EQ(nx->reply.type, Reply::Type::kNil);  // NX: not set, the key exists
  auto unlink = call({"UNLINK", "k"});
  ASSERT_TRUE(unlink && unlink->ok());
  EXPECT_EQ(unlink->reply.integer, 1);
  auto gone = call({"GET", "k"});
  ASSERT_TRUE(gone && gone->ok());
  EXPECT_EQ(gone->reply.type, Reply::Type::kNil);
  EXPECT_TRUE(client_->connected());
}

TEST_F(ClientTest, AuthWithThePassword) {
  startRedis("s3cret");
  makeClient(tierFor(redis_->port(), "s3cret"));
  auto set = call({"SET", "k", "v"});
  ASSERT_TRUE(set);
  EXPECT_TRUE(set->ok()) << set->reply.str;
  // A wrong password: the server refuses, the command fails, nothing hangs.
  makeClient(tierFor(redis_->port(), "wrong"));
  auto refused = call({"GET", "k"});
  ASSERT_TRUE(refused);
  EXPECT_FALSE(refused->ok());
}

TEST_F(ClientTest, ATimeoutLeavesTheConnectionInStep) {
  startRedis();
  makeClient(tierFor(redis_->port()));
  ASSERT_TRUE(call({"SET", "k", "v"})->ok());
  // Redis sleeps 300 ms; a GET sent meanwhile times out at its own deadline.
  std::optional<Result> slept, timed_out;
  ASSERT_TRUE(client_->command({"DEBUG", "SLEEP", "0.3"}, absl::Seconds(2),
                               [&](Result&& r) { slept = std::move(r); }));
  absl::Time sent = absl::Now();
  ASSERT_TRUE(client_->command({"GET", "k"}, absl::Milliseconds(20),
                               [&](Result&& r) { timed_out = std::move(r); }));
  ASSERT_TRUE(runUntil([&] { return timed_out.has_value(); }));
  absl::Duration took = absl::Now() - sent;
  EXPECT_EQ(timed_out->kind, Result::Kind::kTimeout);
  EXPECT_GE(took, absl::Milliseconds(20));
  EXPECT_LT(took, absl::Milliseconds(250)) << "the timeout waited for Redis";
  ASSERT_TRUE(runUntil([&] { return slept.has_value(); }));
  EXPECT_TRUE(slept->ok());
  // The late reply to the timed-out GET was read and dropped: the next reply
  // is this command's own.
  auto get = call({"ECHO", "mine"});
  ASSERT_TRUE(get && get->ok());
  EXPECT_EQ(get->reply.str, "mine");
  EXPECT_EQ(client_->pending(), 0u);
}

// What the pipeline does: a lookup that timed out sends the next command
// from inside its callback (the ladder asking Redis again).
TEST_F(ClientTest, ACallbackMaySendTheNextCommand) {
  startRedis();
  makeClient(tierFor(redis_->port()));
  ASSERT_TRUE(call({"SET", "k", "v"})->ok());
  std::optional<Result> slept, second;
  int timeouts = 0;
  ASSERT_TRUE(client_->command({"DEBUG", "SLEEP", "0.2"}, absl::Seconds(2),
                               [&](Result&& r) { slept = std::move(r); }));
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(client_->command({"GET", "k"}, absl::Milliseconds(10), [&](Result&& r) {
      if (r.kind != Result::Kind::kTimeout) return;
      if (++timeouts == 1)
        client_->command({"GET", "k"}, absl::Seconds(2),
                         [&](Result&& again) { second = std::move(again); });
    }));
  }
  ASSERT_TRUE(runUntil([&] { return second.has_value(); }));
  EXPECT_EQ(timeouts, 8);
  ASSERT_TRUE(second->ok());
  EXPECT_EQ(second->reply.str, "v");
}

TEST_F(ClientTest, FailuresComeFromTheLoopAndTheBreakerStopsAsking) {
  startRedis();
  int port = redis_->port();
  redis_->kill();
  makeClient(tierFor(port));
  int failures = 0;
  bool refused = false;
  for (int i = 0; i < 20 && !refused; ++i) {
    std::optional<Result> got;
    bool sent =
        client_->command({"GET", "k"}, absl::Seconds(1), [&](Result&& r) { got = std::move(r); });
    if (!sent) {
      refused = true;
      break;
    }
    EXPECT_FALSE(got.has_value()) << "called from inside command()";
    ASSERT_TRUE(runUntil([&] { return got.has_value(); }));
    EXPECT_EQ(got->kind, Result::Kind::kFailed);
    ++failures;
  }
  EXPECT_TRUE(refused);
  EXPECT_EQ(failures, static_cast<int>(redisBreakerConfig().consecutive_failures));
  bool open = false;
  EXPECT_FALSE(client_->tier().breakerChanged(absl::Now(), &open));  // already reported once
  // Redis comes back; after the open time one probe goes through and closes it.
  ASSERT_TRUE(redis_->restart().ok());
  std::optional<Result> back;
  ASSERT_TRUE(runUntil([&] {
    if (back && back->ok()) return true;
    back.reset();
    if (!client_->command({"PING"}, absl::Seconds(1), [&](Result&& r) { back = std::move(r); }))
      return false;
    return runUntil([&] { return back.has_value(); }) && back->ok();
  }));
  EXPECT_EQ(back->reply.str, "PONG");
}

TEST_F(ClientTest, AConfusedClusterIsABoundedMissNotALoop) {
  for (bool ask : {false, true}) {
    SCOPED_TRACE(ask ? "ASK" : "MOVED");
    RedirectingNode node(ask);
    ASSERT_GT(node.port(), 0);
    Client client(base_.get(), dispatcher_, tierFor(node.port(), "", "", true), nullptr);
    std::optional<Result> got;
    ASSERT_TRUE(
        client.command({"GET", "k"}, absl::Seconds(2), [&](Result&& r) { got = std::move(r); }));
    ASSERT_TRUE(runUntil([&] { return got.has_value(); }));
    // The last redirection comes back to the caller as the error it is: a miss.
    ASSERT_EQ(got->kind, Result::Kind::kReply);
    EXPECT_TRUE(got->reply.isError());
    EXPECT_EQ(got->reply.str.rfind(ask ? "ASK 42" : "MOVED 42", 0), 0u) << got->reply.str;
    EXPECT_EQ(node.gets(), 1 + kMaxRedirects);
    EXPECT_EQ(node.askings(), ask ? kMaxRedirects : 0);
    // The first lookup asked for the map; MOVED asks again, within the limit
    // on how often; ASK never does.
    EXPECT_GE(node.slots(), 1);
    if (ask) {
      EXPECT_EQ(node.slots(), 1);
    }
  }
}

TEST_F(ClientTest, EachClusterNodeSpeaksTlsLikeTheSeedAndIsCheckedAgainstItsName) {
  auto tls = http::makeClientTls({"", false}, "cache.shared.tls", nullptr);
  ASSERT_TRUE(tls.ok()) << tls.status();
  TierSettings s = tierFor(7000, "", "", true)->settings();
  s.url = "rediss://127.0.0.1:7000";
  s.tls = *tls;
  s.tls_name = "cluster.redis.example";
  Client client(base_.get(), dispatcher_, std::make_shared<const Tier>(std::move(s)), nullptr);
  ASSERT_NE(client.cluster(), nullptr);
  // Nodes are announced by IP; the name their certificates must carry is the seed's.
  Client* node = client.cluster()->nodeClient({"10.0.0.7", 7001});
  ASSERT_NE(node, nullptr);
  const TierSettings& n = node->tier().settings();
  EXPECT_EQ(n.host, "10.0.0.7");
  EXPECT_EQ(n.port, 7001);
  EXPECT_FALSE(n.cluster);
  EXPECT_EQ(n.tls, *tls);
  EXPECT_EQ(n.tls_name, "cluster.redis.example");
}

}  // namespace
}  // namespace airbag::shared_cache
