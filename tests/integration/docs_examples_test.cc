// Executable docs: every ```console block of README.md and docs/*.md is run
// against a live airbag (examples/quickstart.yaml, ports substituted) beside two
// demo model servers, and what each `$ curl ...` prints is compared with what
// the doc shows: the status line, the headers the doc names, and the JSON
// fields it shows. `...` inside a shown value stands for anything (a request
// id, a message's tail): at the end of a value it makes the whole value
// variable. The markers a block may carry are described in
// README.md, "Documentation".
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/match.h"
#include "absl/strings/ascii.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

#ifndef AIRBAG_SOURCE_DIR
#error "AIRBAG_SOURCE_DIR must name the source tree"
#endif

namespace airbag::testing {
namespace {

namespace fs = std::filesystem;

struct Example {
  std::string command;   // without the "$ ", continuation lines joined
  std::string expected;  // the lines shown after it, "\n"-joined
};

struct Block {
  std::string file;
  int line = 0;          // of the opening fence
  std::string marker;    // "", "illustrative" or "admin-token"
  std::vector<Example> examples;
};

std::vector<std::string> readLines(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::vector<Block> consoleBlocks(const fs::path& file) {
  std::vector<Block> blocks;
  std::vector<std::string> lines = readLines(file);
  static const std::regex kMarker(R"(^<!--\s*doc-test:\s*([a-z-]+)\s*-->\s*$)");
  for (size_t i = 0; i < lines.size(); ++i) {
    if (absl::StripAsciiWhitespace(lines[i]) != "```console") continue;
    Block b;
    b.file = file.filename().string();
    b.line = static_cast<int>(i + 1);
    std::smatch m;
    if (i > 0 && std::regex_match(lines[i - 1], m, kMarker)) b.marker = m[1];
    size_t j = i + 1;
    for (; j < lines.size() && absl::StripAsciiWhitespace(lines[j]) != "```"; ++j) {
      const std::string& l = lines[j];
      if (absl::StartsWith(l, "$ ")) {
        Example e;
        e.command = l.substr(2);
        while (absl::EndsWith(e.command, "\\") && j + 1 < lines.size()) {
          e.command.pop_back();
          e.command += " " + std::string(absl::StripAsciiWhitespace(lines[++j]));
        }
        b.examples.push_back(std::move(e));
      } else if (!b.examples.empty()) {
        std::string& x = b.examples.back().expected;
        if (!x.empty()) x += "\n";
        x += l;
      }
    }
    i = j;
    blocks.push_back(std::move(b));
  }
  return blocks;
}

// `pattern` with "..." standing for any run of characters.
bool globMatch(const std::string& pattern, const std::string& text) {
  std::vector<std::string> parts;
  for (size_t from = 0;;) {
    size_t at = pattern.find("...", from);
    parts.push_back(pattern.substr(from, at == std::string::npos ? std::string::npos : at - from));
    if (at == std::string::npos) break;
    from = at + 3;
  }
  if (parts.size() == 1) return pattern == text;
  const std::string& first = parts.front();
  const std::string& last = parts.back();
  if (text.size() < first.size() + last.size()) return false;
  if (text.compare(0, first.size(), first) != 0) return false;
  if (text.compare(text.size() - last.size(), last.size(), last) != 0) return false;
  size_t pos = first.size();
  const size_t end = text.size() - last.size();
  for (size_t k = 1; k + 1 < parts.size(); ++k) {
    size_t at = text.find(parts[k], pos);
    if (at == std::string::npos || at + parts[k].size() > end) return false;
    pos = at + parts[k].size();
  }
  return true;
}

// A value as the doc shows it: ending in "..." it is variable (a request id: only its presence
// counts); elsewhere "..." stands for the part of a message left out.
bool shownMatches(const std::string& shown, const std::string& actual) {
  if (shown.size() >= 3 && shown.compare(shown.size() - 3, 3, "...") == 0) return true;
  return globMatch(shown, actual);
}

// Every field `expected` shows is in `actual` with a matching value; "..." keys are skipped.
void expectJsonShown(const nlohmann::json& expected, const nlohmann::json& actual,
                     const std::string& where) {
  if (expected.is_object()) {
    ASSERT_TRUE(actual.is_object()) << where << ": expected an object, got " << actual.dump();
    for (auto it = expected.begin(); it != expected.end(); ++it) {
      if (it.key() == "...") continue;
      ASSERT_TRUE(actual.contains(it.key())) << where << ": no field " << it.key() << " in "
                                             << actual.dump();
      expectJsonShown(it.value(), actual[it.key()], where + "/" + it.key());
    }
  } else if (expected.is_array()) {
    ASSERT_TRUE(actual.is_array()) << where << ": expected an array, got " << actual.dump();
    ASSERT_EQ(expected.size(), actual.size()) << where << ": " << actual.dump();
    for (size_t i = 0; i < expected.size(); ++i)
      expectJsonShown(expected[i], actual[i], where + "/" + std::to_string(i));
  } else if (expected.is_string()) {
    ASSERT_TRUE(actual.is_string()) << where << ": " << actual.dump();
    EXPECT_TRUE(shownMatches(expected.get<std::string>(), actual.get<std::string>()))
        << where << ": shown " << expected << ", got " << actual;
  } else if (expected.is_number()) {
    ASSERT_TRUE(actual.is_number()) << where << ": " << actual.dump();
    EXPECT_NEAR(expected.get<double>(), actual.get<double>(), 1e-9) << where;
  } else {
    EXPECT_EQ(expected, actual) << where;
  }
}

// Compares a body: as JSON when the doc shows JSON, else as text.
void expectBodyShown(const std::string& expected, const std::string& actual,
                     const std::string& where) {
  std::string want(absl::StripAsciiWhitespace(expected));
  nlohmann::json ej = nlohmann::json::parse(want, nullptr, false);
  if (!ej.is_discarded() && !want.empty()) {
    nlohmann::json aj = nlohmann::json::parse(actual, nullptr, false);
    ASSERT_FALSE(aj.is_discarded()) << where << ": the answer is not JSON: " << actual;
    expectJsonShown(ej, aj, where);
  } else {
    EXPECT_TRUE(globMatch(want, std::string(absl::StripAsciiWhitespace(actual))))
        << where << ": shown\n" << want << "\ngot\n" << actual;
  }
}

// `curl -i` output: status line, the named headers, then the body.
void expectResponseShown(const std::string& expected, const std::string& actual,
                         const std::string& where) {
  size_t split = actual.find("\r\n\r\n");
  ASSERT_NE(split, std::string::npos) << where << ": no header block in\n" << actual;
  std::vector<std::string> got_head = absl::StrSplit(actual.substr(0, split), "\r\n");
  std::string got_body = actual.substr(split + 4);
  std::vector<std::string> want = absl::StrSplit(expected, "\n");
  size_t blank = 0;
  while (blank < want.size() && !absl::StripAsciiWhitespace(want[blank]).empty()) ++blank;
  // Status line: version, code and reason as shown.
  EXPECT_EQ(absl::StripAsciiWhitespace(got_head[0]), absl::StripAsciiWhitespace(want[0]))
      << where;
  for (size_t i = 1; i < blank; ++i) {
    size_t colon = want[i].find(':');
    ASSERT_NE(colon, std::string::npos) << where << ": not a header line: " << want[i];
    std::string name = absl::AsciiStrToLower(want[i].substr(0, colon));
    std::string value(absl::StripAsciiWhitespace(want[i].substr(colon + 1)));
    bool found = false;
    for (size_t k = 1; k < got_head.size() && !found; ++k) {
      size_t c = got_head[k].find(':');
      if (c == std::string::npos || absl::AsciiStrToLower(got_head[k].substr(0, c)) != name)
        continue;
      found = true;
      EXPECT_TRUE(shownMatches(value, std::string(absl::StripAsciiWhitespace(got_head[k].substr(c + 1)))))
          << where << ": header " << got_head[k] << ", shown " << want[i];
    }
    EXPECT_TRUE(found) << where << ": no header " << name << " in\n" << actual.substr(0, split);
  }
  std::string want_body;
  for (size_t i = blank + 1; i < want.size(); ++i) absl::StrAppend(&want_body, want[i], "\n");
  expectBodyShown(want_body, got_body, where);
}

// The live setup a block runs against: the quick start's config and servers, on free ports.
class LiveQuickstart {
 public:
  static std::unique_ptr<LiveQuickstart> start(bool admin_token) {
    auto q = std::unique_ptr<LiveQuickstart>(new LiveQuickstart);
    auto model = DemoServer::start({.extra_args = {"--name", "model"}});
    auto small = DemoServer::start({.extra_args = {"--name", "small-model"}});
    EXPECT_TRUE(model.ok() && small.ok());
    if (!model.ok() || !small.ok()) return nullptr;
    q->model_ = std::move(*model);
    q->small_ = std::move(*small);
    std::string token_line;
    if (admin_token) {
      // `$(cat admin-token)` in the doc reads the file from the working directory.
      auto dir = TempDir::create("airbag-docs");
      EXPECT_TRUE(dir.ok());
      if (!dir.ok()) return nullptr;
      q->token_dir_ = std::move(*dir);
      auto path = q->token_dir_->write("admin-token", "s3cret-token\n");
      EXPECT_TRUE(path.ok());
      if (!path.ok()) return nullptr;
      token_line = absl::StrCat("token_file: ", path->string(), "\n  ");
    }
    std::string yaml = readFile(fs::path(AIRBAG_SOURCE_DIR) / "examples/quickstart.yaml");
    auto replace = [&yaml](const std::string& from, const std::string& to) {
      size_t at = yaml.find(from);
      EXPECT_NE(at, std::string::npos) << "quickstart.yaml no longer has " << from;
      if (at != std::string::npos) yaml.replace(at, from.size(), to);
    };
    replace("address: 127.0.0.1:8080", "address: ${LISTEN}");
    replace("address: 127.0.0.1:9901", token_line + "address: ${ADMIN}");
    replace("url: http://127.0.0.1:8000", "url: ${MODEL}");
    replace("url: http://127.0.0.1:8001", "url: ${SMALL}");
    replace("access_log: stdout", "access_log: off");
    auto airbag = AirbagProcess::start(yaml, {{"MODEL", q->model_->url()},
                                              {"SMALL", q->small_->url()}});
    EXPECT_TRUE(airbag.ok()) << airbag.status();
    if (!airbag.ok()) return nullptr;
    q->airbag_ = std::move(*airbag);
    return q;
  }

  // The doc's command with the doc's ports replaced by the live ones, run from a directory that
  // holds the admin token file (as `$(cat admin-token)` expects).
  std::string shellCommand(const std::string& command) const {
    static const std::regex kAddr(R"((127\.0\.0\.1|localhost):(8080|9901|8000|8001)\b)");
    std::string out;
    std::string rest = command;
    std::smatch m;
    while (std::regex_search(rest, m, kAddr)) {
      out += m.prefix();
      int port = m[2] == "8080"   ? airbag_->port()
                 : m[2] == "9901" ? airbag_->adminPort()
                 : m[2] == "8000" ? model_->port()
                                  : small_->port();
      out += "127.0.0.1:" + std::to_string(port);
      rest = m.suffix();
    }
    out += rest;
    std::string dir = token_dir_ ? token_dir_->path().string() : airbag_->dir().string();
    return absl::StrCat("cd '", dir, "' && ", out);
  }

 private:
  LiveQuickstart() = default;
  std::unique_ptr<DemoServer> model_, small_;
  std::unique_ptr<TempDir> token_dir_;
  std::unique_ptr<AirbagProcess> airbag_;
};

std::vector<fs::path> documents() {
  fs::path root(AIRBAG_SOURCE_DIR);
  std::vector<fs::path> out = {root / "README.md"};
  for (const auto& e : fs::directory_iterator(root / "docs"))
    if (e.path().extension() == ".md") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(DocsExamplesTest, EveryConsoleBlockRunsAsDocumented) {
  int ran = 0, illustrative = 0;
  for (const fs::path& doc : documents()) {
    for (const Block& b : consoleBlocks(doc)) {
      const std::string where = absl::StrCat(b.file, ":", b.line);
      SCOPED_TRACE(where);
      if (b.marker == "illustrative") {
        ++illustrative;
        continue;
      }
      ASSERT_TRUE(b.marker.empty() || b.marker == "admin-token")
          << where << ": unknown doc-test marker " << b.marker;
      ASSERT_FALSE(b.examples.empty()) << where << ": a console block without a $ command";
      auto live = LiveQuickstart::start(b.marker == "admin-token");
      ASSERT_NE(live, nullptr);
      for (const Example& e : b.examples) {
        ASSERT_TRUE(absl::StartsWith(e.command, "curl "))
            << where << ": only curl commands can run; mark the block illustrative: "
            << e.command;
        auto r = runCommand({"/bin/sh", "-c", live->shellCommand(e.command)},
                            milliseconds(10000));
        ASSERT_TRUE(r.ok()) << r.status();
        ASSERT_TRUE(r->exit.success()) << where << ": " << e.command << "\n" << r->err;
        const std::string at = absl::StrCat(where, " `", e.command, "`");
        if (absl::StartsWith(e.expected, "HTTP/"))
          expectResponseShown(e.expected, r->out, at);
        else
          expectBodyShown(e.expected, r->out, at);
        ++ran;
      }
    }
  }
  // The docs have runnable examples; a parser that found none would pass vacuously.
  EXPECT_GE(ran, 10);
  RecordProperty("examples_run", ran);
  RecordProperty("blocks_illustrative", illustrative);
}

// The comparison itself: "..." stands for anything, and nothing else does.
TEST(DocsExamplesTest, GlobMatchesOnlyWhatTheEllipsisAllows) {
  EXPECT_TRUE(shownMatches("9b1c...", "a8544aca617e4283e9abef3e3da0f0b0"));
  EXPECT_FALSE(shownMatches("a...b", "a-c"));
  EXPECT_TRUE(globMatch("9b1c...", "9b1c0e6f2a4d4c1e5d3b7a9f08e6c2d4"));
  EXPECT_TRUE(globMatch("9b1c...", "9b1c"));
  EXPECT_FALSE(globMatch("9b1c...", "9b1"));
  EXPECT_TRUE(globMatch("a: ...; b", "a: long text; b"));
  EXPECT_FALSE(globMatch("a: ...; b", "a: long text; c"));
  EXPECT_TRUE(globMatch("exact", "exact"));
  EXPECT_FALSE(globMatch("exact", "exactly"));
  EXPECT_FALSE(globMatch("ab...ba", "aba"));
}

}  // namespace
}  // namespace airbag::testing
