// Fallback rules compiled once per config load: operands parsed and regexes
// built up front, so matching a request allocates nothing.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "airbag/config.h"
#include "proxy/json/document.h"

namespace re2 {
class RE2;
}  // namespace re2

namespace airbag::json {

class CompiledRules {
 public:
  // Compiles `rules` (copied; the result does not refer to the argument).
  // Fails with InvalidArgument naming the rule when a pointer is malformed,
  // an operand is not JSON or not of the operator's kind (gt/ge/lt/le: a
  // number; in: an array; exists: a boolean; matches: a string holding a
  // valid RE2 expression).
  static absl::StatusOr<CompiledRules> build(const std::vector<Rule>& rules);

  CompiledRules();  // no rules: match() returns nullptr
  CompiledRules(CompiledRules&&) noexcept;
  CompiledRules& operator=(CompiledRules&&) noexcept;
  ~CompiledRules();

  // The first rule whose predicates all hold for `request` (a rule with no
  // predicates always holds), or nullptr. Predicate semantics: eq/ne compare
  // as JSON values (numbers numerically); gt/ge/lt/le hold only for a number
  // against the number operand (NaN never); in holds when the value equals
  // an item of the array operand; exists:true/false holds when the value is
  // present/absent; matches holds for a string the regex matches partially.
  // Every operator but exists:false needs the value to be present, so ne
  // does not hold for a missing value. A request that is not valid JSON has
  // no values. Thread-safe; the Rule lives as long as this object.
  const Rule* match(const Document& request) const;

  // Number of rules.
  size_t size() const;

 private:
  struct CompiledPredicate;
  struct CompiledRule;

  std::vector<CompiledRule> rules_;
};

}  // namespace airbag::json
