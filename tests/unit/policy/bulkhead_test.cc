// Tests of the bulkhead: admission, FIFO hand-off, cancel races, reload, a seeded
// random property check against a simple model, and a 4-thread stress.
#include "policy/bulkhead.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace airbag::policy {
namespace {

BulkheadConfig config(uint32_t max_in_flight, uint32_t max_queue) {
  BulkheadConfig c;
  c.max_in_flight = max_in_flight;
  c.max_queue = max_queue;
  c.queue_timeout = absl::Milliseconds(100);
  return c;
}

// Records the order in which waiters are granted.
class RecordingWaiter final : public BulkheadWaiter {
 public:
  RecordingWaiter(int id, std::vector<int>* log) : id_(id), log_(log) {}
  void onGranted() override {
    ++granted_;
    log_->push_back(id_);
  }
  int granted() const { return granted_; }

 private:
  int id_;
  std::vector<int>* log_;
  int granted_ = 0;
};

TEST(BulkheadTest, AdmitsUpToMaxThenQueuesThenRejects) {
  Bulkhead b(config(2, 1));
  std::vector<int> log;
  RecordingWaiter w1(1, &log), w2(2, &log);
  EXPECT_EQ(b.tryAcquire(nullptr), BulkheadAdmit::kAdmitted);
  EXPECT_EQ(b.tryAcquire(nullptr), BulkheadAdmit::kAdmitted);
  EXPECT_EQ(b.tryAcquire(&w1), BulkheadAdmit::kQueued);
  EXPECT_EQ(b.tryAcquire(&w2), BulkheadAdmit::kRejected);
  EXPECT_EQ(b.tryAcquire(nullptr), BulkheadAdmit::kRejected);
  const Bulkhead::Stats s = b.stats();
  EXPECT_EQ(s.in_flight, 2u);
  EXPECT_EQ(s.queued, 1u);
  EXPECT_EQ(s.rejected, 2u);
  EXPECT_EQ(b.queueTimeout(), absl::Milliseconds(100));
}

TEST(BulkheadTest, ReleasePassesTheSlotToTheFirstWaiter) {
  Bulkhead b(config(1, 3));
  std::vector<int> log;
  RecordingWaiter w1(1, &log), w2(2, &log), w3(3, &log);
  ASSERT_EQ(b.tryAcquire(nullptr), BulkheadAdmit::kAdmitted);
  ASSERT_EQ(b.tryAcquire(&w1), BulkheadAdmit::kQueued);
  ASSERT_EQ(b.tryAcquire(&w2), BulkheadAdmit::kQueued);
  ASSERT_EQ(b.tryAcquire(&w3), BulkheadAdmit::kQueued);
  b.release();
  EXPECT_EQ(log, std::vector<int>({1}));
  EXPECT_EQ(b.inFlight(), 1u) << "the slot moved, it was not freed";
  // A newcomer may not jump the queue.
  EXPECT_EQ(b.tryAcquire(nullptr), BulkheadAdmit::kRejected);
  b.release();
  b.release();
  EXPECT_EQ(log, std::vector<int>({1, 2, 3}));
  b.release();
  EXPECT_EQ(b.stats().in_flight, 0u);
  EXPECT_EQ(w1.granted() + w2.granted() + w3.granted(), 3);
}

TEST(BulkheadTest, CancelRemovesFromAnyPlaceInTheQueue) {
  Bulkhead b(config(1, 3));
  std::vector<int> log;
  RecordingWaiter w1(1, &log), w2(2, &log), w3(3, &log);
  ASSERT_EQ(b.tryAcquire(nullptr), BulkheadAdmit::kAdmitted);
  for (RecordingWaiter* w : {&w1, &w2, &w3}) ASSERT_EQ(b.tryAcquire(w), BulkheadAdmit::kQueued);
  EXPECT_TRUE(b.cancel(&w2));
  EXPECT_FALSE(b.cancel(&w2)) << "cancelled once only";
  EXPECT_EQ(b.stats().queued, 2u);
  b.release();
  EXPECT_TRUE(b.cancel(&w3));
  EXPECT_FALSE(b.cancel(&w1)) << "already granted: the caller owns a slot";
  EXPECT_EQ(log, std::vector<int>({1}));
  b.release();
  EXPECT_EQ(b.stats().in_flight, 0u);
  EXPECT_EQ(b.stats().queued, 0u);
  // A cancelled waiter may queue again.
  ASSERT_EQ(b.tryAcquire(nullptr), BulkheadAdmit::kAdmitted);
  EXPECT_EQ(b.tryAcquire(&w2), BulkheadAdmit::kQueued);
  b.release();
  EXPECT_EQ(log, std::vector<int>({1, 2}));
}

TEST(BulkheadTest, CancelOfAWaiterQueuedElsewhereIsRefused) {
  Bulkhead a(config(1, 1)), b(config(1, 1));
  std::vector<int> log;
  RecordingWaiter w(1, &log);
  ASSERT_EQ(a.tryAcquire(nullptr), BulkheadAdmit::kAdmitted);
  ASSERT_EQ(a.tryAcquire(&w), BulkheadAdmit::kQueued);
  EXPECT_FALSE(b.cancel(&w));
  EXPECT_TRUE(a.cancel(&w));
}

TEST(BulkheadTest, NoQueueMeansRejectWhenFull) {
  Bulkhead b(config(1, 0));
  std::vector<int> log;
  RecordingWaiter w(1, &log);
  ASSERT_EQ(b.tryAcquire(&w), BulkheadAdmit::kAdmitted);
  EXPECT_EQ(b.tryAcquire(&w), BulkheadAdmit::kRejected);
  EXPECT_EQ(b.stats().rejected, 1u);
}

TEST(BulkheadTest, ReconfigureGrowsByGrantingWaitersAndShrinksByDraining) {
  Bulkhead b(config(1, 4));
  std::vector<int> log;
  RecordingWaiter w1(1, &log), w2(2, &log), w3(3, &log);
  ASSERT_EQ(b.tryAcquire(nullptr), BulkheadAdmit::kAdmitted);
  for (RecordingWaiter* w : {&w1, &w2, &w3}) ASSERT_EQ(b.tryAcquire(w), BulkheadAdmit::kQueued);
  b.reconfigure(config(3, 4));
  EXPECT_EQ(log, std::vector<int>({1, 2}));
  EXPECT_EQ(b.stats().in_flight, 3u);
  EXPECT_EQ(b.stats().queued, 1u);
  b.reconfigure(config(1, 4));
  b.release();  // 3 -> 2: still above the new limit, the waiter keeps waiting
  b.release();  // 2 -> 1
  EXPECT_EQ(log, std::vector<int>({1, 2}));
  b.release();  // at the limit: passes to w3
  EXPECT_EQ(log, std::vector<int>({1, 2, 3}));
  EXPECT_EQ(b.stats().in_flight, 1u);
}

// A long seeded random mix of acquires, releases and cancels checked against a
// model: in_flight never exceeds the limit and the queue is served in FIFO order.
TEST(BulkheadPropertyTest, NeverAboveLimitAndServesFifo) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE(testing::Message() << "seed " << seed);
    std::mt19937 rng(seed);
    const uint32_t max_in_flight = 1 + seed % 5;
    const uint32_t max_queue = seed % 7;
    Bulkhead b(config(max_in_flight, max_queue));
    std::vector<int> granted_log;
    std::vector<std::unique_ptr<RecordingWaiter>> waiters;
    std::deque<int> model_queue;  // ids in arrival order
    uint32_t holders = 0;
    std::uniform_int_distribution<int> pick(0, 99);
    for (int step = 0; step < 20000; ++step) {
      const int r = pick(rng);
      if (r < 45) {
        const int id = static_cast<int>(waiters.size());
        waiters.push_back(std::make_unique<RecordingWaiter>(id, &granted_log));
        switch (b.tryAcquire(waiters.back().get())) {
          case BulkheadAdmit::kAdmitted:
            ASSERT_TRUE(model_queue.empty());
            ++holders;
            break;
          case BulkheadAdmit::kQueued:
            ASSERT_EQ(holders, max_in_flight);
            model_queue.push_back(id);
            break;
          case BulkheadAdmit::kRejected:
            ASSERT_EQ(holders, max_in_flight);
            ASSERT_EQ(model_queue.size(), max_queue);
            break;
        }
      } else if (r < 85) {
        if (holders == 0) continue;
        const size_t before = granted_log.size();
        b.release();
        if (model_queue.empty()) {
          --holders;
          ASSERT_EQ(granted_log.size(), before);
        } else {
          ASSERT_EQ(granted_log.size(), before + 1);
          ASSERT_EQ(granted_log.back(), model_queue.front()) << "FIFO";
          model_queue.pop_front();
        }
      } else if (!model_queue.empty()) {
        const size_t k = std::uniform_int_distribution<size_t>(0, model_queue.size() - 1)(rng);
        ASSERT_TRUE(b.cancel(waiters[static_cast<size_t>(model_queue[k])].get()));
        model_queue.erase(model_queue.begin() + static_cast<std::ptrdiff_t>(k));
      }
      const Bulkhead::Stats s = b.stats();
      ASSERT_LE(s.in_flight, max_in_flight);
      ASSERT_EQ(s.in_flight, holders);
      ASSERT_EQ(s.queued, model_queue.size());
    }
    for (const auto& w : waiters) ASSERT_LE(w->granted(), 1);
  }
}

// A waiter that a worker thread polls, as the proxy's worker would be woken.
// Counts its grants so that a double onGranted is seen.
class FlagWaiter final : public BulkheadWaiter {
 public:
  void onGranted() override { grants_.fetch_add(1, std::memory_order_acq_rel); }
  bool granted() const { return grants_.load(std::memory_order_acquire) > 0; }
  int grants() const { return grants_.load(std::memory_order_acquire); }
  void reset() { grants_.store(0, std::memory_order_relaxed); }

 private:
  std::atomic<int> grants_{0};
};

// A short pause made of this thread's own work. std::this_thread::yield() is no
// such pause: it hands the core to any runnable process on the machine, so on a
// loaded machine each one cost a time slice of someone else's work and the
// stress tests took as long as the machine was busy (80-120 s, with a tenth of a
// second of their own CPU) instead of as long as their work.
void relax() {
  for (int i = 0; i < 32; ++i) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
  }
}

// Waits for `done` with relax(), then, if it is still not done, with yields: the
// thread that will make it true may be off its core, and only a yield lets it run
// on a machine with fewer cores than threads. Returns false at `deadline`.
template <typename Done>
bool waitFor(Done done, std::chrono::steady_clock::time_point deadline) {
  for (int k = 0; !done(); ++k) {
    if (k < 1000) {
      relax();
      continue;
    }
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// What a run of contending threads saw.
struct ContentionResult {
  int max_holders = 0;
  int stuck = 0;           // waits that never ended
  int64_t queued = 0;      // kQueued answers
  int64_t granted = 0;     // of those, granted (onGranted seen)
  int64_t cancelled = 0;   // of those, cancel() returned true
  int64_t bad_grants = 0;  // episodes with onGranted other than exactly once, or after a cancel
};

// `threads` threads each make up to `iterations` tryAcquire calls on `b` with
// their own waiter, until the run has seen kMaxQueued queued answers. A queued
// caller polls up to `patience` times (picked at random up to max_patience; a
// negative max_patience waits for the grant however long it takes), then cancels
// as a queue timeout would; a poll is a relax(), so patience is an amount of work.
//
// What the run costs is bounded by its work, not by how busy the machine is: a
// queued hand-off to a thread that is off its core costs a scheduling delay, so
// their number is capped. One hold in four lasts until another thread has tried
// for a slot (spinning a bounded while; then, from a budget of kHolderYields for
// the whole run, yielding once), so that callers do queue however few cores the
// machine gives the test.
constexpr int64_t kMaxQueued = 1000;
constexpr int kHolderYields = 400;
ContentionResult contend(Bulkhead& b, int threads, int iterations, uint32_t seed,
                         int max_patience) {
  std::atomic<int> holders{0};
  std::atomic<int> max_holders{0};
  std::atomic<int> stuck{0};
  std::atomic<int64_t> queued{0}, granted{0}, cancelled{0}, bad_grants{0};
  std::atomic<int> started{0};
  std::atomic<int64_t> attempts{0};
  std::atomic<int> yields_left{kHolderYields};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  auto hold = [&](std::mt19937& rng) {
    const int now_holding = holders.fetch_add(1) + 1;
    int seen = max_holders.load();
    while (now_holding > seen && !max_holders.compare_exchange_weak(seen, now_holding)) {
    }
    if (rng() % 4 == 0) {
      const int64_t at = attempts.load();
      for (int k = 0; k < 16 && attempts.load() == at; ++k) relax();
      if (attempts.load() == at && yields_left.fetch_sub(1) > 0) std::this_thread::yield();
    }
    holders.fetch_sub(1);
    b.release();
  };
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937 rng(seed + static_cast<uint32_t>(t));
      FlagWaiter w;
      // Start together, or the first threads are done before the last begin.
      started.fetch_add(1);
      if (!waitFor([&] { return started.load() == threads; }, deadline)) {
        stuck.fetch_add(1);
        return;
      }
      for (int i = 0; i < iterations && queued.load() < kMaxQueued; ++i) {
        w.reset();
        attempts.fetch_add(1);
        const BulkheadAdmit a = b.tryAcquire(&w);
        if (a == BulkheadAdmit::kRejected) continue;
        if (a == BulkheadAdmit::kAdmitted && w.grants() != 0) bad_grants.fetch_add(1);
        if (a == BulkheadAdmit::kQueued) {
          queued.fetch_add(1);
          // Poll a bounded number of times, then give up as a queue timeout would.
          const int patience =
              max_patience < 0 ? -1 : std::uniform_int_distribution<int>(0, max_patience)(rng);
          if (patience >= 0) {
            for (int k = 0; k < patience && !w.granted(); ++k) relax();
          }
          if (patience >= 0 && !w.granted() && b.cancel(&w)) {
            cancelled.fetch_add(1);
            if (w.grants() != 0) bad_grants.fetch_add(1);
            continue;
          }
          // Granted (or granted while cancelling, or never giving up): wait for the
          // hand-off to land.
          if (!waitFor([&] { return w.granted(); }, deadline)) {
            stuck.fetch_add(1);
            return;
          }
          granted.fetch_add(1);
          if (w.grants() != 1) bad_grants.fetch_add(1);
        }
        hold(rng);
      }
    });
  }
  for (std::thread& th : workers) th.join();
  std::printf("%lld tries: %lld queued, %lld granted, %lld cancelled; max holders %d\n",
              static_cast<long long>(attempts.load()), static_cast<long long>(queued.load()),
              static_cast<long long>(granted.load()), static_cast<long long>(cancelled.load()),
              max_holders.load());
  return ContentionResult{max_holders.load(), stuck.load(),     queued.load(),
                          granted.load(),     cancelled.load(), bad_grants.load()};
}

// Four threads contend for three slots and a short queue, timing out (cancel)
// some waits; the number of holders never exceeds the limit and everything balances.
TEST(BulkheadThreadTest, FourThreadsNeverExceedTheLimit) {
  constexpr uint32_t kMax = 3;
  Bulkhead b(config(kMax, 2));
  const ContentionResult r = contend(b, 4, 20000, 7, 200);
  EXPECT_EQ(r.stuck, 0);
  EXPECT_LE(r.max_holders, static_cast<int>(kMax));
  const Bulkhead::Stats s = b.stats();
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.queued, 0u);
}

// The fast path (no mutex) races the queue: with one slot, a long queue and
// waiters that never give up, a slot lost between a release and a waiter being
// queued would leave a waiter stuck. Every queued waiter is granted exactly once.
TEST(BulkheadThreadTest, NoWaiterOrSlotIsLostWhenNobodyCancels) {
  for (uint32_t max : {1u, 2u}) {
    SCOPED_TRACE(testing::Message() << "max_in_flight " << max);
    Bulkhead b(config(max, 8));
    const ContentionResult r = contend(b, 4, 3000, 50 + max, -1);
    EXPECT_EQ(r.stuck, 0);
    EXPECT_LE(r.max_holders, static_cast<int>(max));
    EXPECT_EQ(r.granted, r.queued);
    EXPECT_EQ(r.cancelled, 0);
    EXPECT_EQ(r.bad_grants, 0);
    EXPECT_GT(r.queued, 0) << "the run did contend";
    const Bulkhead::Stats s = b.stats();
    EXPECT_EQ(s.in_flight, 0u);
    EXPECT_EQ(s.queued, 0u);
  }
}

// Waits time out while a fifth thread reloads the limit between 1 and 4: holders
// never exceed the larger limit, each queued waiter ends granted or cancelled
// exactly once, and every slot comes back.
TEST(BulkheadThreadTest, ReloadsAndCancelsLoseNothing) {
  Bulkhead b(config(1, 3));
  std::atomic<bool> done{false};
  std::thread reloader([&] {
    for (uint32_t i = 0; !done.load(); ++i) {
      b.reconfigure(config(i % 2 == 0 ? 4 : 1, 3));
      std::this_thread::yield();
    }
  });
  const ContentionResult r = contend(b, 4, 20000, 90, 50);
  done.store(true);
  reloader.join();
  EXPECT_EQ(r.stuck, 0);
  EXPECT_LE(r.max_holders, 4);
  EXPECT_EQ(r.granted + r.cancelled, r.queued);
  EXPECT_EQ(r.bad_grants, 0);
  const Bulkhead::Stats s = b.stats();
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.queued, 0u);
}

// A waiter that gives up while another thread releases a slot: when cancel()
// says the slot was granted, the grant's callback has finished (the proxy
// then frees the waiter at once); when it says the waiter left, no callback
// ever comes.
class SlowCountingWaiter final : public BulkheadWaiter {
 public:
  void onGranted() override {
    entered.store(true);
    for (int i = 0; i < 200; ++i) spin.fetch_add(1, std::memory_order_relaxed);
    calls.fetch_add(1);
  }
  std::atomic<bool> entered{false};
  std::atomic<int> spin{0};
  std::atomic<int> calls{0};
};

TEST(BulkheadTest, CancelRacingAGrantNeverSeesTheGrantInProgress) {
  for (int round = 0; round < 2000; ++round) {
    Bulkhead b(config(1, 1));
    ASSERT_EQ(b.tryAcquire(nullptr), BulkheadAdmit::kAdmitted);
    SlowCountingWaiter w;
    ASSERT_EQ(b.tryAcquire(&w), BulkheadAdmit::kQueued);
    std::atomic<bool> go{false};
    std::thread releaser([&] {
      while (!go.load()) {
      }
      b.release();
    });
    go.store(true);
    bool left = b.cancel(&w);
    int calls_at_return = w.calls.load();
    releaser.join();
    if (left) {
      EXPECT_EQ(calls_at_return, 0);
      EXPECT_EQ(w.calls.load(), 0);
      EXPECT_EQ(b.inFlight(), 0u);
    } else {
      EXPECT_EQ(calls_at_return, 1) << "granted, but the callback had not finished";
      b.release();  // the granted slot is the caller's to give back
      EXPECT_EQ(b.inFlight(), 0u);
    }
  }
}

}  // namespace

}  // namespace airbag::policy
