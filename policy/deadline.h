// Deadlines of one request and of each of its upstream tries (pure; the
// caller passes `now`). DESIGN.md §3 "timeout", §4 "Client deadline".
#pragma once

#include <optional>

#include "absl/time/time.h"
#include "airbag/config.h"

namespace airbag::policy {

// The request's overall deadline: the route's total timeout from `start`,
// lowered (never raised) by a client budget (x-airbag-timeout-ms).
absl::Time requestDeadline(absl::Time start, const TimeoutConfig& t,
                           std::optional<absl::Duration> client_budget);

// Deadlines of one try started at `now` within the request's `deadline`.
struct TryDeadlines {
  absl::Time end;         // the try is abandoned at this time (per_try, capped by deadline)
  absl::Time first_byte;  // the first response byte must arrive by then (capped by end)
};
TryDeadlines tryDeadlines(absl::Time now, absl::Time deadline, const TimeoutConfig& t);

// Parses a client budget header value in whole milliseconds ("250").
// Returns nullopt for anything that is not a non-negative integer.
std::optional<absl::Duration> parseClientBudgetMs(std::string_view value);

}  // namespace airbag::policy
