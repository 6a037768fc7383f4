// Process loggers: one named spdlog logger per subsystem ("main", "config",
// "admin", "worker", "upstream"), writing to stderr as JSON lines or text.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "airbag/config.h"
#include "spdlog/logger.h"
#include "spdlog/sinks/sink.h"

namespace airbag::log {

// Returns the spdlog level named by log.level ("warn" and "warning" both
// work), or InvalidArgument for an unknown name.
absl::StatusOr<spdlog::level::level_enum> parseLevel(std::string_view level);

// Returns a logger named `name` writing to stderr (stdout belongs to the access
// log), at config.level (info if the name is unknown), formatted per
// config.format. The logger is not registered in spdlog's global registry;
// the caller passes it to whoever logs. Thread-safe to use from any thread.
std::shared_ptr<spdlog::logger> makeLogger(std::string name, const LogConfig& config);

// As above, writing to `sink` instead of stderr (tests, or several loggers
// sharing one sink).
std::shared_ptr<spdlog::logger> makeLogger(std::string name, const LogConfig& config,
                                           spdlog::sink_ptr sink);

}  // namespace airbag::log
