// Advice on a valid configuration: choices that load but are very likely mistakes. Printed by
// `airbag --check-config` and at start; they never stop airbag.
#pragma once

#include <string>
#include <vector>

#include "airbag/config.h"

namespace airbag::config {

// One line per finding, "FILE: warning: ...", in route order; empty when there is nothing to
// say. Pure and thread-safe.
std::vector<std::string> configWarnings(const Config& config);

}  // namespace airbag::config
