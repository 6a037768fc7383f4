// The YAML schema of DESIGN.md §3: yaml-cpp nodes -> plain Config structs,
// validated as a whole. Every error is collected so a single run of
// `airbag --check-config` lists all of them.
#include "proxy/config/config_loader.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "proxy/config/str_util.h"
#include "proxy/config/units.h"
#include "proxy/config/yaml_reader.h"
#include "proxy/log/format.h"
#include "re2/re2.h"

namespace airbag::config {
namespace {

constexpr int64_t kMaxU32 = 0xffffffffll;

SourceLoc locOf(const YAML::Mark& m) {
  return {std::max(m.line, 0) + 1, std::max(m.column, 0) + 1};
}

bool isTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool isToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!isTokenChar(c)) return false;
  }
  return true;
}

// Compact JSON that never throws: bad UTF-8 is refused before parsing, and
// would be replaced here rather than abort a load.
template <typename Json>
std::string compactJson(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string durationText(absl::Duration d) {
  return d == absl::ZeroDuration() ? "0s" : absl::FormatDuration(d);
}

// A hint for the YAML syntax errors people hit most in this file's kind of
// content, or "". `mark` is where yaml-cpp gave up.
std::string syntaxHint(std::string_view yaml, const YAML::Mark& mark) {
  auto line = [&](int i) -> std::string_view {
    size_t start = 0;
    for (int n = 0; n < i && start != std::string_view::npos; ++n) {
      start = yaml.find('\n', start);
      if (start != std::string_view::npos) ++start;
    }
    if (i < 0 || start == std::string_view::npos) return "";
    return yaml.substr(start, yaml.find('\n', start) - start);
  };
  // An unquoted [::1]:9901 starts a YAML list; the parser fails a little
  // later, on this line or the next.
  static const LazyRE2 kIpv6 = {R"((?:^|[^'"\w])(\[[0-9A-Fa-f:.]*\]:[0-9]+))"};
  for (int i : {mark.line, mark.line - 1}) {
    std::string address;
    if (RE2::PartialMatch(re2::StringPiece(line(i).data(), line(i).size()), *kIpv6, &address)) {
      return strCat(" (quote an IPv6 address: '", address, "')");
    }
  }
  const std::string_view here = line(mark.line);
  const size_t indent_end = here.find_first_not_of(" \t");
  if (here.substr(0, indent_end).find('\t') != std::string_view::npos) {
    return " (indent with spaces, not tabs)";
  }
  return "";
}

class Loader {
 public:
  explicit Loader(std::string_view file) : diag_(std::string(file)), read_(diag_) {
    config_.source_path = std::string(file);
  }

  absl::StatusOr<std::shared_ptr<const Config>> load(std::string_view yaml);

 private:
  void readRoot(const YAML::Node& root);
  void readListen(const Entry& e);
  void readAdmin(const Entry& e);
  void readLog(const Entry& e);
  void readUpstreams(const Entry& e);
  void readUpstream(const Entry& e, UpstreamConfig& u);
  void parseUrl(const Entry& e, UpstreamConfig& u);
  void readRoutes(const Entry& e);
  void readRoute(const YAML::Node& node, RouteConfig& r);
  void readMatch(const Entry& e, MatchConfig& m);
  void readTimeout(const Entry& e, TimeoutConfig& t);
  void readRetry(const Entry& e, RetryConfig& r);
  void readBulkhead(const Entry& e, BulkheadConfig& b);
  void readBreaker(const Entry& e, CircuitBreakerConfig& b);
  void readRouteCache(const Entry& e, RouteCacheConfig& c);
  void readValidate(const Entry& e, ValidateConfig& v);
  void readFallback(const Entry& e, RouteConfig& r);
  void readRules(const Entry& e, std::vector<Rule>& rules);
  void readPredicate(const YAML::Node& node, Predicate& p);
  void readRespond(const Entry& e, RespondConfig& out);
  void readFault(const Entry& e, FaultConfig& f);
  void checkUpstreamRef(const Entry& e, const std::string& name);
  void checkRegex(const YAML::Mark& mark, std::string_view key, const std::string& pattern);
  void checkPointer(const Entry& e, const std::string& pointer);
  std::optional<HostPort> hostPort(const Entry& e);

  Diagnostics diag_;
  ValueReader read_;
  Config config_;
};

// yaml-cpp passes bytes that are not UTF-8 through into scalars, where JSON
// serialisation (respond bodies, GET /config) would later fail. Each line's
// first bad byte is reported at its exact position, and the text to parse has
// every bad byte replaced by '?' so the rest of the file is still checked, at
// unchanged positions (yaml-cpp's columns count bytes).
std::string checkUtf8(std::string_view text, Diagnostics& diag) {
  std::string out(text);
  YAML::Mark mark;
  int reported_line = -1;
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      ++mark.line;
      mark.column = 0;
      continue;
    }
    size_t len = c < 0x80 ? 1 : log::utf8SequenceLength(text, i);
    if (len == 0) {
      if (mark.line != reported_line) {
        reported_line = mark.line;
        const bool utf16 = i == 0 && text.size() >= 2 &&
                           ((c == 0xff && static_cast<unsigned char>(text[1]) == 0xfe) ||
                            (c == 0xfe && static_cast<unsigned char>(text[1]) == 0xff));
        diag.error(mark, absl::StrFormat("invalid UTF-8 (byte 0x%02X); the configuration must be "
                                         "UTF-8 text%s",
                                         c, utf16 ? " (this file looks like UTF-16)" : ""));
      }
      out[i] = '?';
      len = 1;
    }
    mark.column += static_cast<int>(len);
    i += len - 1;
  }
  return out;
}

absl::StatusOr<std::shared_ptr<const Config>> Loader::load(std::string_view raw) {
  const std::string yaml = checkUtf8(raw, diag_);
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(yaml);
  } catch (const YAML::Exception& e) {
    diag_.error(e.mark, strCat("YAML syntax error: ", e.msg, syntaxHint(yaml, e.mark)));
    return absl::InvalidArgumentError(diag_.text());
  }
  if (docs.empty() || (docs.size() == 1 && docs[0].IsNull())) {
    diag_.error(YAML::Mark(),
                "the configuration is empty (it needs at least upstreams and routes)");
  } else {
    for (size_t i = 1; i < docs.size(); ++i) {
      diag_.error(docs[i].Mark(), "only one YAML document is allowed in the configuration");
    }
    // yaml-cpp reports conversion problems by exception; none should escape the
    // readers, but a malformed document must still end in an error, not a crash.
    try {
      readRoot(docs[0]);
    } catch (const YAML::Exception& e) {
      diag_.error(e.mark, strCat("invalid YAML: ", e.msg));
    }
  }
  if (!diag_.empty()) return absl::InvalidArgumentError(diag_.text());
  return std::make_shared<const Config>(std::move(config_));
}

void Loader::readRoot(const YAML::Node& root) {
  MapReader m(diag_, root, "the configuration",
              {"listen", "admin", "log", "shedding", "cache", "upstreams", "routes"});
  if (!m.valid()) return;
  if (const Entry* e = m.find("listen")) readListen(*e);
  if (const Entry* e = m.find("admin")) readAdmin(*e);
  if (const Entry* e = m.find("log")) readLog(*e);
  if (const Entry* e = m.find("shedding")) {
    MapReader s(diag_, e->value, "shedding", {"max_in_flight"});
    SheddingConfig shedding;
    if (auto v = read_.integer(s.find("max_in_flight"), 1, kMaxU32)) {
      shedding.max_in_flight = static_cast<uint32_t>(*v);
    }
    if (s.valid()) config_.shedding = shedding;
  }
  if (const Entry* e = m.find("cache")) {
    MapReader c(diag_, e->value, "cache", {"max_bytes"});
    if (auto v = read_.size(c.find("max_bytes"), 1)) config_.cache.max_bytes = *v;
  }
  if (const Entry* e = m.require("upstreams")) readUpstreams(*e);
  if (const Entry* e = m.require("routes")) readRoutes(*e);

  const HostPort& l = config_.listen.bind;
  const HostPort& a = config_.admin.bind;
  if (l.port != 0 && l.port == a.port &&
      (l.host == a.host || l.host == "0.0.0.0" || a.host == "0.0.0.0" || l.host == "::" ||
       a.host == "::")) {
    const Entry* admin = m.find("admin");
    diag_.error(admin ? admin->key_mark : m.mark(),
                strCat("admin.address ", config_.admin.address, " collides with listen.address ",
                       config_.listen.address));
  }
}

std::optional<HostPort> Loader::hostPort(const Entry& e) {
  std::optional<std::string> s = read_.string(&e);
  if (!s) return std::nullopt;
  absl::StatusOr<HostPort> hp = parseHostPort(*s);
  if (!hp.ok()) {
    diag_.error(e.mark(), strCat("'", e.key, "': ", hp.status().message()));
    return std::nullopt;
  }
  return *hp;
}

void Loader::readListen(const Entry& e) {
  ListenConfig& l = config_.listen;
  MapReader m(diag_, e.value, "listen", {"address", "workers", "tls", "limits"});
  if (const Entry* a = m.find("address")) {
    if (auto hp = hostPort(*a)) {
      l.address = a->value.Scalar();
      l.bind = *hp;
    }
  }
  if (const Entry* w = m.find("workers")) {
    if (w->value.IsScalar() && w->value.Scalar() == "auto") {
      l.workers = 0;
    } else if (w->value.IsScalar() && !w->value.Scalar().empty() &&
               absl::ascii_isdigit(static_cast<unsigned char>(w->value.Scalar()[0]))) {
      if (auto v = read_.integer(w, 1, 256)) l.workers = static_cast<int>(*v);
    } else {
      diag_.error(w->mark(), "'workers' must be 'auto' or a whole number in 1..256");
    }
  }
  if (const Entry* t = m.find("tls")) {
    MapReader tm(diag_, t->value, "listen.tls", {"cert", "key"});
    ServerTlsConfig tls;
    auto cert = read_.string(tm.require("cert"));
    auto key = read_.string(tm.require("key"));
    if (cert && key) {
      tls.cert = *cert;
      tls.key = *key;
      l.tls = tls;
    }
  }
  if (const Entry* lim = m.find("limits")) {
    MapReader lm(diag_, lim->value, "listen.limits",
                 {"max_header_bytes", "max_body_bytes", "header_timeout", "idle_timeout"});
    if (auto v = read_.size(lm.find("max_header_bytes"), 1024)) l.limits.max_header_bytes = *v;
    if (auto v = read_.size(lm.find("max_body_bytes"), 0)) l.limits.max_body_bytes = *v;
    if (auto v = read_.duration(lm.find("header_timeout"), false)) l.limits.header_timeout = *v;
    if (auto v = read_.duration(lm.find("idle_timeout"), false)) l.limits.idle_timeout = *v;
  }
}

void Loader::readAdmin(const Entry& e) {
  AdminConfig& a = config_.admin;
  MapReader m(diag_, e.value, "admin", {"address", "token_file"});
  if (const Entry* addr = m.find("address")) {
    if (auto hp = hostPort(*addr)) {
      a.address = addr->value.Scalar();
      a.bind = *hp;
    }
  }
  if (auto v = read_.string(m.find("token_file"))) a.token_file = *v;
}

void Loader::readLog(const Entry& e) {
  LogConfig& l = config_.log;
  MapReader m(diag_, e.value, "log", {"level", "access_log", "format"});
  if (auto v = read_.oneOf<std::string>(m.find("level"), {{"trace", "trace"},
                                                          {"debug", "debug"},
                                                          {"info", "info"},
                                                          {"warn", "warn"},
                                                          {"error", "error"},
                                                          {"critical", "critical"},
                                                          {"off", "off"}})) {
    l.level = *v;
  }
  if (auto v = read_.string(m.find("access_log"))) l.access_log = *v;
  if (auto v = read_.oneOf<LogFormat>(m.find("format"),
                                      {{"json", LogFormat::kJson}, {"text", LogFormat::kText}})) {
    l.format = *v;
  }
}

void Loader::readUpstreams(const Entry& e) {
  if (!e.value.IsMap()) {
    diag_.error(e.mark(),
                strCat("'upstreams' must be a map of name -> upstream, got ", kindName(e.value)));
    return;
  }
  MapReader m(diag_, e.value, "upstreams", {});
  for (const Entry& u : m.entries()) {
    UpstreamConfig up;
    up.name = u.key;
    up.loc = locOf(u.key_mark);
    if (up.name.empty()) diag_.error(u.key_mark, "upstream names must not be empty");
    readUpstream(u, up);
    config_.upstreams.push_back(std::move(up));
  }
}

void Loader::readUpstream(const Entry& e, UpstreamConfig& u) {
  const std::string what = strCat("upstream '", u.name, "'");
  MapReader m(diag_, e.value, what, {"url", "connect_timeout", "max_connections", "tls", "health"});
  if (!m.valid()) return;
  if (e.value.IsNull()) {
    diag_.error(e.key_mark, strCat(what, " needs a 'url'"));
    return;
  }
  if (const Entry* url = m.require("url")) parseUrl(*url, u);
  if (auto v = read_.duration(m.find("connect_timeout"), false)) u.connect_timeout = *v;
  if (auto v = read_.integer(m.find("max_connections"), 1, kMaxU32)) {
    u.max_connections = static_cast<uint32_t>(*v);
  }
  if (const Entry* t = m.find("tls")) {
    // Kept even for http:// urls (ignored there) so one block can follow an
    // upstream that moves between plain and TLS endpoints.
    MapReader tm(diag_, t->value, strCat(what, " tls"), {"ca", "verify", "sni"});
    UpstreamTlsConfig tls;
    if (auto v = read_.string(tm.find("ca"))) tls.ca = *v;
    if (auto v = read_.boolean(tm.find("verify"))) tls.verify = *v;
    if (auto v = read_.string(tm.find("sni"))) tls.sni = *v;
    if (tm.valid()) u.tls = tls;
  }
  if (const Entry* h = m.find("health")) {
    MapReader hm(diag_, h->value, strCat(what, " health"), {"path", "interval", "timeout"});
    HealthCheckConfig health;
    if (const Entry* p = hm.find("path")) {
      if (auto v = read_.string(p)) {
        if ((*v)[0] != '/') {
          diag_.error(p->mark(), "'path' must start with '/'");
        } else {
          health.path = *v;
        }
      }
    }
    if (auto v = read_.duration(hm.find("interval"), false)) health.interval = *v;
    if (auto v = read_.duration(hm.find("timeout"), false)) health.timeout = *v;
    if (health.timeout > health.interval) {
      diag_.error(hm.mark(),
                  strCat("health timeout (", durationText(health.timeout),
                         ") exceeds the interval (", durationText(health.interval), ")"));
    }
    if (hm.valid()) u.health = health;
  }
}

void Loader::parseUrl(const Entry& e, UpstreamConfig& u) {
  std::optional<std::string> s = read_.string(&e);
  if (!s) return;
  u.url = *s;
  std::string_view rest = *s;
  auto fail = [&](std::string_view why) {
    diag_.error(e.mark(), strCat("invalid upstream url '", *s, "': ", why));
  };
  if (absl::StartsWithIgnoreCase(toAbsl(rest), "https://")) {
    u.https = true;
    diag_.error(e.mark(), strCat("https upstreams are not supported yet (url '", *s,
                                 "'); use an http:// url"));
    return;
  }
  if (!absl::StartsWithIgnoreCase(toAbsl(rest), "http://")) {
    fail("expected http://host[:port][/base/path]");
    return;
  }
  rest.remove_prefix(7);
  const size_t path_start = rest.find('/');
  std::string_view authority = rest.substr(0, path_start);
  std::string_view path = path_start == std::string_view::npos ? "" : rest.substr(path_start);
  if (authority.find('@') != std::string_view::npos) {
    fail("credentials in the url are not supported");
    return;
  }
  if (path.find_first_of("?#") != std::string_view::npos ||
      authority.find_first_of("?#") != std::string_view::npos) {
    fail("a query or fragment is not allowed");
    return;
  }
  if (authority.empty()) {
    fail("missing host");
    return;
  }
  // host[:port], the port defaulting to 80.
  const bool bracketed = authority[0] == '[';
  const size_t close = bracketed ? authority.find(']') : 0;
  const bool has_port = bracketed
                            ? (close != std::string_view::npos && close + 1 < authority.size())
                            : authority.find(':') != std::string_view::npos;
  std::string with_port = has_port ? std::string(authority) : strCat(authority, ":80");
  absl::StatusOr<HostPort> hp = parseHostPort(with_port);
  if (!hp.ok()) {
    std::string why(hp.status().message());
    // Drop parseHostPort's "invalid address '...': " prefix; fail() names the url.
    const size_t colon = why.find("': ");
    fail(colon == std::string::npos ? why : why.substr(colon + 3));
    return;
  }
  if (hp->port == 0) {
    fail("port 0 cannot be connected to");
    return;
  }
  u.host = hp->host;
  u.port = hp->port;
  const std::string host = bracketed ? strCat("[", u.host, "]") : u.host;
  u.host_header = u.port == 80 ? host : strCat(host, ":", u.port);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  u.base_path = std::string(path);
}

void Loader::checkUpstreamRef(const Entry& e, const std::string& name) {
  if (config_.findUpstream(name) != nullptr) return;
  std::vector<std::string_view> names;
  for (const UpstreamConfig& u : config_.upstreams) names.push_back(u.name);
  diag_.error(e.mark(),
              strCat("unknown upstream '", name, "'", didYouMean(name, names),
                     names.empty() ? " (no upstreams are defined)"
                                   : strCat("; defined upstreams: ", strJoin(names, ", "))));
}

void Loader::checkRegex(const YAML::Mark& mark, std::string_view key, const std::string& pattern) {
  RE2::Options options;
  options.set_log_errors(false);
  RE2 re(pattern, options);
  if (!re.ok()) {
    diag_.error(mark, strCat("'", key, "' is not a valid RE2 regular expression: ", re.error()));
  }
}

void Loader::checkPointer(const Entry& e, const std::string& pointer) {
  if (!isJsonPointer(pointer)) {
    diag_.error(e.mark(),
                strCat("'", e.key, "' must be a JSON pointer such as /a/0/b, got '", pointer, "'"));
  }
}

void Loader::readRoutes(const Entry& e) {
  if (!e.value.IsSequence()) {
    diag_.error(e.mark(), strCat("'routes' must be a list of routes, got ", kindName(e.value)));
    return;
  }
  if (e.value.size() == 0) {
    diag_.error(e.mark(), "'routes' must list at least one route");
    return;
  }
  for (const YAML::Node& node : e.value) {
    RouteConfig r;
    r.loc = locOf(node.Mark());
    readRoute(node, r);
    config_.routes.push_back(std::move(r));
  }
}

void Loader::readRoute(const YAML::Node& node, RouteConfig& r) {
  MapReader m(diag_, node, "route",
              {"name", "match", "upstream", "priority", "timeout", "retry", "bulkhead",
               "circuit_breaker", "cache", "validate", "fallback", "fault"});
  if (!m.valid()) return;
  if (node.IsNull()) {
    diag_.error(node.Mark(), "a route needs at least name, match and upstream");
    return;
  }
  if (const Entry* n = m.require("name")) {
    if (auto v = read_.string(n)) {
      r.name = *v;
      for (const RouteConfig& other : config_.routes) {
        if (other.name == r.name) {
          diag_.error(n->mark(), strCat("duplicate route name '", r.name, "' (first at line ",
                                        other.loc.line, ")"));
          break;
        }
      }
    }
  }
  if (const Entry* e = m.require("match")) readMatch(*e, r.match);
  if (const Entry* u = m.require("upstream")) {
    if (auto v = read_.string(u)) {
      r.upstream = *v;
      checkUpstreamRef(*u, r.upstream);
    }
  }
  if (auto v = read_.oneOf<Priority>(m.find("priority"), {{"critical", Priority::kCritical},
                                                          {"normal", Priority::kNormal},
                                                          {"optional", Priority::kOptional}})) {
    r.priority = *v;
  }
  if (const Entry* e = m.find("timeout")) readTimeout(*e, r.timeout);
  if (const Entry* e = m.find("retry")) readRetry(*e, r.retry);
  if (const Entry* e = m.find("bulkhead")) readBulkhead(*e, r.bulkhead);
  if (const Entry* e = m.find("circuit_breaker")) {
    CircuitBreakerConfig b;
    readBreaker(*e, b);
    r.circuit_breaker = b;
  }
  if (const Entry* e = m.find("cache")) {
    RouteCacheConfig c;
    readRouteCache(*e, c);
    r.cache = std::move(c);
  }
  if (const Entry* e = m.find("validate")) {
    ValidateConfig v;
    readValidate(*e, v);
    r.validate = std::move(v);
  }
  if (const Entry* e = m.find("fallback")) readFallback(*e, r);
  if (const Entry* e = m.find("fault")) readFault(*e, r.fault);
}

void Loader::readMatch(const Entry& e, MatchConfig& match) {
  MapReader m(diag_, e.value, "match", {"path", "path_prefix", "path_regex", "methods", "headers"});
  // `match: {}` is allowed and matches every path: a catch-all last route.
  int path_keys = 0;
  for (std::string_view key : {"path", "path_prefix", "path_regex"}) {
    const Entry* p = m.find(key);
    if (p == nullptr) continue;
    if (++path_keys > 1) {
      diag_.error(p->key_mark, "match takes at most one of path, path_prefix and path_regex");
    }
    std::optional<std::string> v = read_.string(p);
    if (!v) continue;
    if (key == "path_regex") {
      checkRegex(p->mark(), key, *v);
      match.path_regex = *v;
    } else if ((*v)[0] != '/') {
      diag_.error(p->mark(), strCat("'", key, "' must start with '/'"));
    } else {
      (key == "path" ? match.path : match.path_prefix) = *v;
    }
  }
  if (const Entry* methods = m.find("methods")) {
    static constexpr std::string_view kMethods[] = {"GET",   "HEAD",    "POST",  "PUT",    "DELETE",
                                                    "PATCH", "OPTIONS", "TRACE", "CONNECT"};
    read_.list(methods, [&](const YAML::Node& n) {
      std::optional<std::string> s = read_.scalarNode(n, "a method");
      if (!s) return;
      const std::string upper = absl::AsciiStrToUpper(*s);
      if (std::find(std::begin(kMethods), std::end(kMethods), upper) == std::end(kMethods)) {
        diag_.error(n.Mark(),
                    strCat("invalid method '", *s,
                           "' (expected GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE "
                           "or CONNECT)"));
        return;
      }
      if (std::find(match.methods.begin(), match.methods.end(), upper) != match.methods.end()) {
        diag_.error(n.Mark(), strCat("method '", upper, "' is listed twice"));
        return;
      }
      match.methods.push_back(upper);
    });
  }
  if (const Entry* h = m.find("headers")) {
    MapReader hm(diag_, h->value, "match.headers", {});
    for (const Entry& he : hm.entries()) {
      if (!isToken(he.key)) {
        diag_.error(he.key_mark, strCat("invalid header name '", he.key, "'"));
        continue;
      }
      if (auto v = read_.string(&he, true)) {
        match.headers.push_back({absl::AsciiStrToLower(he.key), *v});
      }
    }
  }
}

void Loader::readTimeout(const Entry& e, TimeoutConfig& t) {
  MapReader m(diag_, e.value, "timeout", {"total", "per_try", "first_byte", "idle"});
  if (auto v = read_.duration(m.find("total"), false)) t.total = *v;
  const Entry* per_try = m.find("per_try");
  const Entry* first_byte = m.find("first_byte");
  std::optional<absl::Duration> pt = read_.duration(per_try, false);
  std::optional<absl::Duration> fb = read_.duration(first_byte, false);
  t.per_try = pt.value_or(t.total);
  t.first_byte = fb.value_or(t.per_try);
  if (auto v = read_.duration(m.find("idle"), false)) t.idle = *v;
  if (pt && *pt > t.total) {
    diag_.error(per_try->mark(), strCat("timeout.per_try (", durationText(*pt),
                                        ") exceeds timeout.total (", durationText(t.total), ")"));
  }
  if (fb && *fb > t.per_try) {
    diag_.error(first_byte->mark(),
                strCat("timeout.first_byte (", durationText(*fb), ") exceeds ",
                       pt ? "timeout.per_try (" : "timeout.total (", durationText(t.per_try), ")"));
  }
}

void Loader::readRetry(const Entry& e, RetryConfig& r) {
  MapReader m(diag_, e.value, "retry",
              {"attempts", "on", "retriable_status", "backoff", "honor_retry_after", "budget"});
  if (auto v = read_.integer(m.find("attempts"), 1, 100)) r.attempts = static_cast<int>(*v);
  if (const Entry* on = m.find("on")) {
    static const std::vector<std::pair<std::string_view, RetryOn>> kConditions = {
        {"connect-failure", kRetryOnConnectFailure},
        {"reset", kRetryOnReset},
        {"timeout", kRetryOnTimeout},
        {"5xx", kRetryOn5xx},
        {"retriable-status", kRetryOnRetriableStatus},
        {"invalid", kRetryOnInvalid}};
    uint32_t bits = 0;
    bool ok = true;
    read_.list(on, [&](const YAML::Node& n) {
      std::optional<std::string> s = read_.scalarNode(n, "a retry condition");
      if (!s) {
        ok = false;
        return;
      }
      std::vector<std::string_view> names;
      for (const auto& [name, bit] : kConditions) {
        names.push_back(name);
        if (name == *s) {
          bits |= bit;
          return;
        }
      }
      ok = false;
      read_.reportNotOneOf(n.Mark(), "retry.on", *s, names);
    });
    if (ok && on->value.IsSequence()) r.on = bits;
  }
  const Entry* statuses = m.find("retriable_status");
  if (auto v = read_.statusList(statuses)) r.retriable_status = *v;
  if ((r.on & kRetryOnRetriableStatus) && r.retriable_status.empty()) {
    const Entry* on = m.find("on");
    diag_.error(on ? on->mark() : m.mark(),
                "retry.on includes 'retriable-status' but retriable_status lists no statuses");
  }
  if (const Entry* b = m.find("backoff")) {
    MapReader bm(diag_, b->value, "retry.backoff", {"base", "max", "jitter"});
    if (auto v = read_.duration(bm.find("base"), false)) r.backoff.base = *v;
    const Entry* max = bm.find("max");
    if (auto v = read_.duration(max, false)) r.backoff.max = *v;
    if (auto v = read_.oneOf<Jitter>(bm.find("jitter"), {{"full", Jitter::kFull},
                                                         {"equal", Jitter::kEqual},
                                                         {"decorrelated", Jitter::kDecorrelated},
                                                         {"none", Jitter::kNone}})) {
      r.backoff.jitter = *v;
    }
    if (r.backoff.base > r.backoff.max) {
      diag_.error(max ? max->mark() : bm.mark(),
                  strCat("retry.backoff.max (", durationText(r.backoff.max),
                         ") is below backoff.base (", durationText(r.backoff.base), ")"));
    }
  }
  if (auto v = read_.boolean(m.find("honor_retry_after"))) r.honor_retry_after = *v;
  if (const Entry* b = m.find("budget")) {
    MapReader bm(diag_, b->value, "retry.budget", {"ratio", "min_per_second"});
    if (auto v = read_.ratio(bm.find("ratio"))) r.budget.ratio = *v;
    const Entry* mps = bm.find("min_per_second");
    if (auto v = read_.number(mps)) {
      if (*v < 0) {
        diag_.error(mps->mark(), "'min_per_second' must not be negative");
      } else {
        r.budget.min_per_second = *v;
      }
    }
  }
}

void Loader::readBulkhead(const Entry& e, BulkheadConfig& b) {
  MapReader m(diag_, e.value, "bulkhead", {"max_in_flight", "max_queue", "queue_timeout"});
  if (auto v = read_.integer(m.find("max_in_flight"), 1, kMaxU32)) {
    b.max_in_flight = static_cast<uint32_t>(*v);
  }
  if (auto v = read_.integer(m.find("max_queue"), 0, kMaxU32))
    b.max_queue = static_cast<uint32_t>(*v);
  if (auto v = read_.duration(m.find("queue_timeout"), false)) b.queue_timeout = *v;
}

void Loader::readBreaker(const Entry& e, CircuitBreakerConfig& b) {
  MapReader m(diag_, e.value, "circuit_breaker",
              {"window", "minimum_calls", "failure_rate", "slow_call_duration", "slow_call_rate",
               "consecutive_failures", "open_for", "max_open_for", "half_open_calls"});
  if (auto v = read_.duration(m.find("window"), false)) b.window = *v;
  if (auto v = read_.integer(m.find("minimum_calls"), 1, kMaxU32)) {
    b.minimum_calls = static_cast<uint32_t>(*v);
  }
  if (auto v = read_.ratio(m.find("failure_rate"))) b.failure_rate = *v;
  if (auto v = read_.duration(m.find("slow_call_duration"), false)) b.slow_call_duration = *v;
  if (auto v = read_.ratio(m.find("slow_call_rate"))) b.slow_call_rate = *v;
  if (auto v = read_.integer(m.find("consecutive_failures"), 0, kMaxU32)) {
    b.consecutive_failures = static_cast<uint32_t>(*v);
  }
  if (auto v = read_.duration(m.find("open_for"), false)) b.open_for = *v;
  const Entry* max_open = m.find("max_open_for");
  if (auto v = read_.duration(max_open, false)) b.max_open_for = *v;
  if (auto v = read_.integer(m.find("half_open_calls"), 1, kMaxU32)) {
    b.half_open_calls = static_cast<uint32_t>(*v);
  }
  if (b.max_open_for < b.open_for) {
    diag_.error(max_open ? max_open->mark() : m.mark(),
                strCat("circuit_breaker.max_open_for (", durationText(b.max_open_for),
                       ") is below open_for (", durationText(b.open_for), ")"));
  }
}

void Loader::readRouteCache(const Entry& e, RouteCacheConfig& c) {
  MapReader m(diag_, e.value, "cache",
              {"ttl", "stale_while_revalidate", "stale_if_error", "statuses",
               "respect_cache_control", "key", "max_entry_bytes", "streams"});
  if (auto v = read_.duration(m.find("ttl"), false)) c.ttl = *v;
  if (auto v = read_.duration(m.find("stale_while_revalidate"))) c.stale_while_revalidate = *v;
  if (auto v = read_.duration(m.find("stale_if_error"))) c.stale_if_error = *v;
  if (const Entry* s = m.find("statuses")) {
    if (auto v = read_.statusList(s)) {
      if (v->empty()) {
        diag_.error(s->mark(), "'statuses' must list at least one status");
      } else {
        c.statuses = *v;
      }
    }
  }
  if (auto v = read_.boolean(m.find("respect_cache_control"))) c.respect_cache_control = *v;
  if (const Entry* k = m.find("key")) {
    MapReader km(diag_, k->value, "cache.key", {"body", "ignore", "headers", "query"});
    if (auto v = read_.oneOf<CacheKeyBody>(km.find("body"),
                                           {{"raw", CacheKeyBody::kRaw},
                                            {"json-canonical", CacheKeyBody::kJsonCanonical},
                                            {"none", CacheKeyBody::kNone}})) {
      c.key.body = *v;
    }
    if (const Entry* ig = km.find("ignore")) {
      read_.list(ig, [&](const YAML::Node& n) {
        std::optional<std::string> s = read_.scalarNode(n, "a JSON pointer");
        if (!s) return;
        if (!isJsonPointer(*s) || s->empty()) {
          diag_.error(n.Mark(), strCat("'", *s, "' is not a JSON pointer such as /id"));
          return;
        }
        c.key.ignore.push_back(*s);
      });
      if (!c.key.ignore.empty() && c.key.body != CacheKeyBody::kJsonCanonical) {
        diag_.error(ig->mark(), "cache.key.ignore needs body: json-canonical");
      }
    }
    const Entry* hs = km.find("headers");
    if (auto v = read_.stringList(hs)) {
      for (std::string& h : *v) {
        if (!isToken(h)) {
          diag_.error(hs->mark(), strCat("invalid header name '", h, "'"));
          continue;
        }
        c.key.headers.push_back(absl::AsciiStrToLower(h));
      }
    }
    if (auto v = read_.boolean(km.find("query"))) c.key.query = *v;
  }
  if (auto v = read_.size(m.find("max_entry_bytes"), 1)) c.max_entry_bytes = *v;
  if (auto v = read_.boolean(m.find("streams"))) c.streams = *v;
}

void Loader::readValidate(const Entry& e, ValidateConfig& v) {
  MapReader m(diag_, e.value, "validate", {"status", "json"});
  if (auto s = read_.statusList(m.find("status"))) v.status = *s;
  read_.list(m.find("json"), [&](const YAML::Node& n) {
    MapReader cm(diag_, n, "a json check",
                 {"pointer", "type", "exists", "finite", "min", "max", "min_items"});
    if (!cm.valid()) return;
    JsonCheck check;
    check.loc = locOf(n.Mark());
    if (const Entry* p = cm.require("pointer")) {
      if (auto s = read_.string(p, true)) {
        checkPointer(*p, *s);
        check.pointer = *s;
      }
    }
    check.type = read_.oneOf<JsonType>(cm.find("type"), {{"object", JsonType::kObject},
                                                         {"array", JsonType::kArray},
                                                         {"string", JsonType::kString},
                                                         {"number", JsonType::kNumber},
                                                         {"boolean", JsonType::kBoolean},
                                                         {"null", JsonType::kNull}});
    check.exists = read_.boolean(cm.find("exists"));
    if (auto f = read_.boolean(cm.find("finite"))) check.finite = *f;
    check.min = read_.number(cm.find("min"));
    const Entry* max = cm.find("max");
    check.max = read_.number(max);
    if (auto mi = read_.integer(cm.find("min_items"), 0, INT64_MAX)) {
      check.min_items = static_cast<uint64_t>(*mi);
    }
    if (check.min && check.max && *check.min > *check.max) {
      diag_.error(max->mark(), "'max' is below 'min'");
    }
    v.json.push_back(std::move(check));
  });
}

void Loader::readFallback(const Entry& e, RouteConfig& r) {
  bool terminal_seen = false;
  std::vector<std::string> rule_names;
  read_.list(&e, [&](const YAML::Node& n) {
    if (!n.IsMap()) {
      diag_.error(n.Mark(), strCat("a fallback step must be a map with one of upstream, "
                                   "rules or respond, got ",
                                   kindName(n)));
      return;
    }
    // The kind decides which keys belong, so look before reading strictly.
    std::vector<std::string> kinds;
    for (const auto& kv : n) {
      if (!kv.first.IsScalar()) continue;
      const std::string k = kv.first.Scalar();
      if (k == "upstream" || k == "rules" || k == "respond") kinds.push_back(k);
    }
    if (kinds.size() != 1) {
      MapReader any(diag_, n, "fallback step", {"upstream", "timeout", "rules", "respond"});
      diag_.error(n.Mark(), kinds.empty()
                                ? "a fallback step needs one of upstream, rules or respond"
                                : "a fallback step takes only one of upstream, rules "
                                  "and respond; write them as separate steps");
      return;
    }
    FallbackStep step;
    step.loc = locOf(n.Mark());
    if (terminal_seen) {
      diag_.error(n.Mark(),
                  "this fallback step is never reached: a respond step before it always "
                  "answers");
    }
    if (kinds[0] == "upstream") {
      step.kind = FallbackStep::Kind::kUpstream;
      MapReader m(diag_, n, "fallback step", {"upstream", "timeout"});
      const Entry* u = m.find("upstream");
      if (auto v = read_.string(u)) {
        step.upstream = *v;
        checkUpstreamRef(*u, step.upstream);
      }
      if (auto v = read_.duration(m.find("timeout"), false)) step.timeout = *v;
    } else if (kinds[0] == "rules") {
      step.kind = FallbackStep::Kind::kRules;
      MapReader m(diag_, n, "fallback step", {"rules"});
      const Entry* rules = m.find("rules");
      readRules(*rules, step.rules);
      if (rules->value.IsSequence() && rules->value.size() == 0) {
        diag_.error(rules->mark(), "'rules' must list at least one rule");
      }
      for (const Rule& rule : step.rules) {
        if (std::find(rule_names.begin(), rule_names.end(), rule.name) != rule_names.end()) {
          diag_.error(rules->mark(), strCat("duplicate rule name '", rule.name, "' in route"));
        }
        rule_names.push_back(rule.name);
      }
    } else {
      step.kind = FallbackStep::Kind::kRespond;
      MapReader m(diag_, n, "fallback step", {"respond"});
      readRespond(*m.find("respond"), step.respond);
      terminal_seen = true;
    }
    r.fallback.push_back(std::move(step));
  });
}

void Loader::readRules(const Entry& e, std::vector<Rule>& rules) {
  read_.list(&e, [&](const YAML::Node& n) {
    MapReader m(diag_, n, "rule", {"name", "when", "respond"});
    if (!m.valid()) return;
    Rule rule;
    if (auto v = read_.string(m.require("name"))) rule.name = *v;
    // No `when` (or an empty list) is a rule that always answers.
    read_.list(m.find("when"), [&](const YAML::Node& p) {
      Predicate pred;
      readPredicate(p, pred);
      rule.when.push_back(std::move(pred));
    });
    if (const Entry* r = m.require("respond")) readRespond(*r, rule.respond);
    rules.push_back(std::move(rule));
  });
}

void Loader::readPredicate(const YAML::Node& node, Predicate& p) {
  static const std::vector<std::pair<std::string_view, PredicateOp>> kOps = {
      {"eq", PredicateOp::kEq},          {"ne", PredicateOp::kNe},
      {"gt", PredicateOp::kGt},          {"ge", PredicateOp::kGe},
      {"lt", PredicateOp::kLt},          {"le", PredicateOp::kLe},
      {"in", PredicateOp::kIn},          {"exists", PredicateOp::kExists},
      {"matches", PredicateOp::kMatches}};
  std::vector<std::string_view> known = {"pointer"};
  for (const auto& [name, op] : kOps) known.push_back(name);
  MapReader m(diag_, node, "predicate", known);
  if (!m.valid()) return;
  p.loc = locOf(node.Mark());
  if (const Entry* ptr = m.require("pointer")) {
    if (auto v = read_.string(ptr, true)) {
      checkPointer(*ptr, *v);
      p.pointer = *v;
    }
  }
  const Entry* operand = nullptr;
  for (const auto& [name, op] : kOps) {
    const Entry* e = m.find(name);
    if (e == nullptr) continue;
    if (operand != nullptr) {
      diag_.error(e->key_mark, strCat("a predicate takes exactly one operator; '", operand->key,
                                      "' is already given"));
      continue;
    }
    operand = e;
    p.op = op;
  }
  if (operand == nullptr) {
    diag_.error(m.mark(),
                "a predicate needs one operator: eq, ne, gt, ge, lt, le, in, exists or matches");
    return;
  }
  const YAML::Node& v = operand->value;
  switch (p.op) {
    case PredicateOp::kGt:
    case PredicateOp::kGe:
    case PredicateOp::kLt:
    case PredicateOp::kLe: {
      if (auto n = read_.number(operand)) {
        // Integers keep their written form ("5000", not "5000.0").
        int64_t i = 0;
        p.value_json =
            absl::SimpleAtoi(v.Scalar(), &i) ? std::to_string(i) : compactJson(nlohmann::json(*n));
      }
      return;
    }
    case PredicateOp::kIn: {
      if (!v.IsSequence()) {
        diag_.error(operand->mark(), strCat("'in' needs a list of values, got ", kindName(v)));
        return;
      }
      break;
    }
    case PredicateOp::kExists: {
      if (auto b = read_.boolean(operand)) p.value_json = *b ? "true" : "false";
      return;
    }
    case PredicateOp::kMatches: {
      if (auto s = read_.string(operand)) {
        checkRegex(operand->mark(), "matches", *s);
        p.value_json = compactJson(nlohmann::json(*s));
      }
      return;
    }
    default:
      break;
  }
  if (auto j = read_.json(v)) p.value_json = compactJson(*j);
}

void Loader::readRespond(const Entry& e, RespondConfig& out) {
  MapReader m(diag_, e.value, "respond", {"status", "headers", "json", "body"});
  if (!m.valid()) return;
  if (auto v = read_.integer(m.find("status"), 100, 599)) out.status = static_cast<int>(*v);
  std::string content_type;
  if (const Entry* h = m.find("headers")) {
    MapReader hm(diag_, h->value, "respond.headers", {});
    for (const Entry& he : hm.entries()) {
      if (!isToken(he.key)) {
        diag_.error(he.key_mark, strCat("invalid header name '", he.key, "'"));
        continue;
      }
      std::optional<std::string> v = read_.string(&he, true);
      if (!v) continue;
      const std::string name = absl::AsciiStrToLower(he.key);
      // The content type travels in its own field so it is written once.
      if (name == "content-type") {
        content_type = *v;
      } else {
        out.headers.emplace_back(name, *v);
      }
    }
  }
  const Entry* json = m.find("json");
  const Entry* body = m.find("body");
  // Both are still read, so their own errors are reported with the conflict.
  if (json && body) diag_.error(body->key_mark, "respond takes either 'json' or 'body', not both");
  if (auto v = read_.string(body, true)) out.body = *v;
  if (json) {
    if (auto j = read_.json(json->value)) out.body = compactJson(*j);
  }
  if (!content_type.empty()) {
    out.content_type = content_type;
  } else {
    out.content_type = json ? "application/json" : "text/plain";
  }
}

void Loader::readFault(const Entry& e, FaultConfig& f) {
  MapReader m(diag_, e.value, "fault", {"delay", "abort"});
  auto percent = [&](const Entry* p, double* out) {
    if (auto v = read_.number(p)) {
      if (*v < 0 || *v > 100) {
        diag_.error(p->mark(), strCat("'percent' must be within 0..100, got ", *v));
      } else {
        *out = *v;
      }
    }
  };
  if (const Entry* d = m.find("delay")) {
    MapReader dm(diag_, d->value, "fault.delay", {"percent", "duration"});
    percent(dm.find("percent"), &f.delay_percent);
    if (auto v = read_.duration(dm.find("duration"))) f.delay = *v;
  }
  if (const Entry* a = m.find("abort")) {
    MapReader am(diag_, a->value, "fault.abort", {"percent", "status"});
    percent(am.find("percent"), &f.abort_percent);
    if (auto v = read_.integer(am.find("status"), 100, 599)) f.abort_status = static_cast<int>(*v);
  }
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Config>> loadString(std::string_view yaml,
                                                         std::string_view file_name) {
  Loader loader(file_name.empty() ? std::string_view("<config>") : file_name);
  return loader.load(yaml);
}

absl::StatusOr<std::shared_ptr<const Config>> loadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(strCat(path, ": cannot read: ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return absl::InvalidArgumentError(strCat(path, ": read failed: ", std::strerror(errno)));
  }
  return loadString(text.str(), path);
}

}  // namespace airbag::config
