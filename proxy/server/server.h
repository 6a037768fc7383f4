// The process: loads nothing itself, but given a validated Config it binds the
// listeners, starts the workers and the admin port, and handles signals
// (SIGTERM/SIGINT drain then exit 0; SIGHUP reload).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "airbag/config.h"

namespace airbag::server {

struct ServerOptions {
  // How long in-flight requests may take to finish after SIGTERM.
  absl::Duration drain_grace = absl::Seconds(30);
};

// Runs airbag with `config` until it is told to stop. Returns the process exit
// status, or an error when it cannot start (bind failure, bad upstream host).
absl::StatusOr<int> runServer(std::shared_ptr<const Config> config, const ServerOptions& options);

}  // namespace airbag::server
