// The saturation-aware admission part of the YAML schema (DESIGN.md §8):
// `upstreams.*.saturation`, `routes[].admission` and `routes[].hedge`. Part
// of the Loader.
#include <cctype>

#include "proxy/config/loader.h"
#include "proxy/config/str_util.h"

namespace airbag::config::internal {

void Loader::readSaturation(const Entry& e, const std::string& what, UpstreamConfig& u) {
  MapReader m(diag_, e.value, strCat(what, " saturation"),
              {"metrics_path", "port", "interval", "when_any"});
  if (!m.valid()) return;
  SaturationConfig s;
  if (const Entry* p = m.find("metrics_path")) {
    if (auto v = read_.string(p)) {
      if ((*v)[0] != '/') {
        diag_.error(p->mark(), "'metrics_path' must start with '/'");
      } else {
        s.metrics_path = *v;
      }
    }
  }
  if (auto v = read_.integer(m.find("port"), 1, 65535)) s.port = static_cast<uint16_t>(*v);
  if (auto v = read_.duration(m.find("interval"), false)) s.interval = *v;
  if (const Entry* w = m.require("when_any")) {
    read_.list(w, [&](const YAML::Node& n) {
      MapReader tm(diag_, n, "a 'when_any' threshold", {"metric", "gt"});
      if (!tm.valid()) return;
      SaturationThreshold t;
      t.loc = locOf(n.Mark());
      if (const Entry* me = tm.require("metric")) {
        if (auto v = read_.string(me)) t.metric = *v;
      }
      if (const Entry* g = tm.require("gt")) {
        if (auto v = read_.number(g)) t.gt = *v;
      }
      s.when_any.push_back(std::move(t));
    });
    if (w->value.IsSequence() && s.when_any.empty())
      diag_.error(w->mark(), "'when_any' must list at least one { metric, gt }");
  }
  u.saturation = std::move(s);
}

void Loader::readAdmission(const Entry& e, RouteConfig& r) {
  MapReader m(diag_, e.value, "admission", {"adaptive", "queue"});
  if (!m.valid()) return;
  AdmissionConfig a;
  if (const Entry* ad = m.find("adaptive")) {
    MapReader am(diag_, ad->value, "admission adaptive", {"min", "max"});
    AdaptiveLimitConfig limits;
    if (auto v = read_.integer(am.find("min"), 1, kMaxU32)) limits.min = static_cast<uint32_t>(*v);
    if (auto v = read_.integer(am.find("max"), 1, kMaxU32)) limits.max = static_cast<uint32_t>(*v);
    if (limits.max < limits.min)
      diag_.error(am.mark(), strCat("admission adaptive max (", limits.max, ") is below min (",
                                    limits.min, ")"));
    if (am.valid()) a.adaptive = limits;
  }
  if (const Entry* q = m.find("queue")) {
    MapReader qm(diag_, q->value, "admission queue", {"max", "timeout"});
    if (auto v = read_.integer(qm.find("max"), 0, kMaxU32)) a.queue_max = static_cast<uint32_t>(*v);
    if (auto v = read_.duration(qm.find("timeout"), false)) a.queue_timeout = *v;
  }
  r.admission = a;
}

void Loader::readHedge(const Entry& e, RouteConfig& r) {
  MapReader m(diag_, e.value, "hedge", {"after", "max"});
  if (!m.valid()) return;
  HedgeConfig h;
  bool ok = true;
  if (const Entry* a = m.require("after")) {
    std::optional<std::string> text =
        a->value.IsScalar() ? std::optional<std::string>(a->value.Scalar()) : std::nullopt;
    if (text && text->size() == 3 && (*text)[0] == 'p' &&
        std::isdigit(static_cast<unsigned char>((*text)[1])) &&
        std::isdigit(static_cast<unsigned char>((*text)[2]))) {
      h.percentile = ((*text)[1] - '0') * 10 + ((*text)[2] - '0');
      if (h.percentile < 50) {
        diag_.error(a->mark(),
                    strCat("hedge 'after' percentile must be p50..p99, got '", *text, "'"));
        ok = false;
      }
    } else if (text && !text->empty() && std::isdigit(static_cast<unsigned char>((*text)[0]))) {
      if (auto v = read_.duration(a, false))
        h.after = *v;
      else
        ok = false;
    } else {
      diag_.error(a->mark(),
                  strCat("hedge 'after' must be a duration such as 300ms or a percentile of the "
                         "route's time to first byte, p50..p99; got ",
                         text ? strCat("'", *text, "'") : std::string(kindName(a->value))));
      ok = false;
    }
  } else {
    ok = false;
  }
  if (const Entry* x = m.find("max")) {
    if (auto v = read_.integer(x, 1, HedgeConfig::kMaxHedges))
      h.max = static_cast<uint32_t>(*v);
    else
      ok = false;
  }
  if (ok) r.hedge = h;
}

}  // namespace airbag::config::internal
