// Building the runtime snapshot and matching routes; see snapshot.h.
#include "proxy/pipeline/snapshot.h"

#include <netdb.h>
#include <re2/re2.h>

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "proxy/http/tls.h"
#include "proxy/upstream/curl_library.h"

namespace airbag::pipeline {
namespace {

// The first address of `host` (blocking); `what` names it in the error.
absl::Status resolve(const std::string& host, uint16_t port, const std::string& what,
                     sockaddr_storage* address, socklen_t* length) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port_text = std::to_string(port);
  int rc = getaddrinfo(host.c_str(), port_text.c_str(), &hints, &res);
  if (rc != 0 || !res)
    return absl::UnavailableError(
        absl::StrCat(what, ": cannot resolve '", host, "': ", gai_strerror(rc)));
  std::memcpy(address, res->ai_addr, res->ai_addrlen);
  *length = res->ai_addrlen;
  freeaddrinfo(res);
  return absl::OkStatus();
}

}  // namespace

RouteTable::RouteTable(RouteTable&&) noexcept = default;
RouteTable& RouteTable::operator=(RouteTable&&) noexcept = default;
RouteTable::~RouteTable() = default;

absl::StatusOr<RouteTable> RouteTable::build(const Config& config) {
  RouteTable table;
  for (const RouteConfig& r : config.routes) {
    Entry e;
    e.route = &r;
    if (!r.match.path_regex.empty()) {
      RE2::Options opts;
      opts.set_log_errors(false);
      e.regex = std::make_unique<re2::RE2>(r.match.path_regex, opts);
      if (!e.regex->ok())
        return absl::InvalidArgumentError(
            absl::StrCat("route ", r.name, ": bad path_regex: ", e.regex->error()));
    }
    table.entries_.push_back(std::move(e));
  }
  return table;
}

int RouteTable::match(std::string_view method, std::string_view path,
                      const http::HeaderList& headers) const {
  for (size_t i = 0; i < entries_.size(); ++i) {
    const Entry& e = entries_[i];
    const MatchConfig& m = e.route->match;
    if (!m.path.empty() && path != m.path) continue;
    if (!m.path_prefix.empty() && path.substr(0, m.path_prefix.size()) != m.path_prefix) continue;
    if (e.regex && !RE2::FullMatch(re2::StringPiece(path.data(), path.size()), *e.regex)) continue;
    if (!m.methods.empty()) {
      bool any = false;
      for (const std::string& mm : m.methods)
        if (mm == method) {
          any = true;
          break;
        }
      if (!any) continue;
    }
    bool headers_ok = true;
    for (const HeaderMatch& h : m.headers) {
      auto v = headers.get(h.name);
      if (!v || *v != h.value) {
        headers_ok = false;
        break;
      }
    }
    if (!headers_ok) continue;
    return static_cast<int>(i);
  }
  return -1;
}

absl::StatusOr<std::shared_ptr<const Snapshot>> Snapshot::build(
    std::shared_ptr<const Config> config, const Snapshot* previous) {
  auto snap = std::make_shared<Snapshot>();
  snap->config = config;
  auto routes = RouteTable::build(*config);
  if (!routes.ok()) return routes.status();
  snap->routes = std::move(routes).value();
  for (const UpstreamConfig& u : config->upstreams) {
    // libcurl is opened here, on the loading thread, the first time a
    // configuration needs it; a worker never waits for it.
    if (u.http2 || u.health || u.saturation) {
      if (absl::Status loaded = upstream::loadCurl(); !loaded.ok())
        return absl::FailedPreconditionError(
            absl::StrCat("upstream ", u.name, ": ", loaded.message()));
    }
    ResolvedUpstream r;
    r.config = &u;
    if (absl::Status ok = resolve(u.host, u.port, absl::StrCat("upstream ", u.name), &r.address,
                                  &r.address_len);
        !ok.ok())
      return ok;
    if (previous)
      for (const ResolvedUpstream& old : previous->upstreams)
        if (old.config->name == u.name) {
          r.health = old.health;
          r.saturation = old.saturation;
          r.admission = old.admission;
          r.tls = old.tls;
        }
    if (u.https && !u.http2) {
      http::ClientTlsSettings tls;
      if (u.tls) tls = {u.tls->ca, u.tls->verify};
      auto made = http::makeClientTls(tls, absl::StrCat("upstream ", u.name, " tls"), r.tls);
      if (!made.ok()) return made.status();
      r.tls = *std::move(made);
    } else {
      r.tls = nullptr;
    }
    if (!r.health) r.health = std::make_shared<upstream::UpstreamHealth>(u.name);
    if (!r.saturation) r.saturation = std::make_shared<upstream::UpstreamSaturation>(u.name);
    if (!r.admission) r.admission = std::make_shared<policy::Admission>();
    snap->upstreams.push_back(r);
  }
  for (const RouteConfig& rc : config->routes) {
    int idx = -1;
    for (size_t i = 0; i < config->upstreams.size(); ++i)
      if (config->upstreams[i].name == rc.upstream) idx = static_cast<int>(i);
    if (idx < 0)
      return absl::InvalidArgumentError(
          absl::StrCat("route ", rc.name, ": unknown upstream ", rc.upstream));
    snap->route_upstream.push_back(idx);
    snap->runtimes.push_back(
        std::make_shared<RouteRuntime>(rc, previous ? previous->runtime(rc.name) : nullptr));
    if (rc.admission)
      snap->runtimes.back()->joinAdmission(snap->upstreams[static_cast<size_t>(idx)].admission);
  }
  for (const RouteConfig& rc : config->routes) {
    Fallbacks f;
    for (const FallbackStep& step : rc.fallback) {
      int up = -1;
      std::shared_ptr<const json::CompiledRules> rules;
      if (step.kind == FallbackStep::Kind::kUpstream) {
        for (size_t i = 0; i < config->upstreams.size(); ++i)
          if (config->upstreams[i].name == step.upstream) up = static_cast<int>(i);
        if (up < 0)
          return absl::InvalidArgumentError(
              absl::StrCat("route ", rc.name, ": unknown fallback upstream ", step.upstream));
      } else if (step.kind == FallbackStep::Kind::kRules) {
        auto compiled = json::CompiledRules::build(step.rules);
        if (!compiled.ok()) return compiled.status();
        rules = std::make_shared<const json::CompiledRules>(std::move(compiled).value());
      }
      f.upstream.push_back(up);
      f.rules.push_back(std::move(rules));
    }
    snap->fallbacks.push_back(std::move(f));
  }
  if (previous && previous->cache)
    snap->cache = previous->cache;  // cached answers survive a reload
  else
    snap->cache = std::make_shared<policy::CacheStore>(config->cache.max_bytes);
  if (previous && previous->shared_tier) {
    snap->shared_tier = previous->shared_tier;
  } else if (config->cache.shared) {
    const SharedCacheConfig& sc = *config->cache.shared;
    sockaddr_storage address{};
    socklen_t length = 0;
    if (absl::Status ok = resolve(sc.host, sc.port, "cache.shared.redis", &address, &length);
        !ok.ok())
      return ok;
    auto tier = shared_cache::makeTier(sc, address, length);
    if (!tier.ok()) return tier.status();
    snap->shared_tier = *std::move(tier);
  }
  if (config->shedding) {
    if (previous && previous->shedder)
      snap->shedder = previous->shedder;  // in-flight counts carry over
    else
      snap->shedder = std::make_shared<policy::Shedder>(*config->shedding);
  }
  return std::shared_ptr<const Snapshot>(std::move(snap));
}

void Snapshot::commit() const {
  for (const auto& r : runtimes) r->commit();
  cache->setMaxBytes(config->cache.max_bytes);
  if (shedder) shedder->reconfigure(*config->shedding);
  // An upstream no longer probed is no longer held down by old probes.
  for (size_t i = 0; i < upstreams.size(); ++i) {
    const ResolvedUpstream& u = upstreams[i];
    // Only the routes that now send their requests here shape its adaptive limit.
    std::vector<std::string> admitted;
    for (size_t r = 0; r < config->routes.size(); ++r)
      if (config->routes[r].admission && route_upstream[r] == static_cast<int>(i))
        admitted.push_back(config->routes[r].name);
    u.admission->retainLanes(admitted);
    if (!u.config->health) u.health->resetProbes();
    if (!u.config->saturation) u.saturation->reset();  // no stale "saturated" without a scraper
  }
}

RouteRuntime* Snapshot::runtime(std::string_view name) const {
  for (const auto& r : runtimes)
    if (r->name() == name) return r.get();
  return nullptr;
}

}  // namespace airbag::pipeline
