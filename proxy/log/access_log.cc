// Access log sink (fd + mutex) and per-worker batching writer.
#include "proxy/log/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "proxy/log/format.h"

namespace airbag::log {

absl::StatusOr<std::unique_ptr<AccessLogSink>> AccessLogSink::open(const LogConfig& config) {
  const std::string& dest = config.access_log;
  if (dest == "off") return std::unique_ptr<AccessLogSink>(new AccessLogSink(-1, false));
  if (dest == "stdout" || dest.empty())
    return std::unique_ptr<AccessLogSink>(new AccessLogSink(STDOUT_FILENO, false));
  if (dest == "stderr")
    return std::unique_ptr<AccessLogSink>(new AccessLogSink(STDERR_FILENO, false));
  int fd = ::open(dest.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot open access log \"", dest, "\": ", std::strerror(errno)));
  }
  return std::unique_ptr<AccessLogSink>(new AccessLogSink(fd, true));
}

AccessLogSink::~AccessLogSink() {
  if (owned_ && fd_ >= 0) ::close(fd_);
}

void AccessLogSink::write(std::string_view lines) {
  if (fd_ < 0 || lines.empty()) return;
  absl::MutexLock lock(&mu_);
  // Bounded: each pass either writes at least one byte or gives up.
  while (!lines.empty()) {
    ssize_t n = ::write(fd_, lines.data(), lines.size());
    if (n > 0) {
      lines.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      ++failed_writes_;
      return;
    }
  }
}

uint64_t AccessLogSink::failedWrites() const {
  absl::MutexLock lock(&mu_);
  return failed_writes_;
}

AccessLogWriter::AccessLogWriter(AccessLogSink* sink, LogFormat format)
    : sink_(sink != nullptr && sink->enabled() ? sink : nullptr), format_(format) {
  // Room for a full batch plus one long line, so steady state never grows it.
  if (sink_ != nullptr) buffer_.reserve(kFlushBytes + 8 * 1024);
}

AccessLogWriter::~AccessLogWriter() { flush(); }

void AccessLogWriter::append(const AccessLogEntry& e) {
  if (sink_ == nullptr) return;
  if (format_ == LogFormat::kJson) {
    appendJson(e);
  } else {
    appendText(e);
  }
  if (buffer_.size() >= kFlushBytes) flush();
}

void AccessLogWriter::flush() {
  if (sink_ == nullptr || buffer_.empty()) return;
  sink_->write(buffer_);
  buffer_.clear();  // keeps the capacity
}

void AccessLogWriter::appendJson(const AccessLogEntry& e) {
  std::string& b = buffer_;
  auto field = [&b](std::string_view key, std::string_view value) {
    appendLiteral(b, key);
    appendJsonEscaped(b, value);
    b.push_back('"');
  };
  appendLiteral(b, "{\"time\":\"");
  appendRfc3339Millis(b, e.time);
  b.push_back('"');
  field(",\"request_id\":\"", e.request_id);
  field(",\"route\":\"", e.route);
  field(",\"method\":\"", e.method);
  field(",\"path\":\"", e.path);
  appendLiteral(b, ",\"status\":");
  appendInt(b, e.status);
  field(",\"source\":\"", e.source);
  appendLiteral(b, ",\"attempts\":");
  appendInt(b, e.attempts);
  field(",\"cache\":\"", e.cache);
  field(",\"breaker\":\"", e.breaker);
  appendLiteral(b, ",\"upstream_ms\":");
  appendMillis(b, e.upstream_time);
  appendLiteral(b, ",\"total_ms\":");
  appendMillis(b, e.total_time);
  appendLiteral(b, ",\"bytes_sent\":");
  appendInt(b, e.bytes_sent);
  appendLiteral(b, "}\n");
}

void AccessLogWriter::appendText(const AccessLogEntry& e) {
  std::string& b = buffer_;
  // The JSON line's fields in the JSON line's order, space-separated, without
  // names. Every string is quoted and escaped as in JSON, so a hostile path can
  // neither forge a second line nor shift the fields with a space; an empty
  // string prints as a bare -, numbers print bare.
  auto text = [&b](std::string_view v) {
    b.push_back(' ');
    if (v.empty()) {
      b.push_back('-');
      return;
    }
    b.push_back('"');
    appendJsonEscaped(b, v);
    b.push_back('"');
  };
  auto number = [&b](int64_t v) {
    b.push_back(' ');
    appendInt(b, v);
  };
  auto millis = [&b](absl::Duration d) {
    b.push_back(' ');
    appendMillis(b, d);
  };
  appendRfc3339Millis(b, e.time);
  text(e.request_id);
  text(e.route);
  text(e.method);
  text(e.path);
  number(e.status);
  text(e.source);
  number(e.attempts);
  text(e.cache);
  text(e.breaker);
  millis(e.upstream_time);
  millis(e.total_time);
  number(e.bytes_sent);
  b.push_back('\n');
}

}  // namespace airbag::log
