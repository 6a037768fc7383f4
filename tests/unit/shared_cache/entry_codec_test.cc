// The Redis value of a cache entry: a round trip keeps every field, and every
// kind of damage, foreign version or misplaced value decodes to a miss. Keys
// and hash slots follow the Redis Cluster spec.
#include "proxy/shared_cache/entry_codec.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

namespace airbag::shared_cache {
namespace {

policy::CacheEntry sample() {
  policy::CacheEntry e;
  e.key = "4:chat4:POST13:/v1/completej{\"a\":1}";
  e.status = 203;
  e.headers = {{"content-type", "application/json"}, {"x-model", "m1"}};
  e.body = std::string("{\"answer\":\"hi\0there\"}", 22);
  e.stream = true;
  e.stored_at = absl::FromUnixMicros(1'700'000'000'123'456);
  e.freshness.ttl = absl::Seconds(60);
  e.freshness.stale_while_revalidate = absl::Seconds(5);
  e.freshness.stale_if_error = absl::Seconds(3600);
  e.route = "chat";
  return e;
}

TEST(EntryCodec, RoundTripKeepsEveryField) {
  policy::CacheEntry e = sample();
  std::string v = encodeEntry(e);
  auto d = decodeEntry(v, e.key, "chat");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->key, e.key);
  EXPECT_EQ(d->status, 203);
  EXPECT_EQ(d->headers, e.headers);
  EXPECT_EQ(d->body, e.body);
  EXPECT_TRUE(d->stream);
  EXPECT_EQ(d->stored_at, e.stored_at);
  EXPECT_EQ(d->freshness.ttl, absl::Seconds(60));
  EXPECT_EQ(d->freshness.stale_while_revalidate, absl::Seconds(5));
  EXPECT_EQ(d->freshness.stale_if_error, absl::Seconds(3600));
  EXPECT_TRUE(d->freshness.store);
  EXPECT_EQ(d->route, "chat");
}

// A value in the committed layout (written by tests/fuzz's seed maker, not by
// this build) still decodes: the format of version 1 has not drifted.
TEST(EntryCodec, TheCommittedVersionOneLayoutDecodes) {
  std::ifstream in(std::string(AIRBAG_SOURCE_DIR) + "/tests/fuzz/corpus/shared_entry_fuzz/entry_k",
                   std::ios::binary);
  ASSERT_TRUE(in);
  std::stringstream bytes;
  bytes << in.rdbuf();
  auto d = decodeEntry(bytes.str(), "k", "chat");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->status, 200);
  EXPECT_EQ(d->body, "{\"a\":1}");
  ASSERT_EQ(d->headers.size(), 1u);
  EXPECT_EQ(d->headers[0].first, "content-type");
  EXPECT_EQ(d->stored_at, absl::FromUnixMicros(1'700'000'000'000'000));
  EXPECT_EQ(d->freshness.ttl, absl::Seconds(60));
  EXPECT_EQ(d->freshness.stale_while_revalidate, absl::Seconds(5));
  EXPECT_EQ(d->freshness.stale_if_error, absl::Seconds(3600));
  EXPECT_EQ(encodeEntry(*d), bytes.str());
}

TEST(EntryCodec, EmptyBodyAndNoHeaders) {
  policy::CacheEntry e = sample();
  e.headers.clear();
  e.body.clear();
  e.stream = false;
  auto d = decodeEntry(encodeEntry(e), e.key, "chat");
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(d->headers.empty());
  EXPECT_TRUE(d->body.empty());
  EXPECT_FALSE(d->stream);
}

TEST(EntryCodec, AnotherVersionIsAMiss) {
  policy::CacheEntry e = sample();
  std::string v = encodeEntry(e);
  for (int version : {0, 2, 255}) {
    std::string w = v;
    w[2] = static_cast<char>(version);
    EXPECT_EQ(decodeEntry(w, e.key, "chat"), nullptr) << version;
  }
}

TEST(EntryCodec, EveryTruncationAndEveryFlippedByteIsAMiss) {
  policy::CacheEntry e = sample();
  std::string v = encodeEntry(e);
  for (size_t n = 0; n < v.size(); ++n)
    EXPECT_EQ(decodeEntry(v.substr(0, n), e.key, "chat"), nullptr) << n;
  for (size_t i = 0; i < v.size(); ++i) {
    std::string w = v;
    w[i] = static_cast<char>(w[i] ^ 0x40);
    EXPECT_EQ(decodeEntry(w, e.key, "chat"), nullptr) << i;
  }
  EXPECT_EQ(decodeEntry(v + "x", e.key, "chat"), nullptr);
  EXPECT_EQ(decodeEntry("", e.key, "chat"), nullptr);
  EXPECT_EQ(decodeEntry("not an entry at all", e.key, "chat"), nullptr);
}

TEST(EntryCodec, AValueStoredForAnotherKeyIsAMiss) {
  policy::CacheEntry e = sample();
  EXPECT_EQ(decodeEntry(encodeEntry(e), e.key + "x", "chat"), nullptr);
}

TEST(EntryCodec, HeadersThatCouldNotBeSentAreAMiss) {
  for (auto [name, value] : {std::pair<std::string, std::string>{"", "v"},
                             {"bad name", "v"},
                             {"x", "a\r\nset-cookie: evil"},
                             {"x", std::string("a\0b", 3)}}) {
    policy::CacheEntry e = sample();
    e.headers.emplace_back(name, value);
    EXPECT_EQ(decodeEntry(encodeEntry(e), e.key, "chat"), nullptr) << name << value;
  }
}

TEST(EntryCodec, StatusAndWindowsOutOfRangeAreAMiss) {
  for (int status : {0, 99, 600, 65535}) {
    policy::CacheEntry e = sample();
    e.status = status;
    EXPECT_EQ(decodeEntry(encodeEntry(e), e.key, "chat"), nullptr) << status;
  }
  policy::CacheEntry e = sample();
  e.freshness.ttl = absl::Seconds(-1);
  EXPECT_EQ(decodeEntry(encodeEntry(e), e.key, "chat"), nullptr);
}

TEST(EntryCodec, KeepForIsWhatIsLeftOfTtlAndTheLongerStaleWindow) {
  policy::CacheEntry e = sample();
  EXPECT_EQ(keepFor(e, e.stored_at), absl::Seconds(3660));
  EXPECT_EQ(keepFor(e, e.stored_at + absl::Seconds(100)), absl::Seconds(3560));
  EXPECT_EQ(keepFor(e, e.stored_at - absl::Seconds(5)), absl::Seconds(3660));  // clock skew
  e.freshness.stale_if_error = absl::ZeroDuration();
  EXPECT_EQ(keepFor(e, e.stored_at), absl::Seconds(65));
  EXPECT_LE(keepFor(e, e.stored_at + absl::Seconds(65)), absl::ZeroDuration());
}

TEST(RedisKey, IsPrefixRouteAndADigestOfTheWholeKey) {
  std::string k = redisKey("airbag:", "chat", "4:chat3:GET1:/");
  ASSERT_EQ(k.size(), std::string("airbag:chat:").size() + 32);
  EXPECT_EQ(k.substr(0, 12), "airbag:chat:");
  EXPECT_EQ(k.find_first_not_of("0123456789abcdef", 12), std::string::npos);
  EXPECT_EQ(k, redisKey("airbag:", "chat", "4:chat3:GET1:/"));
  EXPECT_NE(k, redisKey("airbag:", "chat", "4:chat3:GET1:x"));
  // The key never holds a hash tag, whatever the request held.
  EXPECT_EQ(redisKey("airbag:", "chat", "{a}").find('{'), std::string::npos);
}

TEST(RedisKey, OddRouteNamesAreEscapedAndPatternsMatchOnlyTheirRoute) {
  EXPECT_EQ(redisKey("p:", "a{b}*", "k").substr(0, 14), "p:a%7Bb%7D%2A:");
  EXPECT_EQ(routePattern("p:", "a{b}*"), "p:a%7Bb%7D%2A:*");
  EXPECT_EQ(routePattern("p*[", "chat"), "p\\*\\[chat:*");
}

// Test vectors from the Redis Cluster specification.
TEST(HashSlot, FollowsTheClusterSpec) {
  EXPECT_EQ(crc16("123456789"), 0x31C3);
  EXPECT_EQ(crc16(""), 0);
  EXPECT_EQ(hashSlot("123456789"), 0x31C3 % 16384);
  EXPECT_EQ(hashSlot("foo"), 12182);
  EXPECT_EQ(hashSlot("bar"), 5061);
  // Hash tags: the first {...} with something inside decides.
  EXPECT_EQ(hashSlot("{user1000}.following"), hashSlot("user1000"));
  EXPECT_EQ(hashSlot("foo{}{bar}"), hashSlot("foo{}{bar}"));
  EXPECT_NE(hashSlot("foo{}{bar}"), hashSlot("bar"));
  EXPECT_EQ(hashSlot("foo{{bar}}zap"), hashSlot("{bar"));
  EXPECT_EQ(hashSlot("foo{bar}{zap}"), hashSlot("bar"));
  EXPECT_EQ(hashSlot("{"), crc16("{") % 16384);
}

}  // namespace
}  // namespace airbag::shared_cache
