// Integration: the admin status page on the real binary. GET / is
// self-contained HTML; the per-second history counts what the ladder did and
// survives a reload; and in a real headless Chromium, driven over the
// DevTools protocol, the page shows a failing model's route answered by the
// fallback with its breaker open (saving a screenshot of that moment), and
// its buttons pass the same token check as curl.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace airbag::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

constexpr char kConfig[] = R"(listen: { address: ${LISTEN}, workers: 2 }
admin: { address: ${ADMIN} ${TOKEN} }
log: { level: info, access_log: off }
cache: { max_bytes: 16MiB }
upstreams:
  model:
    url: ${MODEL}
    health: { path: /health, interval: 1s, timeout: 500ms }
  small-model: { url: ${SMALL} }
routes:
  - name: predict
    match: { path: /predict, methods: [POST] }
    upstream: model
    timeout: { total: 2s, per_try: 1s }
    retry: { attempts: 2, on: [5xx], budget: { ratio: 20%, min_per_second: 10 } }
    bulkhead: { max_in_flight: 64, max_queue: 16, queue_timeout: 100ms }
    circuit_breaker:
      { window: 10s, minimum_calls: 10, failure_rate: 50%, consecutive_failures: 5, open_for: 60s }
    cache: { ttl: 30s }
    fallback:
      - upstream: small-model
        timeout: 1s
      - respond: { status: 200, json: { predictions: [ { score: 0.0 } ] } }
  - name: chat
    match: { path: /v1/chat/completions, methods: [POST] }
    upstream: model
)";

constexpr char kToken[] = "s3cret-token";

// Anything a browser would fetch from somewhere else (the page shows upstream
// URLs as text, which is fine; it must not load from them).
bool fetchesElsewhere(const std::string& html) {
  static const std::regex kExternal(
      R"((src|href|action)\s*=\s*["']?\s*(https?:)?//|url\(\s*["']?\s*(https?:)?//|@import|<link\b|<script[^>]*\bsrc\b)",
      std::regex::icase);
  return std::regex_search(html, kExternal);
}

// Sum of one column of GET /routes/{name}/history ("requests", or a level).
int64_t historySum(AirbagProcess& airbag, const std::string& route, const std::string& level) {
  Response r = airbag.admin("GET", "/routes/" + route + "/history");
  Json j = r.json();
  if (r.status != 200 || !j.is_object()) return -1;
  const Json& column = level == "requests" ? j["requests"] : j["levels"][level];
  int64_t sum = 0;
  for (const Json& n : column) sum += n.get<int64_t>();
  return sum;
}

std::string circuitState(AirbagProcess& airbag) {
  Json j = airbag.admin("GET", "/routes/predict").json();
  if (!j.is_object() || !j["state"]["circuit"].is_object()) return "";
  return j["state"]["circuit"]["state"].get<std::string>();
}

// Requests with distinct bodies, so none is answered from the cache.
int drive(AirbagProcess& airbag, int count, int first_id) {
  int answered = 0;
  for (int i = 0; i < count; ++i) {
    Response r = airbag.fetch("POST", "/predict", {{"content-type", "application/json"}},
                              absl::StrCat("{\"id\":", first_id + i, "}"));
    if (r.status == 200) ++answered;
  }
  return answered;
}

class StatusPageTest : public ::testing::Test {
 protected:
  void startAll(bool with_token) {
    auto model = DemoServer::start();
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
    auto small = DemoServer::start({.extra_args = {"--name", "small-model"}});
    ASSERT_TRUE(small.ok()) << small.status();
    small_ = std::move(*small);
    std::string token_line;
    if (with_token) {
      auto dir = TempDir::create("airbag-status-token");
      ASSERT_TRUE(dir.ok()) << dir.status();
      token_dir_ = std::move(*dir);
      auto path = token_dir_->write("admin-token", absl::StrCat(kToken, "\n"));
      ASSERT_TRUE(path.ok()) << path.status();
      token_line = absl::StrCat(", token_file: ", path->string());
    }
    auto airbag = AirbagProcess::start(
        kConfig, {{"MODEL", model_->url()}, {"SMALL", small_->url()}, {"TOKEN", token_line}});
    ASSERT_TRUE(airbag.ok()) << airbag.status();
    airbag_ = std::move(*airbag);
  }

  std::unique_ptr<TempDir> token_dir_;
  std::unique_ptr<DemoServer> model_;
  std::unique_ptr<DemoServer> small_;
  std::unique_ptr<AirbagProcess> airbag_;
};

TEST_F(StatusPageTest, RootServesSelfContainedHtml) {
  startAll(/*with_token=*/false);
  Response r = airbag_->admin("GET", "/");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "text/html; charset=utf-8");
  EXPECT_THAT(r.header("content-security-policy"), HasSubstr("default-src 'none'"));
  EXPECT_THAT(r.body, HasSubstr("<!doctype html>"));
  EXPECT_FALSE(fetchesElsewhere(r.body));
  // Without JavaScript: the state as tables, inside <noscript>.
  size_t noscript = r.body.find("<noscript>");
  ASSERT_NE(noscript, std::string::npos);
  size_t routes = r.body.find("id=\"plain-routes\"", noscript);
  ASSERT_NE(routes, std::string::npos);
  EXPECT_LT(routes, r.body.find("</noscript>"));
  EXPECT_NE(r.body.find("<td>predict</td><td>model</td><td>closed</td>", routes), std::string::npos)
      << r.body.substr(routes, 2000);
  EXPECT_NE(r.body.find("<td>small-model</td><td>" + small_->url() + "</td>"), std::string::npos);

  Response head = airbag_->admin("HEAD", "/");
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());
  EXPECT_EQ(airbag_->admin("POST", "/").status, 405);

  Json status = airbag_->admin("GET", "/status").json();
  EXPECT_EQ(status["workers"], 2);
  EXPECT_EQ(status["config_file"], airbag_->configPath().string());
  EXPECT_EQ(status["draining"], false);
  EXPECT_EQ(status["token_required"], false);
  EXPECT_TRUE(status["last_reload"].is_null());
  EXPECT_GT(status["rss_bytes"].get<int64_t>(), 0);
  EXPECT_GE(status["uptime_seconds"].get<double>(), 0.0);
}

TEST_F(StatusPageTest, HistoryCountsEachLevelAndSurvivesAReload) {
  startAll(/*with_token=*/false);
  Response missing = airbag_->admin("GET", "/routes/nope/history");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.json()["error"]["code"], "not_found");

  ASSERT_EQ(drive(*airbag_, 12, 0), 12);
  ASSERT_TRUE(pollUntil([&] { return historySum(*airbag_, "predict", "upstream") == 12; },
                        scaled(milliseconds(5000)), milliseconds(100)))
      << airbag_->admin("GET", "/routes/predict/history").body;
  ASSERT_TRUE(model_->setBehavior({{"error_rate", 1}}).ok());
  ASSERT_EQ(drive(*airbag_, 7, 100), 7);
  ASSERT_TRUE(pollUntil([&] { return historySum(*airbag_, "predict", "fallback") == 7; },
                        scaled(milliseconds(5000)), milliseconds(100)))
      << airbag_->admin("GET", "/routes/predict/history").body;
  EXPECT_EQ(historySum(*airbag_, "predict", "requests"), 19);

  // A reload that keeps "predict" and drops "chat": predict keeps its seconds.
  std::string without_chat = kConfig;
  without_chat.erase(without_chat.find("  - name: chat"));
  ASSERT_TRUE(
      airbag_
          ->rewriteConfig(without_chat,
                          {{"MODEL", model_->url()}, {"SMALL", small_->url()}, {"TOKEN", ""}})
          .ok());
  Response reload = airbag_->admin("POST", "/reload");
  ASSERT_EQ(reload.status, 200) << reload.body;
  EXPECT_EQ(airbag_->admin("GET", "/routes/chat/history").status, 404);
  ASSERT_EQ(drive(*airbag_, 3, 200), 3);
  ASSERT_TRUE(pollUntil([&] { return historySum(*airbag_, "predict", "requests") == 22; },
                        scaled(milliseconds(5000)), milliseconds(100)))
      << airbag_->admin("GET", "/routes/predict/history").body;
  EXPECT_EQ(historySum(*airbag_, "predict", "upstream"), 12);

  Json status = airbag_->admin("GET", "/status").json();
  EXPECT_EQ(status["last_reload"]["ok"], true);
  EXPECT_TRUE(status["last_reload"]["error"].is_null());
}

TEST_F(StatusPageTest, StatusShowsAFailedReloadWithItsError) {
  startAll(/*with_token=*/false);
  std::ofstream(airbag_->configPath(), std::ios::app) << "bogus_key: 1\n";
  Response reload = airbag_->admin("POST", "/reload");
  ASSERT_EQ(reload.status, 400) << reload.body;
  Json status = airbag_->admin("GET", "/status").json();
  EXPECT_EQ(status["last_reload"]["ok"], false);
  EXPECT_THAT(status["last_reload"]["error"].get<std::string>(), HasSubstr("bogus_key"));
  Response page = airbag_->admin("GET", "/");
  EXPECT_THAT(page.body, HasSubstr(" failed: "));
}

// ---------------------------------------------------------------------------
// A headless Chromium on the DevTools protocol over a pipe (fds 3 and 4 of
// the child): no debugging port is opened.

class Browser {
 public:
  // The browser binary: $AIRBAG_CHROMIUM, else "chromium" in PATH; empty when neither.
  static std::string binary() {
    if (const char* env = std::getenv("AIRBAG_CHROMIUM"); env != nullptr && *env != '\0')
      return env;
    const char* path = std::getenv("PATH");
    std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
    for (size_t start = 0; start <= dirs.size();) {
      size_t end = dirs.find(':', start);
      if (end == std::string::npos) end = dirs.size();
      std::filesystem::path candidate =
          std::filesystem::path(dirs.substr(start, end - start)) / "chromium";
      if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
      start = end + 1;
    }
    return "";
  }

  static absl::StatusOr<std::unique_ptr<Browser>> launch(const std::string& binary) {
    auto dir = TempDir::create("airbag-chromium");
    if (!dir.ok()) return dir.status();
    std::unique_ptr<Browser> b(new Browser());
    b->dir_ = std::move(*dir);
    std::vector<std::string> args = {binary,
                                     "--headless",
                                     "--disable-gpu",
                                     "--remote-debugging-pipe",
                                     "--user-data-dir=" + (b->dir_->path() / "profile").string(),
                                     "--no-first-run",
                                     "--no-default-browser-check",
                                     "--disable-extensions",
                                     "--disable-background-networking",
                                     "--disable-component-update",
                                     "--disable-sync",
                                     "--disable-default-apps",
                                     "--disable-dev-shm-usage",
                                     "--hide-scrollbars",
                                     "--mute-audio",
                                     "--window-size=1280,1000",
                                     "about:blank"};
    if (geteuid() == 0) args.insert(args.begin() + 1, "--no-sandbox");  // root needs it
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string log_path = (b->dir_->path() / "chromium.log").string();

    int to_child[2], from_child[2];
    if (pipe2(to_child, O_CLOEXEC) != 0 || pipe2(from_child, O_CLOEXEC) != 0)
      return absl::InternalError("pipe2 failed");
    pid_t pid = fork();
    if (pid < 0) return absl::InternalError("fork failed");
    if (pid == 0) {
      setpgid(0, 0);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      // Move both ends clear of 3 and 4 first, so neither dup2 clobbers the other.
      int in = fcntl(to_child[0], F_DUPFD_CLOEXEC, 10);
      int out = fcntl(from_child[1], F_DUPFD_CLOEXEC, 10);
      int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (in < 0 || out < 0 || log < 0 || null < 0) _exit(126);
      dup2(null, 0);
      dup2(log, 1);
      dup2(log, 2);
      dup2(in, 3);
      dup2(out, 4);
      execv(argv[0], argv.data());
      _exit(127);
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    b->pid_ = pid;
    b->to_ = to_child[1];
    b->from_ = from_child[0];
    b->log_path_ = log_path;
    auto version = b->call("Browser.getVersion", Json::object(), milliseconds(30000));
    if (!version.ok())
      return absl::UnavailableError(absl::StrCat("chromium did not answer on the DevTools pipe: ",
                                                 version.status().message(), "\n", b->log()));
    return b;
  }

  ~Browser() {
    if (to_ >= 0) ::close(to_);
    if (from_ >= 0) ::close(from_);
    if (pid_ > 0) {
      kill(-pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  std::string log() const { return readFile(log_path_); }

  // Sends one command (to the page's session once open() attached one) and
  // waits for its answer; events that arrive meanwhile are dropped.
  absl::StatusOr<Json> call(const std::string& method, Json params, milliseconds timeout) {
    const int id = next_id_++;
    Json msg = {{"id", id}, {"method", method}, {"params", std::move(params)}};
    if (!session_.empty()) msg["sessionId"] = session_;
    std::string bytes = msg.dump();
    bytes.push_back('\0');
    for (size_t sent = 0; sent < bytes.size();) {
      ssize_t n = ::write(to_, bytes.data() + sent, bytes.size() - sent);
      if (n <= 0) return absl::UnavailableError("write to chromium failed");
      sent += static_cast<size_t>(n);
    }
    Deadline deadline(timeout);
    for (;;) {
      size_t end = in_.find('\0');
      while (end == std::string::npos) {
        pollfd p{from_, POLLIN, 0};
        if (deadline.expired() || poll(&p, 1, deadline.pollTimeoutMs()) <= 0)
          return absl::DeadlineExceededError(absl::StrCat(method, ": no answer"));
        char buf[65536];
        ssize_t n = ::read(from_, buf, sizeof(buf));
        if (n <= 0)
          return absl::UnavailableError(absl::StrCat(method, ": chromium closed the pipe"));
        in_.append(buf, static_cast<size_t>(n));
        end = in_.find('\0');
      }
      Json reply = Json::parse(in_.substr(0, end), nullptr, false);
      in_.erase(0, end + 1);
      if (!reply.is_object() || !reply.contains("id") || reply["id"] != id) continue;
      if (reply.contains("error"))
        return absl::InternalError(absl::StrCat(method, ": ", reply["error"].dump()));
      return reply["result"];
    }
  }

  // Opens `url` in a new page and attaches to it.
  absl::Status navigate(const std::string& url) {
    auto target = call("Target.createTarget", {{"url", "about:blank"}}, milliseconds(10000));
    if (!target.ok()) return target.status();
    auto attached =
        call("Target.attachToTarget", {{"targetId", (*target)["targetId"]}, {"flatten", true}},
             milliseconds(10000));
    if (!attached.ok()) return attached.status();
    session_ = (*attached)["sessionId"].get<std::string>();
    auto metrics =
        call("Emulation.setDeviceMetricsOverride",
             {{"width", 1280}, {"height", 1000}, {"deviceScaleFactor", 1}, {"mobile", false}},
             milliseconds(10000));
    if (!metrics.ok()) return metrics.status();
    auto nav = call("Page.navigate", {{"url", url}}, milliseconds(10000));
    return nav.ok() ? absl::OkStatus() : nav.status();
  }

  // The value of a JavaScript expression in the page (promises awaited).
  absl::StatusOr<Json> eval(const std::string& expression) {
    auto r = call("Runtime.evaluate",
                  {{"expression", expression}, {"returnByValue", true}, {"awaitPromise", true}},
                  milliseconds(10000));
    if (!r.ok()) return r.status();
    if (r->contains("exceptionDetails"))
      return absl::InternalError(absl::StrCat("script error: ", (*r)["exceptionDetails"].dump()));
    return (*r)["result"].value("value", Json(nullptr));
  }

  // A PNG of what the page shows now, as bytes.
  absl::StatusOr<std::string> screenshot() {
    auto r = call("Page.captureScreenshot", {{"format", "png"}}, milliseconds(20000));
    if (!r.ok()) return r.status();
    return base64Decode((*r)["data"].get<std::string>());
  }

 private:
  Browser() = default;

  static std::string base64Decode(const std::string& in) {
    auto value = [](char c) -> int {
      if (c >= 'A' && c <= 'Z') return c - 'A';
      if (c >= 'a' && c <= 'z') return c - 'a' + 26;
      if (c >= '0' && c <= '9') return c - '0' + 52;
      if (c == '+') return 62;
      if (c == '/') return 63;
      return -1;
    };
    std::string out;
    uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
      int v = value(c);
      if (v < 0) continue;  // padding
      acc = (acc << 6) | static_cast<uint32_t>(v);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out.push_back(static_cast<char>((acc >> bits) & 0xff));
      }
    }
    return out;
  }

  std::unique_ptr<TempDir> dir_;
  std::string log_path_;
  pid_t pid_ = -1;
  int to_ = -1;
  int from_ = -1;
  int next_id_ = 1;
  std::string in_;
  std::string session_;
};

// The browser for a test, or a skip saying why there is none.
#define LAUNCH_BROWSER_OR_SKIP(var)                                                      \
  std::string var##_binary = Browser::binary();                                          \
  if (var##_binary.empty())                                                              \
    GTEST_SKIP() << "no chromium in PATH (scripts/setup.sh installs it; or set "         \
                    "AIRBAG_CHROMIUM): the page is not checked in a browser";            \
  auto var##_or = Browser::launch(var##_binary);                                         \
  if (!var##_or.ok()) GTEST_SKIP() << "chromium cannot run here: " << var##_or.status(); \
  std::unique_ptr<Browser> var = std::move(*var##_or)

// Polls a JavaScript condition in the page until it holds (bounded).
bool pageShows(Browser& browser, const std::string& condition, milliseconds timeout) {
  return pollUntil(
      [&] {
        auto v = browser.eval(condition);
        return v.ok() && *v == Json(true);
      },
      timeout, milliseconds(100));
}

std::filesystem::path screenshotPath() {
  // docs/status-page.png is made by pointing this at it (see docs/admin.md).
  if (const char* env = std::getenv("AIRBAG_STATUS_PAGE_SCREENSHOT"); env != nullptr && *env)
    return env;
  return std::filesystem::current_path() / "status_page_test-output" / "status-page-failing.png";
}

TEST_F(StatusPageTest, BrowserShowsTheFallbackAndTheOpenBreakerWhileTheModelFails) {
  LAUNCH_BROWSER_OR_SKIP(browser);
  startAll(/*with_token=*/false);
  // For the docs' picture the phases last longer, so the chart shows the
  // change over time; as a test, a few requests per phase say the same.
  const bool for_docs = std::getenv("AIRBAG_STATUS_PAGE_SCREENSHOT") != nullptr;
  const auto healthy_for = for_docs ? std::chrono::seconds(40) : std::chrono::seconds(0);
  const int min_fallback_seconds = for_docs ? 25 : 1;
  ASSERT_EQ(drive(*airbag_, 30, 0), 30);
  for (int i = 0; i < 10; ++i)  // repeats: answered from the cache
    airbag_->fetch("POST", "/predict", {{"content-type", "application/json"}}, "{\"id\":1}");
  Stopwatch healthy;
  for (int i = 0; i < 4000 && healthy.elapsed() < healthy_for; ++i) {
    airbag_->fetch("POST", "/predict", {{"content-type", "application/json"}},
                   absl::StrCat("{\"id\":", i % 3 == 0 ? 1 : 100000 + i, "}"));
    std::this_thread::sleep_for(milliseconds(25));  // a steady rate, not a wait
  }

  // The model fails; every answer now comes from the fallback (small-model),
  // and the breaker opens. Traffic keeps flowing while the page is looked at.
  ASSERT_TRUE(model_->setBehavior({{"error_rate", 1}}).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0};
  std::thread traffic([&] {
    Stopwatch running;
    for (int i = 0; i < 3000 && !stop.load() && running.elapsed() < std::chrono::seconds(90); ++i) {
      airbag_->fetch("POST", "/predict", {{"content-type", "application/json"}},
                     absl::StrCat("{\"id\":", 1000 + i, "}"), milliseconds(3000));
      sent.fetch_add(1);
      std::this_thread::sleep_for(milliseconds(20));  // a steady rate, not a wait
    }
  });
  struct Join {
    std::atomic<bool>& stop;
    std::thread& t;
    ~Join() {
      stop.store(true);
      t.join();
    }
  } join{stop, traffic};

  ASSERT_TRUE(pollUntil([&] { return circuitState(*airbag_) == "open"; }, milliseconds(20000),
                        milliseconds(100)))
      << airbag_->admin("GET", "/routes/predict").body;
  ASSERT_TRUE(pollUntil([&] { return historySum(*airbag_, "predict", "fallback") >= 20; },
                        milliseconds(20000), milliseconds(100)));
  ASSERT_TRUE(pollUntil(
      [&] {
        Json h = airbag_->admin("GET", "/routes/predict/history").json();
        int seconds = 0;
        if (h.is_object())
          for (const Json& n : h["levels"]["fallback"]) seconds += n.get<int>() > 0 ? 1 : 0;
        return seconds >= min_fallback_seconds;
      },
      milliseconds(for_docs ? 60000 : 10000), milliseconds(200)));

  ASSERT_TRUE(browser->navigate(absl::StrCat("http://127.0.0.1:", airbag_->adminPort(), "/")).ok());
  const std::string route = "document.querySelector('section[data-route=\"predict\"]')";
  bool shown = pageShows(*browser,
                         "(() => { const r = " + route +
                             "; return !!r && r.dataset.level === 'fallback' && "
                             "r.querySelector('.now-level').textContent === 'fallback' && "
                             "r.querySelector('.breaker').dataset.state === 'open' && "
                             "/half-open in/.test(r.textContent); })()",
                         milliseconds(20000));
  auto dom = browser->eval(route + " ? " + route + ".innerText : document.body.innerText");
  ASSERT_TRUE(shown) << (dom.ok() ? dom->dump() : dom.status().ToString()) << "\n"
                     << browser->log();
  // The breaker's colour is the open one, and the upstream table is there.
  auto colour =
      browser->eval("getComputedStyle(" + route + ".querySelector('.breaker')).backgroundColor");
  ASSERT_TRUE(colour.ok()) << colour.status();
  EXPECT_EQ(*colour, "rgb(198, 40, 40)");
  EXPECT_TRUE(pageShows(*browser,
                        "document.getElementById('upstreams').textContent.includes('small-model')",
                        milliseconds(5000)));

  auto png = browser->screenshot();
  ASSERT_TRUE(png.ok()) << png.status();
  ASSERT_GT(png->size(), 1000u);
  EXPECT_EQ(png->substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  std::filesystem::path out = screenshotPath();
  std::filesystem::create_directories(out.parent_path());
  std::ofstream(out, std::ios::binary) << *png;
  EXPECT_EQ(std::filesystem::file_size(out), png->size());
  std::cout << "screenshot: " << out.string() << "\n";
  EXPECT_GT(sent.load(), 0);
}

TEST_F(StatusPageTest, BrowserButtonsPassTheSameTokenCheckAsCurl) {
  LAUNCH_BROWSER_OR_SKIP(browser);
  startAll(/*with_token=*/true);
  // curl's view: without the token 401, with it 200.
  EXPECT_EQ(airbag_->admin("POST", "/routes/predict/circuit", R"({"state":"auto"})").status, 401);
  EXPECT_EQ(airbag_
                ->admin("POST", "/routes/predict/circuit", R"({"state":"auto"})",
                        {{"Authorization", absl::StrCat("Bearer ", kToken)}})
                .status,
            200);

  ASSERT_TRUE(browser->navigate(absl::StrCat("http://127.0.0.1:", airbag_->adminPort(), "/")).ok());
  const std::string button =
      "document.querySelector('section[data-route=\"predict\"] "
      "button[data-action=\"circuit\"][data-state=\"open\"]')";
  ASSERT_TRUE(pageShows(*browser, "!!" + button + " && document.body.dataset.updated !== undefined",
                        milliseconds(20000)))
      << browser->log();
  // Answer the confirmation and the token prompts as an operator would: a
  // wrong token first, then the right one; record what the page sends.
  auto armed = browser->eval(absl::StrCat(R"((() => {
    const answers = ["wrong-token", ")",
                                          kToken, R"("];
    window.prompt = () => answers.length ? answers.shift() : null;
    window.confirm = () => true;
    window.seen = [];
    const realFetch = window.fetch.bind(window);
    window.fetch = async (url, options) => {
      const r = await realFetch(url, options);
      if (options && options.method) {
        const auth = (options.headers || {})["Authorization"] || "";
        window.seen.push(options.method + " " + url + " " + r.status + " " + auth);
      }
      return r;
    };
    )",
                                          button, R"(.click();
    return true;
  })())"));
  ASSERT_TRUE(armed.ok()) << armed.status();
  ASSERT_TRUE(pageShows(*browser, "window.seen.length >= 2", milliseconds(10000)));
  auto seen = browser->eval("window.seen");
  ASSERT_TRUE(seen.ok());
  EXPECT_EQ(*seen, Json::array({"POST /routes/predict/circuit 401 Bearer wrong-token",
                                absl::StrCat("POST /routes/predict/circuit 200 Bearer ", kToken)}));
  EXPECT_TRUE(pageShows(*browser,
                        "document.getElementById('message').textContent.includes('-> 200')",
                        milliseconds(5000)));
  // The click did what curl would have: the breaker is forced open.
  Json state = airbag_->admin("GET", "/routes/predict").json();
  EXPECT_EQ(state["state"]["circuit"]["override"], "open");
  EXPECT_TRUE(pageShows(*browser,
                        "document.querySelector('section[data-route=\"predict\"] .breaker')"
                        ".dataset.state === 'open'",
                        milliseconds(5000)));

  // Every other button, with the token the page now holds: each request is
  // the one curl would send, and does what curl's does.
  const std::string auth = absl::StrCat(" 200 Bearer ", kToken);
  struct Click {
    std::string selector;
    std::string request;
  };
  const std::string in_route = "section[data-route=\"predict\"] ";
  for (const Click& c : std::vector<Click>{
           {in_route + "input.abort-percent", ""},
           {in_route + "button[data-action=\"fault-set\"]", "PUT /routes/predict/fault"},
           {in_route + "button[data-action=\"fault-clear\"]", "DELETE /routes/predict/fault"},
           {in_route + "button[data-action=\"circuit\"][data-state=\"auto\"]",
            "POST /routes/predict/circuit"},
           {in_route + "button[data-action=\"purge\"]", "POST /cache/purge"},
           {"#reload-button", "POST /reload"}}) {
    if (c.request.empty()) {
      // Not a button: the abort percentage the next click sends.
      ASSERT_TRUE(browser->eval("document.querySelector('" + c.selector + "').value = '40'").ok());
      continue;
    }
    auto before = browser->eval("window.seen.length");
    ASSERT_TRUE(before.ok());
    ASSERT_TRUE(browser->eval("document.querySelector('" + c.selector + "').click()").ok())
        << c.selector;
    ASSERT_TRUE(pageShows(*browser, absl::StrCat("window.seen.length > ", before->dump()),
                          milliseconds(10000)))
        << c.selector;
    auto last = browser->eval("window.seen[window.seen.length - 1]");
    ASSERT_TRUE(last.ok());
    EXPECT_EQ(*last, c.request + auth);
    if (c.request == "PUT /routes/predict/fault") {
      Json fault = airbag_->admin("GET", "/routes/predict").json()["state"]["fault"];
      EXPECT_EQ(fault["source"], "admin");
      EXPECT_EQ(fault["abort"], (Json{{"percent", 40}, {"status", 503}}));
    }
  }
  Json state_after = airbag_->admin("GET", "/routes/predict").json()["state"];
  EXPECT_EQ(state_after["fault"]["source"], "config");
  EXPECT_EQ(state_after["circuit"]["override"], "auto");
  EXPECT_EQ(airbag_->admin("GET", "/status").json()["last_reload"]["ok"], true);
}

}  // namespace
}  // namespace airbag::testing
