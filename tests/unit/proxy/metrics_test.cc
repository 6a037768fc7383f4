// Tests for the metric shards and the Prometheus exposition they render to.
#include "proxy/metrics/metrics.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace airbag::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::vector<std::string> splitLines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// Returns the lines of `text` that start with `prefix`.
std::vector<std::string> linesStartingWith(const std::string& text, std::string_view prefix) {
  std::vector<std::string> out;
  for (const std::string& line : splitLines(text))
    if (std::string_view(line).substr(0, prefix.size()) == prefix) out.push_back(line);
  return out;
}

bool hasLine(const std::string& text, std::string_view line) {
  for (const std::string& l : splitLines(text))
    if (l == line) return true;
  return false;
}

TEST(MetricsTest, CounterExpositionHasExactLines) {
  Registry registry(absl::FromUnixSeconds(1700000000));
  WorkerMetrics* shard = registry.addShard();
  shard->recordAttempt("predict", "model", AttemptOutcome::kOk);
  shard->recordAttempt("predict", "model", AttemptOutcome::kOk);
  shard->recordAttempt("predict", "model", AttemptOutcome::kTimeout);
  shard->upstreamConnectionOpened("model");
  shard->clientConnectionOpened();

  std::string text = registry.renderPrometheus();
  EXPECT_THAT(text, HasSubstr("# HELP airbag_upstream_attempts_total Upstream tries, by how they "
                              "ended.\n# TYPE airbag_upstream_attempts_total counter\n"
                              "airbag_upstream_attempts_total{route=\"predict\",upstream=\"model\","
                              "outcome=\"ok\"} 2\n"
                              "airbag_upstream_attempts_total{route=\"predict\",upstream=\"model\","
                              "outcome=\"timeout\"} 1\n"));
  EXPECT_TRUE(hasLine(text, "airbag_upstream_connections_opened_total{upstream=\"model\"} 1"));
  EXPECT_TRUE(hasLine(text, "airbag_downstream_connections_total 1"));
  EXPECT_TRUE(hasLine(text, "airbag_requests_in_flight 0"));
  EXPECT_TRUE(hasLine(text, "process_start_time_seconds 1700000000"));
  EXPECT_THAT(text, HasSubstr("airbag_build_info{version=\""));
  // Labelled families with no series yet are left out entirely.
  EXPECT_THAT(text, Not(HasSubstr("airbag_retries_total")));
}

TEST(MetricsTest, EveryRenderedFamilyHasHelpAndType) {
  Registry registry;
  WorkerMetrics* shard = registry.addShard();
  shard->recordRequest("r", "upstream", 200, absl::Milliseconds(3));
  const Families& f = registry.families();
  shard->incCounter(f.retries_total, {"r"});
  shard->setGauge(f.circuit_state, {"r"}, 1);
  std::string text = registry.renderPrometheus();
  for (const std::string& line : splitLines(text)) {
    if (line.empty() || line[0] == '#') continue;
    std::string name = line.substr(0, line.find_first_of("{ "));
    for (std::string suffix : {"_bucket", "_sum", "_count"}) {
      if (name.size() > suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
          text.find("# TYPE " + name.substr(0, name.size() - suffix.size()) + " histogram") !=
              std::string::npos) {
        name.resize(name.size() - suffix.size());
      }
    }
    EXPECT_THAT(text, HasSubstr("# HELP " + name + " ")) << name;
    EXPECT_THAT(text, HasSubstr("# TYPE " + name + " ")) << name;
  }
}

TEST(MetricsTest, AggregatesOverShards) {
  Registry registry;
  WorkerMetrics* a = registry.addShard();
  WorkerMetrics* b = registry.addShard();
  a->recordRequest("predict", "upstream", 200, absl::Milliseconds(1));
  b->recordRequest("predict", "upstream", 200, absl::Milliseconds(2));
  b->recordRequest("predict", "default", 200, absl::Milliseconds(2));
  a->addInFlight(3);
  b->addInFlight(2);
  b->addInFlight(-1);
  a->setGauge(registry.families().circuit_state, {"predict"}, 1);
  b->setGauge(registry.families().circuit_state, {"predict"}, 2);

  std::string text = registry.renderPrometheus();
  EXPECT_TRUE(
      hasLine(text, "airbag_requests_total{route=\"predict\",source=\"upstream\",code=\"200\"} 2"));
  EXPECT_TRUE(
      hasLine(text, "airbag_requests_total{route=\"predict\",source=\"default\",code=\"200\"} 1"));
  EXPECT_TRUE(hasLine(text, "airbag_requests_in_flight 4"));
  // A shared state gauge takes the maximum, not the sum.
  EXPECT_TRUE(hasLine(text, "airbag_circuit_state{route=\"predict\"} 2"));
  EXPECT_TRUE(hasLine(
      text, "airbag_request_duration_seconds_count{route=\"predict\",source=\"upstream\"} 2"));
  EXPECT_TRUE(hasLine(
      text, "airbag_request_duration_seconds_sum{route=\"predict\",source=\"upstream\"} 0.003"));
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  Registry registry;
  FamilyId id = registry.defineCounter("test_escapes_total", "Help with \\ and\nnewline.", {"v"});
  WorkerMetrics* shard = registry.addShard();
  shard->incCounter(id, {"a\"b\\c\nd"}, 5);
  std::string text = registry.renderPrometheus();
  EXPECT_TRUE(hasLine(text, "# HELP test_escapes_total Help with \\\\ and\\nnewline."));
  EXPECT_TRUE(hasLine(text, "test_escapes_total{v=\"a\\\"b\\\\c\\nd\"} 5"));
}

TEST(MetricsTest, HistogramBucketsAreCumulative) {
  Registry registry;
  FamilyId id = registry.defineHistogram("test_seconds", "A test histogram.", {"k"}, {0.1, 1, 2.5});
  WorkerMetrics* shard = registry.addShard();
  for (double v : {0.05, 0.1, 0.5, 2.0, 3.0, 100.0}) shard->observe(id, {"x"}, v);
  std::string text = registry.renderPrometheus();
  EXPECT_THAT(text, HasSubstr("# HELP test_seconds A test histogram.\n"
                              "# TYPE test_seconds histogram\n"
                              "test_seconds_bucket{k=\"x\",le=\"0.1\"} 2\n"
                              "test_seconds_bucket{k=\"x\",le=\"1\"} 3\n"
                              "test_seconds_bucket{k=\"x\",le=\"2.5\"} 4\n"
                              "test_seconds_bucket{k=\"x\",le=\"+Inf\"} 6\n"
                              "test_seconds_sum{k=\"x\"} 105.65\n"
                              "test_seconds_count{k=\"x\"} 6\n"));
}

TEST(MetricsTest, DurationBucketsSpanMicrosToMinute) {
  Registry registry;
  WorkerMetrics* shard = registry.addShard();
  shard->recordRequest("r", "upstream", 200, absl::Microseconds(80));
  shard->recordRequest("r", "upstream", 200, absl::Seconds(45));
  std::string text = registry.renderPrometheus();
  EXPECT_TRUE(hasLine(
      text,
      "airbag_request_duration_seconds_bucket{route=\"r\",source=\"upstream\",le=\"0.0001\"} 1"));
  EXPECT_TRUE(hasLine(
      text,
      "airbag_request_duration_seconds_bucket{route=\"r\",source=\"upstream\",le=\"0.00025\"} 1"));
  EXPECT_TRUE(hasLine(
      text, "airbag_request_duration_seconds_bucket{route=\"r\",source=\"upstream\",le=\"30\"} 1"));
  EXPECT_TRUE(hasLine(
      text, "airbag_request_duration_seconds_bucket{route=\"r\",source=\"upstream\",le=\"60\"} 2"));
}

TEST(MetricsTest, GlobalShardAndCollectors) {
  Registry registry;
  registry.recordConfigReload(true);
  registry.recordConfigReload(true);
  registry.recordConfigReload(false);
  int64_t bytes = 1234;
  registry.addCollector([&bytes](WorkerMetrics& m) {
    m.setGauge(m.families().cache_bytes, {}, static_cast<double>(bytes));
  });
  std::string text = registry.renderPrometheus();
  EXPECT_TRUE(hasLine(text, "airbag_config_reloads_total{result=\"success\"} 2"));
  EXPECT_TRUE(hasLine(text, "airbag_config_reloads_total{result=\"failure\"} 1"));
  EXPECT_TRUE(hasLine(text, "airbag_cache_bytes 1234"));
  bytes = 99;
  // Collector values are taken fresh on each scrape, never accumulated.
  EXPECT_TRUE(hasLine(registry.renderPrometheus(), "airbag_cache_bytes 99"));
}

TEST(MetricsTest, DefiningTwiceReturnsSameIdAndWrongTypeIsIgnored) {
  Registry registry;
  FamilyId a = registry.defineCounter("x_total", "X.", {"l"});
  FamilyId b = registry.defineCounter("x_total", "X.", {"l"});
  EXPECT_EQ(a.index, b.index);
  EXPECT_FALSE(registry.defineGauge("x_total", "X.", {"l"}).valid());
  WorkerMetrics* shard = registry.addShard();
  shard->setGauge(a, {"v"}, 3);          // a counter: ignored
  shard->incCounter(FamilyId{}, {"v"});  // invalid: ignored
  EXPECT_THAT(registry.renderPrometheus(), Not(HasSubstr("x_total{")));
}

TEST(MetricsTest, ConcurrentWritersAndScraperEndExact) {
  Registry registry;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  std::vector<WorkerMetrics*> shards;
  for (int i = 0; i < kThreads; ++i) shards.push_back(registry.addShard());

  std::atomic<bool> done{false};
  std::atomic<int> scrapes{0};
  std::thread scraper([&] {
    while (!done.load()) {
      std::string text = registry.renderPrometheus();
      EXPECT_THAT(text, HasSubstr("# TYPE airbag_requests_in_flight gauge"));
      scrapes.fetch_add(1);
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      WorkerMetrics* m = shards[t];
      for (int i = 0; i < kPerThread; ++i) {
        // A few label sets, some first seen while the scraper runs.
        std::string route = absl::StrCat("route", i % 7);
        m->addInFlight(1);
        m->recordRequest(route, "upstream", 200 + i % 3, absl::Microseconds(i % 5000));
        m->recordAttempt(route, "model", AttemptOutcome::kOk);
        m->addInFlight(-1);
      }
    });
  }
  for (auto& w : writers) w.join();
  done = true;
  scraper.join();
  EXPECT_GT(scrapes.load(), 0);

  std::string text = registry.renderPrometheus();
  uint64_t requests = 0;
  for (const std::string& line : linesStartingWith(text, "airbag_requests_total{"))
    requests += std::stoull(line.substr(line.rfind(' ') + 1));
  EXPECT_EQ(requests, uint64_t{kThreads} * kPerThread);
  uint64_t counts = 0;
  for (const std::string& line : linesStartingWith(text, "airbag_request_duration_seconds_count{"))
    counts += std::stoull(line.substr(line.rfind(' ') + 1));
  EXPECT_EQ(counts, uint64_t{kThreads} * kPerThread);
  uint64_t attempts = 0;
  for (const std::string& line : linesStartingWith(text, "airbag_upstream_attempts_total{"))
    attempts += std::stoull(line.substr(line.rfind(' ') + 1));
  EXPECT_EQ(attempts, uint64_t{kThreads} * kPerThread);
  EXPECT_TRUE(hasLine(text, "airbag_requests_in_flight 0"));
}

TEST(MetricsTest, PromtoolAcceptsExposition) {
  const char* promtool = "/usr/bin/promtool";
  if (access(promtool, X_OK) != 0) GTEST_SKIP() << "promtool not installed";

  Registry registry;
  WorkerMetrics* shard = registry.addShard();
  const Families& f = registry.families();
  shard->recordRequest("predict", "upstream", 200, absl::Milliseconds(12));
  shard->recordRequest("predict", "fallback:small-model", 200, absl::Seconds(2));
  shard->recordRequest("we\"ird\\route\n", "none", 503, absl::Seconds(70));
  shard->recordAttempt("predict", "model", AttemptOutcome::kError5xx);
  shard->upstreamConnectionOpened("model");
  shard->addInFlight(1);
  shard->clientConnectionOpened();
  shard->incCounter(f.retries_total, {"predict"});
  shard->incCounter(f.retry_budget_exhausted_total, {"predict"});
  shard->setGauge(f.circuit_state, {"predict"}, 2);
  shard->incCounter(f.circuit_transitions_total, {"predict", "open"});
  shard->addGauge(f.bulkhead_in_flight, {"predict"}, 3);
  shard->addGauge(f.bulkhead_queued, {"predict"}, 1);
  shard->incCounter(f.bulkhead_rejected_total, {"predict"});
  shard->incCounter(f.shed_total, {"optional"});
  shard->incCounter(f.cache_lookups_total, {"predict", "hit"});
  shard->setGauge(f.cache_bytes, {}, 4096);
  shard->setGauge(f.cache_entries, {}, 2);
  shard->incCounter(f.cache_revalidations_total, {"predict", "ok"});
  shard->incCounter(f.fallbacks_total, {"predict", "default"});
  shard->incCounter(f.validation_failures_total, {"predict"});
  registry.recordConfigReload(true);

  std::string path = ::testing::TempDir() + "metrics-XXXXXX";
  int fd = mkstemp(path.data());
  ASSERT_GE(fd, 0);
  std::string text = registry.renderPrometheus();
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  std::string cmd = absl::StrCat(promtool, " check metrics < ", path, " 2>&1");
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string output;
  char buf[512];
  for (int i = 0; i < 1000; ++i) {
    size_t n = fread(buf, 1, sizeof(buf), p);
    if (n == 0) break;
    output.append(buf, n);
  }
  int status = pclose(p);
  unlink(path.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << output << "\n--- exposition ---\n" << text;
}

}  // namespace
}  // namespace airbag::metrics
