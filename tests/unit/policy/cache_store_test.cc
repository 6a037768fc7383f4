// Tests of policy/cache_store: freshness windows at their exact edges, the one
// revalidation per key, collision safety, LRU by bytes under the cap (with a
// seeded property run), readers outliving eviction, miss coalescing, purges,
// and a bounded multi-thread stress run checking the store's invariants.
#include "policy/cache_store.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace airbag::policy {
namespace {

const absl::Time kStart = absl::UnixEpoch() + absl::Hours(24 * 365 * 50);
constexpr uint64_t kNoEntryLimit = ~uint64_t{0};

Freshness windows(int64_t ttl_s, int64_t swr_s, int64_t sie_s) {
  return Freshness{absl::Seconds(ttl_s), absl::Seconds(swr_s), absl::Seconds(sie_s), true};
}

std::shared_ptr<const CacheEntry> makeEntry(std::string key, std::string route = "r",
                                            size_t body_bytes = 10, absl::Time stored_at = kStart,
                                            Freshness freshness = windows(10, 20, 100)) {
  auto e = std::make_shared<CacheEntry>();
  e->key = std::move(key);
  e->status = 200;
  e->headers = {{"content-type", "application/json"}};
  e->body = std::string(body_bytes, 'x');
  e->stored_at = stored_at;
  e->freshness = freshness;
  e->route = std::move(route);
  return e;
}

// Every key lands in one bucket of one shard: only the full comparison tells them apart.
uint64_t collidingHash(std::string_view) { return 42; }

std::string kindName(CacheStore::Lookup k) {
  switch (k) {
    case CacheStore::Lookup::kFresh:
      return "fresh";
    case CacheStore::Lookup::kStale:
      return "stale";
    case CacheStore::Lookup::kStaleIfError:
      return "stale-if-error";
    case CacheStore::Lookup::kMiss:
      return "miss";
  }
  return "?";
}

TEST(CacheStoreTest, EntryBytesCountsKeyRouteHeadersBodyAndOverhead) {
  auto e = makeEntry("key", "route", 100);
  EXPECT_EQ(CacheStore::entryBytes(*e),
            CacheStore::kEntryOverhead + 3 + 5 + 100 + CacheStore::kHeaderOverhead +
                std::string("content-type").size() + std::string("application/json").size());
}

struct WindowCase {
  int64_t ttl_s, swr_s, sie_s;
  absl::Duration age;
  CacheStore::Lookup want;
};

TEST(CacheStoreTest, FreshnessWindowsAtExactBoundaries) {
  using L = CacheStore::Lookup;
  const absl::Duration ns = absl::Nanoseconds(1);
  const std::vector<WindowCase> cases = {
      {10, 20, 100, -absl::Seconds(5), L::kFresh},  // stored "in the future": age 0
      {10, 20, 100, absl::ZeroDuration(), L::kFresh},
      {10, 20, 100, absl::Seconds(10) - ns, L::kFresh},
      {10, 20, 100, absl::Seconds(10), L::kStale},
      {10, 20, 100, absl::Seconds(30) - ns, L::kStale},
      {10, 20, 100, absl::Seconds(30), L::kStaleIfError},
      {10, 20, 100, absl::Seconds(110) - ns, L::kStaleIfError},
      {10, 20, 100, absl::Seconds(110), L::kMiss},
      // stale_if_error shorter than the swr window: nothing after it.
      {10, 20, 5, absl::Seconds(30) - ns, L::kStale},
      {10, 20, 5, absl::Seconds(30), L::kMiss},
      // stale_if_error reaching just past the swr window.
      {10, 20, 25, absl::Seconds(30), L::kStaleIfError},
      {10, 20, 25, absl::Seconds(35) - ns, L::kStaleIfError},
      {10, 20, 25, absl::Seconds(35), L::kMiss},
      // No stale windows at all.
      {10, 0, 0, absl::Seconds(10) - ns, L::kFresh},
      {10, 0, 0, absl::Seconds(10), L::kMiss},
      // ttl 0: stale from the first moment.
      {0, 20, 0, absl::ZeroDuration(), L::kStale},
      {0, 0, 30, absl::ZeroDuration(), L::kStaleIfError},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const WindowCase& c = cases[i];
    CacheStore store(1 << 20);
    const std::string key = "k" + std::to_string(i);
    ASSERT_TRUE(store.insert(makeEntry(key, "r", 10, kStart, windows(c.ttl_s, c.swr_s, c.sie_s)),
                             kNoEntryLimit));
    const CacheStore::LookupResult r = store.lookup(key, kStart + c.age);
    SCOPED_TRACE("case " + std::to_string(i) + " age " + absl::FormatDuration(c.age));
    EXPECT_EQ(kindName(r.kind), kindName(c.want));
    if (c.want == L::kMiss) {
      EXPECT_EQ(r.entry, nullptr);
      // Too old for anything: dropped, not merely hidden.
      EXPECT_EQ(store.stats().entries, 0u);
      EXPECT_EQ(store.stats().bytes, 0u);
      EXPECT_EQ(store.lookup(key, kStart).kind, L::kMiss);
    } else {
      ASSERT_NE(r.entry, nullptr);
      EXPECT_EQ(r.entry->key, key);
    }
    EXPECT_EQ(r.revalidate, c.want == L::kStale);
  }
}

TEST(CacheStoreTest, UnknownKeyIsAMiss) {
  CacheStore store(1 << 20);
  const CacheStore::LookupResult r = store.lookup("nope", kStart);
  EXPECT_EQ(r.kind, CacheStore::Lookup::kMiss);
  EXPECT_EQ(r.entry, nullptr);
  EXPECT_FALSE(r.revalidate);
}

TEST(CacheStoreTest, RevalidateGivenToExactlyOneCallerUntilTheRefreshEnds) {
  CacheStore store(1 << 20);
  ASSERT_TRUE(store.insert(makeEntry("k"), kNoEntryLimit));
  // Fresh hits never ask for a refresh.
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(store.lookup("k", kStart + absl::Seconds(1)).revalidate);

  const absl::Time stale = kStart + absl::Seconds(15);
  int granted = 0;
  for (int i = 0; i < 10; ++i) {
    const CacheStore::LookupResult r = store.lookup("k", stale);
    EXPECT_EQ(r.kind, CacheStore::Lookup::kStale);
    granted += r.revalidate ? 1 : 0;
  }
  EXPECT_EQ(granted, 1);
  // Past the swr window nobody is asked to refresh.
  EXPECT_FALSE(store.lookup("k", kStart + absl::Seconds(40)).revalidate);

  // The refresh failed: the next stale reader may start another, and only it.
  store.revalidationDone("k");
  EXPECT_TRUE(store.lookup("k", stale).revalidate);
  EXPECT_FALSE(store.lookup("k", stale).revalidate);

  // The refresh stored a new answer: fresh again, and once it is stale, one
  // reader refreshes it.
  const absl::Time refreshed_at = kStart + absl::Seconds(20);
  ASSERT_TRUE(store.insert(makeEntry("k", "r", 10, refreshed_at), kNoEntryLimit));
  EXPECT_EQ(store.lookup("k", refreshed_at).kind, CacheStore::Lookup::kFresh);
  EXPECT_TRUE(store.lookup("k", refreshed_at + absl::Seconds(12)).revalidate);
  EXPECT_FALSE(store.lookup("k", refreshed_at + absl::Seconds(12)).revalidate);

  // A refresh whose answer cannot be stored also ends the refresh.
  EXPECT_FALSE(store.insert(makeEntry("k", "r", 1000, refreshed_at), 100));
  const CacheStore::LookupResult r = store.lookup("k", refreshed_at + absl::Seconds(12));
  EXPECT_TRUE(r.revalidate);
  EXPECT_EQ(r.entry->stored_at, refreshed_at);  // the old entry stays

  // revalidationDone on a key that is not stored is harmless.
  store.revalidationDone("absent");
}

TEST(CacheStoreTest, RevalidateGivenOncePerKeyAcrossThreads) {
  CacheStore store(1 << 20);
  ASSERT_TRUE(store.insert(makeEntry("k"), kNoEntryLimit));
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i)
        if (store.lookup("k", kStart + absl::Seconds(15)).revalidate) granted.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(granted.load(), 1);
}

TEST(CacheStoreTest, CollidingHashesNeverServeAnotherKeysAnswer) {
  CacheStore store(64 << 20, &collidingHash);
  constexpr int kKeys = 300;
  for (int i = 0; i < kKeys; i += 2)
    ASSERT_TRUE(store.insert(makeEntry("key-" + std::to_string(i), "r", i), kNoEntryLimit));
  for (int i = 0; i < kKeys; ++i) {
    const std::string key = "key-" + std::to_string(i);
    const CacheStore::LookupResult r = store.lookup(key, kStart);
    if (i % 2 == 0) {
      ASSERT_NE(r.entry, nullptr) << key;
      EXPECT_EQ(r.entry->key, key);
      EXPECT_EQ(r.entry->body.size(), static_cast<size_t>(i));
    } else {
      EXPECT_EQ(r.kind, CacheStore::Lookup::kMiss) << key;
    }
  }
  // Prefixes and the empty key are different keys too.
  EXPECT_EQ(store.lookup("key-", kStart).kind, CacheStore::Lookup::kMiss);
  EXPECT_EQ(store.lookup("", kStart).kind, CacheStore::Lookup::kMiss);
  EXPECT_EQ(store.lookup("key-00", kStart).kind, CacheStore::Lookup::kMiss);

  // Replacing one key leaves its colliding neighbours alone.
  ASSERT_TRUE(store.insert(makeEntry("key-4", "r", 999), kNoEntryLimit));
  EXPECT_EQ(store.lookup("key-4", kStart).entry->body.size(), 999u);
  EXPECT_EQ(store.lookup("key-2", kStart).entry->body.size(), 2u);
  EXPECT_EQ(store.stats().entries, static_cast<uint64_t>(kKeys / 2));

  // Revalidation and fills are per key, not per hash.
  ASSERT_TRUE(store.lookup("key-2", kStart + absl::Seconds(15)).revalidate);
  EXPECT_TRUE(store.lookup("key-6", kStart + absl::Seconds(15)).revalidate);
  EXPECT_EQ(store.joinFill("a", nullptr), CacheStore::Fill::kLeader);
  EXPECT_EQ(store.joinFill("b", nullptr), CacheStore::Fill::kLeader);
  store.completeFill("a", nullptr);
  store.completeFill("b", nullptr);
}

TEST(CacheStoreTest, RefusesWhatCannotBeStored) {
  CacheStore store(4096);
  EXPECT_FALSE(store.insert(nullptr, kNoEntryLimit));
  auto small = makeEntry("small", "r", 10);
  const uint64_t small_bytes = CacheStore::entryBytes(*small);
  EXPECT_FALSE(store.insert(small, small_bytes - 1));  // over the route's max_entry_bytes
  EXPECT_TRUE(store.insert(small, small_bytes));       // exactly at it
  EXPECT_FALSE(store.insert(makeEntry("huge", "r", 5000), kNoEntryLimit));  // over the cap
  Freshness no_store = windows(10, 0, 0);
  no_store.store = false;
  EXPECT_FALSE(store.insert(makeEntry("nostore", "r", 10, kStart, no_store), kNoEntryLimit));
  EXPECT_EQ(store.stats().entries, 1u);
  EXPECT_EQ(store.stats().bytes, small_bytes);
  EXPECT_EQ(store.stats().evictions, 0u);
}

TEST(CacheStoreTest, ReplacingAnEntryRecountsItsBytes) {
  CacheStore store(1 << 20);
  ASSERT_TRUE(store.insert(makeEntry("k", "r", 100), kNoEntryLimit));
  auto bigger = makeEntry("k", "r", 300);
  ASSERT_TRUE(store.insert(bigger, kNoEntryLimit));
  EXPECT_EQ(store.stats().entries, 1u);
  EXPECT_EQ(store.stats().bytes, CacheStore::entryBytes(*bigger));
  EXPECT_EQ(store.routeStats("r").bytes, CacheStore::entryBytes(*bigger));
  EXPECT_EQ(store.lookup("k", kStart).entry, bigger);
}

TEST(CacheStoreTest, EvictsLeastRecentlyUsedFirst) {
  // One shard, room for exactly three entries of this size.
  const uint64_t each = CacheStore::entryBytes(*makeEntry("a"));
  CacheStore store(3 * each, &collidingHash);
  for (const char* k : {"a", "b", "c"}) ASSERT_TRUE(store.insert(makeEntry(k), kNoEntryLimit));
  ASSERT_NE(store.lookup("a", kStart).entry, nullptr);  // a is now the most recent
  ASSERT_TRUE(store.insert(makeEntry("d"), kNoEntryLimit));
  EXPECT_EQ(store.lookup("b", kStart).kind, CacheStore::Lookup::kMiss);
  EXPECT_EQ(store.stats().evictions, 1u);
  // Order now (most recent first): d a c. A stale hit counts as use too.
  ASSERT_EQ(store.lookup("c", kStart + absl::Seconds(15)).kind, CacheStore::Lookup::kStale);
  ASSERT_TRUE(store.insert(makeEntry("e"), kNoEntryLimit));
  EXPECT_EQ(store.lookup("a", kStart).kind, CacheStore::Lookup::kMiss);
  for (const char* k : {"c", "d", "e"}) EXPECT_NE(store.lookup(k, kStart).entry, nullptr) << k;
  // Replacing an entry makes it the most recent.
  ASSERT_TRUE(store.insert(makeEntry("c"), kNoEntryLimit));
  ASSERT_TRUE(store.insert(makeEntry("f"), kNoEntryLimit));
  EXPECT_EQ(store.lookup("d", kStart).kind, CacheStore::Lookup::kMiss);
  EXPECT_EQ(store.stats().entries, 3u);
  EXPECT_EQ(store.stats().evictions, 3u);
}

TEST(CacheStoreTest, OneBigInsertEvictsAcrossShards) {
  // Many small entries spread over the shards, then one that needs almost all
  // the room: everything else goes, from every shard, and the new one stays.
  const uint64_t cap = 64 * 1024;
  CacheStore store(cap);
  int stored = 0;
  for (int i = 0; store.stats().bytes + 400 < cap && i < 10000; ++i, ++stored)
    ASSERT_TRUE(store.insert(makeEntry("k" + std::to_string(i), "r", 100), kNoEntryLimit));
  ASSERT_GT(stored, 50);
  auto big = makeEntry("big", "r", cap - 1000);
  ASSERT_TRUE(store.insert(big, kNoEntryLimit));
  EXPECT_LE(store.stats().bytes, cap);
  EXPECT_EQ(store.lookup("big", kStart).entry, big);
  // What is left beside it is less than one small entry's worth.
  EXPECT_LE(store.stats().entries, 2u);
  EXPECT_GE(store.stats().evictions, static_cast<uint64_t>(stored - 1));
  EXPECT_EQ(store.routeStats("r").entries, store.stats().entries);
  EXPECT_EQ(store.routeStats("r").bytes, store.stats().bytes);
}

TEST(CacheStoreTest, ByteCapHoldsAfterEveryInsertProperty) {
  for (uint32_t seed : {1u, 2u, 3u, 17u, 12345u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    const uint64_t cap = 256 * 1024;
    CacheStore store(cap);
    // Mostly small answers, now and then one of up to a quarter of the cap.
    std::uniform_int_distribution<size_t> small_body(0, 2000);
    std::uniform_int_distribution<size_t> large_body(0, cap / 4);
    auto body = [&](std::mt19937_64& g) { return g() % 8 == 0 ? large_body(g) : small_body(g); };
    std::uniform_int_distribution<int> key(0, 2000);
    std::uniform_int_distribution<int> route(0, 3);
    const std::vector<std::string> routes = {"a", "b", "c", "d"};
    uint64_t inserted_bytes = 0;
    for (int i = 0; i < 100000 && inserted_bytes < 10 * cap; ++i) {
      auto e = makeEntry("key-" + std::to_string(key(rng)), routes[route(rng)], body(rng));
      const uint64_t bytes = CacheStore::entryBytes(*e);
      ASSERT_TRUE(store.insert(e, kNoEntryLimit));
      inserted_bytes += bytes;
      const CacheStore::Stats s = store.stats();
      ASSERT_LE(s.bytes, cap) << "after insert " << i;
      // The entry just stored survives its own insert.
      ASSERT_EQ(store.lookup(e->key, kStart).entry, e);
    }
    ASSERT_GE(inserted_bytes, 10 * cap);
    // The running total matches the per-route sums, and purging empties it.
    const CacheStore::Stats s = store.stats();
    EXPECT_GT(s.evictions, 0u);
    uint64_t route_bytes = 0, route_entries = 0;
    for (const auto& r : routes) {
      route_bytes += store.routeStats(r).bytes;
      route_entries += store.routeStats(r).entries;
    }
    EXPECT_EQ(route_bytes, s.bytes);
    EXPECT_EQ(route_entries, s.entries);
    EXPECT_EQ(store.purgeAll(), s.entries);
    EXPECT_EQ(store.stats().bytes, 0u);
    EXPECT_EQ(store.stats().entries, 0u);
  }
}

TEST(CacheStoreTest, SmallerCapAppliesAtTheNextInsert) {
  CacheStore store(1 << 20);
  for (int i = 0; i < 100; ++i)
    ASSERT_TRUE(store.insert(makeEntry("k" + std::to_string(i), "r", 1000), kNoEntryLimit));
  store.setMaxBytes(10000);
  EXPECT_EQ(store.maxBytes(), 10000u);
  ASSERT_TRUE(store.insert(makeEntry("last", "r", 1000), kNoEntryLimit));
  EXPECT_LE(store.stats().bytes, 10000u);
  EXPECT_NE(store.lookup("last", kStart).entry, nullptr);
}

TEST(CacheStoreTest, EntryHeldByAReaderSurvivesEvictionAndPurge) {
  const uint64_t each = CacheStore::entryBytes(*makeEntry("a", "r", 1000));
  CacheStore store(2 * each, &collidingHash);
  ASSERT_TRUE(store.insert(makeEntry("a", "r", 1000), kNoEntryLimit));
  std::shared_ptr<const CacheEntry> held = store.lookup("a", kStart).entry;
  ASSERT_NE(held, nullptr);
  std::weak_ptr<const CacheEntry> watch = held;
  ASSERT_TRUE(store.insert(makeEntry("b", "r", 1000), kNoEntryLimit));
  ASSERT_TRUE(store.insert(makeEntry("c", "r", 1000), kNoEntryLimit));
  EXPECT_EQ(store.lookup("a", kStart).kind, CacheStore::Lookup::kMiss);
  EXPECT_EQ(held->body, std::string(1000, 'x'));
  EXPECT_EQ(held->key, "a");

  std::shared_ptr<const CacheEntry> held_c = store.lookup("c", kStart).entry;
  store.purgeAll();
  EXPECT_EQ(held_c->body.size(), 1000u);
  // The store keeps nothing of its own: the last reader frees it.
  held.reset();
  EXPECT_TRUE(watch.expired());
}

class RecordingWaiter final : public CacheStore::FillWaiter {
 public:
  void onFilled(std::shared_ptr<const CacheEntry> entry) override {
    got = std::move(entry);
    calls.fetch_add(1);
  }
  std::shared_ptr<const CacheEntry> got;
  std::atomic<int> calls{0};
};

TEST(CacheStoreTest, CoalescingOneLeaderManyFollowersEachNotifiedOnce) {
  CacheStore store(1 << 20);
  constexpr int kFollowers = 8;
  std::vector<RecordingWaiter> followers(kFollowers);
  RecordingWaiter leader;
  ASSERT_EQ(store.joinFill("k", &leader), CacheStore::Fill::kLeader);
  for (auto& f : followers) ASSERT_EQ(store.joinFill("k", &f), CacheStore::Fill::kFollower);
  // Another key is its own fill.
  RecordingWaiter other;
  ASSERT_EQ(store.joinFill("other", &other), CacheStore::Fill::kLeader);

  auto answer = makeEntry("k");
  ASSERT_TRUE(store.insert(answer, kNoEntryLimit));
  store.completeFill("k", answer);
  for (auto& f : followers) {
    EXPECT_EQ(f.calls.load(), 1);
    EXPECT_EQ(f.got, answer);
  }
  EXPECT_EQ(leader.calls.load(), 0);
  EXPECT_EQ(other.calls.load(), 0);

  // The fill is over: completing it again notifies no one, the next miss leads.
  store.completeFill("k", answer);
  for (auto& f : followers) EXPECT_EQ(f.calls.load(), 1);
  EXPECT_EQ(store.joinFill("k", &leader), CacheStore::Fill::kLeader);

  // A failed leader hands followers null: they go upstream themselves.
  RecordingWaiter late;
  ASSERT_EQ(store.joinFill("k", &late), CacheStore::Fill::kFollower);
  late.got = answer;
  store.completeFill("k", nullptr);
  EXPECT_EQ(late.calls.load(), 1);
  EXPECT_EQ(late.got, nullptr);
  store.completeFill("other", nullptr);
  EXPECT_EQ(other.calls.load(), 0);
}

// A follower that gives up while the leader completes: when leaveFill says
// the follower was already notified, the notification has finished (the
// proxy then frees the waiter at once), and it is never notified twice or
// after a successful leave.
TEST(CacheStoreTest, LeaveRacingCompletionNeverSeesANotificationInProgress) {
  CacheStore store(1 << 20);
  auto answer = makeEntry("k");
  for (int round = 0; round < 2000; ++round) {
    RecordingWaiter follower;
    ASSERT_EQ(store.joinFill("k", nullptr), CacheStore::Fill::kLeader);
    ASSERT_EQ(store.joinFill("k", &follower), CacheStore::Fill::kFollower);
    std::atomic<bool> go{false};
    std::thread leader([&] {
      while (!go.load()) {
      }
      store.completeFill("k", answer);
    });
    go.store(true);
    bool left = store.leaveFill("k", &follower);
    int calls_at_return = follower.calls.load();
    leader.join();
    if (left) {
      EXPECT_EQ(calls_at_return, 0);
      EXPECT_EQ(follower.calls.load(), 0);
    } else {
      EXPECT_EQ(calls_at_return, 1) << "notified only partly when leaveFill returned";
      EXPECT_EQ(follower.calls.load(), 1);
    }
  }
}

TEST(CacheStoreTest, LeaveFillBeforeAndAfterCompletion) {
  CacheStore store(1 << 20);
  RecordingWaiter a, b, c;
  ASSERT_EQ(store.joinFill("k", nullptr), CacheStore::Fill::kLeader);
  ASSERT_EQ(store.joinFill("k", &a), CacheStore::Fill::kFollower);
  ASSERT_EQ(store.joinFill("k", &b), CacheStore::Fill::kFollower);
  EXPECT_TRUE(store.leaveFill("k", &a));   // gave up in time: no notification
  EXPECT_FALSE(store.leaveFill("k", &a));  // only once
  EXPECT_FALSE(store.leaveFill("k", &c));  // never joined
  EXPECT_FALSE(store.leaveFill("absent", &b));
  store.completeFill("k", nullptr);
  EXPECT_EQ(a.calls.load(), 0);
  EXPECT_EQ(b.calls.load(), 1);
  EXPECT_FALSE(store.leaveFill("k", &b));  // too late: it was notified
}

TEST(CacheStoreTest, LeaveFillRacingCompletionNotifiesXorRemoves) {
  CacheStore store(1 << 20);
  int removed = 0, notified = 0;
  for (int round = 0; round < 300; ++round) {
    RecordingWaiter follower;
    ASSERT_EQ(store.joinFill("k", nullptr), CacheStore::Fill::kLeader);
    ASSERT_EQ(store.joinFill("k", &follower), CacheStore::Fill::kFollower);
    bool left = false;
    std::thread leader([&] { store.completeFill("k", nullptr); });
    left = store.leaveFill("k", &follower);
    leader.join();  // after this, any onFilled has returned
    EXPECT_NE(left, follower.calls.load() == 1) << "round " << round;
    EXPECT_LE(follower.calls.load(), 1);
    (left ? removed : notified) += 1;
  }
  EXPECT_EQ(removed + notified, 300);
}

TEST(CacheStoreTest, PurgeRouteDropsOnlyThatRoute) {
  CacheStore store(1 << 20);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(store.insert(makeEntry("a" + std::to_string(i), "predict", 100), kNoEntryLimit));
    ASSERT_TRUE(store.insert(makeEntry("b" + std::to_string(i), "embed", 200), kNoEntryLimit));
  }
  const CacheStore::RouteStats predict = store.routeStats("predict");
  const CacheStore::RouteStats embed = store.routeStats("embed");
  EXPECT_EQ(predict.entries, 50u);
  EXPECT_EQ(embed.entries, 50u);
  EXPECT_EQ(predict.bytes + embed.bytes, store.stats().bytes);

  EXPECT_EQ(store.purgeRoute("predict"), 50u);
  EXPECT_EQ(store.purgeRoute("predict"), 0u);
  EXPECT_EQ(store.purgeRoute("missing"), 0u);
  EXPECT_EQ(store.routeStats("predict").entries, 0u);
  EXPECT_EQ(store.routeStats("predict").bytes, 0u);
  EXPECT_EQ(store.stats().bytes, embed.bytes);
  EXPECT_EQ(store.stats().entries, 50u);
  EXPECT_EQ(store.stats().evictions, 0u);  // purges are not evictions
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(store.lookup("a" + std::to_string(i), kStart).kind, CacheStore::Lookup::kMiss);
    EXPECT_EQ(store.lookup("b" + std::to_string(i), kStart).kind, CacheStore::Lookup::kFresh);
  }
}

// Four threads mix lookups, inserts, refreshes, fills, follower give-ups and
// purges on a small store. Checked throughout: a lookup only ever returns its
// own key; afterwards: the cap holds, the totals agree with the per-route
// sums, each follower was notified exactly once unless it left in time.
TEST(CacheStoreTest, FourThreadStressKeepsInvariants) {
  const uint64_t cap = 128 * 1024;
  CacheStore store(cap);
  const std::vector<std::string> routes = {"r0", "r1", "r2"};
  constexpr int kThreads = 4;
  constexpr int kOps = 20000;
  struct Follower {
    RecordingWaiter waiter;
    bool left = false;
  };
  std::vector<std::deque<Follower>> followers(kThreads);
  std::atomic<int> wrong_key{0};

  auto work = [&](int t) {
    std::mt19937 rng(1000 + t);
    std::uniform_int_distribution<int> op(0, 99);
    std::uniform_int_distribution<int> key(0, 199);
    std::uniform_int_distribution<size_t> body(0, 4000);
    std::uniform_int_distribution<int> age_s(0, 120);
    std::deque<std::string> leading;  // keys this thread leads a fill for, oldest first
    auto completeOldest = [&](const std::string& route, size_t body_bytes) {
      const std::string k = std::move(leading.front());
      leading.pop_front();
      auto e = makeEntry(k, route, body_bytes, kStart);
      store.completeFill(k, store.insert(e, kNoEntryLimit) ? e : nullptr);
    };
    for (int i = 0; i < kOps; ++i) {
      const std::string k = "key-" + std::to_string(key(rng));
      const std::string& route = routes[static_cast<size_t>(key(rng)) % routes.size()];
      const absl::Time now = kStart + absl::Seconds(age_s(rng));
      const int o = op(rng);
      if (o < 50) {
        const CacheStore::LookupResult r = store.lookup(k, now);
        if (r.entry != nullptr && r.entry->key != k) wrong_key.fetch_add(1);
        if (r.revalidate) {
          if (o % 2 == 0) {
            store.insert(makeEntry(k, route, body(rng), now), kNoEntryLimit);
          } else {
            store.revalidationDone(k);
          }
        }
      } else if (o < 75) {
        store.insert(makeEntry(k, route, body(rng), kStart), 3000);
      } else if (o < 97) {
        // A leader keeps its fill open for a few more fills of its own, so other
        // threads join as followers; half the followers try to give up, as on a deadline.
        Follower& f = followers[t].emplace_back();
        if (store.joinFill(k, &f.waiter) == CacheStore::Fill::kLeader) {
          followers[t].pop_back();
          leading.push_back(k);
          if (leading.size() > 3) completeOldest(route, body(rng));
        } else if (o % 2 == 0) {
          f.left = store.leaveFill(k, &f.waiter);
        }
      } else if (o < 99) {
        store.purgeRoute(route);
      } else {
        const CacheStore::Stats s = store.stats();
        (void)s;
      }
    }
    while (!leading.empty()) completeOldest(routes[0], 10);
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(work, t);
  for (auto& th : threads) th.join();

  EXPECT_EQ(wrong_key.load(), 0);
  const CacheStore::Stats s = store.stats();
  EXPECT_LE(s.bytes, cap);
  uint64_t route_bytes = 0, route_entries = 0;
  for (const auto& r : routes) {
    route_bytes += store.routeStats(r).bytes;
    route_entries += store.routeStats(r).entries;
  }
  EXPECT_EQ(route_bytes, s.bytes);
  EXPECT_EQ(route_entries, s.entries);
  int followers_seen = 0;
  for (const auto& per_thread : followers) {
    for (const Follower& f : per_thread) {
      ++followers_seen;
      // Every leader completed, so a follower that stayed was notified once.
      EXPECT_EQ(f.waiter.calls.load(), f.left ? 0 : 1);
      if (f.waiter.got != nullptr) {
        EXPECT_EQ(f.waiter.got->key.rfind("key-", 0), 0u);
      }
    }
  }
  EXPECT_GT(followers_seen, 0);
  EXPECT_EQ(store.purgeAll(), s.entries);
  EXPECT_EQ(store.stats().bytes, 0u);
}

}  // namespace
}  // namespace airbag::policy
