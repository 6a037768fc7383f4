// `cache.shared`: where the fleet-wide Redis tier is and how to reach it.
#include <charconv>

#include "proxy/config/loader.h"
#include "proxy/config/str_util.h"
#include "proxy/config/units.h"
#include "proxy/config/yaml_reader.h"

namespace airbag::config::internal {
namespace {

// redis[s]://[user@]host[:port][/db] (rediss: TLS). A password in the URL is refused: it
// would show in logs and GET /config; it belongs in password_file.
std::string parseRedisUrl(std::string_view url, SharedCacheConfig& s) {
  std::string_view rest = url;
  if (rest.substr(0, 9) == "rediss://") {
    s.tls = true;
    rest.remove_prefix(9);
  } else if (rest.substr(0, 8) == "redis://") {
    rest.remove_prefix(8);
  } else {
    return "must start with redis:// or rediss://";
  }
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view user = rest.substr(0, at);
    if (user.find(':') != std::string_view::npos)
      return "holds a password; put it in password_file instead";
    s.username = std::string(user);
    rest.remove_prefix(at + 1);
  }
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!db.empty()) {
      auto r = std::from_chars(db.data(), db.data() + db.size(), s.db);
      if (r.ec != std::errc() || r.ptr != db.data() + db.size() || s.db < 0 || s.db > 1023)
        return strCat("database '", db, "' is not a number in 0..1023");
    }
  }
  std::string hostport(rest);
  // The port may be left out; parseHostPort wants one.
  bool bracketed = !hostport.empty() && hostport[0] == '[';
  size_t colon = hostport.rfind(':');
  bool has_port = bracketed ? hostport.find("]:") != std::string::npos
                            : colon != std::string::npos;
  if (!has_port) hostport += ":6379";
  absl::StatusOr<HostPort> hp = parseHostPort(hostport);
  if (!hp.ok()) return std::string(hp.status().message());
  if (hp->host.empty() || hp->port == 0) return "needs a host and a port other than 0";
  s.host = hp->host;
  s.port = hp->port;
  return "";
}

}  // namespace

void Loader::readSharedCache(const Entry& e, SharedCacheConfig& s) {
  MapReader m(diag_, e.value, "cache.shared",
              {"redis", "password_file", "timeout", "coalesce", "coalesce_wait", "cluster",
               "tls"});
  if (!m.valid()) return;
  if (const Entry* r = m.require("redis")) {
    if (auto v = read_.string(r)) {
      s.redis = *v;
      std::string error = parseRedisUrl(*v, s);
      if (!error.empty()) diag_.error(r->mark(), strCat("cache.shared.redis '", *v, "' ", error));
    }
  }
  if (const Entry* t = m.find("tls")) {
    if (auto tls = readClientTls(*t, "cache.shared.tls")) s.tls_settings = *tls;
    if (!s.tls && !s.redis.empty())
      diag_.error(t->mark(), "cache.shared.tls applies to a rediss:// url only");
  }
  if (auto v = read_.string(m.find("password_file"))) s.password_file = *v;
  if (const Entry* t = m.find("timeout")) {
    if (auto v = read_.duration(t, false)) {
      if (*v > absl::Seconds(1))
        diag_.error(t->mark(), "cache.shared.timeout must be at most 1s: a lookup waits for it");
      else
        s.timeout = *v;
    }
  }
  if (auto v = read_.boolean(m.find("coalesce"))) s.coalesce = *v;
  if (const Entry* w = m.find("coalesce_wait")) {
    if (auto v = read_.duration(w, false)) {
      if (*v > absl::Seconds(30))
        diag_.error(w->mark(),
                    "cache.shared.coalesce_wait must be at most 30s: a request waits for it");
      else
        s.coalesce_wait = *v;
    }
  }
  if (const Entry* c = m.find("cluster")) {
    if (auto v = read_.boolean(c)) {
      s.cluster = *v;
      // A cluster has database 0 only; SELECT would fail on every node.
      if (s.cluster && s.db != 0)
        diag_.error(c->mark(), strCat("cache.shared.cluster: Redis Cluster has database 0 only; "
                                      "leave the database out of cache.shared.redis (it says ",
                                      s.db, ")"));
    }
  }
}

}  // namespace airbag::config::internal
