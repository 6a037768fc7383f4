// Small absl::Status helpers (Debian's abseil ships no RETURN_IF_ERROR).
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define AIRBAG_CONCAT_INNER_(a, b) a##b
#define AIRBAG_CONCAT_(a, b) AIRBAG_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define AIRBAG_RETURN_IF_ERROR(expr)          \
  do {                                        \
    ::absl::Status _airbag_status = (expr);   \
    if (!_airbag_status.ok()) return _airbag_status; \
  } while (0)

// Declares `lhs` from a StatusOr `rexpr`, or returns its error status.
#define AIRBAG_ASSIGN_OR_RETURN(lhs, rexpr) \
  AIRBAG_ASSIGN_OR_RETURN_IMPL_(AIRBAG_CONCAT_(_airbag_statusor_, __LINE__), lhs, rexpr)
#define AIRBAG_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                  \
  if (!tmp.ok()) return tmp.status();                  \
  lhs = std::move(tmp).value()
