// Implementation of the integration-test kit: fork/exec with captured output, loopback sockets
// and a strict HTTP/1.1 response reader (Content-Length, chunked, close-delimited).
#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "airbag/status_macros.h"
#include "gtest/gtest.h"

extern char** environ;

namespace airbag::testing {
namespace {

constexpr size_t kMaxHeadBytes = 1 << 20;
constexpr size_t kMaxChunkLineBytes = 4096;
constexpr size_t kFailureDumpBytes = 8192;
constexpr char kRaceReport[] = "WARNING: ThreadSanitizer:";

// Owns one file descriptor.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// Debian's abseil has its own std::string_view (not std::string_view), so the absl string
// helpers do not take std::string_view; these few small ones stand in for them here.
inline void appendOne(std::string& out, std::string_view s) { out.append(s); }
inline void appendOne(std::string& out, const char* s) { out.append(s); }
inline void appendOne(std::string& out, const std::string& s) { out.append(s); }
template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T>>>
void appendOne(std::string& out, T value) {
  out.append(std::to_string(value));
}

template <typename... Args>
void append(std::string& out, const Args&... args) {
  (appendOne(out, args), ...);
}

template <typename... Args>
std::string cat(const Args&... args) {
  std::string out;
  append(out, args...);
  return out;
}

bool contains(std::string_view text, std::string_view needle) {
  return text.find(needle) != std::string_view::npos;
}

bool startsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

char lowerChar(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

std::string toLower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), lowerChar);
  return out;
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return lowerChar(x) == lowerChar(y);
         });
}

std::vector<std::string_view> split(std::string_view text, std::string_view sep) {
  std::vector<std::string_view> parts;
  for (size_t pos = 0;;) {
    size_t next = text.find(sep, pos);
    if (next == std::string_view::npos) {
      parts.push_back(text.substr(pos));
      return parts;
    }
    parts.push_back(text.substr(pos, next - pos));
    pos = next + sep.size();
  }
}

bool isDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string errnoText(std::string_view what) { return cat(what, ": ", std::strerror(errno)); }

sockaddr_in loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

std::string tail(const std::string& text, size_t bytes) {
  if (text.size() <= bytes) return text;
  return cat("...", text.substr(text.size() - bytes));
}

// argv[0] as an executable path: unchanged when it names a path, else looked up in PATH.
std::optional<std::string> resolveProgram(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = std::getenv("PATH");
  for (std::string_view dir : split(path ? path : "/usr/bin:/bin", ":")) {
    if (dir.empty()) continue;
    std::string candidate = cat(dir, "/", program);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

// The complete lines of `text` (a trailing partial line is left out: it may still grow).
std::vector<std::string_view> completeLines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  for (size_t nl = text.find('\n'); nl != std::string_view::npos; nl = text.find('\n', start)) {
    std::string_view line = text.substr(start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    start = nl + 1;
  }
  return lines;
}

bool isTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Parses "name: value" into `headers`; false if the line is not a valid field.
bool parseField(std::string_view line, Headers& headers) {
  size_t colon = line.find(':');
  if (colon == 0 || colon == std::string_view::npos) return false;
  std::string_view name = line.substr(0, colon);
  if (!std::all_of(name.begin(), name.end(), isTokenChar)) return false;
  headers.add(std::string(name), std::string(trimOws(line.substr(colon + 1))));
  return true;
}

// Parses a status line and header block (without the final empty line) into `r`.
absl::Status parseHead(std::string_view head, Response& r) {
  std::vector<std::string_view> lines = split(head, "\r\n");
  std::string_view status_line = lines.front();
  if (!startsWith(status_line, "HTTP/")) {
    return absl::InvalidArgumentError(cat("bad status line: ", status_line));
  }
  size_t sp = status_line.find(' ');
  if (sp == std::string_view::npos || status_line.size() < sp + 4) {
    return absl::InvalidArgumentError(cat("bad status line: ", status_line));
  }
  r.version = std::string(status_line.substr(0, sp));
  std::string_view code = status_line.substr(sp + 1, 3);
  if (!std::all_of(code.begin(), code.end(), ::isdigit) ||
      (status_line.size() > sp + 4 && status_line[sp + 4] != ' ')) {
    return absl::InvalidArgumentError(cat("bad status code: ", status_line));
  }
  r.status = std::stoi(std::string(code));
  r.reason = status_line.size() > sp + 5 ? std::string(status_line.substr(sp + 5)) : "";
  for (size_t i = 1; i < lines.size(); ++i) {
    if (!lines[i].empty() && (lines[i][0] == ' ' || lines[i][0] == '\t')) {
      return absl::InvalidArgumentError("obsolete header line folding");
    }
    if (!parseField(lines[i], r.headers)) {
      return absl::InvalidArgumentError(cat("bad header line: ", lines[i]));
    }
  }
  return absl::OkStatus();
}

}  // namespace

// ---------------------------------------------------------------------------
// Time

milliseconds Deadline::remaining() const {
  auto left = at_ - SteadyClock::now();
  if (left <= SteadyClock::duration::zero()) return milliseconds(0);
  return std::chrono::ceil<milliseconds>(left);
}

int Deadline::pollTimeoutMs() const { return static_cast<int>(remaining().count()); }

bool pollUntil(const std::function<bool()>& condition, milliseconds timeout,
               milliseconds interval) {
  Deadline deadline(timeout);
  while (!deadline.expired()) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::min<milliseconds>(interval, deadline.remaining()));
  }
  return condition();
}

std::optional<int64_t> waitForStandstill(const std::function<int64_t()>& counter,
                                         milliseconds timeout, milliseconds interval) {
  int64_t last = -1;
  bool still = pollUntil(
      [&] {
        int64_t now = counter();
        bool same = now == last && now > 0;
        last = now;
        return same;
      },
      timeout, interval);
  if (!still) return std::nullopt;
  return last;
}

bool readUntilCounterPasses(HttpClient& client, const std::function<int64_t()>& counter,
                            int64_t above, milliseconds timeout) {
  return pollUntil(
      [&] {
        for (int i = 0; i < 20; ++i) client.readSome(milliseconds(10));
        return counter() > above;
      },
      timeout, milliseconds(1));
}

// ---------------------------------------------------------------------------
// Files

absl::StatusOr<std::unique_ptr<TempDir>> TempDir::create(std::string_view prefix) {
  std::error_code ec;
  std::filesystem::path base = std::filesystem::temp_directory_path(ec);
  if (ec) return absl::InternalError(cat("no temporary directory: ", ec.message()));
  std::string pattern = (base / cat(prefix, "-XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) return absl::InternalError(errnoText("mkdtemp"));
  return std::unique_ptr<TempDir>(new TempDir(pattern));
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

absl::StatusOr<std::filesystem::path> TempDir::write(std::string_view name,
                                                     std::string_view content) {
  std::filesystem::path file = path_ / name;
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  out.close();
  if (!out) return absl::InternalError(cat("cannot write ", file.string()));
  return file;
}

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// ---------------------------------------------------------------------------
// Ports

int freePort() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return 0;
  sockaddr_in addr = loopback(0);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return 0;
  socklen_t len = sizeof(addr);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  return ntohs(addr.sin_port);
}

bool waitForPort(int port, milliseconds timeout) {
  return pollUntil(
      [port] {
        UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in addr = loopback(port);
        return fd.get() >= 0 &&
               ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
      },
      timeout, milliseconds(10));
}

// ---------------------------------------------------------------------------
// Processes

std::string ExitStatus::toString() const {
  if (signal != 0) return cat("killed by signal ", signal, " (", strsignal(signal), ")");
  return cat("exited with code ", code);
}

absl::StatusOr<std::unique_ptr<Process>> Process::spawn(std::vector<std::string> argv) {
  return spawn(std::move(argv), Options{});
}

absl::StatusOr<std::unique_ptr<Process>> Process::spawn(std::vector<std::string> argv,
                                                        Options options) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  std::optional<std::string> program = resolveProgram(argv[0]);
  if (!program) return absl::NotFoundError(cat(argv[0], ": not found in PATH"));

  std::unique_ptr<Process> proc(new Process());
  proc->label_ =
      options.label.empty() ? std::filesystem::path(argv[0]).filename().string() : options.label;
  AIRBAG_ASSIGN_OR_RETURN(proc->dir_, TempDir::create("airbag-proc"));
  proc->stdout_path_ = proc->dir_->path() / "stdout";
  proc->stderr_path_ = proc->dir_->path() / "stderr";
  UniqueFd out(::open(proc->stdout_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  UniqueFd err(::open(proc->stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (out.get() < 0 || err.get() < 0 || null.get() < 0) {
    return absl::InternalError(errnoText("open capture files"));
  }

  // Everything the child needs is prepared before fork(): after it, in a threaded parent, only
  // async-signal-safe calls are allowed.
  std::vector<std::string> env;
  std::set<std::string> overridden;
  for (const std::string& entry : options.env) overridden.insert(entry.substr(0, entry.find('=')));
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    if (!overridden.count(std::string(entry.substr(0, entry.find('='))))) env.emplace_back(entry);
  }
  env.insert(env.end(), options.env.begin(), options.env.end());
  std::vector<char*> argv_c, env_c;
  for (std::string& a : argv) argv_c.push_back(a.data());
  argv_c.push_back(nullptr);
  for (std::string& e : env) env_c.push_back(e.data());
  env_c.push_back(nullptr);

  int exec_pipe[2];
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) return absl::InternalError(errnoText("pipe2"));
  UniqueFd exec_read(exec_pipe[0]), exec_write(exec_pipe[1]);
  sigset_t no_signals;
  sigemptyset(&no_signals);
  const pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError(errnoText("fork"));
  if (pid == 0) {
    ::setpgid(0, 0);
    // Dies with the spawning thread, so a crashed test leaves no orphan behind.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::sigprocmask(SIG_SETMASK, &no_signals, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGPIPE, &dfl, nullptr);
    ::dup2(null.get(), STDIN_FILENO);
    ::dup2(out.get(), STDOUT_FILENO);
    ::dup2(err.get(), STDERR_FILENO);
    ::execve(program->c_str(), argv_c.data(), env_c.data());
    int exec_errno = errno;
    [[maybe_unused]] ssize_t ignored = ::write(exec_write.get(), &exec_errno, sizeof(exec_errno));
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also from here: whichever runs first wins the race; both agree
  proc->pid_ = pid;
  exec_write.reset();
  int exec_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_read.get(), &exec_errno, sizeof(exec_errno));
  } while (n < 0 && errno == EINTR);
  if (n == sizeof(exec_errno)) {
    proc->waitExit(milliseconds(5000));
    return absl::FailedPreconditionError(
        cat("cannot execute ", *program, ": ", std::strerror(exec_errno)));
  }
  return proc;
}

Process::~Process() {
  if (pid_ <= 0) return;
  kill();
  std::string out = stdoutText(), err = stderrText();
  // A race found in a child (airbag in the ThreadSanitizer build) fails the test that drove it,
  // whether or not the child was still running when the test ended.
  if (size_t at = err.find(kRaceReport); at != std::string::npos) {
    ADD_FAILURE() << label_ << " (pid " << pid_ << ") reported a data race:\n"
                  << err.substr(at, kFailureDumpBytes);
  }
  if (::testing::Test::HasFailure()) {
    std::cerr << "---- " << label_ << " (pid " << pid_ << ") stdout ----\n"
              << tail(out, kFailureDumpBytes) << "\n---- " << label_ << " stderr ----\n"
              << tail(err, kFailureDumpBytes) << "\n---- end of " << label_ << " ----\n";
  }
}

std::string Process::stdoutText() const { return readFile(stdout_path_); }
std::string Process::stderrText() const { return readFile(stderr_path_); }

std::optional<std::string> Process::waitForLine(std::string_view needle, milliseconds timeout) {
  std::optional<std::string> found;
  auto look = [&] {
    // Read the exit state first so that output written just before the exit is still seen.
    bool ended = !running();
    for (const std::string& text : {stdoutText(), stderrText()}) {
      for (std::string_view line : completeLines(text)) {
        if (contains(line, needle)) {
          found = std::string(line);
          return true;
        }
      }
    }
    return ended;
  };
  pollUntil(look, timeout);
  return found;
}

std::optional<std::vector<std::string>> Process::waitForRegex(const std::string& pattern,
                                                              milliseconds timeout) {
  const std::regex re(pattern);
  std::optional<std::vector<std::string>> found;
  auto look = [&] {
    bool ended = !running();
    for (const std::string& text : {stdoutText(), stderrText()}) {
      for (std::string_view line : completeLines(text)) {
        std::match_results<std::string_view::const_iterator> m;
        if (std::regex_search(line.begin(), line.end(), m, re)) {
          found.emplace();
          for (const auto& group : m) found->push_back(group.str());
          return true;
        }
      }
    }
    return ended;
  };
  pollUntil(look, timeout);
  return found;
}

absl::Status Process::signal(int sig) {
  if (exit_) return absl::FailedPreconditionError(cat(label_, " has already ended"));
  if (::kill(pid_, sig) != 0) return absl::InternalError(errnoText("kill"));
  return absl::OkStatus();
}

bool Process::reap(bool block) {
  if (exit_) return true;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return false;
  ExitStatus exit;
  if (r == pid_ && WIFEXITED(status)) exit.code = WEXITSTATUS(status);
  if (r == pid_ && WIFSIGNALED(status)) exit.signal = WTERMSIG(status);
  exit_ = exit;
  // Whatever the child left running in its group goes with it. The group id cannot have been
  // reused yet while members remain, so this reaches only our own descendants.
  ::killpg(pid_, SIGKILL);
  return true;
}

bool Process::running() { return !reap(false); }

std::optional<ExitStatus> Process::waitExit(milliseconds timeout) {
  pollUntil([this] { return reap(false); }, timeout, milliseconds(2));
  return exit_;
}

void Process::kill() {
  if (!exit_) {
    ::killpg(pid_, SIGKILL);
    ::kill(pid_, SIGKILL);  // in case the child had not joined its own group yet
    // SIGKILL cannot be ignored; the bound only guards against a process stuck in the kernel.
    if (!waitExit(milliseconds(10000))) {
      std::cerr << label_ << " (pid " << pid_ << ") did not die after SIGKILL\n";
    }
  }
}

int64_t processResidentKib(pid_t pid) {
  std::ifstream in(cat("/proc/", pid, "/status"));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

namespace {
// Counts the entries of /proc/PID/fd whose link target passes `keep`; -1 if it cannot be read.
int countFds(pid_t pid, const std::function<bool(const std::string&)>& keep) {
  std::error_code ec;
  int n = 0;
  for (auto it = std::filesystem::directory_iterator(cat("/proc/", pid, "/fd"), ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::error_code rec;
    std::string target = std::filesystem::read_symlink(it->path(), rec).string();
    if (!rec && keep(target)) ++n;
  }
  return ec ? -1 : n;
}
}  // namespace

int processOpenFds(pid_t pid) {
  return countFds(pid, [](const std::string&) { return true; });
}

int processSockets(pid_t pid) {
  return countFds(pid, [](const std::string& t) { return t.rfind("socket:[", 0) == 0; });
}

int processConnectionsTo(pid_t pid, int remote_port) {
  std::set<std::string> inodes;
  countFds(pid, [&](const std::string& t) {
    if (t.rfind("socket:[", 0) == 0 && t.size() > 9) inodes.insert(t.substr(8, t.size() - 9));
    return false;
  });
  int n = 0;
  for (const char* table : {"/net/tcp", "/net/tcp6"}) {
    std::ifstream in(cat("/proc/", pid, table));
    std::string line;
    std::getline(in, line);  // the column titles
    while (std::getline(in, line)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
      std::istringstream fields(line);
      std::string sl, local, remote, st, txrx, trwhen, retr, uid, timeout, inode;
      if (!(fields >> sl >> local >> remote >> st >> txrx >> trwhen >> retr >> uid >> timeout >>
            inode)) {
        continue;
      }
      size_t colon = remote.rfind(':');
      if (colon == std::string::npos) continue;
      if (std::stoi(remote.substr(colon + 1), nullptr, 16) != remote_port) continue;
      if (inodes.count(inode)) ++n;
    }
  }
  return n;
}

absl::StatusOr<CommandResult> runCommand(std::vector<std::string> argv, milliseconds timeout) {
  AIRBAG_ASSIGN_OR_RETURN(std::unique_ptr<Process> proc, Process::spawn(std::move(argv)));
  std::optional<ExitStatus> exit = proc->waitExit(timeout);
  if (!exit) {
    proc->kill();
    return absl::DeadlineExceededError(cat(proc->label(), " still running after ", timeout.count(),
                                           "ms; stderr: ", tail(proc->stderrText(), 2000)));
  }
  return CommandResult{*exit, proc->stdoutText(), proc->stderrText()};
}

// ---------------------------------------------------------------------------
// HTTP: headers and responses

bool Headers::has(std::string_view name) const { return get(name).has_value(); }

std::optional<std::string> Headers::get(std::string_view name) const {
  for (const auto& [n, v] : fields_) {
    if (equalsIgnoreCase(n, name)) return v;
  }
  return std::nullopt;
}

std::vector<std::string> Headers::getAll(std::string_view name) const {
  std::vector<std::string> values;
  for (const auto& [n, v] : fields_) {
    if (equalsIgnoreCase(n, name)) values.push_back(v);
  }
  return values;
}

nlohmann::json Response::json() const { return nlohmann::json::parse(body, nullptr, false); }

// ---------------------------------------------------------------------------
// HTTP: the client

HttpClient::~HttpClient() { close(); }

HttpClient::HttpClient(HttpClient&& other) noexcept { *this = std::move(other); }

HttpClient& HttpClient::operator=(HttpClient&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    port_ = other.port_;
    host_ = std::move(other.host_);
    in_ = std::move(other.in_);
    eof_ = other.eof_;
    reset_ = other.reset_;
    io_error_ = std::move(other.io_error_);
    body_ = std::move(other.body_);
    pending_methods_ = std::move(other.pending_methods_);
    read_started_ = other.read_started_;
  }
  return *this;
}

void HttpClient::resetConnectionState() {
  in_.clear();
  eof_ = reset_ = false;
  io_error_.clear();
  body_ = BodyState{};
  pending_methods_.clear();
}

absl::Status HttpClient::connect(int port) { return connect(port, ConnectOptions{}); }

absl::Status HttpClient::connect(int port, const ConnectOptions& options) {
  close();
  resetConnectionState();
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) return absl::InternalError(errnoText("socket"));
  if (options.receive_buffer_bytes > 0) {
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &options.receive_buffer_bytes,
                 sizeof(options.receive_buffer_bytes));
  }
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in addr = loopback(port);
  if (::inet_pton(AF_INET, options.host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(cat("not an IPv4 address: ", options.host));
  }
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS) return absl::UnavailableError(errnoText("connect"));
    Deadline deadline(options.timeout);
    pollfd p{fd.get(), POLLOUT, 0};
    int r;
    do {
      r = ::poll(&p, 1, deadline.pollTimeoutMs());
    } while (r < 0 && errno == EINTR);
    if (r == 0) return absl::DeadlineExceededError("connect timed out");
    int so_error = 0;
    socklen_t len = sizeof(so_error);
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &len);
    if (so_error != 0) {
      return absl::UnavailableError(cat("connect: ", std::strerror(so_error)));
    }
  }
  fd_ = fd.release();
  port_ = port;
  host_ = options.host;
  return absl::OkStatus();
}

absl::Status HttpClient::sendRaw(std::string_view bytes, milliseconds timeout) {
  if (fd_ < 0) return absl::FailedPreconditionError("not connected");
  Deadline deadline(timeout);
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (deadline.expired()) return absl::DeadlineExceededError("send timed out");
      pollfd p{fd_, POLLOUT, 0};
      ::poll(&p, 1, deadline.pollTimeoutMs());
      continue;
    }
    return absl::UnavailableError(errnoText("send"));
  }
  return absl::OkStatus();
}

std::string HttpClient::formatRequest(std::string_view method, std::string_view path,
                                      const Headers& headers, std::string_view body) const {
  std::string out = cat(method, " ", path, " HTTP/1.1\r\n");
  if (!headers.has("host")) append(out, "Host: ", host_, ":", port_, "\r\n");
  for (const auto& [name, value] : headers.fields()) append(out, name, ": ", value, "\r\n");
  bool body_method = method == "POST" || method == "PUT" || method == "PATCH";
  if (!headers.has("content-length") && !headers.has("transfer-encoding") &&
      (!body.empty() || body_method)) {
    append(out, "Content-Length: ", body.size(), "\r\n");
  }
  append(out, "\r\n", body);
  return out;
}

absl::Status HttpClient::sendRequest(std::string_view method, std::string_view path,
                                     const Headers& headers, std::string_view body) {
  AIRBAG_RETURN_IF_ERROR(sendRaw(formatRequest(method, path, headers, body)));
  pending_methods_.emplace_back(method);
  return absl::OkStatus();
}

Response HttpClient::request(std::string_view method, std::string_view path, const Headers& headers,
                             std::string_view body, milliseconds timeout) {
  absl::Status sent = sendRequest(method, path, headers, body);
  if (!sent.ok()) {
    Response r;
    r.error = sent.ToString();
    return r;
  }
  return readResponse(timeout);
}

size_t HttpClient::receive(const Deadline& deadline) {
  if (fd_ < 0 || eof_ || reset_) return 0;
  char buf[65536];
  for (;;) {
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n > 0) {
      in_.append(buf, static_cast<size_t>(n));
      return static_cast<size_t>(n);
    }
    if (n == 0) {
      eof_ = true;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (deadline.expired()) return 0;
      pollfd p{fd_, POLLIN, 0};
      int r = ::poll(&p, 1, deadline.pollTimeoutMs());
      if (r == 0 && deadline.expired()) return 0;
      continue;
    }
    io_error_ = errnoText("recv");
    reset_ = true;
    return 0;
  }
}

void HttpClient::failBody(std::string error) {
  body_.failed = true;
  body_.active = false;
  body_.error = std::move(error);
}

void HttpClient::decodeBody(std::string& out) {
  // One step of the framing state machine; false when it needs more bytes.
  auto step = [&]() -> bool {
    switch (body_.mode) {
      case BodyMode::kNone:
        body_.done = true;
        return true;
      case BodyMode::kLength: {
        size_t take = static_cast<size_t>(std::min<uint64_t>(body_.remaining, in_.size()));
        out.append(in_, 0, take);
        in_.erase(0, take);
        body_.remaining -= take;
        if (body_.remaining == 0) body_.done = true;
        return body_.done;
      }
      case BodyMode::kUntilClose:
        out.append(in_);
        in_.clear();
        return false;
      case BodyMode::kChunked:
        break;
    }
    switch (body_.chunk) {
      case ChunkState::kSize: {
        size_t eol = in_.find("\r\n");
        if (eol == std::string::npos) {
          if (in_.size() > kMaxChunkLineBytes) failBody("chunk size line too long");
          return false;
        }
        std::string_view line(in_.data(), eol);
        size_t digits = 0;
        uint64_t size = 0;
        while (digits < line.size() && std::isxdigit(static_cast<unsigned char>(line[digits]))) {
          if (digits == 15) {
            failBody("chunk size too large");
            return false;
          }
          char c = static_cast<char>(std::tolower(static_cast<unsigned char>(line[digits])));
          size = size * 16 + static_cast<uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
          ++digits;
        }
        std::string_view rest = trimOws(line.substr(digits));
        if (digits == 0 || (!rest.empty() && rest.front() != ';')) {
          failBody(cat("bad chunk size line: ", line));
          return false;
        }
        in_.erase(0, eol + 2);
        if (size == 0) {
          body_.chunk = ChunkState::kTrailer;
        } else {
          body_.remaining = size;
          body_.chunk = ChunkState::kData;
        }
        return true;
      }
      case ChunkState::kData: {
        size_t take = static_cast<size_t>(std::min<uint64_t>(body_.remaining, in_.size()));
        out.append(in_, 0, take);
        in_.erase(0, take);
        body_.remaining -= take;
        if (body_.remaining > 0) return false;
        body_.chunk = ChunkState::kDataEnd;
        return true;
      }
      case ChunkState::kDataEnd:
        if (in_.size() < 2) return false;
        if (in_.compare(0, 2, "\r\n") != 0) {
          failBody("chunk data not followed by CRLF");
          return false;
        }
        in_.erase(0, 2);
        body_.chunk = ChunkState::kSize;
        return true;
      case ChunkState::kTrailer: {
        size_t eol = in_.find("\r\n");
        if (eol == std::string::npos) {
          if (in_.size() > kMaxHeadBytes) failBody("trailer section too long");
          return false;
        }
        if (eol == 0) {
          in_.erase(0, 2);
          body_.chunk = ChunkState::kDone;
          body_.done = true;
          return true;
        }
        if (!parseField(std::string_view(in_.data(), eol), body_.trailers)) {
          failBody("bad trailer line");
          return false;
        }
        in_.erase(0, eol + 2);
        return true;
      }
      case ChunkState::kDone:
        body_.done = true;
        return true;
    }
    return false;
  };

  if (!body_.active) return;
  while (!body_.done && !body_.failed && step()) {
  }
  if (!body_.done && !body_.failed && peerClosed()) {
    if (body_.mode == BodyMode::kUntilClose && !reset_) {
      body_.done = true;
    } else if (reset_) {
      failBody(cat("connection reset before the end of the body", io_error_.empty() ? "" : ": ",
                   io_error_));
    } else {
      failBody(body_.mode == BodyMode::kChunked ? "connection closed before the terminating 0-chunk"
                                                : cat("connection closed with ", body_.remaining,
                                                      " Content-Length bytes missing"));
    }
  }
  if (body_.done) body_.active = false;
}

Response HttpClient::readHead(milliseconds timeout) {
  Response r;
  Deadline deadline(timeout);
  read_started_ = SteadyClock::now();
  if (fd_ < 0) {
    r.error = "not connected";
    return r;
  }
  // An unread body of the previous response is consumed first, so responses stay in step.
  for (std::string sink; body_.active; sink.clear()) {
    decodeBody(sink);
    if (!body_.active) break;
    if (receive(deadline) == 0 && (deadline.expired() || peerClosed())) {
      decodeBody(sink);
      if (body_.active) {
        r.error = "timed out draining the previous response's body";
        return r;
      }
    }
  }
  for (;;) {
    size_t end = in_.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (in_.size() > kMaxHeadBytes) {
        r.error = "response head too large";
        return r;
      }
      if (receive(deadline) == 0) {
        if (deadline.expired()) {
          r.error = in_.empty() ? "timed out waiting for a response"
                                : "timed out inside the response head";
          return r;
        }
        if (peerClosed()) {
          r.error = cat(in_.empty() ? "connection closed before a response"
                                    : "connection closed inside the response head",
                        io_error_.empty() ? "" : ": ", io_error_);
          return r;
        }
      }
      continue;
    }
    Response head;
    absl::Status parsed = parseHead(std::string_view(in_.data(), end), head);
    in_.erase(0, end + 4);
    if (!parsed.ok()) {
      r.error = std::string(parsed.message());
      failBody(r.error);
      return r;
    }
    if (head.status >= 100 && head.status < 200 && head.status != 101) continue;  // interim
    r = std::move(head);
    break;
  }
  r.head_latency = SteadyClock::now() - read_started_;

  std::string method;
  if (!pending_methods_.empty()) {
    method = std::move(pending_methods_.front());
    pending_methods_.pop_front();
  }
  body_ = BodyState{};
  body_.active = true;
  std::vector<std::string> te = r.headers.getAll("transfer-encoding");
  std::vector<std::string> cl = r.headers.getAll("content-length");
  if (method == "HEAD" || r.status == 101 || r.status == 204 || r.status == 304) {
    body_.mode = BodyMode::kNone;
  } else if (!te.empty()) {
    if (!cl.empty()) {
      failBody("both Transfer-Encoding and Content-Length");
      r.error = body_.error;
      return r;
    }
    std::string last = toLower(trimOws(split(te.back(), ",").back()));
    if (last == "chunked") {
      body_.mode = BodyMode::kChunked;
      r.chunked = true;
    } else {
      body_.mode = BodyMode::kUntilClose;
      r.close_delimited = true;
    }
  } else if (!cl.empty()) {
    std::optional<uint64_t> length;
    for (const std::string& field : cl) {
      for (std::string_view item : split(field, ",")) {
        item = trimOws(item);
        uint64_t value = 0;
        if (!isDigits(item) ||
            std::from_chars(item.data(), item.data() + item.size(), value).ec != std::errc() ||
            (length && *length != value)) {
          failBody(cat("bad Content-Length: ", field));
          r.error = body_.error;
          return r;
        }
        length = value;
      }
    }
    body_.mode = BodyMode::kLength;
    body_.remaining = *length;
  } else {
    body_.mode = BodyMode::kUntilClose;
    r.close_delimited = true;
  }
  std::string none;
  if (body_.mode == BodyMode::kNone || (body_.mode == BodyMode::kLength && body_.remaining == 0)) {
    decodeBody(none);
  }
  return r;
}

std::string HttpClient::readSome(milliseconds timeout) {
  std::string out;
  Deadline deadline(timeout);
  decodeBody(out);
  while (out.empty() && body_.active) {
    size_t n = receive(deadline);
    decodeBody(out);
    if (n == 0) break;
  }
  return out;
}

std::string HttpClient::readUntil(std::string_view needle, milliseconds timeout) {
  std::string out;
  Deadline deadline(timeout);
  while (!contains(out, needle) && body_.active && !deadline.expired()) {
    out += readSome(deadline.remaining());
  }
  return out;
}

void HttpClient::readRest(Response& response, milliseconds timeout) {
  Deadline deadline(timeout);
  decodeBody(response.body);
  while (body_.active && !deadline.expired()) response.body += readSome(deadline.remaining());
  response.complete = bodyComplete();
  response.trailers = body_.trailers;
  if (!response.complete) {
    response.error = body_.active ? "timed out reading the body" : body_.error;
  }
  response.total_latency = SteadyClock::now() - read_started_;
}

Response HttpClient::readResponse(milliseconds timeout) {
  Deadline deadline(timeout);
  Response r = readHead(timeout);
  if (r.status == 0 || !r.error.empty()) {
    r.total_latency = SteadyClock::now() - read_started_;
    return r;
  }
  readRest(r, deadline.remaining());
  return r;
}

bool HttpClient::bodyEnded() const { return !body_.active; }

bool HttpClient::bodyComplete() const { return body_.done && !body_.failed; }

bool HttpClient::waitForPeerClose(milliseconds timeout) {
  Deadline deadline(timeout);
  while (!peerClosed()) {
    in_.clear();
    if (receive(deadline) == 0 && deadline.expired()) break;
  }
  return peerClosed();
}

size_t HttpClient::receiveSome(milliseconds timeout) {
  if (peerClosed()) return 0;
  return receive(Deadline(timeout));
}

void HttpClient::shutdownWrite() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void HttpClient::close() {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

void HttpClient::closeAbruptly() {
  if (fd_ < 0) return;
  linger hard{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
  close();
}

Response fetch(int port, std::string_view method, std::string_view path, const Headers& headers,
               std::string_view body, milliseconds timeout) {
  HttpClient client;
  HttpClient::ConnectOptions options;
  options.timeout = std::min(timeout, options.timeout);
  absl::Status connected = client.connect(port, options);
  if (!connected.ok()) {
    Response r;
    r.error = connected.ToString();
    return r;
  }
  return client.request(method, path, headers, body, timeout);
}

// ---------------------------------------------------------------------------
// Binaries under test

absl::StatusOr<std::string> expandPlaceholders(std::string_view text,
                                               const std::map<std::string, std::string>& vars) {
  std::string out;
  size_t pos = 0;
  for (size_t open = text.find("${"); open != std::string_view::npos; open = text.find("${", pos)) {
    size_t close = text.find('}', open);
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError(cat("unterminated ${ at offset ", open));
    }
    std::string name(text.substr(open + 2, close - open - 2));
    auto it = vars.find(name);
    if (it == vars.end()) {
      return absl::InvalidArgumentError(cat("unknown placeholder ${", name, "}"));
    }
    append(out, text.substr(pos, open - pos), it->second);
    pos = close + 1;
  }
  append(out, text.substr(pos));
  return out;
}

std::string airbagBinary() {
  if (const char* env = std::getenv("AIRBAG_BIN"); env != nullptr && *env != '\0') return env;
#ifdef AIRBAG_BIN
  return AIRBAG_BIN;
#else
  return "airbag";
#endif
}

std::string demoServerBinary() {
  if (const char* env = std::getenv("DEMO_SERVER_BIN"); env != nullptr && *env != '\0') return env;
#ifdef DEMO_SERVER_BIN
  return DEMO_SERVER_BIN;
#else
  return "demo-model-server";
#endif
}

namespace {

// How many times a server is started on a fresh port when the previous one could not bind (the
// port was free when picked, but another process may take it first).
constexpr int kStartAttempts = 3;

std::string loopbackAddress(int port) { return cat("127.0.0.1:", port); }

absl::Status expectSuccess(const Response& r, std::string_view what) {
  if (r.status >= 200 && r.status < 300 && r.complete) return absl::OkStatus();
  return absl::UnavailableError(
      cat(what, ": status ", r.status, " ", r.error, " ", r.body.substr(0, 500)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<DemoServer>> DemoServer::start() { return start(Options{}); }

absl::StatusOr<std::unique_ptr<DemoServer>> DemoServer::start(Options options) {
  std::string last_error;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    std::unique_ptr<DemoServer> server(new DemoServer());
    server->port_ = freePort();
    std::vector<std::string> argv = {demoServerBinary(), "--listen",
                                     loopbackAddress(server->port_)};
    argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
    Process::Options process_options;
    process_options.label = cat("demo-model-server:", server->port_);
    AIRBAG_ASSIGN_OR_RETURN(server->process_, Process::spawn(argv, process_options));
    if (server->process_->waitForLine("demo-model-server listening on", options.ready_timeout)) {
      return server;
    }
    last_error = cat("demo-model-server on port ", server->port_, " not ready (",
                     server->process_->running() ? "still starting" : "exited",
                     "); stderr: ", tail(server->process_->stderrText(), 2000));
    if (server->process_->running()) break;  // not a port race: retrying would not help
  }
  return absl::UnavailableError(last_error);
}

std::string DemoServer::address() const { return loopbackAddress(port_); }

std::string DemoServer::url() const { return cat("http://", address()); }

absl::StatusOr<nlohmann::json> DemoServer::stats() {
  Response r = testing::fetch(port_, "GET", "/control/stats");
  AIRBAG_RETURN_IF_ERROR(expectSuccess(r, "GET /control/stats"));
  nlohmann::json stats = r.json();
  if (stats.is_discarded() || !stats.is_object()) {
    return absl::DataLossError(cat("stats are not a JSON object: ", r.body));
  }
  return stats;
}

absl::StatusOr<int64_t> DemoServer::stat(std::string_view name) {
  AIRBAG_ASSIGN_OR_RETURN(nlohmann::json all, stats());
  auto it = all.find(std::string(name));
  if (it == all.end() || !it->is_number()) {
    return absl::NotFoundError(cat("no numeric stat \"", name, "\" in ", all.dump()));
  }
  return it->get<int64_t>();
}

absl::Status DemoServer::reset() {
  return expectSuccess(testing::fetch(port_, "POST", "/control/reset"), "POST /control/reset");
}

absl::Status DemoServer::setBehavior(const nlohmann::json& behavior) {
  return expectSuccess(testing::fetch(port_, "PUT", "/control/behavior",
                                      {{"Content-Type", "application/json"}}, behavior.dump()),
                       "PUT /control/behavior");
}

AirbagProcess::Vars AirbagProcess::builtinVars() const {
  return {{"LISTEN_PORT", std::to_string(port_)},
          {"ADMIN_PORT", std::to_string(admin_port_)},
          {"LISTEN", loopbackAddress(port_)},
          {"ADMIN", loopbackAddress(admin_port_)},
          {"DIR", dir_->path().string()}};
}

absl::Status AirbagProcess::rewriteConfig(std::string_view yaml_template, const Vars& vars) {
  Vars all = builtinVars();
  for (const auto& [name, value] : vars) all[name] = value;
  AIRBAG_ASSIGN_OR_RETURN(std::string yaml, expandPlaceholders(yaml_template, all));
  AIRBAG_ASSIGN_OR_RETURN(config_path_, dir_->write("airbag.yaml", yaml));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<AirbagProcess>> AirbagProcess::start(std::string_view yaml_template,
                                                                    const Vars& vars) {
  return start(yaml_template, vars, Options{});
}

absl::StatusOr<std::unique_ptr<AirbagProcess>> AirbagProcess::start(std::string_view yaml_template,
                                                                    const Vars& vars,
                                                                    Options options) {
  // Readiness is judged on the ports this helper picks, so the config must use them.
  if (!contains(yaml_template, "${LISTEN") || !contains(yaml_template, "${ADMIN")) {
    return absl::InvalidArgumentError(
        "the config template must listen on ${LISTEN} (or ${LISTEN_PORT}) and ${ADMIN} (or "
        "${ADMIN_PORT})");
  }
  std::string last_error;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    std::unique_ptr<AirbagProcess> airbag(new AirbagProcess());
    AIRBAG_ASSIGN_OR_RETURN(airbag->dir_, TempDir::create("airbag"));
    airbag->port_ = freePort();
    do {
      airbag->admin_port_ = freePort();
    } while (airbag->admin_port_ == airbag->port_);
    AIRBAG_RETURN_IF_ERROR(airbag->rewriteConfig(yaml_template, vars));
    std::vector<std::string> argv = {airbagBinary(), "-c", airbag->config_path_.string()};
    argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
    Process::Options process_options;
    process_options.env = options.env;
    process_options.label = cat("airbag:", airbag->port_);
    AIRBAG_ASSIGN_OR_RETURN(airbag->process_, Process::spawn(argv, process_options));

    Process& proc = *airbag->process_;
    bool ready = pollUntil(
        [&] {
          if (!proc.running()) return true;
          if (!waitForPort(airbag->port_, milliseconds(0))) return false;
          return testing::fetch(airbag->admin_port_, "GET", "/healthz", {}, {}, milliseconds(1000))
                     .status == 200;
        },
        options.ready_timeout, milliseconds(10));
    if (ready && proc.running()) return airbag;
    last_error =
        cat("airbag not ready on ", loopbackAddress(airbag->port_), " (admin ",
            loopbackAddress(airbag->admin_port_),
            "): ", proc.running() ? "still starting" : proc.waitExit(milliseconds(0))->toString(),
            "; stderr: ", tail(proc.stderrText(), 4000));
    if (proc.running()) break;
    // An exit that is not about a taken port will repeat; only a bind race is worth retrying.
    std::string err = toLower(proc.stderrText());
    if (!contains(err, "address already in use") && !contains(err, "bind")) break;
  }
  return absl::UnavailableError(last_error);
}

absl::StatusOr<CommandResult> AirbagProcess::checkConfig(std::string_view yaml_template,
                                                         const Vars& vars) {
  AIRBAG_ASSIGN_OR_RETURN(std::unique_ptr<TempDir> dir, TempDir::create("airbag-check"));
  Vars all = {{"LISTEN_PORT", std::to_string(freePort())},
              {"ADMIN_PORT", std::to_string(freePort())},
              {"DIR", dir->path().string()}};
  all["LISTEN"] = loopbackAddress(std::stoi(all["LISTEN_PORT"]));
  all["ADMIN"] = loopbackAddress(std::stoi(all["ADMIN_PORT"]));
  for (const auto& [name, value] : vars) all[name] = value;
  AIRBAG_ASSIGN_OR_RETURN(std::string yaml, expandPlaceholders(yaml_template, all));
  AIRBAG_ASSIGN_OR_RETURN(std::filesystem::path path, dir->write("airbag.yaml", yaml));
  return runCommand({airbagBinary(), "--check-config", path.string()});
}

Response AirbagProcess::fetch(std::string_view method, std::string_view path,
                              const Headers& headers, std::string_view body, milliseconds timeout) {
  return testing::fetch(port_, method, path, headers, body, timeout);
}

Response AirbagProcess::admin(std::string_view method, std::string_view path, std::string_view body,
                              const Headers& headers, milliseconds timeout) {
  return testing::fetch(admin_port_, method, path, headers, body, timeout);
}

absl::StatusOr<std::string> AirbagProcess::metrics() {
  Response r = admin("GET", "/metrics");
  AIRBAG_RETURN_IF_ERROR(expectSuccess(r, "GET /metrics"));
  return r.body;
}

absl::Status AirbagProcess::reload() { return process_->signal(SIGHUP); }

absl::Status AirbagProcess::drain() {
  return expectSuccess(admin("POST", "/drain"), "POST /drain");
}

absl::StatusOr<ExitStatus> AirbagProcess::terminate(milliseconds timeout) {
  AIRBAG_RETURN_IF_ERROR(process_->signal(SIGTERM));
  std::optional<ExitStatus> exit = process_->waitExit(timeout);
  if (!exit) {
    return absl::DeadlineExceededError(
        cat("airbag still running ", timeout.count(), "ms after SIGTERM"));
  }
  return *exit;
}

std::optional<double> metricSample(std::string_view exposition, std::string_view sample) {
  while (!exposition.empty()) {
    size_t eol = exposition.find('\n');
    std::string_view line = exposition.substr(0, eol);
    if (line.size() > sample.size() && line.substr(0, sample.size()) == sample &&
        line[sample.size()] == ' ')
      return std::stod(std::string(line.substr(sample.size() + 1)));
    if (eol == std::string_view::npos) break;
    exposition.remove_prefix(eol + 1);
  }
  return std::nullopt;
}

std::optional<double> AirbagProcess::metric(std::string_view sample) {
  absl::StatusOr<std::string> text = metrics();
  if (!text.ok()) return std::nullopt;
  return metricSample(*text, sample);
}

// ---------------------------------------------------------------------------
// ScriptedServer

namespace {
constexpr milliseconds kStepTimeout(5000);

// Reads into `in` with a bounded wait; returns bytes read (0 on EOF, error or timeout) and sets
// `result` to "eof" or "reset" when the connection ended.
size_t readSomeInto(int fd, std::string& in, std::string* result) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(kStepTimeout.count())) <= 0) return 0;
  char buf[16384];
  ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
  if (n > 0) {
    in.append(buf, static_cast<size_t>(n));
    return static_cast<size_t>(n);
  }
  if (result != nullptr) *result = n == 0 ? "eof" : (errno == ECONNRESET ? "reset" : "error");
  return 0;
}
}  // namespace

Step readRequest() { return {Step::kReadRequest, ""}; }
Step write(std::string bytes) { return {Step::kWrite, std::move(bytes)}; }
Step awaitRelease() { return {Step::kAwaitRelease, ""}; }
Step closeConnection() { return {Step::kClose, ""}; }
Step resetConnection() { return {Step::kReset, ""}; }
Step readUntilClosed() { return {Step::kReadUntilClosed, ""}; }

ScriptedServer::ScriptedServer(std::vector<Step> script) : script_(std::move(script)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ADD_FAILURE() << "scripted server cannot listen";
    return;
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { run(); });
}

ScriptedServer::~ScriptedServer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    released_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
}

std::string ScriptedServer::url() const { return "http://127.0.0.1:" + std::to_string(port_); }

void ScriptedServer::setScript(std::vector<Step> script) {
  std::lock_guard<std::mutex> lock(mu_);
  script_ = std::move(script);
}

void ScriptedServer::release() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
  }
  cv_.notify_all();
}

std::vector<std::string> ScriptedServer::requests() {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

std::string ScriptedServer::closeResult() {
  std::lock_guard<std::mutex> lock(mu_);
  return close_result_;
}

int ScriptedServer::connections() {
  std::lock_guard<std::mutex> lock(mu_);
  return connections_;
}

bool ScriptedServer::stopping() {
  std::lock_guard<std::mutex> lock(mu_);
  return stop_;
}

void ScriptedServer::run() {
  while (!stopping()) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::vector<Step> script;
    {
      std::lock_guard<std::mutex> lock(mu_);
      script = script_;
      ++connections_;
    }
    serve(fd, script);
  }
}

void ScriptedServer::serve(int fd, const std::vector<Step>& script) {
  std::string in;
  bool open = true;
  for (const Step& step : script) {
    if (!open) break;
    switch (step.kind) {
      case Step::kReadRequest: {
        size_t end;
        while ((end = in.find("\r\n\r\n")) == std::string::npos) {
          if (readSomeInto(fd, in, nullptr) == 0) break;
        }
        if (end == std::string::npos) {
          open = false;
          break;
        }
        std::string head = in.substr(0, end + 4);
        size_t body = 0;
        std::string lower = absl::AsciiStrToLower(head);
        if (size_t cl = lower.find("\r\ncontent-length:"); cl != std::string::npos) {
          size_t eol = lower.find("\r\n", cl + 2);
          (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(lower.substr(cl + 17, eol - cl - 17)),
                                 &body);
        }
        while (in.size() < end + 4 + body && readSomeInto(fd, in, nullptr) > 0) {
        }
        in.erase(0, std::min(in.size(), end + 4 + body));
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(head);
        break;
      }
      case Step::kWrite: {
        std::string_view rest = step.bytes;
        while (!rest.empty()) {
          ssize_t n = ::send(fd, rest.data(), rest.size(), MSG_NOSIGNAL);
          if (n <= 0) break;
          rest.remove_prefix(static_cast<size_t>(n));
        }
        break;
      }
      case Step::kAwaitRelease: {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, std::chrono::seconds(10), [this] { return released_; });
        break;
      }
      case Step::kClose:
        ::close(std::exchange(fd, -1));
        open = false;
        break;
      case Step::kReset: {
        linger hard{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
        ::close(std::exchange(fd, -1));
        open = false;
        break;
      }
      case Step::kReadUntilClosed: {
        std::string result;
        Deadline deadline(kStepTimeout);
        while (result.empty() && !deadline.expired()) readSomeInto(fd, in, &result);
        std::lock_guard<std::mutex> lock(mu_);
        close_result_ = result;
        break;
      }
    }
  }
  if (fd >= 0) ::close(fd);
}

}  // namespace airbag::testing
