// Black-box fuzzing of the real binary: mutated client requests and mutated
// upstream answers, for a bounded time, against one airbag process. What must
// hold for every case, whatever the bytes:
//  - airbag stays up (under ASan/UBSan a memory error ends the process);
//  - the client only ever receives well-formed HTTP/1.1 answers, each saying
//    who answered (x-airbag-source); a body may be cut short only as the last
//    thing on a connection that then closes;
//  - what reaches the upstream is well-formed: one start line, token header
//    names, exactly one Host, never Content-Length with Transfer-Encoding;
//  - a well-formed request on a fresh connection is still answered.
// Two runs: a fixed seed, and a random one printed for replay. Set
// AIRBAG_FUZZ_SEED to replay one seed, AIRBAG_FUZZ_SECONDS to change the time
// each run gets (default 25).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace airbag::testing {
namespace {

constexpr char kConfig[] = R"(
listen:
  address: ${LISTEN}
  workers: 2
  limits: { max_header_bytes: 8KiB, max_body_bytes: 64KiB, header_timeout: 300ms,
            idle_timeout: 500ms }
admin: { address: ${ADMIN} }
log: { level: error, access_log: off }
upstreams:
  raw: { url: ${RAW}, connect_timeout: 200ms }
  model: { url: ${MODEL} }
routes:
  - name: model
    match: { path: /echo }
    upstream: model
  - name: ladder
    match: { path_prefix: /fb }
    upstream: raw
    timeout: { total: 400ms, per_try: 200ms }
    retry: { attempts: 2, on: [reset, 5xx, timeout], backoff: { base: 1ms, max: 2ms } }
    cache: { ttl: 1s, stale_if_error: 5s, key: { body: raw } }
    fallback:
      - rules:
          - name: big
            when: [ { pointer: /n, gt: 5 } ]
            respond: { status: 200, json: { rule: big } }
      - respond: { status: 200, json: { answered_by: default } }
  - name: plain
    match: { path_prefix: / }
    upstream: raw
    timeout: { total: 300ms }
)";

// Well-formed requests the mutations start from.
const std::vector<std::string>& requestSeeds() {
  static const std::vector<std::string> seeds = {
      "GET /p HTTP/1.1\r\nHost: a\r\n\r\n",
      "POST /fb HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n"
      "{\"n\":10}",
      "POST /fb HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n{\"n\":1}}\r\n0\r\n\r\n",
      "GET /fb?x=1 HTTP/1.1\r\nHost: a\r\nx-request-id: r1\r\nConnection: keep-alive, x-h\r\n"
      "x-h: 1\r\n\r\nGET /p HTTP/1.1\r\nHost: a\r\n\r\n",
      "POST /p HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
      "GET /p HTTP/1.0\r\n\r\n",
      "GET /echo HTTP/1.1\r\nHost: a\r\nx-airbag-timeout-ms: 50\r\n\r\n",
  };
  return seeds;
}

// Well-formed (and a few borderline) answers the upstream mutations start from.
const std::vector<std::string>& answerSeeds() {
  static const std::vector<std::string> seeds = {
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: a\n\ndata: b\n\n",
      "HTTP/1.1 503 Busy\r\nRetry-After: 0\r\nContent-Length: 4\r\n\r\nbusy",
      "HTTP/1.1 204 No Content\r\n\r\n",
      "HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n",
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
      "HTTP/1.0 200 OK\r\n\r\nclose-delimited",
      "HTTP/1.1 200 OK\r\nCache-Control: max-age=5\r\nContent-Length: 2\r\n\r\nok",
  };
  return seeds;
}

// Byte strings that tend to matter to HTTP parsers.
const std::vector<std::string>& tokens() {
  static const std::vector<std::string> t = {
      "\r\n", "\n", "\r", ":", " ", "\t", ",", "\x00", "\x7f", "\xff", "0", "9",
      "HTTP/1.1 ", "Transfer-Encoding: chunked\r\n", "Content-Length: 5\r\n",
      "Content-Length: -1\r\n", "Content-Length: 99999999999999999999\r\n", "Host: b\r\n",
      "Connection: close\r\n", "0\r\n\r\n", "ffffffffffffffff\r\n", "\r\n\r\n", " chunked",
      "Expect: 100-continue\r\n", "x-airbag-timeout-ms: 0\r\n", "Upgrade: h2c\r\n",
      "Cache-Control: no-store\r\n", "Content-Type: text/event-stream\r\n"};
  return t;
}

std::string mutate(std::string s, std::mt19937_64& rng) {
  auto pick = [&rng](size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng() % n); };
  int rounds = 1 + static_cast<int>(pick(4));
  for (int i = 0; i < rounds; ++i) {
    size_t at = pick(s.size() + 1);
    switch (pick(7)) {
      case 0:  // flip a byte
        if (!s.empty()) s[std::min(at, s.size() - 1)] ^= static_cast<char>(1u << pick(8));
        break;
      case 1:  // insert a random byte
        s.insert(at, 1, static_cast<char>(pick(256)));
        break;
      case 2:  // delete a range
        s.erase(at, 1 + pick(8));
        break;
      case 3:  // duplicate a range
        if (at < s.size()) s.insert(at, s.substr(at, 1 + pick(16)));
        break;
      case 4:  // insert a token
        s.insert(at, tokens()[pick(tokens().size())]);
        break;
      case 5:  // cut the end
        s.resize(at);
        break;
      default:  // replace a digit run's neighbourhood with a token
        if (at < s.size()) s.replace(at, 1, tokens()[pick(tokens().size())]);
        break;
    }
  }
  return s;
}

// This abseil's string_view is its own type, not std's.
absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool isTchar(unsigned char c) {
  return absl::ascii_isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
                                       std::string_view::npos;
}

// Splits a head into lines after the start line; false if any line is not `name: value` with
// a token name.
bool headerLines(std::string_view head, std::vector<std::pair<std::string, std::string>>* out,
                 std::string* why) {
  std::vector<absl::string_view> lines = absl::StrSplit(av(head), "\r\n");
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    size_t colon = lines[i].find(':');
    if (colon == std::string_view::npos || colon == 0) {
      *why = "header line without a name: " + std::string(lines[i]);
      return false;
    }
    for (char c : lines[i].substr(0, colon)) {
      if (!isTchar(static_cast<unsigned char>(c))) {
        *why = "bad header name: " + std::string(lines[i]);
        return false;
      }
    }
    out->emplace_back(absl::AsciiStrToLower(lines[i].substr(0, colon)),
                      std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1))));
  }
  return true;
}

const std::string* find(const std::vector<std::pair<std::string, std::string>>& h,
                        std::string_view name) {
  for (const auto& [n, v] : h)
    if (n == name) return &v;
  return nullptr;
}

// Checks that `bytes`, everything airbag sent on one connection before it
// closed (or went quiet), is a sequence of well-formed answers. `closed`: the
// connection ended, so the last body may be cut short.
bool wellFormedAnswers(std::string_view bytes, bool closed, std::string* why) {
  while (!bytes.empty()) {
    if (bytes.size() < 13 || bytes.substr(0, 9) != "HTTP/1.1 " || !absl::ascii_isdigit(bytes[9]) ||
        !absl::ascii_isdigit(bytes[10]) || !absl::ascii_isdigit(bytes[11]) || bytes[12] != ' ') {
      *why = "not a status line: " + std::string(bytes.substr(0, 40));
      return false;
    }
    int status = (bytes[9] - '0') * 100 + (bytes[10] - '0') * 10 + (bytes[11] - '0');
    size_t end = bytes.find("\r\n\r\n");
    if (end == std::string_view::npos) {
      *why = "a head cut short";
      return false;
    }
    std::vector<std::pair<std::string, std::string>> h;
    if (!headerLines(bytes.substr(0, end), &h, why)) return false;
    bytes.remove_prefix(end + 4);
    if (status >= 100 && status < 200) continue;
    if (status < 100 || status > 599) {
      *why = "status out of range";
      return false;
    }
    if (!find(h, "x-airbag-source")) {
      *why = "an answer without x-airbag-source";
      return false;
    }
    const std::string* cl = find(h, "content-length");
    const std::string* te = find(h, "transfer-encoding");
    if (cl && te) {
      *why = "Content-Length and Transfer-Encoding together";
      return false;
    }
    if (status == 204 || status == 304) {
      if (status == 204 && cl) {
        *why = "204 with Content-Length";
        return false;
      }
      continue;
    }
    if (te) {
      if (absl::AsciiStrToLower(*te) != "chunked") {
        *why = "transfer-encoding " + *te;
        return false;
      }
      while (true) {
        size_t eol = bytes.find("\r\n");
        if (eol == std::string_view::npos) {
          if (closed) return true;  // a cut stream, visible as such
          *why = "chunk size line cut short on an open connection";
          return false;
        }
        uint64_t size = 0;
        if (!absl::SimpleHexAtoi(av(bytes.substr(0, eol)), &size)) {
          *why = "bad chunk size: " + std::string(bytes.substr(0, std::min<size_t>(eol, 20)));
          return false;
        }
        bytes.remove_prefix(eol + 2);
        if (size == 0) {
          if (bytes.substr(0, 2) != "\r\n") {
            *why = "no CRLF after the last chunk";
            return false;
          }
          bytes.remove_prefix(2);
          break;
        }
        if (bytes.size() < size + 2) {
          if (closed) return true;
          *why = "chunk cut short on an open connection";
          return false;
        }
        if (bytes.substr(size, 2) != "\r\n") {
          *why = "chunk data not followed by CRLF";
          return false;
        }
        bytes.remove_prefix(size + 2);
      }
      continue;
    }
    if (cl) {
      uint64_t n = 0;
      if (!absl::SimpleAtoi(*cl, &n)) {
        *why = "bad content-length " + *cl;
        return false;
      }
      if (bytes.size() < n) {
        if (closed) return true;
        *why = "body shorter than its Content-Length on an open connection";
        return false;
      }
      bytes.remove_prefix(n);
      continue;
    }
    // Neither: the body runs to the close.
    if (!closed) {
      *why = "a close-delimited body on a connection left open";
      return false;
    }
    return true;
  }
  return true;
}

// Checks one request head as the upstream received it.
bool wellFormedUpstreamRequest(std::string_view head, std::string* why) {
  size_t eol = head.find("\r\n");
  std::vector<absl::string_view> start = absl::StrSplit(av(head.substr(0, eol)), ' ');
  if (start.size() != 3 || start[2] != "HTTP/1.1" || start[0].empty() || start[1].empty()) {
    *why = "bad start line: " + std::string(head.substr(0, eol));
    return false;
  }
  std::vector<std::pair<std::string, std::string>> h;
  if (!headerLines(head.substr(0, head.size() - 4), &h, why)) return false;
  int hosts = 0;
  for (const auto& [n, v] : h) hosts += n == "host";
  if (hosts != 1) {
    *why = "Host headers: " + std::to_string(hosts);
    return false;
  }
  if (find(h, "content-length") && find(h, "transfer-encoding")) {
    *why = "Content-Length with Transfer-Encoding upstream";
    return false;
  }
  return true;
}

uint64_t envNumber(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  uint64_t n = 0;
  return v && absl::SimpleAtoi(v, &n) ? n : fallback;
}

class FuzzBlackBoxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    raw_ = std::make_unique<ScriptedServer>(std::vector<Step>{});
    auto demo = DemoServer::start();
    ASSERT_TRUE(demo.ok()) << demo.status();
    demo_ = std::move(*demo);
    auto airbag = AirbagProcess::start(kConfig, {{"RAW", raw_->url()}, {"MODEL", demo_->url()}});
    ASSERT_TRUE(airbag.ok()) << airbag.status();
    airbag_ = std::move(*airbag);
  }

  // Runs cases from `seed` until the time is up; returns how many ran.
  int run(uint64_t seed) {
    std::mt19937_64 rng(seed);
    Stopwatch clock;
    auto budget = std::chrono::seconds(envNumber("AIRBAG_FUZZ_SECONDS", 25));
    int cases = 0;
    size_t upstream_seen = 0;
    while (clock.elapsed() < budget && cases < 20000) {
      ++cases;
      const auto& answers = answerSeeds();
      std::string answer = answers[rng() % answers.size()];
      if (rng() % 4 != 0) answer = mutate(answer, rng);
      raw_->setScript({readRequest(), write(answer), closeConnection()});
      const auto& requests = requestSeeds();
      std::string request = requests[rng() % requests.size()];
      if (rng() % 5 != 0) request = mutate(request, rng);
      bool half_close = rng() % 2 == 0;

      HttpClient c;
      if (!c.connect(airbag_->port()).ok()) {
        ADD_FAILURE() << "seed " << seed << " case " << cases << ": cannot connect";
        return cases;
      }
      if (!c.sendRaw(request).ok()) continue;  // airbag may close on bad bytes at once
      if (half_close) c.shutdownWrite();
      // Read until airbag closes, or until what came is whole answers and
      // nothing more follows for a moment (a kept-alive connection).
      std::string why;
      Deadline deadline(milliseconds(1500));
      while (!deadline.expired() && !c.peerClosed()) {
        size_t n = c.receiveSome(std::min(milliseconds(60), deadline.remaining()));
        if (n == 0 && !c.buffered().empty() && wellFormedAnswers(c.buffered(), false, &why)) break;
      }
      bool closed = c.peerClosed();
      if (!wellFormedAnswers(c.buffered(), closed, &why)) {
        ADD_FAILURE() << "seed " << seed << " case " << cases << ": " << why
                      << "\nrequest: " << absl::CEscape(av(request))
                      << "\nupstream answer: " << absl::CEscape(av(answer))
                      << "\nclient got: " << absl::CEscape(av(c.buffered()));
        return cases;
      }
      std::vector<std::string> seen = raw_->requests();
      for (; upstream_seen < seen.size(); ++upstream_seen) {
        if (!wellFormedUpstreamRequest(seen[upstream_seen], &why)) {
          ADD_FAILURE() << "seed " << seed << " case " << cases << ": upstream got " << why
                        << "\nrequest: " << absl::CEscape(av(request));
          return cases;
        }
      }
      if (cases % 50 == 0 && !stillServes(seed, cases)) return cases;
    }
    stillServes(seed, cases);
    return cases;
  }

  bool stillServes(uint64_t seed, int cases) {
    if (!airbag_->process().running()) {
      ADD_FAILURE() << "seed " << seed << " case " << cases << ": airbag died\n"
                    << airbag_->process().stderrText();
      return false;
    }
    Response r = airbag_->fetch("GET", "/echo");
    if (r.status != 200) {
      ADD_FAILURE() << "seed " << seed << " case " << cases << ": a good request got "
                    << r.status << " " << r.error;
      return false;
    }
    return true;
  }

  std::unique_ptr<ScriptedServer> raw_;
  std::unique_ptr<DemoServer> demo_;
  std::unique_ptr<AirbagProcess> airbag_;
};

// The checks above must catch what fuzzing found before: raw upstream bytes
// with no head, a 204 followed by the bytes of its claimed length, a bad
// header name, two Host headers upstream.
TEST(FuzzOracleTest, RejectsWhatEarlierFindingsLetThrough) {
  std::string why;
  EXPECT_FALSE(wellFormedAnswers("hello", true, &why));
  EXPECT_FALSE(wellFormedAnswers(
      "HTTP/1.1 204 No Content\r\nContent-Length: 8\r\nx-airbag-source: upstream\r\n\r\n"
      "12345678",
      false, &why));
  EXPECT_FALSE(wellFormedAnswers(
      "HTTP/1.1 200 OK\r\nBad Name: v\r\nx-airbag-source: upstream\r\nContent-Length: 0\r\n\r\n",
      false, &why));
  EXPECT_FALSE(wellFormedAnswers("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, &why));
  EXPECT_FALSE(wellFormedAnswers(
      "HTTP/1.1 200 OK\r\nx-airbag-source: upstream\r\nContent-Length: 5\r\n\r\nhel", false,
      &why));
  EXPECT_TRUE(wellFormedAnswers(
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nx-airbag-source: upstream\r\n"
      "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
      false, &why))
      << why;
  EXPECT_FALSE(wellFormedUpstreamRequest("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &why));
  EXPECT_FALSE(wellFormedUpstreamRequest(
      "POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n",
      &why));
  EXPECT_TRUE(wellFormedUpstreamRequest("GET /x HTTP/1.1\r\nhost: a\r\n\r\n", &why)) << why;
}

TEST_F(FuzzBlackBoxTest, MutatedRequestsAndAnswersNeverBreakTheProtocol) {
  std::vector<uint64_t> seeds;
  if (uint64_t fixed = envNumber("AIRBAG_FUZZ_SEED", 0); fixed != 0) {
    seeds = {fixed};
  } else {
    seeds = {20261130, std::random_device{}() | 1};
  }
  for (uint64_t seed : seeds) {
    std::cout << "fuzz seed " << seed << " (replay: AIRBAG_FUZZ_SEED=" << seed << ")" << std::endl;
    int cases = run(seed);
    std::cout << "fuzz seed " << seed << ": " << cases << " cases" << std::endl;
    if (HasFailure()) break;
  }
}

}  // namespace
}  // namespace airbag::testing
