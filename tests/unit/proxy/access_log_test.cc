// Tests for the access log: JSON and text lines, batching, sinks.
#include "proxy/log/access_log.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proxy/log/logging.h"
#include "spdlog/sinks/ostream_sink.h"

namespace airbag::log {
namespace {

using ::testing::HasSubstr;

// A file path under the test temp dir, removed when the fixture ends.
class AccessLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "access-log-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".log";
    unlink(path_.c_str());
  }
  void TearDown() override { unlink(path_.c_str()); }

  std::string readFile() const {
    std::ifstream in(path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::unique_ptr<AccessLogSink> openFile(LogFormat format = LogFormat::kJson) {
    LogConfig config;
    config.access_log = path_;
    config.format = format;
    auto sink = AccessLogSink::open(config);
    EXPECT_TRUE(sink.ok()) << sink.status();
    return sink.ok() ? std::move(*sink) : nullptr;
  }

  std::string path_;
};

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);) out.push_back(line);
  return out;
}

AccessLogEntry sampleEntry() {
  AccessLogEntry e;
  e.time = absl::FromUnixMillis(1714566896789);  // 2024-05-01T12:34:56.789Z
  e.request_id = "req-1";
  e.route = "predict";
  e.method = "POST";
  e.path = "/v1/predict";
  e.status = 200;
  e.source = "upstream";
  e.attempts = 2;
  e.cache = "miss";
  e.breaker = "closed";
  e.upstream_time = absl::Microseconds(12345);
  e.total_time = absl::Microseconds(13001);
  e.bytes_sent = 612;
  return e;
}

TEST_F(AccessLogTest, JsonLineHasAllFields) {
  auto sink = openFile();
  ASSERT_NE(sink, nullptr);
  AccessLogWriter writer(sink.get(), LogFormat::kJson);
  writer.append(sampleEntry());
  writer.flush();
  auto got = lines(readFile());
  ASSERT_EQ(got.size(), 1u);
  auto j = nlohmann::json::parse(got[0]);
  EXPECT_EQ(j["time"], "2024-05-01T12:34:56.789Z");
  EXPECT_EQ(j["request_id"], "req-1");
  EXPECT_EQ(j["route"], "predict");
  EXPECT_EQ(j["method"], "POST");
  EXPECT_EQ(j["path"], "/v1/predict");
  EXPECT_EQ(j["status"], 200);
  EXPECT_EQ(j["source"], "upstream");
  EXPECT_EQ(j["attempts"], 2);
  EXPECT_EQ(j["cache"], "miss");
  EXPECT_EQ(j["breaker"], "closed");
  EXPECT_DOUBLE_EQ(j["upstream_ms"].get<double>(), 12.345);
  EXPECT_DOUBLE_EQ(j["total_ms"].get<double>(), 13.001);
  EXPECT_EQ(j["bytes_sent"], 612);
}

TEST_F(AccessLogTest, JsonEscapesHostilePath) {
  auto sink = openFile();
  ASSERT_NE(sink, nullptr);
  AccessLogWriter writer(sink.get(), LogFormat::kJson);
  AccessLogEntry e = sampleEntry();
  const std::string path =
      std::string("/a\"b\\c\nd\te\x01f\x7f") + "\xc3\xa9" + "\xff" + "\xe2\x82";
  e.path = path;
  writer.append(e);
  writer.flush();
  auto got = lines(readFile());
  ASSERT_EQ(got.size(), 1u) << "a newline in the path must not split the line";
  auto j = nlohmann::json::parse(got[0]);
  // Valid UTF-8 (é) is kept; invalid bytes become U+FFFD.
  EXPECT_EQ(j["path"], "/a\"b\\c\nd\te\x01f\x7f\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
}

TEST_F(AccessLogTest, TextLineIsCompactAndOneLine) {
  auto sink = openFile(LogFormat::kText);
  ASSERT_NE(sink, nullptr);
  AccessLogWriter writer(sink.get(), LogFormat::kText);
  AccessLogEntry e = sampleEntry();
  e.cache = "";
  e.path = "/x\ny?q=a b";
  writer.append(e);
  writer.flush();
  auto got = lines(readFile());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0],
            "2024-05-01T12:34:56.789Z \"req-1\" \"predict\" \"POST\" \"/x\\ny?q=a b\" 200 "
            "\"upstream\" 2 - \"closed\" 12.345 13.001 612");
}

// Splits a text line into its fields: a quoted field is read as a JSON string (so its escapes
// are undone), a bare one is taken as it is.
std::vector<nlohmann::json> textFields(const std::string& line) {
  std::vector<nlohmann::json> out;
  size_t i = 0;
  while (i < line.size()) {
    if (line[i] == ' ') {
      ++i;
      continue;
    }
    if (line[i] == '"') {
      size_t j = i + 1;
      while (j < line.size() && line[j] != '"') j += line[j] == '\\' ? 2 : 1;
      out.push_back(nlohmann::json::parse(line.substr(i, j + 1 - i)));
      i = j + 1;
    } else {
      size_t j = line.find(' ', i);
      if (j == std::string::npos) j = line.size();
      std::string word = line.substr(i, j - i);
      if (word == "-") {
        out.push_back("");
      } else {
        nlohmann::json n = nlohmann::json::parse(word, nullptr, false);
        out.push_back(n.is_number() ? n : nlohmann::json(word));
      }
      i = j;
    }
  }
  return out;
}

// operations.md promises that the text format carries the JSON line's fields, in the same
// order, space-separated: both formats of the same entries must read back to the same values.
TEST_F(AccessLogTest, TextHasTheJsonFieldsInTheJsonOrder) {
  std::vector<AccessLogEntry> entries = {sampleEntry(), sampleEntry(), sampleEntry()};
  entries[1].route = "";
  entries[1].cache = "";
  entries[1].breaker = "";
  entries[1].source = "none";
  entries[1].path = "/a b/\"quoted\"?x=1&y=%20";
  entries[2].request_id = "id with spaces";
  entries[2].source = "rule:high amount";
  entries[2].breaker = "half_open";
  std::string json_path = path_ + ".json";
  LogConfig jc;
  jc.access_log = json_path;
  auto json_sink = AccessLogSink::open(jc);
  ASSERT_TRUE(json_sink.ok());
  auto text_sink = openFile(LogFormat::kText);
  ASSERT_NE(text_sink, nullptr);
  {
    AccessLogWriter jw(json_sink->get(), LogFormat::kJson);
    AccessLogWriter tw(text_sink.get(), LogFormat::kText);
    for (const AccessLogEntry& e : entries) {
      jw.append(e);
      tw.append(e);
    }
  }
  std::ifstream jin(json_path);
  std::stringstream jss;
  jss << jin.rdbuf();
  unlink(json_path.c_str());
  auto json_lines = lines(jss.str());
  auto text_lines = lines(readFile());
  ASSERT_EQ(json_lines.size(), entries.size());
  ASSERT_EQ(text_lines.size(), entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    // nlohmann's ordered_json keeps the members in the order they were written.
    auto j = nlohmann::ordered_json::parse(json_lines[i]);
    std::vector<nlohmann::json> t = textFields(text_lines[i]);
    ASSERT_EQ(t.size(), j.size()) << text_lines[i];
    size_t k = 0;
    for (auto it = j.begin(); it != j.end(); ++it, ++k) {
      if (it.value().is_number())
        EXPECT_DOUBLE_EQ(t[k].get<double>(), it.value().get<double>()) << it.key();
      else
        EXPECT_EQ(t[k].get<std::string>(), it.value().get<std::string>()) << it.key();
    }
  }
}

TEST_F(AccessLogTest, BuffersUntilFlushOrThreshold) {
  auto sink = openFile();
  ASSERT_NE(sink, nullptr);
  AccessLogWriter writer(sink.get(), LogFormat::kJson);
  writer.append(sampleEntry());
  writer.append(sampleEntry());
  EXPECT_EQ(readFile(), "") << "nothing is written before a flush";
  EXPECT_GT(writer.buffered(), 0u);
  writer.flush();
  EXPECT_EQ(lines(readFile()).size(), 2u);
  EXPECT_EQ(writer.buffered(), 0u);

  // Passing the threshold writes without an explicit flush.
  int appended = 0;
  size_t file_lines = 2;
  for (int i = 0; i < 10000 && file_lines == 2; ++i) {
    writer.append(sampleEntry());
    ++appended;
    file_lines = lines(readFile()).size();
  }
  EXPECT_EQ(file_lines, 2u + appended);
  EXPECT_GE(appended * 200, static_cast<int>(AccessLogWriter::kFlushBytes) / 2);
  EXPECT_EQ(writer.buffered(), 0u);
}

TEST_F(AccessLogTest, DestructorFlushes) {
  auto sink = openFile();
  ASSERT_NE(sink, nullptr);
  {
    AccessLogWriter writer(sink.get(), LogFormat::kJson);
    writer.append(sampleEntry());
  }
  EXPECT_EQ(lines(readFile()).size(), 1u);
}

TEST_F(AccessLogTest, FileSinkAppends) {
  {
    std::ofstream out(path_);
    out << "existing line\n";
  }
  for (int round = 0; round < 2; ++round) {
    auto sink = openFile();
    ASSERT_NE(sink, nullptr);
    AccessLogWriter writer(sink.get(), LogFormat::kJson);
    writer.append(sampleEntry());
    writer.flush();
  }
  auto got = lines(readFile());
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], "existing line");
  EXPECT_THAT(got[2], HasSubstr("\"request_id\":\"req-1\""));
}

TEST_F(AccessLogTest, OffWritesNothing) {
  LogConfig config;
  config.access_log = "off";
  auto sink = AccessLogSink::open(config);
  ASSERT_TRUE(sink.ok());
  EXPECT_FALSE((*sink)->enabled());
  AccessLogWriter writer(sink->get(), LogFormat::kJson);
  writer.append(sampleEntry());
  EXPECT_EQ(writer.buffered(), 0u);
  writer.flush();
  (*sink)->write("ignored\n");
  EXPECT_EQ((*sink)->failedWrites(), 0u);
}

TEST_F(AccessLogTest, StdStreamsAreEnabled) {
  for (const char* name : {"stdout", "stderr"}) {
    LogConfig config;
    config.access_log = name;
    auto sink = AccessLogSink::open(config);
    ASSERT_TRUE(sink.ok());
    EXPECT_TRUE((*sink)->enabled()) << name;
  }
}

TEST_F(AccessLogTest, UnopenableFileIsAnError) {
  LogConfig config;
  config.access_log = ::testing::TempDir() + "no-such-dir-for-access-log/x/access.log";
  auto sink = AccessLogSink::open(config);
  ASSERT_FALSE(sink.ok());
  EXPECT_THAT(std::string(sink.status().message()), HasSubstr("no-such-dir-for-access-log"));
}

TEST(LoggingTest, JsonLoggerEscapesMessage) {
  auto out = std::make_shared<std::ostringstream>();
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*out);
  LogConfig config;
  config.level = "debug";
  config.format = LogFormat::kJson;
  auto logger = makeLogger("config", config, sink);
  logger->trace("hidden");
  logger->debug("bad \"value\"\nhere");
  logger->flush();
  auto got = lines(out->str());
  ASSERT_EQ(got.size(), 1u) << out->str();
  auto j = nlohmann::json::parse(got[0]);
  EXPECT_EQ(j["level"], "debug");
  EXPECT_EQ(j["logger"], "config");
  EXPECT_EQ(j["msg"], "bad \"value\"\nhere");
  EXPECT_EQ(j["time"].get<std::string>().size(), 24u);
}

TEST(LoggingTest, TextLoggerAndLevels) {
  auto out = std::make_shared<std::ostringstream>();
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*out);
  LogConfig config;
  config.level = "warn";
  config.format = LogFormat::kText;
  auto logger = makeLogger("admin", config, sink);
  logger->info("hidden");
  logger->warn("listening on {}", 9901);
  logger->flush();
  auto got = lines(out->str());
  ASSERT_EQ(got.size(), 1u) << out->str();
  EXPECT_THAT(got[0], HasSubstr("warning [admin] listening on 9901"));
  EXPECT_EQ(*parseLevel("error"), spdlog::level::err);
  EXPECT_FALSE(parseLevel("loud").ok());
}

}  // namespace
}  // namespace airbag::log
