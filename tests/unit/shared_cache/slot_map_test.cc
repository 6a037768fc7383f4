// Redis Cluster's routing facts: the slot map read from CLUSTER SLOTS (real
// replies, and each way a reply can be malformed), MOVED corrections, and
// which argument of a command picks its slot.
#include "proxy/shared_cache/slot_map.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "tests/unit/shared_cache/replies.h"

namespace airbag::shared_cache {
namespace {

using ::testing::HasSubstr;

using namespace test_replies;

TEST(SlotMap, ReadsEveryRangeOfAThreeMasterCluster) {
  Reply reply = array({range(0, 5460, "10.0.0.1", 7000), range(5461, 10922, "10.0.0.2", 7001),
                       range(10923, 16383, "10.0.0.3", 7002)});
  auto map = parseClusterSlots(reply, "seed");
  ASSERT_TRUE(map.ok()) << map.status();
  EXPECT_EQ(map->covered(), kClusterSlots);
  ASSERT_EQ(map->nodes().size(), 3u);
  EXPECT_EQ(map->nodeFor(0)->name(), "10.0.0.1:7000");
  EXPECT_EQ(map->nodeFor(5460)->name(), "10.0.0.1:7000");
  EXPECT_EQ(map->nodeFor(5461)->name(), "10.0.0.2:7001");
  EXPECT_EQ(map->nodeFor(16383)->name(), "10.0.0.3:7002");
  EXPECT_EQ(map->nodeFor(16384), nullptr);
  EXPECT_EQ(map->nodeFor(-1), nullptr);
}

TEST(SlotMap, OneMasterWithManyRangesIsOneNodeAndGapsAreUnserved) {
  Reply reply = array({range(0, 99, "10.0.0.1", 7000), range(200, 299, "10.0.0.1", 7000)});
  auto map = parseClusterSlots(reply, "seed");
  ASSERT_TRUE(map.ok()) << map.status();
  EXPECT_EQ(map->nodes().size(), 1u);
  EXPECT_EQ(map->covered(), 200);
  EXPECT_EQ(map->nodeFor(150), nullptr);
}

TEST(SlotMap, AnUnknownHostIsTheNodeThatAnswered) {
  for (std::string unknown : {"", "?"}) {
    auto map = parseClusterSlots(array({range(0, 16383, unknown, 7000)}), "192.0.2.7");
    ASSERT_TRUE(map.ok()) << map.status();
    EXPECT_EQ(map->nodeFor(42)->name(), "192.0.2.7:7000");
  }
  EXPECT_EQ((NodeAddress{"::1", 7000}.name()), "[::1]:7000");
}

TEST(SlotMap, MovedPointsOneSlotElsewhere) {
  auto map = parseClusterSlots(array({range(0, 16383, "10.0.0.1", 7000)}), "seed");
  ASSERT_TRUE(map.ok());
  map->assign(3999, NodeAddress{"10.0.0.2", 7001});
  EXPECT_EQ(map->nodeFor(3999)->name(), "10.0.0.2:7001");
  EXPECT_EQ(map->nodeFor(3998)->name(), "10.0.0.1:7000");
  EXPECT_EQ(map->nodes().size(), 2u);
  map->assign(3999, NodeAddress{"10.0.0.1", 7000});  // back: no third node
  EXPECT_EQ(map->nodes().size(), 2u);
  map->assign(kClusterSlots, NodeAddress{"10.0.0.9", 1});  // out of range: ignored
  EXPECT_EQ(map->nodes().size(), 2u);
}

TEST(SlotMap, MalformedRepliesAreRefusedWithTheReason) {
  struct Case {
    Reply reply;
    std::string error;
  };
  Reply error;
  error.type = Reply::Type::kError;
  error.str = "ERR This instance has cluster support disabled";
  std::vector<Case> cases = {
      {error, "cluster support disabled"},
      {string("x"), "not an array"},
      {array({}), "no slot has a master"},
      {array({integer(1)}), "range 0: not [start, end, master"},
      {array({range(5, 4, "h", 1)}), "not a range in 0..16383"},
      {array({range(-1, 4, "h", 1)}), "not a range in 0..16383"},
      {array({range(0, 16384, "h", 1)}), "not a range in 0..16383"},
      {array({range(0, 1, "h", 0)}), "port in 1..65535"},
      {array({range(0, 1, "h", 65536)}), "port in 1..65535"},
      {array({array({integer(0), integer(1), array({integer(1), integer(2)})})}), "[host, port"},
      {array({range(0, 1, "", 7000)}), "no host"},
  };
  for (const Case& c : cases) {
    auto map = parseClusterSlots(c.reply, "");
    ASSERT_FALSE(map.ok()) << c.error;
    EXPECT_THAT(std::string(map.status().message()), HasSubstr(c.error));
  }
}

TEST(SlotMap, TheKeyOfACommand) {
  EXPECT_EQ(commandKey({"GET", "airbag:r:ab"}), "airbag:r:ab");
  EXPECT_EQ(commandKey({"SET", "k", "v", "PX", "10"}), "k");
  EXPECT_EQ(commandKey({"unlink", "k"}), "k");
  EXPECT_EQ(commandKey({"EVAL", "return 1", "1", "lock", "tok"}), "lock");
  EXPECT_EQ(commandKey({"EVALSHA", "abc", "0"}), std::nullopt);
  EXPECT_EQ(commandKey({"EVAL", "return 1", "x", "k"}), std::nullopt);
  EXPECT_EQ(commandKey({"PING"}), std::nullopt);
  EXPECT_EQ(commandKey({"scan", "0", "MATCH", "airbag:*"}), std::nullopt);
  EXPECT_EQ(commandKey({"CLUSTER", "SLOTS"}), std::nullopt);
  EXPECT_EQ(commandKey({}), std::nullopt);
}

}  // namespace
}  // namespace airbag::shared_cache
