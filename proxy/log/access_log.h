// The access log: one line per request (DESIGN.md §7), formatted by each
// worker into its own buffer and written to a shared sink in large batches.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "airbag/config.h"

namespace airbag::log {

// One finished request. The views only need to live for the append() call.
struct AccessLogEntry {
  absl::Time time;
  std::string_view request_id, route, method, path;
  int status = 0;
  std::string_view source;
  int attempts = 0;
  std::string_view cache;    // empty for routes without a cache
  std::string_view breaker;  // empty for routes without a breaker
  absl::Duration upstream_time, total_time;
  int64_t bytes_sent = 0;
};

// Where access log lines go: stdout, stderr, a file (appended), or nowhere.
// Thread-safe: write() may be called from every worker.
class AccessLogSink {
 public:
  // Opens the destination named by config.access_log ("stdout", "stderr",
  // "off" or a file path, created 0644 if missing). Returns an error naming the
  // path if the file cannot be opened. Blocking: call before workers start.
  static absl::StatusOr<std::unique_ptr<AccessLogSink>> open(const LogConfig& config);

  AccessLogSink(const AccessLogSink&) = delete;
  AccessLogSink& operator=(const AccessLogSink&) = delete;
  ~AccessLogSink();

  // Writes `lines` (whole lines) with one write(2) under the sink's mutex, so
  // batches from different workers never interleave; a short write is
  // finished before the mutex is released. A failure drops the batch and is
  // counted, never retried: the log must not stall the data plane.
  void write(std::string_view lines);

  // False for "off": writers skip formatting altogether.
  bool enabled() const { return fd_ >= 0; }

  // Batches dropped because write(2) failed.
  uint64_t failedWrites() const;

 private:
  AccessLogSink(int fd, bool owned) : fd_(fd), owned_(owned) {}

  const int fd_;  // -1 when off
  const bool owned_;
  mutable absl::Mutex mu_;
  uint64_t failed_writes_ ABSL_GUARDED_BY(mu_) = 0;
};

// One per worker thread; not thread-safe. append() formats into a buffer that
// keeps its capacity, so steady-state logging allocates nothing and makes no
// syscall; the buffer is written when it passes kFlushBytes or on flush().
class AccessLogWriter {
 public:
  static constexpr size_t kFlushBytes = 32 * 1024;

  // `sink` must outlive the writer; nullptr behaves like "off".
  AccessLogWriter(AccessLogSink* sink, LogFormat format);
  AccessLogWriter(const AccessLogWriter&) = delete;
  AccessLogWriter& operator=(const AccessLogWriter&) = delete;
  // Flushes what is left.
  ~AccessLogWriter();

  // Formats one line (JSON or text) into the buffer; flushes past kFlushBytes.
  void append(const AccessLogEntry& entry);

  // Writes the buffered lines, if any. The worker calls this from a periodic
  // (~100 ms) timer and at shutdown.
  void flush();

  // Bytes formatted but not yet written.
  size_t buffered() const { return buffer_.size(); }

 private:
  void appendJson(const AccessLogEntry& e);
  void appendText(const AccessLogEntry& e);

  AccessLogSink* const sink_;
  const LogFormat format_;
  std::string buffer_;
};

}  // namespace airbag::log
