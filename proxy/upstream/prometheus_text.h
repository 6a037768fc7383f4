// A parser for the Prometheus text exposition format (version 0.0.4, and the
// sample lines of OpenMetrics 1.0), as model servers serve it on /metrics.
// It reads samples only: comments, HELP and TYPE lines are skipped, and an
// OpenMetrics exemplar after a sample is ignored. It never allocates and never
// throws; a malformed line is an error naming its line number.
#pragma once

#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

namespace airbag::upstream {

struct PromSample {
  std::string_view name;    // metric name, e.g. "vllm:num_requests_waiting"
  std::string_view labels;  // the text between the braces, as written ("" if none)
  double value = 0;         // NaN and ±Inf as written
};

// Calls `on_sample` for every sample line of `text`, in order. Returns
// InvalidArgument on the first malformed line ("line N: why"); samples
// before it have been delivered.
absl::Status forEachPromSample(std::string_view text,
                               absl::FunctionRef<void(const PromSample&)> on_sample);

}  // namespace airbag::upstream
