// Settings the process reads only at start (its listeners, admin port, token
// and log sinks), and how a reload treats them.
#pragma once

#include <string>
#include <vector>

#include "airbag/config.h"

namespace airbag::config {

// Copies the restart-only settings of `running` into `next`, a freshly loaded
// config about to replace it, so the snapshot (and GET /config) shows what is
// really in force. Returns one warning per setting whose value in `next`
// differed, naming the key, e.g. "listen.address changed to 127.0.0.1:9000
// in the file; 127.0.0.1:8080 stays in force until a restart".
// The keys: listen.address, listen.workers, whether there is a listen.tls and
// its address (its files and min_version do apply), admin.address,
// admin.token_file, log.access_log, log.format.
std::vector<std::string> keepRestartOnly(const Config& running, Config& next);

}  // namespace airbag::config
