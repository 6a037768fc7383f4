// Compilation and evaluation of fallback rules over the request document.
#include "proxy/json/rules.h"

#include <cmath>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "re2/re2.h"

namespace airbag::json {

struct CompiledRules::CompiledPredicate {
  std::string pointer;
  PredicateOp op = PredicateOp::kEq;
  // Owned by pointer so the operand's address survives moves of the vector.
  std::unique_ptr<rapidjson::Document> operand;
  bool exists = true;            // kExists
  std::unique_ptr<re2::RE2> re;  // kMatches
};

struct CompiledRules::CompiledRule {
  Rule rule;
  std::vector<CompiledPredicate> predicates;
};

namespace {

absl::Status invalid(const Rule& rule, const Predicate& p, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("rule \"", rule.name, "\" predicate ", predicateOpName(p.op), " on \"", p.pointer, "\"",
                   (p.loc.line > 0 ? absl::StrCat(" (line ", p.loc.line, ")") : std::string()),
                   ": ", absl::string_view(what.data(), what.size())));
}

bool ordered(const rapidjson::Value& v, const rapidjson::Value& operand, PredicateOp op) {
  if (!v.IsNumber()) return false;
  const int c = compareNumbers(v, operand);
  if (c == 2) return false;  // NaN is unordered
  switch (op) {
    case PredicateOp::kGt:
      return c > 0;
    case PredicateOp::kGe:
      return c >= 0;
    case PredicateOp::kLt:
      return c < 0;
    case PredicateOp::kLe:
      return c <= 0;
    default:
      return false;
  }
}

}  // namespace

CompiledRules::CompiledRules() = default;
CompiledRules::CompiledRules(CompiledRules&&) noexcept = default;
CompiledRules& CompiledRules::operator=(CompiledRules&&) noexcept = default;
CompiledRules::~CompiledRules() = default;

size_t CompiledRules::size() const { return rules_.size(); }

absl::StatusOr<CompiledRules> CompiledRules::build(const std::vector<Rule>& rules) {
  CompiledRules out;
  out.rules_.reserve(rules.size());
  for (const Rule& rule : rules) {
    CompiledRule cr;
    cr.rule = rule;
    cr.predicates.reserve(rule.when.size());
    for (const Predicate& p : rule.when) {
      if (!isValidPointer(p.pointer)) return invalid(rule, p, "malformed JSON pointer");
      CompiledPredicate cp;
      cp.pointer = p.pointer;
      cp.op = p.op;
      cp.operand = std::make_unique<rapidjson::Document>();
      cp.operand->Parse<rapidjson::kParseFullPrecisionFlag>(p.value_json.data(),
                                                            p.value_json.size());
      if (cp.operand->HasParseError()) return invalid(rule, p, "operand is not valid JSON");
      const rapidjson::Value& v = *cp.operand;
      switch (p.op) {
        case PredicateOp::kEq:
        case PredicateOp::kNe:
          break;
        case PredicateOp::kGt:
        case PredicateOp::kGe:
        case PredicateOp::kLt:
        case PredicateOp::kLe:
          if (!v.IsNumber()) return invalid(rule, p, "operand must be a number");
          break;
        case PredicateOp::kIn:
          if (!v.IsArray()) return invalid(rule, p, "operand must be a list");
          break;
        case PredicateOp::kExists:
          if (!v.IsBool()) return invalid(rule, p, "operand must be true or false");
          cp.exists = v.GetBool();
          break;
        case PredicateOp::kMatches: {
          if (!v.IsString()) return invalid(rule, p, "operand must be a string");
          RE2::Options options;
          options.set_log_errors(false);
          cp.re = std::make_unique<re2::RE2>(re2::StringPiece(v.GetString(), v.GetStringLength()),
                                             options);
          if (!cp.re->ok()) {
            return invalid(rule, p, "invalid regular expression: " + cp.re->error());
          }
          break;
        }
      }
      cr.predicates.push_back(std::move(cp));
    }
    out.rules_.push_back(std::move(cr));
  }
  return out;
}

const Rule* CompiledRules::match(const Document& request) const {
  for (const CompiledRule& cr : rules_) {
    bool all = true;
    for (const CompiledPredicate& p : cr.predicates) {
      const rapidjson::Value* v = request.find(p.pointer);
      bool holds = false;
      switch (p.op) {
        case PredicateOp::kExists:
          holds = (v != nullptr) == p.exists;
          break;
        case PredicateOp::kEq:
          holds = v != nullptr && valueEquals(*v, *p.operand);
          break;
        case PredicateOp::kNe:
          holds = v != nullptr && !valueEquals(*v, *p.operand);
          break;
        case PredicateOp::kGt:
        case PredicateOp::kGe:
        case PredicateOp::kLt:
        case PredicateOp::kLe:
          holds = v != nullptr && ordered(*v, *p.operand, p.op);
          break;
        case PredicateOp::kIn:
          if (v != nullptr) {
            for (const auto& item : p.operand->GetArray()) {
              if (valueEquals(*v, item)) {
                holds = true;
                break;
              }
            }
          }
          break;
        case PredicateOp::kMatches:
          holds =
              v != nullptr && v->IsString() &&
              re2::RE2::PartialMatch(re2::StringPiece(v->GetString(), v->GetStringLength()), *p.re);
          break;
      }
      if (!holds) {
        all = false;
        break;
      }
    }
    if (all) return &cr.rule;
  }
  return nullptr;
}

}  // namespace airbag::json
