// The shared tier's purge driver against a fake Redis: the SCAN cursor loop
// runs to the end, only the route's own keys go (not a route whose name it
// prefixes), the key and time bounds cut it short and say so, failures name
// the node, and on a cluster every master is scanned and each UNLINK keeps to
// one hash slot.
#include "proxy/shared_cache/purge.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "proxy/shared_cache/entry_codec.h"
#include "tests/unit/shared_cache/replies.h"

namespace airbag::shared_cache {
namespace {

using ::testing::HasSubstr;
using namespace test_replies;

// Redis's glob, as much of it as a route pattern uses: '*', '?' and '\' escapes.
bool globMatch(std::string_view p, std::string_view s) {
  if (p.empty()) return s.empty();
  if (p[0] == '*') {
    for (size_t i = 0; i <= s.size(); ++i)
      if (globMatch(p.substr(1), s.substr(i))) return true;
    return false;
  }
  if (p[0] == '\\' && p.size() > 1) return !s.empty() && s[0] == p[1] && globMatch(p.substr(2), s.substr(1));
  if (s.empty()) return false;
  if (p[0] != '?' && p[0] != s[0]) return false;
  return globMatch(p.substr(1), s.substr(1));
}

// One fake Redis per node name ("" for the single one). Replies come from
// flush(), as from the loop; each command moves the clock by `step`.
class FakeRedis final : public PurgeTransport {
 public:
  absl::Time now() const override { return now_; }
  std::string name(const NodeAddress* node) const override {
    return node ? "node " + node->name() : "Redis at redis://fake";
  }
  std::string seedHost() const override { return "10.0.0.1"; }
  bool send(const NodeAddress* node, absl::Span<const std::string_view> args,
            absl::Duration, Callback done) override {
    if (refuse) return false;
    std::vector<std::string> a(args.begin(), args.end());
    std::string at = node ? node->name() : "";
    log.push_back(at + " " + a[0]);
    now_ += step;
    queue_.push_back([this, at, a = std::move(a), done = std::move(done)]() mutable {
      done(Result{Result::Kind::kReply, reply(at, a)});
    });
    return true;
  }

  // Delivers replies until none is left; false if that took implausibly long.
  bool flush() {
    for (int i = 0; i < 100000 && !queue_.empty(); ++i) {
      auto f = std::move(queue_.front());
      queue_.pop_front();
      f();
    }
    return queue_.empty();
  }

  std::map<std::string, std::set<std::string>> keys;  // node -> its keys
  Reply slots;                                        // the CLUSTER SLOTS reply
  std::string scan_error;                             // when set, SCAN answers this error
  bool refuse = false;                                // send() returns false
  absl::Duration step = absl::Milliseconds(1);
  std::vector<std::string> log;                       // "node COMMAND" per command
  std::vector<std::vector<std::string>> unlinks;      // each UNLINK's keys

 private:
  Reply reply(const std::string& at, const std::vector<std::string>& a) {
    if (a[0] == "CLUSTER") return slots;
    if (a[0] == "UNLINK") {
      unlinks.emplace_back(a.begin() + 1, a.end());
      int64_t n = 0;
      for (size_t i = 1; i < a.size(); ++i) n += static_cast<int64_t>(keys[at].erase(a[i]));
      return integer(n);
    }
    EXPECT_EQ(a[0], "SCAN");
    if (!scan_error.empty()) return error(scan_error);
    // SCAN cursor MATCH pattern COUNT n: the cursor counts keys looked at,
    // in order; keys unlinked meanwhile shift the rest, as a real table's
    // rehash may make SCAN see a key twice but never miss one still there.
    EXPECT_EQ(a.size(), 6u);
    // The cursor is the position plus one, so that 0 only ever means "done".
    size_t cursor = std::stoul(a[1]);
    if (cursor > 0) --cursor;
    size_t count = std::stoul(a[5]);
    const std::set<std::string>& all = keys[at];
    std::vector<Reply> found;
    auto it = all.begin();
    std::advance(it, std::min(cursor, all.size()));
    size_t looked = 0;
    for (; it != all.end() && looked < count; ++it, ++looked)
      if (globMatch(a[3], *it)) found.push_back(string(*it));
    // The matches are unlinked before the next SCAN: the cursor stays on
    // the first key not yet looked at.
    size_t next = it == all.end() ? 0 : cursor + looked - found.size() + 1;
    return array({string(std::to_string(next)), array(std::move(found))});
  }

  absl::Time now_ = absl::UnixEpoch();
  std::deque<std::function<void()>> queue_;
};

std::set<std::string> routeKeys(std::string_view route, int n) {
  std::set<std::string> out;
  for (int i = 0; i < n; ++i) out.insert(redisKey("airbag:", route, "key" + std::to_string(i)));
  return out;
}

struct Outcome {
  std::optional<PurgeResult> result;
  std::function<void(PurgeResult)> done() {
    return [this](PurgeResult r) {
      EXPECT_FALSE(result.has_value()) << "done called twice";
      result = std::move(r);
    };
  }
};

size_t countPrefix(const std::set<std::string>& keys, std::string_view prefix) {
  size_t n = 0;
  for (const std::string& k : keys) n += k.rfind(prefix, 0) == 0;
  return n;
}

TEST(SharedPurge, ScansToTheEndAndTakesOnlyTheRoutesOwnKeys) {
  auto redis = std::make_shared<FakeRedis>();
  std::set<std::string>& keys = redis->keys[""];
  for (std::string_view route : {"a", "ab", "a:b", "a*", "b"})
    for (const std::string& k : routeKeys(route, route == "a" ? 2500 : 300)) keys.insert(k);
  keys.insert("airbag:a");       // no ':' after the route: not one of its keys
  keys.insert("other:a:1234");  // another prefix
  PurgeLimits limits;
  limits.scan_count = 100;
  Outcome run;
  purgeShared(redis, {routePattern("airbag:", "a")}, false, limits, run.done());
  EXPECT_FALSE(run.result) << "answered from inside the call";
  ASSERT_TRUE(redis->flush());
  ASSERT_TRUE(run.result);
  EXPECT_EQ(run.result->purged, 2500u);
  EXPECT_TRUE(run.result->complete);
  EXPECT_EQ(run.result->stopped_by, PurgeStop::kNone);
  EXPECT_EQ(run.result->nodes, 1u);
  EXPECT_EQ(countPrefix(keys, "airbag:a:"), 0u);
  EXPECT_EQ(keys.size(), 4u * 300 + 2);  // every other route's keys, and the strangers
  // The cursor loop: many SCANs of COUNT 100, one UNLINK per batch found.
  size_t scans = std::count(redis->log.begin(), redis->log.end(), " SCAN");
  EXPECT_GE(scans, 37u);  // 3702 keys at 100 a call
  EXPECT_EQ(static_cast<std::ptrdiff_t>(redis->unlinks.size()),
            std::count(redis->log.begin(), redis->log.end(), " UNLINK"));
}

TEST(SharedPurge, EveryPatternInTurn) {
  auto redis = std::make_shared<FakeRedis>();
  for (std::string_view route : {"a", "b", "c"})
    for (const std::string& k : routeKeys(route, 50)) redis->keys[""].insert(k);
  Outcome run;
  purgeShared(redis, {routePattern("airbag:", "a"), routePattern("airbag:", "c")}, false, {},
              run.done());
  ASSERT_TRUE(redis->flush());
  ASSERT_TRUE(run.result);
  EXPECT_EQ(run.result->purged, 100u);
  EXPECT_TRUE(run.result->complete);
  EXPECT_EQ(redis->keys[""], routeKeys("b", 50));
}

TEST(SharedPurge, TheKeyBoundStopsItAndSaysSo) {
  auto redis = std::make_shared<FakeRedis>();
  redis->keys[""] = routeKeys("a", 250);
  PurgeLimits limits;
  limits.scan_count = 30;
  limits.max_keys = 100;
  Outcome run;
  purgeShared(redis, {routePattern("airbag:", "a")}, false, limits, run.done());
  ASSERT_TRUE(redis->flush());
  ASSERT_TRUE(run.result);
  EXPECT_EQ(run.result->purged, 100u);
  EXPECT_FALSE(run.result->complete);
  EXPECT_EQ(run.result->stopped_by, PurgeStop::kMaxKeys);
  EXPECT_EQ(redis->keys[""].size(), 150u);

  // Called again, it carries on from what is left.
  Outcome again;
  limits.max_keys = 1000;
  purgeShared(redis, {routePattern("airbag:", "a")}, false, limits, again.done());
  ASSERT_TRUE(redis->flush());
  ASSERT_TRUE(again.result);
  EXPECT_EQ(again.result->purged, 150u);
  EXPECT_TRUE(again.result->complete);
}

TEST(SharedPurge, TheTimeBoundStopsItAndSaysSo) {
  auto redis = std::make_shared<FakeRedis>();
  redis->keys[""] = routeKeys("a", 1000);
  redis->step = absl::Milliseconds(300);  // each command takes 300 ms
  PurgeLimits limits;
  limits.scan_count = 10;
  limits.time = absl::Seconds(1);
  Outcome run;
  purgeShared(redis, {routePattern("airbag:", "a")}, false, limits, run.done());
  ASSERT_TRUE(redis->flush());
  ASSERT_TRUE(run.result);
  EXPECT_FALSE(run.result->complete);
  EXPECT_EQ(run.result->stopped_by, PurgeStop::kTime);
  EXPECT_LE(redis->log.size(), 4u);  // no command started after the second
  EXPECT_EQ(run.result->purged, 1000u - redis->keys[""].size());
}

TEST(SharedPurge, AnErrorReplyEndsItNamingTheNode) {
  auto redis = std::make_shared<FakeRedis>();
  redis->keys[""] = routeKeys("a", 10);
  redis->scan_error = "NOPERM this user has no permissions to run the 'scan' command";
  Outcome run;
  purgeShared(redis, {routePattern("airbag:", "a")}, false, {}, run.done());
  ASSERT_TRUE(redis->flush());
  ASSERT_TRUE(run.result);
  EXPECT_EQ(run.result->stopped_by, PurgeStop::kError);
  EXPECT_FALSE(run.result->complete);
  EXPECT_THAT(run.result->error, HasSubstr("Redis at redis://fake: SCAN: NOPERM"));
}

TEST(SharedPurge, ARedisThatCannotBeAskedIsAnErrorAtOnce) {
  auto redis = std::make_shared<FakeRedis>();
  redis->refuse = true;
  Outcome run;
  purgeShared(redis, {routePattern("airbag:", "a")}, false, {}, run.done());
  ASSERT_TRUE(run.result);
  EXPECT_EQ(run.result->stopped_by, PurgeStop::kError);
  EXPECT_THAT(run.result->error, HasSubstr("breaker is open"));
}

TEST(SharedPurge, OnAClusterEveryMasterIsScannedAndEachUnlinkKeepsToOneSlot) {
  auto redis = std::make_shared<FakeRedis>();
  redis->slots = array({range(0, 5460, "10.0.0.1", 7000), range(5461, 10922, "10.0.0.2", 7001),
                        range(10923, 16383, "", 7002)});  // "" is the seed's host
  const std::vector<std::string> masters = {"10.0.0.1:7000", "10.0.0.2:7001", "10.0.0.1:7002"};
  for (const std::string& k : routeKeys("a", 600)) {
    int slot = hashSlot(k);
    redis->keys[masters[slot <= 5460 ? 0 : slot <= 10922 ? 1 : 2]].insert(k);
  }
  for (const std::string& k : routeKeys("ab", 60)) redis->keys[masters[1]].insert(k);
  PurgeLimits limits;
  limits.scan_count = 50;
  Outcome run;
  purgeShared(redis, {routePattern("airbag:", "a")}, true, limits, run.done());
  ASSERT_TRUE(redis->flush());
  ASSERT_TRUE(run.result);
  EXPECT_EQ(run.result->purged, 600u);
  EXPECT_TRUE(run.result->complete);
  EXPECT_EQ(run.result->nodes, 3u);
  for (const std::string& m : masters) {
    EXPECT_EQ(countPrefix(redis->keys[m], "airbag:a:"), 0u) << m;
    EXPECT_NE(std::find(redis->log.begin(), redis->log.end(), m + " SCAN"), redis->log.end()) << m;
  }
  EXPECT_EQ(redis->keys[masters[1]].size(), 60u);
  EXPECT_EQ(redis->log.front(), " CLUSTER");
  for (const auto& keys : redis->unlinks)
    for (const std::string& k : keys) EXPECT_EQ(hashSlot(k), hashSlot(keys.front()));
}

TEST(SharedPurge, NothingToPurgeIsCompleteAtOnce) {
  auto redis = std::make_shared<FakeRedis>();
  Outcome run;
  purgeShared(redis, {}, false, {}, run.done());
  ASSERT_TRUE(run.result);
  EXPECT_TRUE(run.result->complete);
  EXPECT_TRUE(redis->log.empty());
}

TEST(SharedPurge, EachStopHasTheNameTheAdminAnswersWith) {
  EXPECT_EQ(purgeStopName(PurgeStop::kNone), "");
  EXPECT_EQ(purgeStopName(PurgeStop::kMaxKeys), "max_keys");
  EXPECT_EQ(purgeStopName(PurgeStop::kTime), "time");
  EXPECT_EQ(purgeStopName(PurgeStop::kError), "error");
}

}  // namespace
}  // namespace airbag::shared_cache
