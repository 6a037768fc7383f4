// Tests of model-answer checks: NaN, missing fields, ranges, types, lengths.
#include "proxy/json/validate.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace airbag::json {
namespace {

JsonCheck check(std::string pointer) {
  JsonCheck c;
  c.pointer = std::move(pointer);
  return c;
}

// The checks of the example route: a non-empty predictions array whose first
// score is a finite number in [0, 1].
std::vector<JsonCheck> scoreChecks() {
  JsonCheck predictions = check("/predictions");
  predictions.type = JsonType::kArray;
  predictions.min_items = 1;
  JsonCheck score = check("/predictions/0/score");
  score.finite = true;
  score.min = 0;
  score.max = 1;
  return {predictions, score};
}

struct AnswerCase {
  std::string name;
  std::string body;
  std::string reason;  // "" = passes
};

TEST(ValidateTest, TypicalAnswers) {
  const auto checks = scoreChecks();
  const AnswerCase cases[] = {
      {"good", R"({"predictions":[{"score":0.93}]})", ""},
      {"bounds are inclusive", R"({"predictions":[{"score":1},{"score":7}]})", ""},
      {"zero", R"({"predictions":[{"score":-0.0}]})", ""},
      {"NaN literal", R"({"predictions":[{"score":NaN}]})", "/predictions/0/score is NaN"},
      {"Infinity literal", R"({"predictions":[{"score":Infinity}]})",
       "/predictions/0/score is Infinity"},
      {"-Infinity literal", R"({"predictions":[{"score":-Infinity}]})",
       "/predictions/0/score is -Infinity"},
      {"above max", R"({"predictions":[{"score":1.5}]})",
       "/predictions/0/score is 1.5, above max 1"},
      {"below min", R"({"predictions":[{"score":-0.25}]})",
       "/predictions/0/score is -0.25, below min 0"},
      {"score missing", R"({"predictions":[{"label":"cat"}]})", "/predictions/0/score is missing"},
      {"score is a string", R"({"predictions":[{"score":"0.9"}]})",
       "/predictions/0/score is string, not a number"},
      {"score is null", R"({"predictions":[{"score":null}]})",
       "/predictions/0/score is null, not a number"},
      {"empty predictions", R"({"predictions":[]})", "/predictions has 0 items, fewer than 1"},
      {"predictions missing", R"({"error":"overloaded"})", "/predictions is missing"},
      {"predictions is an object", R"({"predictions":{"score":0.5}})",
       "/predictions is object, not an array"},
      {"not JSON", R"({"predictions":[{"score":0.5}])", "the answer is not valid JSON"},
      {"empty body", "", "the answer is not valid JSON"},
      {"HTML error page", "<html>502 Bad Gateway</html>", "the answer is not valid JSON"},
  };
  for (const auto& c : cases) {
    const ValidationResult r = validate(Document::parse(c.body), checks);
    EXPECT_EQ(r.ok, c.reason.empty()) << c.name;
    EXPECT_EQ(r.reason, c.reason) << c.name;
  }
}

TEST(ValidateTest, NoChecksPassAnything) {
  EXPECT_TRUE(validate(Document::parse("not json"), {}).ok);
  EXPECT_TRUE(validate(Document::parse("{}"), {}).ok);
}

TEST(ValidateTest, EachCheckField) {
  auto typed = [](std::string p, JsonType t) {
    JsonCheck c = check(std::move(p));
    c.type = t;
    return c;
  };
  auto exists = [](std::string p, bool e) {
    JsonCheck c = check(std::move(p));
    c.exists = e;
    return c;
  };
  auto minItems = [](std::string p, uint64_t n) {
    JsonCheck c = check(std::move(p));
    c.min_items = n;
    return c;
  };
  auto finite = [](std::string p) {
    JsonCheck c = check(std::move(p));
    c.finite = true;
    return c;
  };
  auto range = [](std::string p, std::optional<double> lo, std::optional<double> hi) {
    JsonCheck c = check(std::move(p));
    c.min = lo;
    c.max = hi;
    return c;
  };
  const std::string body =
      R"({"o":{},"a":[1,2,3],"s":"x","n":2.5,"i":7,"t":true,"f":false,"z":null,"nan":NaN,)"
      R"("big":1e308,"inf":-Infinity,"a/b":1})";
  const Document doc = Document::parse(body);
  ASSERT_TRUE(doc.ok());
  struct Case {
    JsonCheck check;
    std::string reason;
  };
  const Case cases[] = {
      // Only a pointer: the value must exist.
      {check("/o"), ""},
      {check("/z"), ""},
      {check("/a~1b"), ""},
      {check(""), ""},
      {check("/nope"), "/nope is missing"},
      {check("/a/3"), "/a/3 is missing"},
      // exists.
      {exists("/o", true), ""},
      {exists("/nope", true), "/nope is missing"},
      {exists("/nope", false), ""},
      {exists("/z", false), "/z must be absent"},
      {exists("/error", false), ""},
      // type.
      {typed("/o", JsonType::kObject), ""},
      {typed("/a", JsonType::kArray), ""},
      {typed("/s", JsonType::kString), ""},
      {typed("/n", JsonType::kNumber), ""},
      {typed("/i", JsonType::kNumber), ""},
      {typed("/t", JsonType::kBoolean), ""},
      {typed("/f", JsonType::kBoolean), ""},
      {typed("/z", JsonType::kNull), ""},
      {typed("", JsonType::kObject), ""},
      {typed("", JsonType::kArray), "the answer is object, not an array"},
      {typed("/s", JsonType::kNumber), "/s is string, not a number"},
      {typed("/t", JsonType::kString), "/t is boolean, not a string"},
      {typed("/z", JsonType::kObject), "/z is null, not an object"},
      {typed("/a", JsonType::kObject), "/a is array, not an object"},
      {typed("/nope", JsonType::kNull), "/nope is missing"},
      // finite.
      {finite("/n"), ""},
      {finite("/big"), ""},
      {finite("/nan"), "/nan is NaN"},
      {finite("/inf"), "/inf is -Infinity"},
      {finite("/s"), "/s is string, not a number"},
      // min / max, on integers and doubles; NaN is never within bounds.
      {range("/i", 7, 7), ""},
      {range("/i", 7.5, std::nullopt), "/i is 7, below min 7.5"},
      {range("/n", std::nullopt, 2), "/n is 2.5, above max 2"},
      {range("/nan", 0, std::nullopt), "/nan is NaN"},
      {range("/inf", -1e300, std::nullopt), "/inf is -Infinity, below min -1e+300"},
      {range("/t", 0, 1), "/t is boolean, not a number"},
      // min_items.
      {minItems("/a", 3), ""},
      {minItems("/a", 0), ""},
      {minItems("/a", 4), "/a has 3 items, fewer than 4"},
      {minItems("/o", 0), "/o is object, not an array"},
  };
  for (const auto& c : cases) {
    const ValidationResult r = validate(doc, {c.check});
    EXPECT_EQ(r.ok, c.reason.empty()) << c.check.pointer << " want " << c.reason;
    EXPECT_EQ(r.reason, c.reason) << c.check.pointer;
  }
}

TEST(ValidateTest, FirstFailingCheckIsReported) {
  JsonCheck a = check("/a");
  JsonCheck b = check("/b");
  const ValidationResult r = validate(Document::parse("{}"), {a, b});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.reason, "/a is missing");
}

TEST(ValidateTest, OpenAiChatAnswer) {
  JsonCheck choices = check("/choices");
  choices.type = JsonType::kArray;
  choices.min_items = 1;
  JsonCheck content = check("/choices/0/message/content");
  content.type = JsonType::kString;
  JsonCheck error = check("/error");
  error.exists = false;
  const std::vector<JsonCheck> checks = {choices, content, error};
  EXPECT_TRUE(validate(Document::parse(R"({"id":"c1","choices":[{"index":0,"message":)"
                                       R"({"role":"assistant","content":"hi"}}]})"),
                       checks)
                  .ok);
  EXPECT_EQ(
      validate(Document::parse(R"({"choices":[{"message":{"content":null}}]})"), checks).reason,
      "/choices/0/message/content is null, not a string");
  EXPECT_EQ(
      validate(Document::parse(R"({"choices":[{"message":{"content":""}}],"error":{}})"), checks)
          .reason,
      "/error must be absent");
}

}  // namespace
}  // namespace airbag::json
