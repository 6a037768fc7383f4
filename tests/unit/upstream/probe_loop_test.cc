// ProbeLoop and ProbeSet: every posted task runs, in the order posted, on the
// loop's own thread; nothing runs once the loop stopped; updates posted
// together leave only the last one's workers, none of the others' timers
// having fired.
#include "proxy/upstream/probe_loop.h"

#include <event2/event.h>

#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "proxy/upstream/probe_set.h"

namespace airbag::upstream {
namespace {

constexpr std::chrono::seconds kBound(10);

TEST(ProbeLoopTest, EveryPostRunsInOrderOnTheLoopsThread) {
  ProbeLoop loop;
  std::vector<int> ran;  // the loop's thread only, until `done`
  std::vector<std::thread::id> on;
  auto record = [&](int i) {
    return [&ran, &on, i] {
      ran.push_back(i);
      on.push_back(std::this_thread::get_id());
    };
  };
  // Posted before the thread starts, then while it runs, from another thread too.
  for (int i = 0; i < 100; ++i) loop.post(record(i));
  loop.start();
  for (int i = 100; i < 200; ++i) loop.post(record(i));
  std::thread([&] {
    for (int i = 200; i < 300; ++i) loop.post(record(i));
  }).join();
  std::promise<std::thread::id> done;
  loop.post([&done] { done.set_value(std::this_thread::get_id()); });
  std::future<std::thread::id> loop_thread = done.get_future();
  ASSERT_EQ(loop_thread.wait_for(kBound), std::future_status::ready);
  const std::thread::id id = loop_thread.get();
  EXPECT_NE(id, std::this_thread::get_id());
  ASSERT_EQ(ran.size(), 300u);
  for (int i = 0; i < 300; ++i) EXPECT_EQ(ran[i], i);
  for (const std::thread::id& t : on) EXPECT_EQ(t, id);
}

TEST(ProbeLoopTest, NothingRunsOnceStoppedAndWhatWasLeftIsReleased) {
  auto ran = std::make_shared<int>(0);
  {
    ProbeLoop loop;
    loop.start();
    std::promise<void> first;
    loop.post([ran, &first] {
      ++*ran;
      first.set_value();
    });
    ASSERT_EQ(first.get_future().wait_for(kBound), std::future_status::ready);
    loop.stop();
    loop.post([ran] { ++*ran; });
    EXPECT_EQ(ran.use_count(), 2);  // held by the task that will not run
  }
  EXPECT_EQ(*ran, 1);
  EXPECT_EQ(ran.use_count(), 1);
}

// A worker whose first timer, at once, records its generation.
struct Gen {
  int generation;
};
struct Fired {
  std::mutex mu;
  std::vector<int> generations;
  std::promise<void> last;  // set when generation `last_generation` fires
  int last_generation = 0;
};
class GenWorker {
 public:
  GenWorker(event_base* base, Gen g, Fired& fired)
      : g_(g), fired_(fired), timer_(evtimer_new(base, &GenWorker::onTimerCb, this), &event_free) {
    timeval now = {0, 0};
    evtimer_add(timer_.get(), &now);
  }

 private:
  static void onTimerCb(int, short, void* self) { static_cast<GenWorker*>(self)->onTimer(); }
  void onTimer() {
    std::lock_guard<std::mutex> l(fired_.mu);
    fired_.generations.push_back(g_.generation);
    if (g_.generation == fired_.last_generation) fired_.last.set_value();
  }

  Gen g_;
  Fired& fired_;
  std::unique_ptr<event, void (*)(event*)> timer_;
};

TEST(ProbeSetTest, UpdatesPostedTogetherStartOnlyTheLastOnesWorkers) {
  Fired fired;
  fired.last_generation = 3;
  ProbeSet<Gen, GenWorker> set([&](event_base* base, Gen g) -> std::unique_ptr<GenWorker> {
    if (g.generation < 0) return nullptr;  // a target that needs no worker
    return std::make_unique<GenWorker>(base, g, fired);
  });
  // As the process does: the first updates come before the thread starts.
  set.update({Gen{1}, Gen{1}});
  set.update({Gen{2}, Gen{-1}});
  set.update({Gen{3}, Gen{-1}});
  set.start();
  ASSERT_EQ(fired.last.get_future().wait_for(kBound), std::future_status::ready);
  // The replaced workers' timers, due at once as well, would have fired in
  // the same pass as the last one's, before it.
  std::lock_guard<std::mutex> l(fired.mu);
  EXPECT_EQ(fired.generations, std::vector<int>{3});
}

}  // namespace
}  // namespace airbag::upstream
