// Tests of the integration-test kit itself: the HTTP client against a scripted loopback server
// that replies canned bytes, and process control against /bin/sh.
#include "tests/integration/harness.h"

#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"

namespace airbag::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

HttpClient connectTo(const ScriptedServer& server) {
  HttpClient client;
  absl::Status s = client.connect(server.port());
  EXPECT_TRUE(s.ok()) << s;
  return client;
}

constexpr char kChunkedHead[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

// ---------------------------------------------------------------------------
// Ports

TEST(PortsTest, FreePortCanBeBoundOnLoopback) {
  int port = freePort();
  ASSERT_GT(port, 0);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::close(fd);
}

TEST(PortsTest, WaitForPortSeesListenerAndGivesUpOnClosedPort) {
  ScriptedServer server({});
  EXPECT_TRUE(waitForPort(server.port(), milliseconds(2000)));
  Stopwatch watch;
  EXPECT_FALSE(waitForPort(freePort(), milliseconds(150)));
  EXPECT_GE(watch.elapsedMs(), milliseconds(150));
  EXPECT_LT(watch.elapsedMs(), milliseconds(3000));
}

// ---------------------------------------------------------------------------
// Response framing

TEST(HttpClientTest, ContentLengthBodyAndCaseInsensitiveMultiValueHeaders) {
  ScriptedServer server({readRequest(), write("HTTP/1.1 201 Created\r\nContent-Length: 5\r\n"
                                              "X-Multi: one\r\nx-multi: two\r\n\r\nhello")});
  HttpClient client = connectTo(server);
  Response r = client.request("POST", "/predict", {{"X-Tenant", "gold"}}, R"({"a":1})");
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.reason, "Created");
  EXPECT_EQ(r.version, "HTTP/1.1");
  EXPECT_EQ(r.body, "hello");
  EXPECT_TRUE(r.complete) << r.error;
  EXPECT_FALSE(r.chunked);
  EXPECT_EQ(r.header("X-MULTI"), "one");
  EXPECT_THAT(r.headers.getAll("X-Multi"), ElementsAre("one", "two"));
  EXPECT_TRUE(r.headers.has("content-length"));
  EXPECT_FALSE(r.headers.has("x-absent"));

  std::vector<std::string> requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_THAT(requests[0], HasSubstr("POST /predict HTTP/1.1\r\n"));
  EXPECT_THAT(requests[0], HasSubstr(absl::StrCat("Host: 127.0.0.1:", server.port())));
  EXPECT_THAT(requests[0], HasSubstr("X-Tenant: gold\r\n"));
  EXPECT_THAT(requests[0], HasSubstr("Content-Length: 7\r\n"));
}

TEST(HttpClientTest, ChunkedBodyIsDecodedWithExtensionsAndTrailers) {
  ScriptedServer server({readRequest(), write(absl::StrCat(kChunkedHead,
                                                           "5;name=value\r\nhello\r\n"
                                                           "6\r\n world\r\n"
                                                           "0\r\nX-Checksum: abc\r\n\r\n"))});
  HttpClient client = connectTo(server);
  Response r = client.request("GET", "/");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.chunked);
  EXPECT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.body, "hello world");
  EXPECT_EQ(r.trailers.value("x-checksum"), "abc");
}

TEST(HttpClientTest, CloseDelimitedBodyEndsCleanlyAtEof) {
  ScriptedServer server({readRequest(),
                         write("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"),
                         closeConnection()});
  HttpClient client = connectTo(server);
  Response r = client.request("GET", "/");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.close_delimited);
  EXPECT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.body, "until the end");
}

TEST(HttpClientTest, ChunkedStreamCutBeforeZeroChunkIsIncomplete) {
  ScriptedServer server(
      {readRequest(), write(absl::StrCat(kChunkedHead, "5\r\nhello\r\n")), closeConnection()});
  HttpClient client = connectTo(server);
  Response r = client.request("GET", "/");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.chunked);
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(r.body, "hello");
  EXPECT_THAT(r.error, HasSubstr("0-chunk"));
}

TEST(HttpClientTest, ChunkedStreamCutMidChunkIsIncomplete) {
  ScriptedServer server(
      {readRequest(), write(absl::StrCat(kChunkedHead, "a\r\nhel")), closeConnection()});
  HttpClient client = connectTo(server);
  Response r = client.request("GET", "/");
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(r.body, "hel");
}

TEST(HttpClientTest, ChunkedStreamResetIsIncomplete) {
  ScriptedServer server(
      {readRequest(), write(absl::StrCat(kChunkedHead, "5\r\nhello\r\n")), resetConnection()});
  HttpClient client = connectTo(server);
  Response r = client.request("GET", "/");
  EXPECT_FALSE(r.complete);
  EXPECT_FALSE(r.error.empty());
}

TEST(HttpClientTest, ShortContentLengthBodyIsIncomplete) {
  ScriptedServer server({readRequest(), write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"),
                         closeConnection()});
  HttpClient client = connectTo(server);
  Response r = client.request("GET", "/");
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(r.body, "hello");
  EXPECT_THAT(r.error, HasSubstr("5 Content-Length bytes missing"));
}

TEST(HttpClientTest, MalformedFramingIsIncomplete) {
  struct Case {
    std::string name;
    std::string reply;
  };
  std::vector<Case> cases = {
      {"bad chunk size", absl::StrCat(kChunkedHead, "zz\r\nhello\r\n0\r\n\r\n")},
      {"chunk without CRLF", absl::StrCat(kChunkedHead, "5\r\nhelloXX0\r\n\r\n")},
      {"TE and CL",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
       "5\r\nhello\r\n0\r\n\r\n"},
      {"conflicting CL", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
      {"bad CL", "HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ScriptedServer server({readRequest(), write(c.reply), closeConnection()});
    HttpClient client = connectTo(server);
    Response r = client.request("GET", "/", {}, {}, milliseconds(3000));
    EXPECT_FALSE(r.complete);
    EXPECT_FALSE(r.error.empty());
  }
}

TEST(HttpClientTest, GarbageStatusLineHasNoStatus) {
  ScriptedServer server({readRequest(), write("SSH-2.0-nope\r\n\r\n"), closeConnection()});
  HttpClient client = connectTo(server);
  Response r = client.request("GET", "/");
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(r.complete);
}

TEST(HttpClientTest, PipelinedResponsesAreReadInOrder) {
  ScriptedServer server(
      {readRequest(), readRequest(), readRequest(),
       write(absl::StrCat("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", kChunkedHead,
                          "1\r\nb\r\n0\r\n\r\n",
                          "HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nc"))});
  HttpClient client = connectTo(server);
  std::string batch;
  for (const char* path : {"/a", "/b", "/c"}) batch += client.formatRequest("GET", path, {}, {});
  ASSERT_TRUE(client.sendRaw(batch).ok());
  Response a = client.readResponse();
  Response b = client.readResponse();
  Response c = client.readResponse();
  EXPECT_EQ(a.body, "a");
  EXPECT_EQ(b.body, "b");
  EXPECT_TRUE(b.chunked);
  EXPECT_EQ(c.status, 404);
  EXPECT_EQ(c.body, "c");
  EXPECT_TRUE(a.complete && b.complete && c.complete);
  std::vector<std::string> requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_THAT(requests[0], HasSubstr("GET /a "));
  EXPECT_THAT(requests[1], HasSubstr("GET /b "));
  EXPECT_THAT(requests[2], HasSubstr("GET /c "));
}

TEST(HttpClientTest, KeepAliveHeadResponseHasNoBody) {
  ScriptedServer server({readRequest(), write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"),
                         readRequest(), write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")});
  HttpClient client = connectTo(server);
  Response head = client.request("HEAD", "/");
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.complete) << head.error;
  EXPECT_EQ(head.body, "");
  Response get = client.request("GET", "/");
  EXPECT_EQ(get.body, "ok");
  EXPECT_TRUE(get.complete);
}

TEST(HttpClientTest, InterimResponsesAreSkippedAnd204HasNoBody) {
  ScriptedServer server(
      {readRequest(), write("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")});
  HttpClient client = connectTo(server);
  Response r = client.request("POST", "/", {}, "x");
  EXPECT_EQ(r.status, 204);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.body, "");
}

TEST(HttpClientTest, StreamingReadHandsOutTheFirstEventBeforeTheRestExists) {
  ScriptedServer server({readRequest(), write(absl::StrCat(kChunkedHead, "b\r\ndata: one\n\n\r\n")),
                         awaitRelease(), write("b\r\ndata: two\n\n\r\n0\r\n\r\n")});
  HttpClient client = connectTo(server);
  ASSERT_TRUE(client.sendRequest("POST", "/v1/chat/completions", {}, "{}").ok());
  Response r = client.readHead();
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(r.chunked);
  EXPECT_EQ(client.readUntil("\n\n", milliseconds(5000)), "data: one\n\n");
  // The server holds the rest back, so nothing more arrives and the body is not over.
  EXPECT_EQ(client.readSome(milliseconds(50)), "");
  EXPECT_FALSE(client.bodyEnded());
  server.release();
  client.readRest(r, milliseconds(5000));
  EXPECT_EQ(r.body, "data: two\n\n");
  EXPECT_TRUE(r.complete) << r.error;
  EXPECT_TRUE(client.bodyEnded());
}

TEST(HttpClientTest, ReadResponseGivesUpAtItsTimeout) {
  ScriptedServer server({readRequest(), awaitRelease()});
  HttpClient client = connectTo(server);
  Stopwatch watch;
  Response r = client.request("GET", "/", {}, {}, milliseconds(200));
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(r.complete);
  EXPECT_THAT(r.error, HasSubstr("timed out"));
  EXPECT_GE(watch.elapsedMs(), milliseconds(200));
  EXPECT_LT(watch.elapsedMs(), milliseconds(3000));
}

TEST(HttpClientTest, CloseAbruptlySendsResetAndCloseSendsEof) {
  for (bool abrupt : {true, false}) {
    SCOPED_TRACE(abrupt ? "abrupt" : "graceful");
    ScriptedServer server({readUntilClosed()});
    HttpClient client = connectTo(server);
    ASSERT_TRUE(client.sendRaw("GET / HTTP/1.1\r\n").ok());
    abrupt ? client.closeAbruptly() : client.close();
    EXPECT_FALSE(client.connected());
    EXPECT_TRUE(pollUntil([&] { return !server.closeResult().empty(); }, milliseconds(5000)));
    EXPECT_EQ(server.closeResult(), abrupt ? "reset" : "eof");
  }
}

TEST(HttpClientTest, WaitForPeerCloseSeesTheServerHangUp) {
  ScriptedServer server({readRequest(), closeConnection()});
  HttpClient client = connectTo(server);
  ASSERT_TRUE(client.sendRequest("GET", "/").ok());
  EXPECT_TRUE(client.waitForPeerClose(milliseconds(5000)));
  EXPECT_TRUE(client.peerClosed());
  EXPECT_FALSE(client.peerReset());
}

TEST(HttpClientTest, ConnectToClosedPortFails) {
  HttpClient client;
  EXPECT_FALSE(client.connect(freePort()).ok());
  Response r = fetch(freePort(), "GET", "/");
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(r.error.empty());
}

// ---------------------------------------------------------------------------
// Processes

TEST(ProcessTest, CapturesOutputAndExitCode) {
  auto proc = Process::spawn({"/bin/sh", "-c", "echo hi; echo oops >&2; exit 3"});
  ASSERT_TRUE(proc.ok()) << proc.status();
  std::optional<ExitStatus> exit = (*proc)->waitExit(milliseconds(10000));
  ASSERT_TRUE(exit.has_value());
  EXPECT_TRUE(exit->exited());
  EXPECT_EQ(exit->code, 3);
  EXPECT_FALSE((*proc)->running());
  EXPECT_EQ((*proc)->stdoutText(), "hi\n");
  EXPECT_EQ((*proc)->stderrText(), "oops\n");
}

TEST(ProcessTest, OutputIsReadableWhileRunningAndSignalsEndIt) {
  auto proc = Process::spawn({"sh", "-c", "echo listening on port 4242; exec sleep 30"});
  ASSERT_TRUE(proc.ok()) << proc.status();
  Process& p = **proc;
  EXPECT_EQ(p.waitForLine("listening on", milliseconds(10000)), "listening on port 4242");
  auto groups = p.waitForRegex("port ([0-9]+)", milliseconds(1000));
  ASSERT_TRUE(groups.has_value());
  EXPECT_THAT(*groups, ElementsAre("port 4242", "4242"));
  EXPECT_TRUE(p.running());
  EXPECT_FALSE(p.waitExit(milliseconds(20)).has_value());
  ASSERT_TRUE(p.signal(SIGTERM).ok());
  std::optional<ExitStatus> exit = p.waitExit(milliseconds(10000));
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->signal, SIGTERM);
  EXPECT_FALSE(exit->success());
}

TEST(ProcessTest, WaitForLineStopsWhenTheProcessEnds) {
  auto proc = Process::spawn({"/bin/sh", "-c", "echo bye"});
  ASSERT_TRUE(proc.ok()) << proc.status();
  Stopwatch watch;
  EXPECT_FALSE((*proc)->waitForLine("never printed", milliseconds(20000)).has_value());
  EXPECT_LT(watch.elapsedMs(), milliseconds(10000));
}

TEST(ProcessTest, EnvironmentIsPassedAndOverridden) {
  Process::Options options;
  options.env = {"AIRBAG_HARNESS_PROBE=42", "HOME=/nowhere"};
  auto proc =
      Process::spawn({"/bin/sh", "-c", "echo $AIRBAG_HARNESS_PROBE $HOME; exit 0"}, options);
  ASSERT_TRUE(proc.ok()) << proc.status();
  ASSERT_TRUE((*proc)->waitExit(milliseconds(10000)).has_value());
  EXPECT_EQ((*proc)->stdoutText(), "42 /nowhere\n");
}

TEST(ProcessTest, SpawningAMissingProgramFails) {
  EXPECT_FALSE(Process::spawn({"airbag-harness-no-such-program"}).ok());
  auto proc = Process::spawn({"/nonexistent/airbag-harness-program"});
  EXPECT_FALSE(proc.ok());
}

// The ThreadSanitizer build relies on this: a race report in a child's stderr fails the test
// that started it, even though the child is still running (or was killed) when the test ends.
TEST(ProcessTest, ARaceReportInAChildsStderrFailsTheTest) {
  EXPECT_NONFATAL_FAILURE(
      {
        auto p = Process::spawn({"sh", "-c",
                                 "echo 'WARNING: ThreadSanitizer: data race (pid=1)' >&2; "
                                 "exec sleep 30"});
        ASSERT_TRUE(p.ok());
        ASSERT_TRUE((*p)->waitForLine("ThreadSanitizer", milliseconds(5000)));
      },
      "reported a data race");
}

TEST(ProcessTest, AChildsOrdinaryStderrFailsNothing) {
  auto p = Process::spawn({"sh", "-c", "echo 'WARNING: disk almost full' >&2; exec sleep 30"});
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE((*p)->waitForLine("WARNING", milliseconds(5000)));
  p->reset();
  EXPECT_FALSE(::testing::Test::HasFailure());
}

TEST(ProcessTest, DestructionKillsTheWholeProcessGroup) {
  pid_t grandchild = 0;
  {
    auto proc = Process::spawn({"/bin/sh", "-c", "sleep 60 & echo $!; wait"});
    ASSERT_TRUE(proc.ok()) << proc.status();
    auto groups = (*proc)->waitForRegex("^([0-9]+)$", milliseconds(10000));
    ASSERT_TRUE(groups.has_value());
    ASSERT_TRUE(absl::SimpleAtoi((*groups)[1], &grandchild));
    ASSERT_EQ(::kill(grandchild, 0), 0);
  }
  // Gone, or a zombie waiting for whoever inherited it to reap it.
  auto dead = [grandchild] {
    std::string stat = readFile(absl::StrCat("/proc/", grandchild, "/stat"));
    size_t paren = stat.rfind(')');
    return stat.empty() || (paren != std::string::npos && stat.substr(paren + 2, 1) == "Z");
  };
  EXPECT_TRUE(pollUntil(dead, milliseconds(10000)));
}

TEST(ProcessTest, RunCommandCollectsOutputOrTimesOut) {
  auto done = runCommand({"/bin/sh", "-c", "printf out; printf err >&2; exit 0"});
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE(done->exit.success());
  EXPECT_EQ(done->out, "out");
  EXPECT_EQ(done->err, "err");

  Stopwatch watch;
  auto slow = runCommand({"sleep", "30"}, milliseconds(100));
  EXPECT_EQ(slow.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(watch.elapsedMs(), milliseconds(10000));
}

// ---------------------------------------------------------------------------
// Config templates and the binaries under test

TEST(PlaceholdersTest, ExpandsKnownNamesAndRejectsTyposAndUnterminated) {
  auto text = expandPlaceholders("address: ${LISTEN}\nurl: ${MODEL}/v1 $HOME",
                                 {{"LISTEN", "127.0.0.1:1"}, {"MODEL", "http://m"}});
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "address: 127.0.0.1:1\nurl: http://m/v1 $HOME");
  EXPECT_FALSE(expandPlaceholders("${LISTNE}", {{"LISTEN", "x"}}).ok());
  EXPECT_FALSE(expandPlaceholders("${LISTEN", {{"LISTEN", "x"}}).ok());
}

TEST(TempDirTest, WritesFilesAndRemovesThemAfterwards) {
  std::filesystem::path root;
  {
    auto dir = TempDir::create();
    ASSERT_TRUE(dir.ok()) << dir.status();
    root = (*dir)->path();
    auto file = (*dir)->write("a.yaml", "x: 1\n");
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_EQ(readFile(*file), "x: 1\n");
  }
  EXPECT_FALSE(std::filesystem::exists(root));
}

TEST(AirbagProcessTest, RefusesATemplateThatDoesNotUseItsPorts) {
  auto airbag = AirbagProcess::start("listen: { address: 127.0.0.1:8080 }\n");
  EXPECT_EQ(airbag.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DemoServerTest, StartsAndAnswersItsControlApi) {
  if (!std::filesystem::exists(demoServerBinary())) {
    GTEST_SKIP() << "demo model server not built: " << demoServerBinary();
  }
  auto demo = DemoServer::start();
  ASSERT_TRUE(demo.ok()) << demo.status();
  auto stats = (*demo)->stats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(stats->contains("requests")) << stats->dump();
  EXPECT_TRUE((*demo)->setBehavior({{"latency_ms", 0}}).ok());
  EXPECT_TRUE((*demo)->reset().ok());
  auto requests = (*demo)->stat("requests");
  ASSERT_TRUE(requests.ok()) << requests.status();
  EXPECT_EQ(*requests, 0);
}

TEST(AirbagProcessTest, StartsServesHealthAndExitsZeroOnSigterm) {
  if (!std::filesystem::exists(airbagBinary()) || !std::filesystem::exists(demoServerBinary())) {
    GTEST_SKIP() << "airbag or the demo model server not built";
  }
  auto demo = DemoServer::start();
  ASSERT_TRUE(demo.ok()) << demo.status();
  auto airbag = AirbagProcess::start(R"(
listen:
  address: ${LISTEN}
  workers: 1
admin:
  address: ${ADMIN}
log: { level: warn, access_log: off }
upstreams:
  model:
    url: ${MODEL}
routes:
  - name: all
    match: { path_prefix: / }
    upstream: model
)",
                                     {{"MODEL", (*demo)->url()}});
  ASSERT_TRUE(airbag.ok()) << airbag.status();
  EXPECT_EQ((*airbag)->admin("GET", "/healthz").status, 200);
  auto exit = (*airbag)->terminate();
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->success()) << exit->toString();
}

}  // namespace
}  // namespace airbag::testing
