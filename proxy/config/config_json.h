// The effective configuration as JSON, for the admin API (GET /config and
// GET /routes). Durations are printed in the config's own syntax ("250ms").
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "airbag/config.h"
#include "nlohmann/json.hpp"

namespace airbag::config {

// Pretty-printed JSON of the whole snapshot, in the file's own keys: loaded
// back as YAML (a superset of JSON) it gives the same configuration. Absent
// optional sections are left out. No file contents are ever read
// or shown; admin.token_file is shown as "<set>" (or omitted when unset) so the
// token's location is not advertised; certificate and key paths are shown as
// written, a path not being a secret.
std::string toJson(const Config& config);

// The body of the admin API's PUT /routes/{name}/fault, in the keys of a
// route's `fault:` ({"delay":{"percent":10,"duration":"200ms"},
// "abort":{"percent":5,"status":503}}), missing values at their defaults.
// InvalidArgument naming the problem for any other key, a value out of range
// or a malformed duration.
absl::StatusOr<FaultConfig> faultFromJson(const nlohmann::json& body);

// One route as a JSON object (the same shape as an element of "routes" in
// toJson). Used by GET /routes, which adds live state beside it.
nlohmann::json routeToJson(const RouteConfig& route);

}  // namespace airbag::config
