// The effective configuration as JSON, for the admin API (GET /config and
// GET /routes). Durations are printed in the config's own syntax ("250ms").
#pragma once

#include <string>

#include "airbag/config.h"
#include "nlohmann/json.hpp"

namespace airbag::config {

// Pretty-printed JSON of the whole snapshot. No file contents are ever read
// or shown; admin.token_file is shown as "<set>" (or omitted when unset) so the
// token's location is not advertised; certificate and key paths are shown as
// written, a path not being a secret.
std::string toJson(const Config& config);

// One route as a JSON object (the same shape as an element of "routes" in
// toJson). Used by GET /routes, which adds live state beside it.
nlohmann::json routeToJson(const RouteConfig& route);

}  // namespace airbag::config
