// RESP through hiredis: our command encoding is byte for byte hiredis's own,
// replies of every type come out as values, split input waits for the rest,
// and cluster redirections parse (or are refused) exactly.
#include "proxy/shared_cache/resp.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <string>
#include <vector>

namespace airbag::shared_cache {
namespace {

TEST(Resp, CommandsEncodeAsHiredisEncodesThem) {
  std::string ours;
  std::string bin("a\0\r\nb", 5);
  appendCommand(ours, {"SET", "k", bin, "PX", "1500"});
  std::vector<const char*> argv = {"SET", "k", bin.data(), "PX", "1500"};
  std::vector<size_t> lens = {3, 1, bin.size(), 2, 4};
  char* theirs = nullptr;
  int n = redisFormatCommandArgv(&theirs, 5, argv.data(), lens.data());
  ASSERT_GT(n, 0);
  EXPECT_EQ(ours, std::string(theirs, static_cast<size_t>(n)));
  redisFreeCommand(theirs);
}

TEST(Resp, ReadsEveryReplyTypeEvenWhenSplit) {
  std::string wire =
      "+OK\r\n-ERR no\r\n:42\r\n$-1\r\n$5\r\nhe\r\no\r\n*2\r\n*1\r\n:1\r\n$1\r\nx\r\n";
  ReplyReader reader;
  std::vector<Reply> got;
  bool broken = false;
  for (char c : wire) {  // one byte at a time
    ASSERT_TRUE(reader.feed(std::string_view(&c, 1)));
    while (auto r = reader.next(&broken)) got.push_back(std::move(*r));
    ASSERT_FALSE(broken);
  }
  ASSERT_EQ(got.size(), 6u);
  EXPECT_TRUE(got[0].isOk());
  EXPECT_TRUE(got[1].isError());
  EXPECT_EQ(got[1].str, "ERR no");
  EXPECT_EQ(got[2].type, Reply::Type::kInteger);
  EXPECT_EQ(got[2].integer, 42);
  EXPECT_EQ(got[3].type, Reply::Type::kNil);
  EXPECT_EQ(got[4].type, Reply::Type::kString);
  EXPECT_EQ(got[4].str, "he\r\no");
  ASSERT_EQ(got[5].type, Reply::Type::kArray);
  ASSERT_EQ(got[5].elements.size(), 2u);
  EXPECT_EQ(got[5].elements[0].elements[0].integer, 1);
  EXPECT_EQ(got[5].elements[1].str, "x");
}

TEST(Resp, GarbageBreaksTheReader) {
  ReplyReader reader;
  bool broken = false;
  reader.feed("?what\r\n");
  EXPECT_FALSE(reader.next(&broken).has_value());
  EXPECT_TRUE(broken);
}

// A RESP array of `n` integers.
std::string integerArray(int n) {
  std::string out = "*" + std::to_string(n) + "\r\n";
  for (int i = 0; i < n; ++i) out += ":1\r\n";
  return out;
}

TEST(Resp, AHugeArrayCountBreaksTheReaderInsteadOfAllocating) {
  // Found by shared_entry_fuzz: the count alone made hiredis ask for 9.9 GB.
  ReplyReader reader;
  bool broken = false;
  reader.feed("*1239032609\r\n*1\r\n:1\r\n");
  EXPECT_FALSE(reader.next(&broken).has_value());
  EXPECT_TRUE(broken);
  // Every array of one reply draws on one budget: 2 x 600,000 elements is over it.
  ReplyReader nested;
  broken = false;
  nested.feed("*2\r\n" + integerArray(600000));
  EXPECT_FALSE(nested.next(&broken).has_value());
  EXPECT_FALSE(broken);  // the first inner array fits; the reply is not complete yet
  nested.feed("*600000\r\n");
  EXPECT_FALSE(nested.next(&broken).has_value());
  EXPECT_TRUE(broken);
  // A reply within the budget still parses, and the next one starts afresh.
  ReplyReader fine;
  broken = false;
  fine.feed(integerArray(600000) + integerArray(600000));
  for (int i = 0; i < 2; ++i) {
    auto r = fine.next(&broken);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->elements.size(), 600000u);
  }
  EXPECT_FALSE(broken);
}

TEST(Resp, RedirectsParse) {
  auto m = parseRedirect("MOVED 3999 127.0.0.1:6381");
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->ask);
  EXPECT_EQ(m->slot, 3999);
  EXPECT_EQ(m->host, "127.0.0.1");
  EXPECT_EQ(m->port, 6381);
  auto a = parseRedirect("ASK 1 ::1:7000");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->ask);
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 7000);
  for (const char* bad : {"ERR x", "MOVED", "MOVED 1", "MOVED x 1.2.3.4:5", "MOVED 16384 h:1",
                          "MOVED 1 h:0", "MOVED 1 h:70000", "MOVED 1 h", "ASK 1 h:1x"})
    EXPECT_FALSE(parseRedirect(bad)) << bad;
}

}  // namespace
}  // namespace airbag::shared_cache
