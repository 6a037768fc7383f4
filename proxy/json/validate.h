// Checks of a model's JSON answer (route `validate.json`): an answer that
// fails one counts as a model failure and goes down the fallback chain.
#pragma once

#include <string>
#include <vector>

#include "airbag/config.h"
#include "proxy/json/document.h"

namespace airbag::json {

struct ValidationResult {
  bool ok = true;
  std::string reason;  // the first failed check, e.g. "/predictions/0/score is NaN"; empty if ok
};

// Applies `checks` in order and stops at the first that fails. Per check:
// exists:false passes only when the pointer addresses nothing; otherwise the
// value must exist, then match `type`; `finite` needs a number that is not
// NaN/±Inf; `min`/`max` need a number within the inclusive bounds (NaN never
// is); `min_items` needs an array at least that long. An answer that is not
// valid JSON fails every check; with no checks any answer passes.
// Allocates only to describe a failure.
ValidationResult validate(const Document& answer, const std::vector<JsonCheck>& checks);


}  // namespace airbag::json
