// Loads the YAML configuration (DESIGN.md §3) into a validated, immutable
// Config snapshot. Parsing is blocking file I/O: call it off the worker loops.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "airbag/config.h"

namespace airbag::config {

// Reads, parses and validates the file at `path`. On failure returns
// InvalidArgument (NotFound when the file cannot be read) whose message lists
// every error found, one per line, each "FILE:LINE:COL: message" (1-based).
// Thread-safe; the returned snapshot is never modified afterwards.
absl::StatusOr<std::shared_ptr<const Config>> loadFile(const std::string& path);

// As loadFile, for YAML text already in memory; `file_name` is used in error
// messages and becomes Config::source_path.
absl::StatusOr<std::shared_ptr<const Config>> loadString(std::string_view yaml,
                                                         std::string_view file_name);

}  // namespace airbag::config
