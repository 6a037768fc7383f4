// Tests of canonical JSON for cache keys: what must share a key, what must
// not, and what the key leaves out.
#include "proxy/json/canonical.h"

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace airbag::json {
namespace {

std::optional<std::string> canon(std::string_view text,
                                 const std::vector<std::string>& ignore = {}) {
  return canonicalize(Document::parse(text), ignore);
}

struct CanonCase {
  std::string input;
  std::string expected;
};

TEST(CanonicalTest, ExactCanonicalText) {
  const CanonCase cases[] = {
      {R"({ "b" : 1 , "a" : 2 })", R"({"a":2,"b":1})"},
      {"{\n\t\"z\": {\"y\": [ 3, 2, 1 ], \"x\": null}\r\n}", R"({"z":{"x":null,"y":[3,2,1]}})"},
      {"[]", "[]"},
      {"{}", "{}"},
      {" true ", "true"},
      {"null", "null"},
      // Numbers.
      {"1", "1"},
      {"1.0", "1"},
      {"1e0", "1"},
      {"10E-1", "1"},
      {"-0", "0"},
      {"-0.0", "0"},
      {"0e10", "0"},
      {"-12", "-12"},
      {"1e2", "100"},
      {"1.5", "1.5"},
      {"0.10", "0.1"},
      {"1.25e-1", "0.125"},
      {"1e20", "100000000000000000000"},
      {"100000000000000000000", "100000000000000000000"},
      {"1e21", "1e+21"},
      {"1e-7", "1e-07"},
      {"18446744073709551615", "18446744073709551615"},
      {"-9223372036854775808", "-9223372036854775808"},
      {"0.30000000000000004", "0.30000000000000004"},
      {"NaN", "NaN"},
      {"-Infinity", "-Infinity"},
      // Strings: one escaping only.
      {R"("\u0041\/b")", R"("A/b")"},
      {R"("\u00e9")", "\"\xc3\xa9\""},
      {"\"\xc3\xa9\"", "\"\xc3\xa9\""},
      {R"("\ud83d\ude00")", "\"\xf0\x9f\x98\x80\""},
      {R"("tab\there\u0009")", R"("tab\there\t")"},
      {R"("\u0001\u001F\u007f")", "\"\\u0001\\u001f\x7f\""},
      {R"("q\"b\\s")", R"("q\"b\\s")"},
      {R"("\b\f\n\r")", R"("\b\f\n\r")"},
      {R"("a\u0000b")", R"("a\u0000b")"},
      // Keys sorted by bytes: upper case before lower case, "a" before "aa",
      // UTF-8 after ASCII, escaped keys sorted by what they decode to.
      {R"({"b":1,"aa":2,"a":3,"B":4,"\u00e9":5,"\u0061b":6})",
       "{\"B\":4,\"a\":3,\"aa\":2,\"ab\":6,\"b\":1,\"\xc3\xa9\":5}"},
      // Nested arrays of objects keep array order, sort each object.
      {R"([{"b":[{"d":1,"c":2}],"a":0},[[{"y":1,"x":2}]]])",
       R"([{"a":0,"b":[{"c":2,"d":1}]},[[{"x":2,"y":1}]]])"},
      // Duplicate names stay, in document order.
      {R"({"b":0,"a":2,"a":1})", R"({"a":2,"a":1,"b":0})"},
  };
  for (const auto& c : cases) {
    const auto got = canon(c.input);
    ASSERT_TRUE(got.has_value()) << c.input;
    EXPECT_EQ(*got, c.expected) << c.input;
  }
}

TEST(CanonicalTest, ManyMembersAreSortedToo) {
  std::string in = "{";
  std::string expected = "{";
  for (int i = 99; i >= 0; --i) {
    in += "\"k" + std::to_string(1000 + i) + "\":" + std::to_string(i) + (i ? "," : "}");
  }
  for (int i = 0; i <= 99; ++i) {
    expected += "\"k" + std::to_string(1000 + i) + "\":" + std::to_string(i) + (i < 99 ? "," : "}");
  }
  EXPECT_EQ(canon(in), expected);
}

TEST(CanonicalTest, EquivalentSpellingsShareAKey) {
  const std::vector<std::vector<std::string>> groups = {
      {R"({"b":1,"a":2})", R"( { "a":2.0, "b":1 } )", R"({"a":2e0,"b":1.00})",
       "{\n  \"b\": 1,\n  \"a\": 20E-1\n}"},
      {R"({"prompt":"caf\u00e9","max_tokens":16,"temperature":0.7})",
       "{\"temperature\":0.70,\"prompt\":\"caf\xc3\xa9\",\"max_tokens\":1.6e1}",
       R"({"max_tokens":16,"temperature":7e-1,"prompt":"caf\u00E9"})"},
      {R"({"inputs":[{"name":"x","shape":[1,3],"data":[0.5,-0,1]}]})",
       R"({"inputs":[{"data":[5e-1,0,1.0],"shape":[1,3],"name":"\u0078"}]})"},
  };
  for (const auto& group : groups) {
    const auto first = canon(group[0]);
    ASSERT_TRUE(first.has_value()) << group[0];
    for (const auto& other : group) EXPECT_EQ(canon(other), first) << other;
  }
}

TEST(CanonicalTest, DifferentValuesGiveDifferentKeys) {
  const std::vector<std::string> distinct = {
      R"({"a":1})",       R"({"a":2})",          R"({"a":"1"})",   R"({"a":1.5})",
      R"({"a":true})",    R"({"a":null})",       R"({"a":[1]})",   R"({"a":{"b":1}})",
      R"({"A":1})",       R"({"a":1,"b":1})",    R"({"a":[1,2]})", R"({"a":[2,1]})",
      R"({"a":"x "})",    R"({"a":"x"})",        R"({"a":0.1})",   R"({"a":0.10000000000000002})",
      R"({"a":[[1],2]})", R"({"a":[1,[2]]})",    R"({"a":{}})",    R"({"a":[]})",
      R"({"a":"a,\"b"})", R"({"a":"a","b":""})", R"({"a\"":1})",   R"({"a":false})",
  };
  std::set<std::string> keys;
  for (const auto& d : distinct) {
    const auto k = canon(d);
    ASSERT_TRUE(k.has_value()) << d;
    EXPECT_TRUE(keys.insert(*k).second) << d << " collides: " << *k;
  }
}

TEST(CanonicalTest, IgnoredPointersAreLeftOut) {
  // KServe v2: the request id differs on every call but the inference does not.
  const std::string a =
      R"({"id":"req-1","inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1.5]}]})";
  const std::string b =
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1.5]}],"id":"req-2"})";
  const std::string c =
      R"({"id":"req-3","inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[2.5]}]})";
  const std::vector<std::string> ignore = {"/id"};
  EXPECT_NE(canon(a), canon(b));
  EXPECT_EQ(canon(a, ignore), canon(b, ignore));
  EXPECT_NE(canon(a, ignore), canon(c, ignore));
  EXPECT_EQ(canon(a, ignore),
            R"({"inputs":[{"data":[1.5],"datatype":"FP32","name":"x","shape":[1]}]})");
}

TEST(CanonicalTest, IgnoreNestedMembersElementsAndEscapes) {
  const std::string doc = R"({"meta":{"trace":"t1","user":"u"},"a/b":1,"xs":[10,20,30],"k":0})";
  const CanonCase cases[] = {
      {"/meta/trace", R"({"a/b":1,"k":0,"meta":{"user":"u"},"xs":[10,20,30]})"},
      {"/meta", R"({"a/b":1,"k":0,"xs":[10,20,30]})"},
      {"/a~1b", R"({"k":0,"meta":{"trace":"t1","user":"u"},"xs":[10,20,30]})"},
      {"/xs/1", R"({"a/b":1,"k":0,"meta":{"trace":"t1","user":"u"},"xs":[10,30]})"},
      {"/missing", R"({"a/b":1,"k":0,"meta":{"trace":"t1","user":"u"},"xs":[10,20,30]})"},
      {"/xs/9", R"({"a/b":1,"k":0,"meta":{"trace":"t1","user":"u"},"xs":[10,20,30]})"},
      {"", ""},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(canon(doc, {c.input}), c.expected) << "ignore " << c.input;
  }
  EXPECT_EQ(canon(doc, {"/meta/trace", "/meta/user", "/xs", "/k"}), R"({"a/b":1,"meta":{}})");
}

TEST(CanonicalTest, InvalidJsonHasNoCanonicalForm) {
  EXPECT_EQ(canon("{"), std::nullopt);
  EXPECT_EQ(canon(""), std::nullopt);
  EXPECT_EQ(canon("not json"), std::nullopt);
  EXPECT_EQ(canonicalize(Document(), {}), std::nullopt);
}

TEST(CanonicalTest, NestingBeyondTheLimitFallsBackToRawBytes) {
  const int limit = kMaxCanonicalDepth;
  const std::string ok = std::string(limit, '[') + std::string(limit, ']');
  const std::string deep = std::string(limit + 1, '[') + std::string(limit + 1, ']');
  EXPECT_TRUE(canon(ok).has_value());
  EXPECT_EQ(canon(deep), std::nullopt);
}

}  // namespace
}  // namespace airbag::json
