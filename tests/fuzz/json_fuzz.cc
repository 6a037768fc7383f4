// Fuzzes the JSON room: the canonical cache key is a fixed point
// (canonicalize(parse(canonicalize(parse(x)))) == canonicalize(parse(x))), and
// pointers, fallback rules and answer checks never crash on any document.
// An optional first line "#<pointer>\n" adds a fuzzer-chosen pointer to look
// up, ignore in the key, and test in a rule and a check.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "airbag/config.h"
#include "proxy/json/canonical.h"
#include "proxy/json/document.h"
#include "proxy/json/rules.h"
#include "proxy/json/validate.h"

namespace {

using airbag::JsonCheck;
using airbag::JsonType;
using airbag::Predicate;
using airbag::PredicateOp;
using airbag::Rule;

const std::vector<std::string> kPointers = {"", "/a", "/a/0", "/predictions/0/score", "/~0/~1",
                                             "/0", "/a/-", "/amount"};

Rule rule(std::string name, std::string pointer, PredicateOp op, std::string operand) {
  Rule r;
  r.name = std::move(name);
  r.when.push_back(Predicate{std::move(pointer), op, std::move(operand), {}});
  return r;
}

// One rule per operator and pointer, so every evaluator path meets the document.
std::vector<Rule> rulesFor(const std::vector<std::string>& pointers) {
  std::vector<Rule> rules;
  for (const std::string& p : pointers) {
    rules.push_back(rule("eq", p, PredicateOp::kEq, "{\"a\":[1,2.5,\"x\"]}"));
    rules.push_back(rule("ne", p, PredicateOp::kNe, "18446744073709551615"));
    rules.push_back(rule("gt", p, PredicateOp::kGt, "-9223372036854775808"));
    rules.push_back(rule("ge", p, PredicateOp::kGe, "1e308"));
    rules.push_back(rule("lt", p, PredicateOp::kLt, "0.5"));
    rules.push_back(rule("le", p, PredicateOp::kLe, "9007199254740993"));
    rules.push_back(rule("in", p, PredicateOp::kIn, "[null,true,0,\"\",[],{}]"));
    rules.push_back(rule("exists", p, PredicateOp::kExists, "false"));
    rules.push_back(rule("matches", p, PredicateOp::kMatches, "\"^(a|b)+$\""));
  }
  return rules;
}

std::vector<JsonCheck> checksFor(const std::vector<std::string>& pointers) {
  std::vector<JsonCheck> checks;
  for (const std::string& p : pointers) {
    for (int t = 0; t <= static_cast<int>(JsonType::kNull); ++t) {
      JsonCheck c;
      c.pointer = p;
      c.type = static_cast<JsonType>(t);
      checks.push_back(c);
    }
    JsonCheck c;
    c.pointer = p;
    c.finite = true;
    c.min = -1;
    c.max = 1;
    checks.push_back(c);
    c = JsonCheck{};
    c.pointer = p;
    c.min_items = 2;
    checks.push_back(c);
    c = JsonCheck{};
    c.pointer = p;
    c.exists = false;
    checks.push_back(c);
  }
  return checks;
}

[[noreturn]] void fail(const char* what, const std::string& a, const std::string& b) {
  std::fprintf(stderr, "json_fuzz: %s\n[%s]\n[%s]\n", what, a.c_str(), b.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> pointers = kPointers;
  std::vector<std::string> ignore;
  if (!text.empty() && text[0] == '#') {
    size_t nl = text.find('\n');
    if (nl == std::string_view::npos) nl = text.size();
    std::string p(text.substr(1, nl - 1));
    text.remove_prefix(nl == text.size() ? nl : nl + 1);
    if (airbag::json::isValidPointer(p)) ignore.push_back(p);
    pointers.push_back(std::move(p));  // a malformed one too: lookups must refuse it
  }

  airbag::json::Document doc = airbag::json::Document::parse(text);
  for (const std::string& p : pointers) (void)doc.find(p);

  const std::vector<std::string>* ignores[] = {&ignore, &kPointers};
  for (const std::vector<std::string>* ign : ignores) {
    auto key = airbag::json::canonicalize(doc, *ign);
    if (!key) continue;
    // Ignoring "" leaves nothing, documented as the empty text: not JSON, nothing to re-read.
    if (key->empty() && std::find(ign->begin(), ign->end(), "") != ign->end()) continue;
    airbag::json::Document reparsed = airbag::json::Document::parse(*key);
    if (!reparsed.ok()) fail("the canonical text is not JSON", std::string(text), *key);
    auto again = airbag::json::canonicalize(reparsed, {});
    if (!again || *again != *key) fail("canonicalize is not a fixed point", *key, again.value_or("<none>"));
  }

  static const auto* compiled = [] {
    auto r = airbag::json::CompiledRules::build(rulesFor(kPointers));
    if (!r.ok()) {
      std::fprintf(stderr, "json_fuzz: fixed rules do not compile: %s\n", r.status().ToString().c_str());
      std::abort();
    }
    return new airbag::json::CompiledRules(std::move(*r));
  }();
  (void)compiled->match(doc);
  if (pointers.size() > kPointers.size()) {
    auto own = airbag::json::CompiledRules::build(rulesFor({pointers.back()}));
    if (own.ok()) (void)own->match(doc);
  }
  static const std::vector<JsonCheck> checks = checksFor(kPointers);
  for (const JsonCheck& c : checks) (void)airbag::json::validate(doc, {c});
  if (pointers.size() > kPointers.size()) (void)airbag::json::validate(doc, checksFor({pointers.back()}));
  return 0;
}
