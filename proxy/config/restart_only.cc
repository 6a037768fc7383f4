// Restart-only settings on reload; see restart_only.h.
#include "proxy/config/restart_only.h"

#include <optional>

#include "proxy/config/str_util.h"

namespace airbag::config {
namespace {

std::string workersText(int workers) { return workers == 0 ? "auto" : std::to_string(workers); }

std::string formatText(LogFormat f) { return f == LogFormat::kJson ? "json" : "text"; }

// The listeners a TLS section makes; its files and versions apply on reload.
bool sameTlsListeners(const std::optional<ServerTlsConfig>& a,
                      const std::optional<ServerTlsConfig>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || a->address == b->address;
}

std::string tlsListeners(const std::optional<ServerTlsConfig>& t) {
  if (!t) return "no TLS";
  return t->address.empty() ? "TLS on listen.address" : strCat("TLS on ", t->address);
}

// Paths to secrets are not repeated in the log or the admin answer.
std::string hidden(std::string_view key) {
  return strCat(key, " changed in the file; the running value stays in force until a restart");
}

std::string shown(std::string_view key, std::string_view file, std::string_view running) {
  return strCat(key, " changed to ", file, " in the file; ", running,
                " stays in force until a restart");
}

}  // namespace

std::vector<std::string> keepRestartOnly(const Config& running, Config& next) {
  std::vector<std::string> warnings;
  if (next.listen.address != running.listen.address) {
    warnings.push_back(shown("listen.address", next.listen.address, running.listen.address));
  }
  next.listen.address = running.listen.address;
  next.listen.bind = running.listen.bind;
  if (next.listen.workers != running.listen.workers) {
    warnings.push_back(shown("listen.workers", workersText(next.listen.workers),
                             workersText(running.listen.workers)));
    next.listen.workers = running.listen.workers;
  }
  if (!sameTlsListeners(next.listen.tls, running.listen.tls)) {
    warnings.push_back(
        shown("listen.tls", tlsListeners(next.listen.tls), tlsListeners(running.listen.tls)));
    next.listen.tls = running.listen.tls;
  }
  if (next.admin.address != running.admin.address) {
    warnings.push_back(shown("admin.address", next.admin.address, running.admin.address));
  }
  next.admin.address = running.admin.address;
  next.admin.bind = running.admin.bind;
  if (next.admin.token_file != running.admin.token_file) {
    warnings.push_back(hidden("admin.token_file"));
    next.admin.token_file = running.admin.token_file;
  }
  if (next.log.access_log != running.log.access_log) {
    warnings.push_back(shown("log.access_log", next.log.access_log, running.log.access_log));
    next.log.access_log = running.log.access_log;
  }
  if (next.log.format != running.log.format) {
    warnings.push_back(
        shown("log.format", formatText(next.log.format), formatText(running.log.format)));
    next.log.format = running.log.format;
  }
  // Each worker's Redis connection is made once, at start.
  const auto& ns = next.cache.shared;
  const auto& rs = running.cache.shared;
  bool same_shared = ns.has_value() == rs.has_value() &&
                     (!ns || (ns->redis == rs->redis && ns->password_file == rs->password_file &&
                              ns->timeout == rs->timeout && ns->coalesce == rs->coalesce &&
                              ns->coalesce_wait == rs->coalesce_wait &&
                              ns->cluster == rs->cluster && ns->tls_settings == rs->tls_settings));
  if (!same_shared) {
    warnings.push_back(hidden("cache.shared"));
    next.cache.shared = running.cache.shared;
  }
  return warnings;
}

}  // namespace airbag::config
