// The kit every integration test uses to drive the real airbag and demo model server binaries
// on loopback: processes, ports, a strict blocking HTTP/1.1 client, and timing helpers.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace airbag::testing {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// ---------------------------------------------------------------------------
// Time

// Measures elapsed steady time from construction (or the last reset()).
class Stopwatch {
 public:
  Stopwatch() : start_(SteadyClock::now()) {}
  void reset() { start_ = SteadyClock::now(); }
  SteadyClock::duration elapsed() const { return SteadyClock::now() - start_; }
  milliseconds elapsedMs() const { return std::chrono::duration_cast<milliseconds>(elapsed()); }

 private:
  SteadyClock::time_point start_;
};

// Which sanitizer this build runs under. GCC defines __SANITIZE_THREAD__ / __SANITIZE_ADDRESS__;
// clang 14 defines neither and answers __has_feature() instead (which GCC 12 does not have).
#if defined(__SANITIZE_THREAD__)
#define AIRBAG_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define AIRBAG_TEST_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define AIRBAG_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AIRBAG_TEST_ASAN 1
#endif
#endif

// How many times slower than a plain build the code under test may run here: ThreadSanitizer
// instruments every memory access and lock (5-15x), AddressSanitizer + UBSan less (2-3x), and
// the binaries the tests start are built the same way. Bounds that only say "this did not get
// stuck" (how long to wait for a condition, a client's timeout, a load's budget) are sized for
// the plain build and scaled() here; a bound that is airbag's own promise (a timeout fires within
// its deadline) is not scaled, only the slack allowed on it.
#if defined(AIRBAG_TEST_TSAN)
inline constexpr int kSanitizerSlowdown = 10;
#elif defined(AIRBAG_TEST_ASAN)
inline constexpr int kSanitizerSlowdown = 3;
#else
inline constexpr int kSanitizerSlowdown = 1;
#endif
constexpr milliseconds scaled(milliseconds bound) { return bound * kSanitizerSlowdown; }

// How many times more resident memory the process under test may take here for the same work:
// ThreadSanitizer backs every written byte of the heap with shadow memory and its allocator
// holds on to freed pages; AddressSanitizer keeps freed blocks in quarantine, with redzones.
// A memory bound sized for the plain build is multiplied by it.
#if defined(AIRBAG_TEST_TSAN) || defined(AIRBAG_TEST_ASAN)
inline constexpr int kSanitizerMemoryFactor = 2;
#else
inline constexpr int kSanitizerMemoryFactor = 1;
#endif

// A fixed point in steady time; every wait in this kit is bounded by one.
class Deadline {
 public:
  explicit Deadline(SteadyClock::duration timeout) : at_(SteadyClock::now() + timeout) {}
  bool expired() const { return SteadyClock::now() >= at_; }
  // Time left, never negative.
  milliseconds remaining() const;
  // Time left as a poll() timeout in ms (0 once expired, rounded up otherwise).
  int pollTimeoutMs() const;
  SteadyClock::time_point at() const { return at_; }

 private:
  SteadyClock::time_point at_;
};

// Calls `condition` every `interval` until it returns true (returns true) or `timeout` passes
// (returns false). The condition is always evaluated at least once, and once more at the end.
bool pollUntil(const std::function<bool()>& condition, milliseconds timeout,
               milliseconds interval = milliseconds(5));

// Samples `counter` every `interval` until two readings in a row are equal and above zero (a
// count that stopped moving, such as the bytes a paused stream sent) and returns that reading;
// nullopt if it kept moving, or stayed at zero, for `timeout`.
std::optional<int64_t> waitForStandstill(const std::function<int64_t()>& counter,
                                         milliseconds timeout,
                                         milliseconds interval = milliseconds(200));

// ---------------------------------------------------------------------------
// Files

// A fresh private directory under the system temporary directory, removed with its contents on
// destruction. Not copyable.
class TempDir {
 public:
  static absl::StatusOr<std::unique_ptr<TempDir>> create(std::string_view prefix = "airbag-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Writes `content` to path()/name (replacing it) and returns the full path.
  absl::StatusOr<std::filesystem::path> write(std::string_view name, std::string_view content);

 private:
  explicit TempDir(std::filesystem::path path) : path_(std::move(path)) {}
  std::filesystem::path path_;
};

// The whole content of a file; empty if it cannot be read.
std::string readFile(const std::filesystem::path& path);

// ---------------------------------------------------------------------------
// Ports

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close). Another
// process may take it before the caller binds it; the server helpers below retry on that race.
int freePort();

// Polls connect() to 127.0.0.1:port until it succeeds (true) or `timeout` passes (false).
bool waitForPort(int port, milliseconds timeout);

// ---------------------------------------------------------------------------
// Processes

// How a child process ended: exited with `code`, or was killed by `signal`.
struct ExitStatus {
  int code = -1;
  int signal = 0;
  bool exited() const { return signal == 0; }
  bool success() const { return signal == 0 && code == 0; }
  std::string toString() const;
};

// A child process in its own process group with stdin on /dev/null and stdout and stderr captured
// to files that can be read while it runs. The destructor SIGKILLs the whole group and reaps the
// child, and the child is also killed if the thread that spawned it dies (PR_SET_PDEATHSIG), so a
// test never leaves orphans behind. If the current test has failed, the destructor prints the
// tail of the captured output to stderr. Methods are meant for one thread.
class Process {
 public:
  struct Options {
    // Extra "NAME=value" entries added to (or overriding) the parent's environment.
    std::vector<std::string> env;
    // Name used in diagnostics; defaults to the basename of argv[0].
    std::string label;
  };

  // Starts argv (argv[0] is looked up in PATH when it has no '/'). Fails if the program cannot be
  // executed.
  static absl::StatusOr<std::unique_ptr<Process>> spawn(std::vector<std::string> argv);
  static absl::StatusOr<std::unique_ptr<Process>> spawn(std::vector<std::string> argv,
                                                        Options options);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& label() const { return label_; }

  // Everything the child has written so far.
  std::string stdoutText() const;
  std::string stderrText() const;

  // Polls the captured output (stdout then stderr) until a line containing `needle` appears;
  // returns that line, or nullopt on timeout. Only complete lines are considered.
  // Stops early, returning nullopt, once the child has ended without printing it.
  std::optional<std::string> waitForLine(std::string_view needle, milliseconds timeout);
  // As waitForLine, for an ECMAScript regex searched within each line; returns the match groups
  // (index 0 is the whole match).
  std::optional<std::vector<std::string>> waitForRegex(const std::string& pattern,
                                                       milliseconds timeout);

  // Sends `sig` to the child itself (not to its group).
  absl::Status signal(int sig);
  // True while the child has not been reaped.
  bool running();
  // Waits up to `timeout` for the child to end and returns how it ended; nullopt if it is still
  // running. Once the child ended, returns the same status on every call.
  std::optional<ExitStatus> waitExit(milliseconds timeout);
  // SIGKILLs the process group and reaps the child.
  void kill();

 private:
  Process() = default;
  bool reap(bool block);

  pid_t pid_ = -1;
  std::string label_;
  std::unique_ptr<TempDir> dir_;
  std::filesystem::path stdout_path_;
  std::filesystem::path stderr_path_;
  std::optional<ExitStatus> exit_;
};

// What /proc/PID says about a running process, for tests that check a process returns to its
// baseline: resident memory (VmRSS, KiB), open descriptors, and how many of them are sockets
// (listeners, client and upstream connections). -1 when the process or field is gone.
int64_t processResidentKib(pid_t pid);
int processOpenFds(pid_t pid);
int processSockets(pid_t pid);
// The process's TCP connections whose remote port is `remote_port` (for instance its pooled
// connections to an upstream), from the kernel's TCP tables as the process sees them.
int processConnectionsTo(pid_t pid, int remote_port);

// The result of a command run to completion.
struct CommandResult {
  ExitStatus exit;
  std::string out;
  std::string err;
};

// Runs argv to completion; fails if it cannot start or does not end within `timeout` (then it is
// killed).
absl::StatusOr<CommandResult> runCommand(std::vector<std::string> argv,
                                         milliseconds timeout = milliseconds(30000));

// ---------------------------------------------------------------------------
// HTTP

// Header fields in arrival order; lookups ignore case and repeated fields are all kept.
class Headers {
 public:
  Headers() = default;
  Headers(std::initializer_list<std::pair<std::string, std::string>> fields) : fields_(fields) {}

  void add(std::string name, std::string value) {
    fields_.emplace_back(std::move(name), std::move(value));
  }
  bool has(std::string_view name) const;
  // The first value of `name`, or nullopt.
  std::optional<std::string> get(std::string_view name) const;
  // The first value of `name`, or "" when absent.
  std::string value(std::string_view name) const { return get(name).value_or(""); }
  // Every value of `name`, in order.
  std::vector<std::string> getAll(std::string_view name) const;
  size_t count(std::string_view name) const { return getAll(name).size(); }
  size_t size() const { return fields_.size(); }
  bool empty() const { return fields_.empty(); }
  const std::vector<std::pair<std::string, std::string>>& fields() const { return fields_; }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

// One HTTP response as read off the wire.
struct Response {
  int status = 0;  // 0: no complete status line and header block was received
  std::string version;
  std::string reason;
  Headers headers;
  std::string body;      // de-chunked
  Headers trailers;      // chunked trailer fields, if any
  bool chunked = false;  // Transfer-Encoding: chunked
  // The framing ended properly: Content-Length bytes read, the 0-chunk and trailer section seen,
  // or (close-delimited) a clean EOF. A cut stream, a reset, a timeout or malformed framing
  // leave it false.
  bool complete = false;
  bool close_delimited = false;
  std::string error;                      // why the response is not complete, when it is not
  SteadyClock::duration head_latency{};   // from the start of the read to the end of the head
  SteadyClock::duration total_latency{};  // from the start of the read to the end of the body

  std::string header(std::string_view name) const { return headers.value(name); }
  // Parses the body as JSON (discarded, i.e. is_discarded(), when it is not JSON).
  nlohmann::json json() const;
};

// A blocking HTTP/1.1 client over one TCP connection, every call bounded by a timeout. It keeps
// the connection open between requests (keep-alive), supports pipelining (send several requests,
// then read several responses in order), and streaming reads: readHead() then readSome() hand
// out body bytes as they arrive. Not thread-safe; one connection per instance.
class HttpClient {
 public:
  struct ConnectOptions {
    std::string host = "127.0.0.1";
    milliseconds timeout = milliseconds(2000);
    // SO_RCVBUF set before connecting (0: kernel default). A small buffer makes a client that
    // stops reading push back on the server quickly (slow-client tests).
    int receive_buffer_bytes = 0;
  };

  HttpClient() = default;
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;
  HttpClient(HttpClient&& other) noexcept;
  HttpClient& operator=(HttpClient&& other) noexcept;

  absl::Status connect(int port);
  absl::Status connect(int port, const ConnectOptions& options);
  bool connected() const { return fd_ >= 0; }
  int port() const { return port_; }

  // Writes bytes as they are (for malformed or hand-framed requests).
  absl::Status sendRaw(std::string_view bytes, milliseconds timeout = milliseconds(5000));

  // Frames a request: adds Host unless given, and Content-Length for a non-empty body (or for
  // POST/PUT/PATCH) unless Content-Length or Transfer-Encoding is given.
  std::string formatRequest(std::string_view method, std::string_view path, const Headers& headers,
                            std::string_view body) const;
  // Sends a request without reading its response (for pipelining). The method is remembered so
  // that the response to a HEAD is read without a body.
  absl::Status sendRequest(std::string_view method, std::string_view path,
                           const Headers& headers = {}, std::string_view body = {});
  // Sends a request and reads its response (status 0 and error set if sending failed).
  Response request(std::string_view method, std::string_view path, const Headers& headers = {},
                   std::string_view body = {}, milliseconds timeout = milliseconds(10000));

  // Reads the next whole response within `timeout`. Interim 1xx responses are skipped.
  Response readResponse(milliseconds timeout = milliseconds(10000));

  // Streaming: reads only the status line and headers of the next response (any unread body of
  // the previous response is drained first). The body is then read with readSome()/readUntil().
  Response readHead(milliseconds timeout = milliseconds(10000));
  // Returns the body bytes available now, or waits up to `timeout` for at least one; "" on
  // timeout or when the body has ended (see bodyEnded()).
  std::string readSome(milliseconds timeout);
  // Reads body bytes until what was read by this call contains `needle` (returned with all bytes
  // read so far by this call), the body ends, or `timeout` passes.
  std::string readUntil(std::string_view needle, milliseconds timeout);
  // Reads the rest of the current body within `timeout`, completing `response` (body, trailers,
  // complete, error, total_latency).
  void readRest(Response& response, milliseconds timeout);
  // No more body bytes will come: the framing ended, or the connection failed.
  bool bodyEnded() const;
  // The current body's framing ended properly.
  bool bodyComplete() const;
  const std::string& bodyError() const { return body_.error; }

  // Waits up to `timeout` for the peer to close the connection (EOF or reset), discarding any
  // bytes that arrive meanwhile; true if it closed.
  bool waitForPeerClose(milliseconds timeout);
  // Waits up to `timeout` for bytes and keeps them in buffered(); returns how many arrived (0 on
  // timeout, EOF or reset).
  size_t receiveSome(milliseconds timeout);
  // True once EOF or a reset was seen on this connection.
  bool peerClosed() const { return eof_ || reset_; }
  bool peerReset() const { return reset_; }
  // Bytes received but not consumed yet (for tests of what follows a response).
  const std::string& buffered() const { return in_; }

  // Half-closes the sending side (FIN) while still able to read.
  void shutdownWrite();
  // Closes the connection gracefully (FIN).
  void close();
  // Closes the connection with a reset (SO_LINGER 0: RST), as a client that vanishes would.
  void closeAbruptly();

 private:
  enum class BodyMode { kNone, kLength, kChunked, kUntilClose };
  enum class ChunkState { kSize, kData, kDataEnd, kTrailer, kDone };
  struct BodyState {
    bool active = false;  // a head was read and its body is not finished
    BodyMode mode = BodyMode::kNone;
    ChunkState chunk = ChunkState::kSize;
    uint64_t remaining = 0;
    bool done = false;
    bool failed = false;
    std::string error;
    Headers trailers;
  };

  // Receives into in_ until `deadline`; returns bytes read (0 on EOF, reset, error or timeout).
  size_t receive(const Deadline& deadline);
  // Moves decodable body bytes from in_ into `out`, advancing body_.
  void decodeBody(std::string& out);
  void failBody(std::string error);
  void resetConnectionState();

  int fd_ = -1;
  int port_ = 0;
  std::string host_;
  std::string in_;
  bool eof_ = false;
  bool reset_ = false;
  std::string io_error_;
  BodyState body_;
  std::deque<std::string> pending_methods_;
  SteadyClock::time_point read_started_{};
};

// Reads (and drops) what `client` receives until `counter()` is above `above`: a stream paused
// for a reader that stopped, resuming once it reads again. False if it did not within `timeout`.
bool readUntilCounterPasses(HttpClient& client, const std::function<int64_t()>& counter,
                            int64_t above, milliseconds timeout);

// One request on a fresh connection to 127.0.0.1:port (closed afterwards).
Response fetch(int port, std::string_view method, std::string_view path,
               const Headers& headers = {}, std::string_view body = {},
               milliseconds timeout = milliseconds(10000));

// ---------------------------------------------------------------------------
// A scripted upstream

// One step of what a ScriptedServer does on a connection.
struct Step {
  enum Kind {
    kReadRequest,      // read one request head (and its Content-Length body)
    kWrite,            // write `bytes`
    kAwaitRelease,     // wait until the test calls release()
    kClose,            // close gracefully (FIN)
    kReset,            // close with RST
    kReadUntilClosed,  // read until the client closes; records "eof" or "reset"
  };
  Kind kind;
  std::string bytes;
};

Step readRequest();
Step write(std::string bytes);
Step awaitRelease();
Step closeConnection();
Step resetConnection();
Step readUntilClosed();

// A loopback server on its own thread that plays a script on every connection it accepts, one
// connection at a time: an upstream that answers exactly the bytes a test wants, malformed ones
// included. The script can be replaced between connections. Every wait inside is bounded.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<Step> script);
  ~ScriptedServer();
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;

  int port() const { return port_; }
  std::string url() const;  // "http://127.0.0.1:PORT"
  // The script for connections accepted from now on.
  void setScript(std::vector<Step> script);
  // Lets every connection waiting in kAwaitRelease go on.
  void release();
  // The request heads read so far, in order.
  std::vector<std::string> requests();
  // How the last kReadUntilClosed ended: "eof", "reset", "error" or "" (timeout).
  std::string closeResult();
  int connections();

 private:
  bool stopping();
  void run();
  void serve(int fd, const std::vector<Step>& script);

  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Step> script_;
  bool stop_ = false;
  bool released_ = false;
  int connections_ = 0;
  std::vector<std::string> requests_;
  std::string close_result_;
};

// ---------------------------------------------------------------------------
// Binaries under test

// Replaces every ${NAME} in `text` with vars[NAME]. Fails on an unknown NAME (a typo in a test's
// template) or an unterminated "${".
absl::StatusOr<std::string> expandPlaceholders(std::string_view text,
                                               const std::map<std::string, std::string>& vars);

// Paths of the binaries under test: from the environment (AIRBAG_BIN, DEMO_SERVER_BIN) when
// set, else as the build placed them.
std::string airbagBinary();
std::string demoServerBinary();

// The demo model server on 127.0.0.1:port(), with its control API.
class DemoServer {
 public:
  struct Options {
    std::vector<std::string> extra_args;  // e.g. {"--name", "small-model"}
    milliseconds ready_timeout = milliseconds(15000);
  };
  static absl::StatusOr<std::unique_ptr<DemoServer>> start();
  static absl::StatusOr<std::unique_ptr<DemoServer>> start(Options options);

  int port() const { return port_; }
  std::string address() const;  // "127.0.0.1:PORT"
  std::string url() const;      // "http://127.0.0.1:PORT"
  Process& process() { return *process_; }

  // GET /control/stats.
  absl::StatusOr<nlohmann::json> stats();
  // One counter of stats(), e.g. "requests"; fails if absent or not a number.
  absl::StatusOr<int64_t> stat(std::string_view name);
  // POST /control/reset: behaviour back to defaults, counters to zero.
  absl::Status reset();
  // PUT /control/behavior: `behavior` is merged into the current behaviour.
  absl::Status setBehavior(const nlohmann::json& behavior);

 private:
  DemoServer() = default;
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

// The value of the sample named `sample` (metric name with its labels, as
// printed) in a Prometheus text exposition; nullopt when no line has it.
std::optional<double> metricSample(std::string_view exposition, std::string_view sample);

// The airbag binary running a config written from a YAML template. Built-in placeholders:
// ${LISTEN_PORT}, ${ADMIN_PORT}, ${LISTEN} and ${ADMIN} ("127.0.0.1:PORT"), ${DIR} (a private
// directory for files the config names, such as access logs or token files); tests add their
// own, such as ${MODEL} = DemoServer::url().
class AirbagProcess {
 public:
  using Vars = std::map<std::string, std::string>;
  struct Options {
    std::vector<std::string> extra_args;
    std::vector<std::string> env;
    milliseconds ready_timeout = milliseconds(15000);
  };

  static absl::StatusOr<std::unique_ptr<AirbagProcess>> start(std::string_view yaml_template,
                                                              const Vars& vars = {});
  static absl::StatusOr<std::unique_ptr<AirbagProcess>> start(std::string_view yaml_template,
                                                              const Vars& vars, Options options);

  // Runs `airbag --check-config` on the expanded template (ports are free ones, unused).
  static absl::StatusOr<CommandResult> checkConfig(std::string_view yaml_template,
                                                   const Vars& vars = {});

  int port() const { return port_; }
  int adminPort() const { return admin_port_; }
  const std::filesystem::path& configPath() const { return config_path_; }
  const std::filesystem::path& dir() const { return dir_->path(); }
  Process& process() { return *process_; }

  // One request on a fresh connection to the listen port / the admin port.
  Response fetch(std::string_view method, std::string_view path, const Headers& headers = {},
                 std::string_view body = {}, milliseconds timeout = milliseconds(10000));
  Response admin(std::string_view method, std::string_view path, std::string_view body = {},
                 const Headers& headers = {}, milliseconds timeout = milliseconds(10000));
  // GET /metrics on the admin port.
  absl::StatusOr<std::string> metrics();
  // The value of one sample of GET /metrics, e.g.
  // `airbag_retries_total{route="r"}`; nullopt when absent or /metrics failed.
  std::optional<double> metric(std::string_view sample);

  // Rewrites the config file from a new template, keeping this process's ports and ${DIR} (for
  // reload tests; follow with reload() or POST /reload).
  absl::Status rewriteConfig(std::string_view yaml_template, const Vars& vars = {});
  // Sends SIGHUP (config reload).
  absl::Status reload();
  // POST /drain on the admin port.
  absl::Status drain();
  // SIGTERM, then waits up to `timeout` for the exit; fails if it is still running.
  absl::StatusOr<ExitStatus> terminate(milliseconds timeout = milliseconds(15000));

 private:
  AirbagProcess() = default;
  Vars builtinVars() const;

  int port_ = 0;
  int admin_port_ = 0;
  std::unique_ptr<TempDir> dir_;
  std::filesystem::path config_path_;
  std::unique_ptr<Process> process_;
};

}  // namespace airbag::testing
