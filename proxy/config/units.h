// Parsers for the value syntaxes of the configuration: durations, sizes,
// ratios and host:port. Pure functions, usable anywhere (the admin API reuses
// them for runtime fault settings).
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "airbag/config.h"

namespace airbag::config {

// "250ms", "2s", "5m", "1h", "0s", "1.5s", "100us", "10ns". A unit is required;
// negative values, empty input and trailing junk are InvalidArgument.
absl::StatusOr<absl::Duration> parseDuration(std::string_view text);

// "512", "512B", "64KiB", "16MiB", "1GiB", "1TiB" (powers of 1024) and "64KB",
// "16MB", "1GB", "1TB" (powers of 1000). Whole numbers only. Junk and values
// that do not fit in 64 bits are InvalidArgument.
absl::StatusOr<uint64_t> parseSize(std::string_view text);

// "0.2" or "20%"; the result must lie within [0, 1].
absl::StatusOr<double> parseRatio(std::string_view text);

// "0.0.0.0:8080", "[::1]:9901", "localhost:80". The port is required and lies
// in 0..65535 (0 = pick any, for tests). Brackets are stripped from IPv6 hosts.
absl::StatusOr<HostPort> parseHostPort(std::string_view text);

}  // namespace airbag::config
