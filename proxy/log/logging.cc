// Process logger set-up: stderr sinks, level from config, JSON or text lines.
#include "proxy/log/logging.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "proxy/log/format.h"
#include "spdlog/formatter.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/stdout_sinks.h"

namespace airbag::log {

namespace {

// One JSON object per line: {"time":..,"level":..,"logger":..,"msg":..}.
// The message is escaped, unlike a pattern with %v, so any text stays valid.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    appendLiteral(dest, "{\"time\":\"");
    appendRfc3339Millis(dest, absl::FromChrono(msg.time));
    appendLiteral(dest, "\",\"level\":\"");
    auto level = spdlog::level::to_string_view(msg.level);
    appendLiteral(dest, std::string_view(level.data(), level.size()));
    appendLiteral(dest, "\",\"logger\":\"");
    appendJsonEscaped(dest, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    appendLiteral(dest, "\",\"msg\":\"");
    appendJsonEscaped(dest, std::string_view(msg.payload.data(), msg.payload.size()));
    appendLiteral(dest, "\"}\n");
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

absl::StatusOr<spdlog::level::level_enum> parseLevel(std::string_view level) {
  using spdlog::level::level_enum;
  if (level == "trace") return level_enum::trace;
  if (level == "debug") return level_enum::debug;
  if (level == "info") return level_enum::info;
  if (level == "warn" || level == "warning") return level_enum::warn;
  if (level == "error" || level == "err") return level_enum::err;
  if (level == "critical") return level_enum::critical;
  if (level == "off") return level_enum::off;
  return absl::InvalidArgumentError(absl::StrCat("unknown log level \"", std::string(level),
                                                 "\" (trace|debug|info|warn|error|critical|off)"));
}

std::shared_ptr<spdlog::logger> makeLogger(std::string name, const LogConfig& config) {
  return makeLogger(std::move(name), config, std::make_shared<spdlog::sinks::stderr_sink_mt>());
}

std::shared_ptr<spdlog::logger> makeLogger(std::string name, const LogConfig& config,
                                           spdlog::sink_ptr sink) {
  auto logger = std::make_shared<spdlog::logger>(std::move(name), std::move(sink));
  if (config.format == LogFormat::kJson) {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    logger->set_formatter(std::make_unique<spdlog::pattern_formatter>(
        "%Y-%m-%dT%H:%M:%S.%eZ %l [%n] %v", spdlog::pattern_time_type::utc));
  }
  auto level = parseLevel(config.level);
  logger->set_level(level.ok() ? *level : spdlog::level::info);
  // Warnings and errors reach stderr at once; chattier levels may batch.
  logger->flush_on(spdlog::level::warn);
  return logger;
}

}  // namespace airbag::log
