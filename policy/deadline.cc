// Deadline arithmetic for requests and tries; see deadline.h.
#include "policy/deadline.h"

#include <algorithm>


namespace airbag::policy {

absl::Time requestDeadline(absl::Time start, const TimeoutConfig& t,
                           std::optional<absl::Duration> client_budget) {
  absl::Duration total = t.total;
  if (client_budget && *client_budget < total) total = *client_budget;
  return start + total;
}

TryDeadlines tryDeadlines(absl::Time now, absl::Time deadline, const TimeoutConfig& t) {
  TryDeadlines d;
  d.end = std::min(now + t.per_try, deadline);
  d.first_byte = std::min(now + t.first_byte, d.end);
  return d;
}

std::optional<absl::Duration> parseClientBudgetMs(std::string_view value) {
  // At most 12 digits: far beyond any sane budget, and no overflow.
  if (value.empty() || value.size() > 12) return std::nullopt;
  int64_t ms = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    ms = ms * 10 + (c - '0');
  }
  return absl::Milliseconds(ms);
}

}  // namespace airbag::policy
