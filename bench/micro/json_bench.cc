// Micro benchmarks of the JSON room on a 4 KiB request: parse, canonical cache
// key (rapidjson, as shipped, against nlohmann), answer validation, rules.
#include <string>
#include <string_view>
#include <vector>

#include "airbag/config.h"
#include "benchmark/benchmark.h"
#include "nlohmann/json.hpp"
#include "proxy/json/canonical.h"
#include "proxy/json/document.h"
#include "proxy/json/rules.h"
#include "proxy/json/validate.h"
#include "rapidjson/document.h"

namespace airbag::json {
namespace {

// An OpenAI-style chat request of about 4 KiB: a per-call id, a few
// parameters, a conversation and some tool definitions.
std::string chatRequest() {
  std::string body =
      R"({"id":"req-8f14e45fceea167a5a36dedd4bea2543","model":"llama-3-8b-instruct",)"
      R"("temperature":0.7,"top_p":1.0,"max_tokens":256,"stream":false,"n":1,)"
      R"("stop":["\n\nUser:","</s>"],"messages":[)";
  body += R"({"role":"system","content":"You are a careful assistant. Answer briefly and cite )"
          R"(the document you used.\nNever invent numbers."})";
  for (int i = 0; body.size() < 3300; ++i) {
    body += R"(,{"role":")";
    body += (i % 2) ? "assistant" : "user";
    body +=
        R"(","content":"Turn )" + std::to_string(i) + R"(: what is the refund policy for order #)" +
        std::to_string(100000 + i * 7) + R"( placed on 2024-03-0)" + std::to_string(i % 9 + 1) +
        R"(? It arrived damaged \u2014 the box was wet.","name":"u)" + std::to_string(i) + R"("})";
  }
  body +=
      R"(],"tools":[{"type":"function","function":{"name":"lookup_order","description":)"
      R"("Find an order by number","parameters":{"type":"object","properties":{"order":)"
      R"({"type":"integer","minimum":1},"verbose":{"type":"boolean"}},"required":["order"]}}}],)"
      R"("logit_bias":{"50256":-100,"198":-1.5},"user":"tenant-42","seed":1234567890123})";
  return body;
}

const std::string& body4k() {
  static const std::string body = chatRequest();
  return body;
}

const std::vector<std::string>& ignoreId() {
  static const std::vector<std::string> ignore = {"/id"};
  return ignore;
}

void BM_RapidjsonParse(benchmark::State& state) {
  const std::string& body = body4k();
  for (auto _ : state) {
    Document doc = Document::parse(body);
    benchmark::DoNotOptimize(doc.ok());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_RapidjsonParse);

// What the parse flags cost: 0 = rapidjson defaults, 1 = + NaN/Inf, 2 = +
// iterative, 3 = + full precision (the shipped set).
void BM_RapidjsonParseFlags(benchmark::State& state) {
  const std::string& body = body4k();
  for (auto _ : state) {
    rapidjson::Document d;
    switch (state.range(0)) {
      case 0:
        d.Parse(body.data(), body.size());
        break;
      case 1:
        d.Parse<rapidjson::kParseNanAndInfFlag>(body.data(), body.size());
        break;
      case 2:
        d.Parse<rapidjson::kParseNanAndInfFlag | rapidjson::kParseIterativeFlag>(body.data(),
                                                                                 body.size());
        break;
      default:
        d.Parse<rapidjson::kParseNanAndInfFlag | rapidjson::kParseIterativeFlag |
                rapidjson::kParseFullPrecisionFlag>(body.data(), body.size());
    }
    benchmark::DoNotOptimize(d.HasParseError());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_RapidjsonParseFlags)->DenseRange(0, 3);

// The cache key as the proxy computes it: parse once, canonicalise, /id left out.
void BM_RapidjsonCanonicalKey(benchmark::State& state) {
  const std::string& body = body4k();
  for (auto _ : state) {
    Document doc = Document::parse(body);
    auto key = canonicalize(doc, ignoreId());
    benchmark::DoNotOptimize(key);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_RapidjsonCanonicalKey);

// Canonicalisation alone, on a document already parsed for the rules.
void BM_RapidjsonCanonicalOnly(benchmark::State& state) {
  const Document doc = Document::parse(body4k());
  for (auto _ : state) {
    auto key = canonicalize(doc, ignoreId());
    benchmark::DoNotOptimize(key);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body4k().size()));
}
BENCHMARK(BM_RapidjsonCanonicalOnly);

void BM_NlohmannParse(benchmark::State& state) {
  const std::string& body = body4k();
  for (auto _ : state) {
    auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    benchmark::DoNotOptimize(j.is_discarded());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_NlohmannParse);

// nlohmann's objects are sorted maps, so parse + erase + compact dump is its
// nearest equivalent of the canonical key (its number forms are not
// normalised, so it does a little less work than ours).
void BM_NlohmannCanonicalKey(benchmark::State& state) {
  const std::string& body = body4k();
  for (auto _ : state) {
    auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    j.erase("id");
    std::string key = j.dump();
    benchmark::DoNotOptimize(key);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_NlohmannCanonicalKey);

constexpr std::string_view kAnswer =
    R"({"model_name":"fraud","model_version":"3","id":"r-1","predictions":[)"
    R"({"score":0.8125,"label":"review","reasons":["amount","new_device"]}],)"
    R"("latency_ms":12.5})";

std::vector<JsonCheck> answerChecks() {
  JsonCheck predictions;
  predictions.pointer = "/predictions";
  predictions.type = JsonType::kArray;
  predictions.min_items = 1;
  JsonCheck score;
  score.pointer = "/predictions/0/score";
  score.finite = true;
  score.min = 0;
  score.max = 1;
  return {predictions, score};
}

// Validation of a typical answer, parse included (the answer is parsed only
// for this).
void BM_ValidateAnswer(benchmark::State& state) {
  const std::vector<JsonCheck> checks = answerChecks();
  for (auto _ : state) {
    const Document doc = Document::parse(kAnswer);
    ValidationResult r = validate(doc, checks);
    benchmark::DoNotOptimize(r.ok);
  }
}
BENCHMARK(BM_ValidateAnswer);

void BM_ValidateOnly(benchmark::State& state) {
  const std::vector<JsonCheck> checks = answerChecks();
  const Document doc = Document::parse(kAnswer);
  for (auto _ : state) {
    ValidationResult r = validate(doc, checks);
    benchmark::DoNotOptimize(r.ok);
  }
}
BENCHMARK(BM_ValidateOnly);

// Three rules, the last one matching, on the parsed 4 KiB request.
void BM_RulesMatch(benchmark::State& state) {
  auto predicate = [](std::string pointer, PredicateOp op, std::string value) {
    Predicate p;
    p.pointer = std::move(pointer);
    p.op = op;
    p.value_json = std::move(value);
    return p;
  };
  std::vector<Rule> rules(3);
  rules[0].name = "big";
  rules[0].when = {predicate("/max_tokens", PredicateOp::kGt, "4096")};
  rules[1].name = "other-model";
  rules[1].when = {predicate("/model", PredicateOp::kIn, R"(["gpt-4o","mistral-7b"])")};
  rules[2].name = "tenant";
  rules[2].when = {predicate("/user", PredicateOp::kMatches, R"("^tenant-[0-9]+$")"),
                   predicate("/stream", PredicateOp::kEq, "false")};
  auto compiled = CompiledRules::build(rules);
  if (!compiled.ok()) {
    state.SkipWithError("rules did not compile");
    return;
  }
  const Document doc = Document::parse(body4k());
  for (auto _ : state) {
    const Rule* r = compiled->match(doc);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_RulesMatch);

}  // namespace
}  // namespace airbag::json
