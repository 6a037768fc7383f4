// Raw-protocol regression cases, HAProxy reg-test style: exact bytes in, the
// documented bytes (or close) out. Each case names the answer configuration.md
// ("What bounds a client") promises, and each ends with airbag still serving.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <regex>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace airbag::testing {
namespace {

using ::testing::HasSubstr;

constexpr int kIdleMs = 1000;
constexpr int kHeaderMs = 500;

constexpr char kConfig[] = R"(
listen:
  address: ${LISTEN}
  workers: 2
  limits: { max_header_bytes: 4KiB, max_body_bytes: 8MiB, header_timeout: 500ms,
            idle_timeout: ${IDLE} }
admin: { address: ${ADMIN} }
log: { level: warn, access_log: off }
upstreams:
  model: { url: ${MODEL} }
  scripted: { url: ${SCRIPTED} }
routes:
  - name: scripted
    match: { path_prefix: /scripted }
    upstream: scripted
    timeout: { total: 3s }
  - name: model
    match: {}
    upstream: model
)";

// The whole request line and headers of a POST with `extra` header lines.
std::string head(const std::string& target, const std::string& extra = "") {
  return "POST " + target + " HTTP/1.1\r\nHost: t\r\n" + extra;
}

// A number from /proc/<pid>/status, such as VmRSS or VmHWM (kB); -1 if absent.
int64_t procStatusKb(pid_t pid, std::string_view key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(std::string(key) + ":", 0) == 0) return std::stoll(line.substr(key.size() + 1));
  }
  return -1;
}

// Client connections `pid` holds open on its listening `port`: its socket descriptors whose
// local port is `port` in the kernel's TCP table (upstream connections do not count).
int clientConnections(pid_t pid, int port) {
  const std::string proc = "/proc/" + std::to_string(pid);
  std::set<std::string> inodes;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(proc + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::error_code rec;
    std::string target = std::filesystem::read_symlink(it->path(), rec).string();
    if (!rec && absl::StartsWith(target, "socket:["))
      inodes.insert(target.substr(8, target.size() - 9));
  }
  int n = 0;
  for (const char* table : {"/net/tcp", "/net/tcp6"}) {
    std::ifstream in(proc + table);
    std::string line;
    std::getline(in, line);  // the column titles
    while (std::getline(in, line)) {
      std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (f.size() < 10) continue;
      size_t colon = f[1].rfind(':');
      if (colon == std::string::npos) continue;
      if (std::stoi(f[1].substr(colon + 1), nullptr, 16) != port) continue;
      if (f[3] == "0A") continue;  // the listening socket itself
      if (inodes.count(f[9])) ++n;
    }
  }
  return n;
}

int rawConnect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

class RawProtocolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto demo = DemoServer::start();
    ASSERT_TRUE(demo.ok()) << demo.status();
    demo_ = std::move(*demo);
    scripted_ = std::make_unique<ScriptedServer>(std::vector<Step>{});
    restart("1s");
  }

  void restart(const std::string& idle_timeout) {
    airbag_.reset();
    auto airbag = AirbagProcess::start(kConfig, {{"MODEL", demo_->url()},
                                                 {"SCRIPTED", scripted_->url()},
                                                 {"IDLE", idle_timeout}});
    ASSERT_TRUE(airbag.ok()) << airbag.status();
    airbag_ = std::move(*airbag);
  }

  // Every case ends with airbag alive and answering a normal request.
  void TearDown() override {
    if (!airbag_) return;
    EXPECT_TRUE(airbag_->process().running()) << "airbag died";
    EXPECT_EQ(airbag_->fetch("POST", "/predict", {}, "{}", milliseconds(3000)).status, 200);
  }

  int64_t modelRequests() { return demo_->stat("requests").value_or(-1); }

  std::unique_ptr<DemoServer> demo_;
  std::unique_ptr<ScriptedServer> scripted_;
  std::unique_ptr<AirbagProcess> airbag_;
};

// Slowloris: a head trickled one header every 150 ms never completes within header_timeout.
// Trickling does not restart the clock: 408 request_timeout, then close.
TEST_F(RawProtocolTest, SlowHeadersGet408AndClose) {
  HttpClient c;
  ASSERT_TRUE(c.connect(airbag_->port()).ok());
  Stopwatch sw;
  ASSERT_TRUE(c.sendRaw(head("/predict")).ok());
  // Keep trickling; the pause between headers is the wait for airbag's answer.
  for (int i = 0; i < 40 && c.receiveSome(milliseconds(150)) == 0 && !c.peerClosed(); ++i)
    (void)c.sendRaw(absl::StrCat("X-Slow-", i, ": 1\r\n"));
  Response r = c.readResponse(milliseconds(3000));
  EXPECT_EQ(r.status, 408) << r.error;
  EXPECT_EQ(r.json()["error"]["code"], "request_timeout");
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_TRUE(c.waitForPeerClose(milliseconds(2000)));
  EXPECT_GE(sw.elapsedMs().count(), kHeaderMs - 50);
  EXPECT_LT(sw.elapsedMs().count(), kHeaderMs + 1500) << "the trickle restarted the clock";
  EXPECT_EQ(modelRequests(), 0);
}

// A body shorter than its Content-Length: the request never reaches the model, and the
// connection is closed without any answer once idle_timeout passes without a body byte, also
// when the body's first bytes arrive together with the head (as here).
TEST_F(RawProtocolTest, ShortBodyIsClosedAtIdleWithoutAnAnswer) {
  HttpClient c;
  ASSERT_TRUE(c.connect(airbag_->port()).ok());
  ASSERT_TRUE(c.sendRaw(head("/predict", "Content-Length: 100\r\n\r\n{\"short\":") ).ok());
  Stopwatch sw;
  EXPECT_TRUE(c.waitForPeerClose(milliseconds(kIdleMs + 3000)));
  EXPECT_GE(sw.elapsedMs().count(), kIdleMs - 100);
  EXPECT_EQ(c.buffered(), "") << "no answer is sent for an incomplete body";
  EXPECT_EQ(modelRequests(), 0);
}

// Request heads over max_header_bytes: 431 headers_too_large, then close.
TEST_F(RawProtocolTest, OversizedHeadGets431) {
  HttpClient c;
  ASSERT_TRUE(c.connect(airbag_->port()).ok());
  ASSERT_TRUE(c.sendRaw(head("/predict", absl::StrCat("X-Big: ", std::string(5000, 'a'),
                                                      "\r\nContent-Length: 0\r\n\r\n")))
                  .ok());
  Response r = c.readResponse(milliseconds(3000));
  EXPECT_EQ(r.status, 431) << r.error;
  EXPECT_EQ(r.json()["error"]["code"], "headers_too_large");
  EXPECT_TRUE(c.waitForPeerClose(milliseconds(2000)));
  EXPECT_EQ(modelRequests(), 0);
}

// A Content-Length over max_body_bytes is refused as soon as the head is read, before any body
// byte is sent; a chunked body is refused once what arrived passes the limit.
TEST_F(RawProtocolTest, OversizedBodyGets413ByLengthAndByChunks) {
  {
    HttpClient c;
    ASSERT_TRUE(c.connect(airbag_->port()).ok());
    ASSERT_TRUE(c.sendRaw(head("/predict", "Content-Length: 9000000\r\n\r\n")).ok());
    Response r = c.readResponse(milliseconds(3000));
    EXPECT_EQ(r.status, 413) << r.error;
    EXPECT_EQ(r.json()["error"]["code"], "body_too_large");
    EXPECT_TRUE(c.waitForPeerClose(milliseconds(2000)));
  }
  {
    HttpClient c;
    ASSERT_TRUE(c.connect(airbag_->port()).ok());
    ASSERT_TRUE(c.sendRaw(head("/predict", "Transfer-Encoding: chunked\r\n\r\n")).ok());
    const std::string chunk = absl::StrCat("100000\r\n", std::string(0x100000, 'x'), "\r\n");
    Response r;
    for (int i = 0; i < 12 && r.status == 0; ++i) {
      (void)c.sendRaw(chunk);  // may fail once airbag has answered and closed
      if (c.receiveSome(milliseconds(200)) > 0) r = c.readResponse(milliseconds(3000));
    }
    if (r.status == 0) r = c.readResponse(milliseconds(3000));
    EXPECT_EQ(r.status, 413) << r.error;
    EXPECT_EQ(r.json()["error"]["code"], "body_too_large");
  }
  EXPECT_EQ(modelRequests(), 0);
}

// A client that asks for a large answer and never reads it: airbag holds the answer (not more),
// and idle_timeout after the answer was handed over the connection is cut, with the answer
// unfinished. Its memory comes back to a bound.
TEST_F(RawProtocolTest, ClientThatNeverReadsIsCutAtIdleWithBoundedMemory) {
  const pid_t pid = airbag_->process().pid();
  const int64_t base_rss_kb = procStatusKb(pid, "VmRSS");
  ASSERT_GT(base_rss_kb, 0);
  // Each answer echoes a 6 MiB body: more than the kernel buffers between airbag and a client
  // that does not read (airbag's send buffer grows to 4 MiB on loopback), less than the 8 MiB
  // a buffered answer may have.
  constexpr int kClients = 4;
  const std::string body(6 << 20, 'b');
  std::vector<std::unique_ptr<HttpClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    auto c = std::make_unique<HttpClient>();
    HttpClient::ConnectOptions o;
    o.receive_buffer_bytes = 64 * 1024;
    ASSERT_TRUE(c->connect(airbag_->port(), o).ok());
    ASSERT_TRUE(c->sendRequest("POST", "/echo", {}, body).ok());
    clients.push_back(std::move(c));
  }
  // Every answer made by the model, then every client connection cut by airbag, within
  // idle_timeout plus slack, though none of the clients has read a byte.
  ASSERT_TRUE(pollUntil([&] { return modelRequests() == kClients; }, milliseconds(10000)));
  EXPECT_TRUE(pollUntil([&] { return clientConnections(pid, airbag_->port()) == 0; },
                        milliseconds(kIdleMs + 5000), milliseconds(20)))
      << clientConnections(pid, airbag_->port()) << " client connections still open";
  // Peak memory: the request and answer of each client in flight (some copies of 6 MiB each),
  // never more: 4 copies per client plus slack is the bound (more where a sanitizer shadows
  // or quarantines the heap).
  const int64_t peak_kb = procStatusKb(pid, "VmHWM");
  std::printf("never-reading clients: peak RSS %lld kB over %lld kB before\n",
              static_cast<long long>(peak_kb - base_rss_kb), static_cast<long long>(base_rss_kb));
  constexpr int64_t kBoundKb = (kClients * 4 * 6 * 1024 + 32 * 1024) * kSanitizerMemoryFactor;
  EXPECT_LT(peak_kb - base_rss_kb, kBoundKb)
      << "peak RSS " << peak_kb << " kB, " << base_rss_kb << " kB before";
  for (auto& c : clients) {
    EXPECT_TRUE(pollUntil(
        [&] {
          c->receiveSome(milliseconds(50));
          return c->peerClosed();
        },
        milliseconds(15000)));
    const std::string& got = c->buffered();
    size_t head_end = got.find("\r\n\r\n");
    ASSERT_NE(head_end, std::string::npos);
    std::smatch m;
    std::string head_text = got.substr(0, head_end);
    ASSERT_TRUE(std::regex_search(head_text, m, std::regex("(?:^|\r\n)[Cc]ontent-[Ll]ength: *(\\d+)")))
        << head_text;
    EXPECT_LT(got.size(), head_end + 4 + std::stoull(m[1])) << "the cut answer cannot be whole";
  }
}

// Known gap, disabled until the client connection bounds its output: a client that pipelines
// many requests and reads none of the answers. Each answer is queued behind the unread ones, so
// airbag's memory grows with the number of requests (40 pipelined 1 MiB echoes: +40 MiB RSS).
// It should stop taking requests from a connection while an answer waits unread (as it stops
// reading an upstream past 256 KiB waiting), so the model sees only the first few.
TEST_F(RawProtocolTest, PipelinedRequestsOfAClientThatNeverReadsAreNotAllAnswered) {
  const pid_t pid = airbag_->process().pid();
  const int64_t base_rss_kb = procStatusKb(pid, "VmRSS");
  HttpClient c;
  HttpClient::ConnectOptions o;
  o.receive_buffer_bytes = 4096;
  ASSERT_TRUE(c.connect(airbag_->port(), o).ok());
  const std::string body(1 << 20, 'p');
  for (int i = 0; i < 32; ++i) {
    // Once airbag stops reading, sending blocks: that is the point, not an error.
    if (!c.sendRequest("POST", "/echo", {}, body).ok()) break;
  }
  EXPECT_FALSE(pollUntil([&] { return modelRequests() > 8; }, milliseconds(2000)))
      << modelRequests() << " answers made for a client that reads none";
  EXPECT_LT(procStatusKb(pid, "VmRSS") - base_rss_kb, 16 * 1024);
}

// 2,000 idle connections: airbag keeps serving a normal request meanwhile, and closes them all
// at idle_timeout.
TEST_F(RawProtocolTest, ThousandsOfIdleConnectionsAreServedAroundAndClosedAtIdle) {
  constexpr int kIdle = 2000;
  rlimit lim{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &lim), 0);
  if (lim.rlim_cur < kIdle + 200) {
    lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, kIdle + 200);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lim), 0);
  }
  if (lim.rlim_cur < kIdle + 200) GTEST_SKIP() << "ulimit -n too low: " << lim.rlim_cur;
  // Restarted so that it inherits the raised limit, and with an idle_timeout that outlasts the
  // opening of every connection.
  constexpr int kLongIdleMs = 8000;
  restart("8s");
  const pid_t pid = airbag_->process().pid();
  std::vector<int> fds;
  fds.reserve(kIdle);
  for (int i = 0; i < kIdle; ++i) {
    int fd = rawConnect(airbag_->port());
    ASSERT_GE(fd, 0) << "connect " << i << ": " << std::strerror(errno);
    fds.push_back(fd);
  }
  ASSERT_TRUE(pollUntil([&] { return clientConnections(pid, airbag_->port()) == kIdle; },
                        milliseconds(kLongIdleMs / 2), milliseconds(50)))
      << "airbag holds " << clientConnections(pid, airbag_->port());
  Stopwatch sw;
  Response r = airbag_->fetch("POST", "/predict", {}, "{}", milliseconds(3000));
  EXPECT_EQ(r.status, 200);
  EXPECT_LT(sw.elapsedMs().count(), 1000);
  EXPECT_TRUE(pollUntil([&] { return clientConnections(pid, airbag_->port()) == 0; },
                        milliseconds(kLongIdleMs + 5000), milliseconds(50)));
  int closed = 0;
  for (int fd : fds) {
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) ++closed;
    ::close(fd);
  }
  EXPECT_EQ(closed, kIdle) << "every idle connection is closed by airbag, without a byte";
}

// An upstream that answers bytes that are not HTTP: a `reset` failure; with no fallback the
// client gets 503 upstream_unavailable.
TEST_F(RawProtocolTest, UpstreamGarbageGets503) {
  scripted_->setScript({readRequest(), write("SSH-2.0-OpenSSH_9.2\r\n\r\n"), closeConnection()});
  Response r = airbag_->fetch("GET", "/scripted/x", {}, {}, milliseconds(5000));
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(r.json()["error"]["code"], "upstream_unavailable");
  EXPECT_EQ(r.header("x-airbag-source"), "none");
  EXPECT_EQ(airbag_->metric(
                R"(airbag_upstream_attempts_total{route="scripted",upstream="scripted",outcome="reset"})"),
            1);
}

// An upstream that sends a second, unrequested response right behind the first: the client
// gets the first; the stray bytes are never taken as the answer to a later request.
TEST_F(RawProtocolTest, UnrequestedSecondResponseIsNeverServed) {
  scripted_->setScript({readRequest(),
                        write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"
                              "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED"),
                        readUntilClosed()});
  Response r = airbag_->fetch("GET", "/scripted/1", {}, {}, milliseconds(5000));
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "first");
  // The next connection answers honestly; the question is whether airbag reads it or the stray.
  scripted_->setScript({readRequest(), write("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"),
                        readUntilClosed()});
  Response r2 = airbag_->fetch("GET", "/scripted/2", {}, {}, milliseconds(8000));
  EXPECT_NE(r2.body, "SMUGGLED");
  EXPECT_EQ(r2.status, 200) << r2.error << r2.body;
  EXPECT_EQ(r2.body, "second");
}

}  // namespace
}  // namespace airbag::testing
