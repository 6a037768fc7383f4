// Tests of parsing, RFC 6901 lookup and JSON value comparison.
#include "proxy/json/document.h"

#include <string>
#include <utility>

#include "gtest/gtest.h"

namespace airbag::json {
namespace {

TEST(DocumentTest, ParseStates) {
  EXPECT_TRUE(Document::parse(R"({"a":1})").ok());
  EXPECT_TRUE(Document::parse("  [1, 2]\n").ok());
  EXPECT_TRUE(Document::parse("42").ok());
  EXPECT_TRUE(Document::parse(R"({"score": NaN, "x": -Infinity})").ok());
  EXPECT_FALSE(Document::parse("").ok());
  EXPECT_FALSE(Document::parse("{").ok());
  EXPECT_FALSE(Document::parse(R"({"a":1} trailing)").ok());
  EXPECT_FALSE(Document::parse("{'a':1}").ok());
  EXPECT_FALSE(Document().ok());
}

TEST(DocumentTest, ParseDoesNotReadPastTheView) {
  const std::string buffer = R"({"a":1}{"b":2})";
  EXPECT_TRUE(Document::parse(std::string_view(buffer).substr(0, 7)).ok());
  EXPECT_FALSE(Document::parse(std::string_view(buffer).substr(0, 6)).ok());
}

TEST(DocumentTest, DeepNestingParsesWithoutRecursion) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_TRUE(Document::parse(deep).ok());
}

TEST(DocumentTest, MoveKeepsTheValuesAndEmptiesTheSource) {
  Document a = Document::parse(R"({"k":"v"})");
  Document b = std::move(a);
  EXPECT_FALSE(a.ok());  // NOLINT(bugprone-use-after-move): the moved-from state is specified
  ASSERT_TRUE(b.ok());
  ASSERT_NE(b.find("/k"), nullptr);
  EXPECT_STREQ(b.find("/k")->GetString(), "v");
}

constexpr std::string_view kDoc = R"({
  "foo": ["bar", "baz"],
  "": 0,
  "a/b": 1,
  "c%d": 2,
  "e^f": 3,
  "g|h": 4,
  "i\\j": 5,
  "k\"l": 6,
  " ": 7,
  "m~n": 8,
  "~1": 9,
  "predictions": [{"score": 0.25}, {"score": 0.5, "labels": [[1, 2], [3]]}],
  "10": "ten"
})";

struct PointerCase {
  std::string pointer;
  std::string expected;  // the value as text; "" = absent
};

std::string describe(const rapidjson::Value* v) {
  if (v == nullptr) return "";
  if (v->IsString()) return std::string("s:") + v->GetString();
  if (v->IsInt()) return "i:" + std::to_string(v->GetInt());
  if (v->IsDouble()) return "d:" + std::to_string(v->GetDouble());
  if (v->IsArray()) return "array:" + std::to_string(v->Size());
  if (v->IsObject()) return "object:" + std::to_string(v->MemberCount());
  return "other";
}

TEST(DocumentTest, PointerLookup) {
  const Document doc = Document::parse(kDoc);
  ASSERT_TRUE(doc.ok());
  const PointerCase cases[] = {
      // The examples of RFC 6901 section 5.
      {"", "object:13"},
      {"/foo", "array:2"},
      {"/foo/0", "s:bar"},
      {"/", "i:0"},
      {"/a~1b", "i:1"},
      {"/c%d", "i:2"},
      {"/e^f", "i:3"},
      {"/g|h", "i:4"},
      {"/i\\j", "i:5"},
      {"/k\"l", "i:6"},
      {"/ ", "i:7"},
      {"/m~0n", "i:8"},
      // "~01" is "~1" literally, not "/".
      {"/~01", "i:9"},
      {"/predictions/0/score", "d:0.250000"},
      {"/predictions/1/labels/0/1", "i:2"},
      {"/predictions/1/labels/1", "array:1"},
      {"/10", "s:ten"},  // a numeric token names a member of an object
      // Absent or malformed.
      {"/foo/2", ""},
      {"/foo/-", ""},
      {"/foo/01", ""},
      {"/foo/+1", ""},
      {"/foo/ 1", ""},
      {"/foo/99999999999", ""},
      {"/foo/0/x", ""},
      {"/missing", ""},
      {"/predictions/0/score/x", ""},
      {"foo", ""},
      {"/m~n", ""},
      {"/m~2n", ""},
      {"/a/b", ""},
      {"/predictions/", ""},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(describe(doc.find(c.pointer)), c.expected) << "pointer \"" << c.pointer << "\"";
  }
}

TEST(DocumentTest, FindOnInvalidDocumentIsAbsent) {
  EXPECT_EQ(Document::parse("{").find(""), nullptr);
  EXPECT_EQ(Document().find("/a"), nullptr);
}

TEST(DocumentTest, ValidPointers) {
  EXPECT_TRUE(isValidPointer(""));
  EXPECT_TRUE(isValidPointer("/"));
  EXPECT_TRUE(isValidPointer("/a~0b/~1/0"));
  EXPECT_FALSE(isValidPointer("a"));
  EXPECT_FALSE(isValidPointer("/a~"));
  EXPECT_FALSE(isValidPointer("/a~2"));
}

struct EqualsCase {
  std::string a;
  std::string b;
  bool equal;
};

TEST(DocumentTest, ValueEquality) {
  const EqualsCase cases[] = {
      {"1", "1.0", true},
      {"1", "1e0", true},
      {"-0", "0", true},
      {"0.1", "1e-1", true},
      {"1", "2", false},
      {"1", "\"1\"", false},
      {"true", "true", true},
      {"true", "false", false},
      {"null", "null", true},
      {"null", "false", false},
      {"\"a\"", "\"\\u0061\"", true},
      {"\"a\"", "\"a \"", false},
      {"[1,2]", "[1.0,2]", true},
      {"[1,2]", "[2,1]", false},
      {"[1,2]", "[1,2,3]", false},
      {R"({"a":1,"b":[true]})", R"({"b":[true],"a":1.0})", true},
      {R"({"a":1})", R"({"a":1,"b":2})", false},
      {R"({"a":1})", R"({"b":1})", false},
      {"NaN", "NaN", false},
      {"Infinity", "Infinity", true},
      // Exact beyond 2^53: these two differ by one.
      {"9007199254740993", "9007199254740992", false},
      {"18446744073709551615", "18446744073709551615", true},
      {"18446744073709551615", "-1", false},
  };
  for (const auto& c : cases) {
    const Document a = Document::parse(c.a), b = Document::parse(c.b);
    ASSERT_TRUE(a.ok() && b.ok()) << c.a << " / " << c.b;
    EXPECT_EQ(valueEquals(a.root(), b.root()), c.equal) << c.a << " vs " << c.b;
    EXPECT_EQ(valueEquals(b.root(), a.root()), c.equal) << c.b << " vs " << c.a;
  }
}

TEST(DocumentTest, NumberOrder) {
  auto cmp = [](std::string_view a, std::string_view b) {
    return compareNumbers(Document::parse(a).root(), Document::parse(b).root());
  };
  EXPECT_EQ(cmp("1", "2"), -1);
  EXPECT_EQ(cmp("2.5", "2"), 1);
  EXPECT_EQ(cmp("2", "2.0"), 0);
  EXPECT_EQ(cmp("-1", "18446744073709551615"), -1);
  EXPECT_EQ(cmp("18446744073709551615", "-9223372036854775808"), 1);
  EXPECT_EQ(cmp("9007199254740993", "9007199254740992.0"), 1);
  EXPECT_EQ(cmp("-Infinity", "-1e308"), -1);
  EXPECT_EQ(cmp("NaN", "1"), 2);
  EXPECT_EQ(cmp("1", "NaN"), 2);
}

// Found by tests/fuzz/json_fuzz: rapidjson 1.1.0 reads on after a NaN or
// Infinity literal and, with full precision, asserts on "NaNe1" (and reads
// before its buffer without assertions). None of these is JSON.
TEST(DocumentTest, NonFiniteLiteralsDoNotRunOnIntoANumber) {
  for (const char* text : {"NaNe1", "Infinitye-7", "[-Infinitye-7]", "{\"a\":NaN.5}", "NaN0",
                           "Infinity1", "Infe-7", "-Inf.5"}) {
    EXPECT_FALSE(Document::parse(text).ok()) << text;
  }
  for (const char* text : {"[NaN,Infinity,-Infinity]", "{\"NaNe1\":\"Infinity.5\"}",
                           "[\"\\\"NaNe1\"]", "[NaN ,Infinity ]"}) {
    EXPECT_TRUE(Document::parse(text).ok()) << text;
  }
}

// Found by tests/fuzz/json_fuzz: rapidjson 1.1.0's full-precision reader
// indexed its power-of-ten table out of bounds (a crash) on "0." with many
// zeros and a negative exponent. Such a body is now read as not JSON.
TEST(DocumentTest, TinyFractionsAreRefusedInsteadOfCrashing) {
  for (const std::string& text :
       {"0." + std::string(400, '0') + "3", "[0." + std::string(100, '0') + "3e-250]",
        "{\"a\":-0." + std::string(250, '0') + "3e-100}"}) {
    EXPECT_FALSE(Document::parse(text).ok()) << text;
  }
  // Near the bound, and numbers that only look alike, still read.
  Document d = Document::parse("[0.0001e-3, 1.01e-456745, 10.01e-400, 0.001e-290, \"0.0e-999\"]");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d.find("/0")->GetDouble(), 1e-7);
  EXPECT_EQ(d.find("/1")->GetDouble(), 0.0);
}

}  // namespace
}  // namespace airbag::json
