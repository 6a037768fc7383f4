// Soak: airbag under a bounded mixed load (pass-through, cache hits, fallbacks, streams) for a
// fixed time, with a config reload every 30 s and an upstream restart every 60 s (shorter when
// the run is shorter), sampling its resident memory, descriptors and sockets every second.
// Passes when nothing failed outside the injected restarts, no figure trends upward past a
// generous bound, and the process comes back near its baseline once the load stops.
//
// Environment: AIRBAG_SOAK_SECONDS (default 60), AIRBAG_SOAK_CSV (per-second samples, default
// none), AIRBAG_SOAK_SUMMARY (the summary as written to stdout, default none).
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace airbag::testing {
namespace {

using std::chrono::seconds;

constexpr char kConfig[] = R"(
listen: { address: ${LISTEN}, workers: 2 }
admin: { address: ${ADMIN} }
log: { level: error, access_log: off }
upstreams:
  model: { url: ${MODEL}, connect_timeout: 200ms }
  nowhere: { url: ${NOWHERE}, connect_timeout: 200ms }
routes:
  - name: pass
    match: { path: /v2/models/m/infer }
    upstream: model
    timeout: { total: 2s }
    retry: { attempts: 2, on: [connect-failure, reset], backoff: { base: 5ms, max: 10ms } }
  - name: cached
    match: { path: /predict }
    upstream: model
    timeout: { total: 2s }
    retry: { attempts: 2, on: [connect-failure, reset], backoff: { base: 5ms, max: 10ms } }
    cache: { ttl: ${TTL} }
  - name: fallback
    match: { path: /v1/embeddings }
    upstream: nowhere
    fallback:
      - respond: { status: 200, json: { degraded: true } }
  - name: stream
    match: { path: /v1/chat/completions }
    upstream: model
    timeout: { total: 5s, idle: 2s }
    retry: { attempts: 2, on: [connect-failure, reset], backoff: { base: 5ms, max: 10ms } }
)";

constexpr char kChatStream[] =
    R"({"stream":true,"messages":[{"role":"user","content":"one two three four five"}]})";

constexpr int kClients = 4;
constexpr int kRequestsPerSecondPerClient = 40;
constexpr int kCacheKeys = 200;

int envInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

std::string envString(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

// Least-squares slope of ys over xs.
double slope(const std::vector<double>& xs, const std::vector<double>& ys) {
  const double n = static_cast<double>(xs.size());
  if (xs.size() < 2) return 0;
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    sx += xs[i];
    sy += ys[i];
    sxx += xs[i] * xs[i];
    sxy += xs[i] * ys[i];
  }
  const double d = n * sxx - sx * sx;
  return d == 0 ? 0 : (n * sxy - sx * sy) / d;
}

// The demo model server on a fixed port, so that it can be stopped and started again under
// airbag's feet.
class RestartableUpstream {
 public:
  explicit RestartableUpstream(int port) : port_(port) {}
  absl::Status start() {
    Process::Options o;
    o.label = "demo-model-server";
    // The port was ours a moment ago; another process may have taken it meanwhile: try again.
    for (int attempt = 0; attempt < 50; ++attempt) {
      auto p = Process::spawn({demoServerBinary(), "--listen", absl::StrCat("127.0.0.1:", port_)},
                              o);
      if (!p.ok()) return p.status();
      if ((*p)->waitForLine("listening on", milliseconds(10000))) {
        process_ = std::move(*p);
        return absl::OkStatus();
      }
      if ((*p)->running()) break;
      std::this_thread::sleep_for(milliseconds(20));  // pacing the retries, not a condition
    }
    return absl::UnavailableError("demo-model-server did not start again");
  }
  void stop() { process_.reset(); }
  std::string url() const { return absl::StrCat("http://127.0.0.1:", port_); }
  int port() const { return port_; }

 private:
  int port_;
  std::unique_ptr<Process> process_;
};

enum class Kind { kPass, kCached, kFallback, kStream };

struct Tally {
  int64_t ok = 0;
  int64_t injected = 0;  // failed while an upstream restart was under way
  int64_t other = 0;     // failed for any other reason: what the soak must not see
  std::vector<std::string> examples;
};

class Soak {
 public:
  Soak(AirbagProcess& airbag, RestartableUpstream& upstream, std::string nowhere,
       seconds duration)
      : airbag_(airbag), upstream_(upstream), nowhere_(std::move(nowhere)), duration_(duration) {}

  // Runs the load, the sampler and the disturbances until `duration` has passed.
  void run(const std::string& csv_path) {
    start_ = SteadyClock::now();
    const auto end = start_ + duration_;
    std::vector<std::thread> threads;
    for (int c = 0; c < kClients; ++c) threads.emplace_back([this, c, end] { client(c, end); });
    disturb(end);
    for (auto& t : threads) t.join();
    if (!csv_path.empty()) writeCsv(csv_path);
  }

  // One sample per second, taken on the main thread between disturbances.
  void sample() {
    const pid_t pid = airbag_.process().pid();
    std::lock_guard<std::mutex> lock(mu_);
    samples_.push_back({secondsSinceStart(), processResidentKib(pid), processOpenFds(pid),
                        processSockets(pid), tally_.ok, tally_.injected, tally_.other,
                        reloads_, restarts_});
  }

  struct Sample {
    double t;
    int64_t rss_kib;
    int fds;
    int sockets;
    int64_t ok, injected, other;
    int reloads, restarts;
  };

  std::vector<Sample> samples() {
    std::lock_guard<std::mutex> lock(mu_);
    return samples_;
  }
  Tally tally() {
    std::lock_guard<std::mutex> lock(mu_);
    return tally_;
  }
  int reloads() const { return reloads_; }
  int restarts() const { return restarts_; }

 private:
  double secondsSinceStart() const {
    return std::chrono::duration<double>(SteadyClock::now() - start_).count();
  }

  // Reloads every reload period and restarts the upstream every restart period; samples every
  // second in between.
  void disturb(SteadyClock::time_point end) {
    const int total = static_cast<int>(duration_.count());
    const int reload_every = std::min(30, std::max(5, total / 4));
    const int restart_every = std::min(60, std::max(10, total / 3));
    for (int s = 1; SteadyClock::now() < end; ++s) {
      std::this_thread::sleep_until(start_ + seconds(s));  // the sampling clock
      if (SteadyClock::now() >= end) break;
      sample();
      if (s % restart_every == 0 && s + 5 < total) restartUpstream();
      if (s % reload_every == 0) reload(s / reload_every);
    }
  }

  void reload(int n) {
    // Each reload changes something (the cache ttl), so that it is a real one.
    absl::Status s = airbag_.rewriteConfig(
        kConfig, {{"MODEL", upstream_.url()}, {"NOWHERE", nowhere_}, {"TTL", n % 2 ? "6s" : "5s"}});
    Response r = airbag_.admin("POST", "/reload");
    std::lock_guard<std::mutex> lock(mu_);
    ++reloads_;
    if (!s.ok() || r.status != 200) {
      ++tally_.other;
      note(absl::StrCat("reload ", n, " failed: ", s.ToString(), " ", r.status, " ", r.body));
    }
  }

  void restartUpstream() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      restart_from_ = SteadyClock::now();
      restart_until_ = SteadyClock::time_point::max();
      ++restarts_;
    }
    upstream_.stop();
    absl::Status s = upstream_.start();
    std::lock_guard<std::mutex> lock(mu_);
    // A second of grace: pooled connections to the old process fail on their next use.
    restart_until_ = SteadyClock::now() + seconds(1);
    if (!s.ok()) {
      ++tally_.other;
      note(s.ToString());
    }
  }

  void note(std::string what) {
    if (tally_.examples.size() < 10) tally_.examples.push_back(std::move(what));
  }

  void record(Kind kind, bool ok, SteadyClock::time_point began, const std::string& what) {
    const auto ended = SteadyClock::now();
    std::lock_guard<std::mutex> lock(mu_);
    if (ok) {
      ++tally_.ok;
      return;
    }
    bool in_restart = began < restart_until_ && ended > restart_from_;
    if (in_restart && kind != Kind::kFallback) {
      ++tally_.injected;
    } else {
      ++tally_.other;
      note(what);
    }
  }

  // One client: a paced mix of the four kinds on a keep-alive connection, reconnecting every 100
  // requests and after any failure.
  void client(int id, SteadyClock::time_point end) {
    HttpClient c;
    const auto pace = std::chrono::microseconds(1000000 / kRequestsPerSecondPerClient);
    auto next = SteadyClock::now();
    for (int64_t i = 0; SteadyClock::now() < end && i < 10'000'000; ++i) {
      std::this_thread::sleep_until(next);  // pacing the load, not waiting for a condition
      next += pace;
      if (!c.connected() || i % 100 == 0) {
        c.close();
        if (!c.connect(airbag_.port()).ok()) {
          record(Kind::kPass, false, SteadyClock::now(), "cannot connect to airbag");
          continue;
        }
      }
      const Kind kind = static_cast<Kind>((i + id) % 4);
      const auto began = SteadyClock::now();
      Response r;
      bool ok = false;
      switch (kind) {
        case Kind::kPass:
          r = c.request("POST", "/v2/models/m/infer", {}, absl::StrCat("{\"id\":\"", i, "\"}"));
          ok = r.status == 200 && r.header("x-airbag-source") == "upstream";
          break;
        case Kind::kCached:
          r = c.request("POST", "/predict", {},
                        absl::StrCat("{\"key\":", (i * 7 + id) % kCacheKeys, "}"));
          ok = r.status == 200 && r.complete;
          break;
        case Kind::kFallback:
          r = c.request("POST", "/v1/embeddings", {}, "{\"input\":\"x\"}");
          ok = r.status == 200 && r.header("x-airbag-source") == "default";
          break;
        case Kind::kStream:
          r = c.request("POST", "/v1/chat/completions", {}, kChatStream);
          ok = r.status == 200 && r.complete && r.body.find("[DONE]") != std::string::npos;
          break;
      }
      record(kind, ok, began,
             absl::StrCat("kind ", static_cast<int>(kind), " at ", secondsSinceStart(), "s: ",
                          r.status, " ", r.header("x-airbag-source"), " ", r.error, " ",
                          r.body.substr(0, 200)));
      if (!ok || !r.complete || r.header("connection") == "close") c.close();
    }
  }

  void writeCsv(const std::string& path) {
    std::ofstream out(path);
    out << "t_s,rss_kib,fds,sockets,ok,injected_errors,other_errors,reloads,restarts\n";
    for (const Sample& s : samples()) {
      out << absl::StrFormat("%.1f,%d,%d,%d,%d,%d,%d,%d,%d\n", s.t, s.rss_kib, s.fds, s.sockets,
                             s.ok, s.injected, s.other, s.reloads, s.restarts);
    }
  }

  AirbagProcess& airbag_;
  RestartableUpstream& upstream_;
  const std::string nowhere_;
  seconds duration_;
  SteadyClock::time_point start_;
  std::mutex mu_;
  Tally tally_;
  std::vector<Sample> samples_;
  int reloads_ = 0;
  int restarts_ = 0;
  SteadyClock::time_point restart_from_ = SteadyClock::time_point::max();
  SteadyClock::time_point restart_until_ = SteadyClock::time_point::min();
};

#if defined(AIRBAG_TEST_ASAN) || defined(AIRBAG_TEST_TSAN)  // see harness.h
// The sanitizer's quarantine and shadow memory grow on their own for a while.
constexpr double kRssSlopeBoundKibPerMin = 128 * 1024;  // ASan measured ~56 MiB/min
constexpr int64_t kFinalRssSlackKib = 256 * 1024;
#else
constexpr double kRssSlopeBoundKibPerMin = 8 * 1024;
constexpr int64_t kFinalRssSlackKib = 32 * 1024;
#endif
// Descriptors and sockets move with the requests in flight (a few per client); only a steady
// climb past this is a leak.
constexpr double kFdSlopeBoundPerMin = 30;
// Once the load stops, descriptors other than the pooled upstream connections come back to the
// baseline; the pool keeps at most what was in flight at once on each of the 2 workers.
constexpr int kPoolBound = 2 * kClients;

TEST(SoakTest, MixedLoadWithReloadsAndUpstreamRestartsLeavesNoTrend) {
  const int total = envInt("AIRBAG_SOAK_SECONDS", 60);
  ASSERT_GE(total, 20) << "AIRBAG_SOAK_SECONDS must be at least 20";
  RestartableUpstream upstream(freePort());
  ASSERT_TRUE(upstream.start().ok());
  const std::string nowhere = absl::StrCat("http://127.0.0.1:", freePort());
  auto airbag = AirbagProcess::start(
      kConfig, {{"MODEL", upstream.url()}, {"NOWHERE", nowhere}, {"TTL", "5s"}});
  ASSERT_TRUE(airbag.ok()) << airbag.status();
  const pid_t pid = (*airbag)->process().pid();

  // Warm up with the same mix, then take the baseline.
  {
    Soak warm(**airbag, upstream, nowhere, seconds(3));
    warm.run("");
  }
  auto fdsBesideThePool = [&] {
    return processOpenFds(pid) - processConnectionsTo(pid, upstream.port());
  };
  const int64_t base_rss = processResidentKib(pid);
  const int base_fds = fdsBesideThePool();
  const int base_sockets = processSockets(pid);

  Soak soak(**airbag, upstream, nowhere, seconds(total));
  soak.run(envString("AIRBAG_SOAK_CSV"));
  const Tally tally = soak.tally();

  // Slopes over the samples after the first tenth (the caches and pools filling).
  std::vector<double> t, rss, fds, sockets;
  for (const auto& s : soak.samples()) {
    if (s.t < total / 10.0) continue;
    t.push_back(s.t / 60.0);
    rss.push_back(static_cast<double>(s.rss_kib));
    fds.push_back(s.fds);
    sockets.push_back(s.sockets);
  }
  const double rss_slope = slope(t, rss), fd_slope = slope(t, fds),
               socket_slope = slope(t, sockets);

  // Back near the baseline once the load has stopped.
  int end_fds = -1;
  bool fds_back = pollUntil(
      [&] {
        end_fds = fdsBesideThePool();
        return end_fds >= 0 && end_fds <= base_fds;
      },
      milliseconds(5000), milliseconds(50));
  const int64_t end_rss = processResidentKib(pid);
  const int end_sockets = processSockets(pid);
  const int end_pool = processConnectionsTo(pid, upstream.port());

  std::ostringstream summary;
  summary << absl::StrFormat(
      "soak: %d s, %d clients x %d req/s, %d reloads, %d upstream restarts\n"
      "requests: %d ok, %d failed during injected restarts, %d other errors\n"
      "slope per minute (least squares, after the first %.0f s): rss %+.1f KiB, fds %+.2f, "
      "sockets %+.2f\n"
      "baseline -> end: rss %d -> %d KiB, fds besides the upstream pool %d -> %d, "
      "sockets %d -> %d (upstream pool at the end: %d)\n",
      total, kClients, kRequestsPerSecondPerClient, soak.reloads(), soak.restarts(), tally.ok,
      tally.injected, tally.other, total / 10.0, rss_slope, fd_slope, socket_slope, base_rss,
      end_rss, base_fds, end_fds, base_sockets, end_sockets, end_pool);
  std::cout << summary.str();
  if (std::string path = envString("AIRBAG_SOAK_SUMMARY"); !path.empty()) {
    std::ofstream(path) << summary.str();
  }

  EXPECT_EQ(tally.other, 0) << "errors outside the injected ones, e.g.:\n"
                            << absl::StrJoin(tally.examples, "\n");
  EXPECT_GT(tally.ok, total * kClients * kRequestsPerSecondPerClient / 2)
      << "the load did not run at even half its pace";
  EXPECT_GE(soak.reloads(), 1);
  EXPECT_GE(soak.restarts(), 1);
  EXPECT_LT(rss_slope, kRssSlopeBoundKibPerMin);
  EXPECT_LT(fd_slope, kFdSlopeBoundPerMin);
  EXPECT_LT(socket_slope, kFdSlopeBoundPerMin);
  EXPECT_TRUE(fds_back) << end_fds << " descriptors besides the upstream pool at the end, "
                        << base_fds << " at the start";
  EXPECT_LE(end_pool, kPoolBound);
  EXPECT_LT(end_rss - base_rss, kFinalRssSlackKib);
}

}  // namespace
}  // namespace airbag::testing
