// The YAML schema of DESIGN.md §3: yaml-cpp nodes -> plain Config structs,
// validated as a whole. Every error is collected so a single run of
// `airbag --check-config` lists all of them.
#include "proxy/config/config_loader.h"
#include "proxy/config/loader.h"

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
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/parser.h"

namespace airbag::config {
namespace internal {
namespace {

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

// Where each document's root node starts. yaml-cpp 0.7's LoadAll loops forever,
// allocating, on some malformed text (a line starting with ','), because its
// parser reports the same empty document again without moving on (fixed
// upstream after 0.7); reading documents one by one stops where it stalls.
class DocumentRoots : public YAML::EventHandler {
 public:
  // False once the parser reported a document where the previous one started.
  bool progressed() const {
    return starts_.size() < 2 || starts_.back().pos != starts_[starts_.size() - 2].pos;
  }
  const std::vector<YAML::Mark>& roots() const { return roots_; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    starts_.push_back(mark);
    want_root_ = true;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    node(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnMapEnd() override {}

 private:
  void node(const YAML::Mark& mark) {
    if (want_root_) roots_.push_back(mark);
    want_root_ = false;
  }
  std::vector<YAML::Mark> starts_;
  std::vector<YAML::Mark> roots_;
  bool want_root_ = false;
};

}  // namespace

absl::StatusOr<std::shared_ptr<const Config>> Loader::load(std::string_view raw) {
  const std::string yaml = checkUtf8(raw, diag_);
  DocumentRoots docs;
  YAML::Node root;
  try {
    std::istringstream in(yaml);
    YAML::Parser parser(in);
    while (parser.HandleNextDocument(docs) && docs.progressed()) {
    }
    root = YAML::Load(yaml);  // the first document
  } catch (const YAML::Exception& e) {
    diag_.error(e.mark, strCat("YAML syntax error: ", e.msg, syntaxHint(yaml, e.mark)));
    return absl::InvalidArgumentError(diag_.text());
  }
  size_t count = docs.roots().size();
  if (!docs.progressed() && count > 0) --count;  // the stalled repeat is no document
  if (count == 0 || (count == 1 && root.IsNull())) {
    diag_.error(YAML::Mark(),
                "the configuration is empty (it needs at least upstreams and routes)");
  } else {
    for (size_t i = 1; i < count; ++i) {
      diag_.error(docs.roots()[i], "only one YAML document is allowed in the configuration");
    }
    // yaml-cpp reports conversion problems by exception; none should escape the
    // readers, but a malformed document must still end in an error, not a crash.
    try {
      readRoot(root);
    } catch (const YAML::Exception& e) {
      diag_.error(e.mark, strCat("invalid YAML: ", e.msg));
    }
  }
  if (!diag_.empty()) return absl::InvalidArgumentError(diag_.text());
  return std::make_shared<const Config>(std::move(config_));
}

void Loader::readRoot(const YAML::Node& root) {
  MapReader m(diag_, root, "the configuration",
              {"listen", "admin", "log", "shedding", "cache", "readiness", "upstreams", "routes"});
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
    MapReader c(diag_, e->value, "cache", {"max_bytes", "shared"});
    if (auto v = read_.size(c.find("max_bytes"), 1)) config_.cache.max_bytes = *v;
    if (const Entry* s = c.find("shared")) {
      SharedCacheConfig shared;
      readSharedCache(*s, shared);
      config_.cache.shared = std::move(shared);
    }
  }
  if (const Entry* e = m.find("readiness")) {
    MapReader r(diag_, e->value, "readiness", {"require_upstream"});
    if (auto v = read_.boolean(r.find("require_upstream")))
      config_.readiness.require_upstream = *v;
  }
  if (const Entry* e = m.require("upstreams")) readUpstreams(*e);
  if (const Entry* e = m.require("routes")) readRoutes(*e);
  if (!config_.cache.shared)
    for (const YAML::Mark& mark : shared_routes_)
      diag_.error(mark, "cache.shared: true needs the global cache.shared (where Redis is)");

  // Two fixed ports that would have to be the same socket.
  auto collide = [](const HostPort& x, const HostPort& y) {
    auto any = [](const std::string& h) { return h == "0.0.0.0" || h == "::"; };
    return x.port != 0 && x.port == y.port && (x.host == y.host || any(x.host) || any(y.host));
  };
  const ListenConfig& listen = config_.listen;
  if (collide(listen.bind, config_.admin.bind)) {
    const Entry* admin = m.find("admin");
    diag_.error(admin ? admin->key_mark : m.mark(),
                strCat("admin.address ", config_.admin.address, " collides with listen.address ",
                       listen.address));
  }
  if (listen.tls && !listen.tls->address.empty()) {
    const HostPort& t = listen.tls->bind;
    const Entry* l = m.find("listen");
    if (collide(t, listen.bind))
      diag_.error(l ? l->key_mark : m.mark(),
                  strCat("listen.tls.address ", listen.tls->address,
                         " collides with listen.address ", listen.address));
    if (collide(t, config_.admin.bind))
      diag_.error(l ? l->key_mark : m.mark(),
                  strCat("listen.tls.address ", listen.tls->address,
                         " collides with admin.address ", config_.admin.address));
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
    MapReader tm(diag_, t->value, "listen.tls",
                 {"address", "cert", "key", "client_ca", "min_version"});
    ServerTlsConfig tls;
    bool ok = tm.valid();
    if (const Entry* a = tm.find("address")) {
      if (auto hp = hostPort(*a)) {
        tls.address = a->value.Scalar();
        tls.bind = *hp;
      } else {
        ok = false;
      }
    }
    auto cert = read_.string(tm.require("cert"));
    auto key = read_.string(tm.require("key"));
    if (auto v = read_.string(tm.find("client_ca"))) tls.client_ca = *v;
    // Unquoted, YAML reads 1.2 as a number; its text is what counts here.
    if (auto v = read_.oneOf<std::string>(tm.find("min_version"), {{"1.2", "1.2"}, {"1.3", "1.3"}}))
      tls.min_version = *v;
    if (cert && key && ok) {
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
  MapReader m(
      diag_, e.value, what,
      {"url", "connect_timeout", "max_connections", "tls", "http2", "health", "passive",
       "saturation"});
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
  if (const Entry* h = m.find("http2")) {
    if (auto v = read_.boolean(h)) {
      if (*v && !u.https && !u.url.empty())
        diag_.error(h->mark(), strCat(what, " http2: needs an https:// url (HTTP/2 is "
                                            "negotiated by ALPN during the TLS handshake)"));
      else
        u.http2 = *v;
    }
  }
  if (const Entry* t = m.find("tls")) {
    // Kept even for http:// urls (ignored there) so one block can follow an
    // upstream that moves between plain and TLS endpoints.
    u.tls = readClientTls(*t, strCat(what, " tls"));
  }
  if (const Entry* h = m.find("health")) {
    MapReader hm(diag_, h->value, strCat(what, " health"),
                 {"path", "interval", "timeout", "rise", "fall", "expect"});
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
    if (auto v = read_.integer(hm.find("rise"), 1, 100)) health.rise = static_cast<uint32_t>(*v);
    if (auto v = read_.integer(hm.find("fall"), 1, 100)) health.fall = static_cast<uint32_t>(*v);
    if (const Entry* x = hm.find("expect")) {
      if (auto v = read_.statusList(x)) {
        if (v->empty()) {
          diag_.error(x->mark(), "'expect' must list at least one status");
        } else {
          health.expect = *v;
        }
      }
    }
    if (health.timeout > health.interval) {
      diag_.error(hm.mark(),
                  strCat("health timeout (", durationText(health.timeout),
                         ") exceeds the interval (", durationText(health.interval), ")"));
    }
    if (hm.valid()) u.health = health;
  }
  if (const Entry* p = m.find("passive")) {
    MapReader pm(diag_, p->value, strCat(what, " passive"),
                 {"consecutive_connect_failures", "down_for", "max_down_for"});
    PassiveHealthConfig passive;
    if (auto v = read_.integer(pm.find("consecutive_connect_failures"), 1, 1000))
      passive.consecutive_connect_failures = static_cast<uint32_t>(*v);
    if (auto v = read_.duration(pm.find("down_for"), false)) passive.down_for = *v;
    if (auto v = read_.duration(pm.find("max_down_for"), false)) {
      passive.max_down_for = *v;
    } else if (passive.down_for > passive.max_down_for) {
      passive.max_down_for = passive.down_for;
    }
    if (passive.max_down_for < passive.down_for) {
      diag_.error(pm.mark(), strCat("passive max_down_for (", durationText(passive.max_down_for),
                                    ") is below down_for (", durationText(passive.down_for), ")"));
    }
    if (pm.valid()) u.passive = passive;
  }
  if (const Entry* s = m.find("saturation")) readSaturation(*s, what, u);
}

std::optional<UpstreamTlsConfig> Loader::readClientTls(const Entry& e, const std::string& what) {
  MapReader tm(diag_, e.value, what, {"ca", "verify", "sni"});
  UpstreamTlsConfig tls;
  if (auto v = read_.string(tm.find("ca"))) tls.ca = *v;
  if (auto v = read_.boolean(tm.find("verify"))) tls.verify = *v;
  if (auto v = read_.string(tm.find("sni"))) tls.sni = *v;
  if (!tm.valid()) return std::nullopt;
  return tls;
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
    rest.remove_prefix(8);
  } else if (absl::StartsWithIgnoreCase(toAbsl(rest), "http://")) {
    rest.remove_prefix(7);
  } else {
    fail("expected http[s]://host[:port][/base/path]");
    return;
  }
  const uint16_t default_port = u.https ? 443 : 80;
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
  // host[:port], the port defaulting to 80 (443 for https).
  const bool bracketed = authority[0] == '[';
  const size_t close = bracketed ? authority.find(']') : 0;
  const bool has_port = bracketed
                            ? (close != std::string_view::npos && close + 1 < authority.size())
                            : authority.find(':') != std::string_view::npos;
  std::string with_port =
      has_port ? std::string(authority) : strCat(authority, ":", default_port);
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
  u.host_header = u.port == default_port ? host : strCat(host, ":", u.port);
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

}  // namespace internal

absl::StatusOr<std::shared_ptr<const Config>> loadString(std::string_view yaml,
                                                         std::string_view file_name) {
  internal::Loader loader(file_name.empty() ? std::string_view("<config>") : file_name);
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
