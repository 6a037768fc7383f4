// Tests of compiled fallback rules: every operator, type mismatches, `in`
// lists, regexes, rule order and compile-time errors.
#include "proxy/json/rules.h"

#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace airbag::json {
namespace {

using ::testing::HasSubstr;

Predicate pred(std::string pointer, PredicateOp op, std::string value_json) {
  Predicate p;
  p.pointer = std::move(pointer);
  p.op = op;
  p.value_json = std::move(value_json);
  return p;
}

Rule rule(std::string name, std::vector<Predicate> when) {
  Rule r;
  r.name = std::move(name);
  r.when = std::move(when);
  r.respond.body = R"({"rule":")" + r.name + R"("})";
  return r;
}

// Whether a single-predicate rule holds for `body`.
bool holds(const Predicate& p, std::string_view body) {
  auto compiled = CompiledRules::build({rule("r", {p})});
  EXPECT_TRUE(compiled.ok()) << compiled.status();
  if (!compiled.ok()) return false;
  return compiled->match(Document::parse(body)) != nullptr;
}

constexpr std::string_view kRequest = R"({
  "amount": 7500, "ratio": 0.25, "big": 18446744073709551615, "neg": -3, "nan": NaN,
  "country": "DE", "email": "ops@example.com", "tags": ["vip", "eu"], "flag": true,
  "none": null, "card": {"type": "visa", "bin": "411111"}, "zero": 0, "a/b": "slash"
})";

struct OpCase {
  std::string pointer;
  PredicateOp op;
  std::string operand;
  bool expected;
};

TEST(RulesTest, EveryOperator) {
  using Op = PredicateOp;
  const OpCase cases[] = {
      // eq / ne: JSON values, numbers numerically, no type coercion.
      {"/amount", Op::kEq, "7500", true},
      {"/amount", Op::kEq, "7500.0", true},
      {"/amount", Op::kEq, "7.5e3", true},
      {"/amount", Op::kEq, "\"7500\"", false},
      {"/amount", Op::kNe, "\"7500\"", true},
      {"/amount", Op::kNe, "7500", false},
      {"/country", Op::kEq, "\"DE\"", true},
      {"/country", Op::kEq, "\"de\"", false},
      {"/country", Op::kNe, "\"US\"", true},
      {"/flag", Op::kEq, "true", true},
      {"/flag", Op::kEq, "1", false},
      {"/none", Op::kEq, "null", true},
      {"/zero", Op::kEq, "null", false},
      {"/zero", Op::kEq, "false", false},
      {"/zero", Op::kEq, "-0", true},
      {"/card", Op::kEq, R"({"bin":"411111","type":"visa"})", true},
      {"/card", Op::kEq, R"({"type":"visa"})", false},
      {"/tags", Op::kEq, R"(["vip","eu"])", true},
      {"/tags", Op::kEq, R"(["eu","vip"])", false},
      {"/big", Op::kEq, "18446744073709551615", true},
      {"/big", Op::kEq, "18446744073709551614", false},
      {"/nan", Op::kEq, "0", false},
      {"/a~1b", Op::kEq, "\"slash\"", true},
      // A missing value neither equals nor differs.
      {"/missing", Op::kEq, "null", false},
      {"/missing", Op::kNe, "\"US\"", false},
      // gt ge lt le: numbers only.
      {"/amount", Op::kGt, "5000", true},
      {"/amount", Op::kGt, "7500", false},
      {"/amount", Op::kGe, "7500", true},
      {"/amount", Op::kGe, "7500.5", false},
      {"/amount", Op::kLt, "7500.5", true},
      {"/amount", Op::kLt, "7500", false},
      {"/amount", Op::kLe, "7500", true},
      {"/amount", Op::kLe, "7499", false},
      {"/ratio", Op::kLt, "0.3", true},
      {"/ratio", Op::kGt, "0", true},
      {"/neg", Op::kLt, "0", true},
      {"/neg", Op::kGe, "-3.0", true},
      {"/big", Op::kGt, "9223372036854775807", true},
      {"/big", Op::kGt, "-1", true},
      {"/nan", Op::kGt, "0", false},
      {"/nan", Op::kLe, "0", false},
      {"/country", Op::kGt, "0", false},
      {"/flag", Op::kGe, "0", false},
      {"/none", Op::kLe, "0", false},
      {"/tags", Op::kGt, "0", false},
      {"/missing", Op::kLt, "0", false},
      // in: membership by eq.
      {"/country", Op::kIn, R"(["AT","DE","CH"])", true},
      {"/country", Op::kIn, R"(["AT","CH"])", false},
      {"/country", Op::kIn, "[]", false},
      {"/amount", Op::kIn, "[100, 7500.0]", true},
      {"/amount", Op::kIn, R"(["7500"])", false},
      {"/none", Op::kIn, "[1, null]", true},
      {"/tags", Op::kIn, R"([["vip","eu"], "x"])", true},
      {"/missing", Op::kIn, "[null]", false},
      // exists.
      {"/amount", Op::kExists, "true", true},
      {"/none", Op::kExists, "true", true},
      {"/missing", Op::kExists, "true", false},
      {"/missing", Op::kExists, "false", true},
      {"/card/type", Op::kExists, "false", false},
      {"/tags/1", Op::kExists, "true", true},
      {"/tags/2", Op::kExists, "true", false},
      // matches: partial RE2 match on strings only.
      {"/email", Op::kMatches, R"("@example\\.com$")", true},
      {"/email", Op::kMatches, R"("example")", true},
      {"/email", Op::kMatches, R"("^example")", false},
      {"/email", Op::kMatches, R"("(?i)^OPS@")", true},
      {"/card/bin", Op::kMatches, R"("^4[0-9]{5}$")", true},
      {"/amount", Op::kMatches, R"("7500")", false},
      {"/none", Op::kMatches, R"("")", false},
      {"/missing", Op::kMatches, R"("")", false},
      {"/country", Op::kMatches, R"("")", true},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(holds(pred(c.pointer, c.op, c.operand), kRequest), c.expected)
        << c.pointer << " op " << static_cast<int>(c.op) << " " << c.operand;
  }
}

TEST(RulesTest, AllPredicatesMustHoldAndTheFirstMatchingRuleWins) {
  using Op = PredicateOp;
  auto compiled = CompiledRules::build({
      rule("high-amount-eu",
           {pred("/amount", Op::kGt, "5000"), pred("/country", Op::kIn, R"(["DE","FR"])")}),
      rule("high-amount", {pred("/amount", Op::kGt, "5000")}),
      rule("vip", {pred("/tags/0", Op::kEq, "\"vip\"")}),
      rule("catch-all", {}),
  });
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  EXPECT_EQ(compiled->size(), 4u);
  auto matched = [&](std::string_view body) {
    const Rule* r = compiled->match(Document::parse(body));
    return r == nullptr ? std::string("none") : r->name;
  };
  EXPECT_EQ(matched(R"({"amount":6000,"country":"DE"})"), "high-amount-eu");
  EXPECT_EQ(matched(R"({"amount":6000,"country":"US"})"), "high-amount");
  EXPECT_EQ(matched(R"({"amount":10,"tags":["vip"]})"), "vip");
  EXPECT_EQ(matched(R"({"amount":10})"), "catch-all");
  EXPECT_EQ(matched("not json"), "catch-all");

  const Rule* r = compiled->match(Document::parse(R"({"amount":6000})"));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->respond.body, R"({"rule":"high-amount"})");
}

TEST(RulesTest, NoRuleMatches) {
  auto compiled = CompiledRules::build({rule("a", {pred("/x", PredicateOp::kEq, "1")})});
  ASSERT_TRUE(compiled.ok());
  EXPECT_EQ(compiled->match(Document::parse(R"({"x":2})")), nullptr);
  EXPECT_EQ(compiled->match(Document::parse("{")), nullptr);
  EXPECT_EQ(CompiledRules().match(Document::parse("{}")), nullptr);
}

TEST(RulesTest, SurvivesMovesAndOutlivesTheConfigItWasBuiltFrom) {
  CompiledRules kept;
  {
    std::vector<Rule> rules = {rule("re", {pred("/s", PredicateOp::kMatches, R"("^a+$")")}),
                               rule("in", {pred("/n", PredicateOp::kIn, "[1,2]")})};
    auto compiled = CompiledRules::build(rules);
    ASSERT_TRUE(compiled.ok());
    CompiledRules moved = std::move(*compiled);
    kept = std::move(moved);
  }
  const Rule* r = kept.match(Document::parse(R"({"s":"aaa"})"));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->name, "re");
  r = kept.match(Document::parse(R"({"n":2})"));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->name, "in");
}

struct BuildErrorCase {
  Predicate predicate;
  std::string message;
};

TEST(RulesTest, BuildRejectsBadPredicates) {
  using Op = PredicateOp;
  const BuildErrorCase cases[] = {
      {pred("amount", Op::kEq, "1"), "malformed JSON pointer"},
      {pred("/a~2", Op::kEq, "1"), "malformed JSON pointer"},
      {pred("/a", Op::kEq, "{"), "operand is not valid JSON"},
      {pred("/a", Op::kEq, ""), "operand is not valid JSON"},
      {pred("/a", Op::kGt, "\"5\""), "operand must be a number"},
      {pred("/a", Op::kLe, "null"), "operand must be a number"},
      {pred("/a", Op::kIn, "1"), "operand must be a list"},
      {pred("/a", Op::kExists, "1"), "operand must be true or false"},
      {pred("/a", Op::kMatches, "1"), "operand must be a string"},
      {pred("/a", Op::kMatches, R"("(unclosed")"), "invalid regular expression"},
  };
  for (const auto& c : cases) {
    auto compiled = CompiledRules::build({rule("ok", {}), rule("bad", {c.predicate})});
    ASSERT_FALSE(compiled.ok()) << c.predicate.value_json;
    EXPECT_EQ(compiled.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(compiled.status().message()), HasSubstr(c.message));
    EXPECT_THAT(std::string(compiled.status().message()), HasSubstr("rule \"bad\""));
  }
}

TEST(RulesTest, BuildErrorNamesTheLine) {
  Predicate p = pred("/a", PredicateOp::kGt, "\"x\"");
  p.loc.line = 42;
  auto compiled = CompiledRules::build({rule("r", {p})});
  ASSERT_FALSE(compiled.ok());
  EXPECT_THAT(std::string(compiled.status().message()), HasSubstr("line 42"));
}

}  // namespace
}  // namespace airbag::json
