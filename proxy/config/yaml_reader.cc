// Error-collecting YAML readers for the config loader (see yaml_reader.h).
#include "proxy/config/yaml_reader.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proxy/config/str_util.h"
#include "proxy/config/units.h"
#include "proxy/json/document.h"

namespace airbag::config {
namespace {

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t subst = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

bool isPlain(const YAML::Node& n) { return n.Tag() != "!"; }

// YAML 1.2 core schema number: [-+]? digits [. digits] [e [-+] digits], or .5
bool looksNumeric(std::string_view s, bool* integral) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t digits = 0;
  while (i < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  *integral = true;
  if (i < s.size() && s[i] == '.') {
    *integral = false;
    ++i;
    while (i < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    *integral = false;
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    size_t exp = 0;
    while (i < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) ++i, ++exp;
    if (exp == 0) return false;
  }
  return i == s.size();
}

bool isCoreTrue(std::string_view s) { return s == "true" || s == "True" || s == "TRUE"; }
bool isCoreFalse(std::string_view s) { return s == "false" || s == "False" || s == "FALSE"; }

}  // namespace

void Diagnostics::error(const YAML::Mark& mark, std::string message) {
  errors_.push_back({std::max(mark.line, 0) + 1, std::max(mark.column, 0) + 1, std::move(message)});
}

std::string Diagnostics::text() const {
  std::vector<Error> sorted = errors_;
  std::stable_sort(sorted.begin(), sorted.end(), [](const Error& a, const Error& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  std::string out;
  for (const Error& e : sorted) {
    if (!out.empty()) out += '\n';
    out += strCat(file_, ":", e.line, ":", e.column, ": ", e.message);
  }
  return out;
}

std::string_view closestMatch(std::string_view word,
                              const std::vector<std::string_view>& candidates) {
  std::string_view best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
  for (std::string_view c : candidates) {
    const size_t d = editDistance(word, c);
    if (d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  // A short form of a longer name ('smal' for 'small-model') is too far by
  // edits but plainly meant: take the shortest name it begins.
  if (best.empty() && word.size() >= 3) {
    for (std::string_view c : candidates) {
      if (c.size() > word.size() && c.substr(0, word.size()) == word &&
          (best.empty() || c.size() < best.size())) {
        best = c;
      }
    }
  }
  return best;
}

std::string didYouMean(std::string_view word, const std::vector<std::string_view>& candidates) {
  std::string_view best = closestMatch(word, candidates);
  if (best.empty()) return "";
  return strCat(" (did you mean '", best, "'?)");
}

std::string_view kindName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Undefined:
      return "nothing";
  }
  return "nothing";
}

YAML::Mark Entry::mark() const { return value.IsNull() ? key_mark : value.Mark(); }

MapReader::MapReader(Diagnostics& diag, const YAML::Node& node, std::string_view what,
                     std::vector<std::string_view> known)
    : diag_(diag), what_(what), mark_(node.Mark()) {
  if (node.IsNull()) return;
  if (!node.IsMap()) {
    diag_.error(mark_, strCat(what_, " must be a map, got ", kindName(node)));
    valid_ = false;
    return;
  }
  // Range-for keeps each key/value pair alive for the whole body; binding to
  // `it->first` would dangle (yaml-cpp's operator-> returns a temporary).
  for (const auto& kv : node) {
    const YAML::Node k = kv.first;
    if (!k.IsScalar()) {
      diag_.error(k.Mark(), strCat("keys in ", what_, " must be plain names, got ", kindName(k)));
      continue;
    }
    Entry entry{k.Scalar(), k.Mark(), kv.second};
    const Entry* first = find(entry.key);
    if (first != nullptr) {
      diag_.error(entry.key_mark, strCat("duplicate key '", entry.key, "' in ", what_,
                                         " (first at line ", first->key_mark.line + 1, ")"));
      continue;
    }
    if (!known.empty() && std::find(known.begin(), known.end(), entry.key) == known.end()) {
      diag_.error(entry.key_mark,
                  strCat("unknown key '", entry.key, "' in ", what_, didYouMean(entry.key, known)));
      continue;
    }
    entries_.push_back(std::move(entry));
  }
}

const Entry* MapReader::find(std::string_view key) const {
  for (const Entry& e : entries_) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

const Entry* MapReader::require(std::string_view key) {
  const Entry* e = find(key);
  if (e == nullptr && valid_) {
    diag_.error(mark_, strCat("missing required key '", key, "' in ", what_));
  }
  return e;
}

std::optional<std::string> ValueReader::scalarNode(const YAML::Node& n, std::string_view what) {
  if (!n.IsScalar()) {
    diag_.error(n.Mark(), strCat(what, " must be a single value, got ", kindName(n)));
    return std::nullopt;
  }
  return n.Scalar();
}

std::optional<std::string> ValueReader::string(const Entry* e, bool allow_empty) {
  if (e == nullptr) return std::nullopt;
  if (e->value.IsNull()) {
    if (allow_empty) return std::string();
    diag_.error(e->mark(), strCat("'", e->key, "' needs a value"));
    return std::nullopt;
  }
  if (!e->value.IsScalar()) {
    diag_.error(e->mark(),
                strCat("'", e->key, "' must be a single value, got ", kindName(e->value)));
    return std::nullopt;
  }
  if (e->value.Scalar().empty() && !allow_empty) {
    diag_.error(e->mark(), strCat("'", e->key, "' must not be empty"));
    return std::nullopt;
  }
  return e->value.Scalar();
}

std::optional<bool> ValueReader::boolean(const Entry* e) {
  std::optional<std::string> s = string(e);
  if (!s) return std::nullopt;
  if (isPlain(e->value) && isCoreTrue(*s)) return true;
  if (isPlain(e->value) && isCoreFalse(*s)) return false;
  diag_.error(e->mark(), strCat("'", e->key, "' must be true or false, got '", *s, "'"));
  return std::nullopt;
}

std::optional<int64_t> ValueReader::integerNode(const YAML::Node& n, std::string_view what,
                                                int64_t min, int64_t max) {
  std::optional<std::string> s = scalarNode(n, what);
  if (!s) return std::nullopt;
  int64_t v = 0;
  bool integral = false;
  if (!looksNumeric(*s, &integral) || !integral || !absl::SimpleAtoi(*s, &v) || v < min ||
      v > max) {
    diag_.error(n.Mark(),
                strCat(what, " must be a whole number in ", min, "..", max, ", got '", *s, "'"));
    return std::nullopt;
  }
  return v;
}

std::optional<int64_t> ValueReader::integer(const Entry* e, int64_t min, int64_t max) {
  if (e == nullptr) return std::nullopt;
  if (e->value.IsNull()) {
    diag_.error(e->mark(), strCat("'", e->key, "' needs a value"));
    return std::nullopt;
  }
  return integerNode(e->value, strCat("'", e->key, "'"), min, max);
}

std::optional<double> ValueReader::number(const Entry* e) {
  std::optional<std::string> s = string(e);
  if (!s) return std::nullopt;
  double v = 0;
  bool integral = false;
  if (!looksNumeric(*s, &integral) || !absl::SimpleAtod(*s, &v) || !std::isfinite(v)) {
    diag_.error(e->mark(), strCat("'", e->key, "' must be a number, got '", *s, "'"));
    return std::nullopt;
  }
  return v;
}

std::optional<absl::Duration> ValueReader::duration(const Entry* e, bool allow_zero) {
  std::optional<std::string> s = string(e);
  if (!s) return std::nullopt;
  absl::StatusOr<absl::Duration> d = parseDuration(*s);
  if (!d.ok()) {
    diag_.error(e->mark(), strCat("'", e->key, "': ", d.status().message()));
    return std::nullopt;
  }
  if (!allow_zero && *d == absl::ZeroDuration()) {
    diag_.error(e->mark(), strCat("'", e->key, "' must be greater than 0s"));
    return std::nullopt;
  }
  return *d;
}

std::optional<uint64_t> ValueReader::size(const Entry* e, uint64_t min) {
  std::optional<std::string> s = string(e);
  if (!s) return std::nullopt;
  absl::StatusOr<uint64_t> v = parseSize(*s);
  if (!v.ok()) {
    diag_.error(e->mark(), strCat("'", e->key, "': ", v.status().message()));
    return std::nullopt;
  }
  if (*v < min) {
    diag_.error(e->mark(), strCat("'", e->key, "' must be at least ", min, " bytes"));
    return std::nullopt;
  }
  return *v;
}

std::optional<double> ValueReader::ratio(const Entry* e) {
  std::optional<std::string> s = string(e);
  if (!s) return std::nullopt;
  absl::StatusOr<double> v = parseRatio(*s);
  if (!v.ok()) {
    diag_.error(e->mark(), strCat("'", e->key, "': ", v.status().message()));
    return std::nullopt;
  }
  return *v;
}

bool ValueReader::list(const Entry* e, const std::function<void(const YAML::Node&)>& item) {
  if (e == nullptr) return false;
  if (!e->value.IsSequence()) {
    diag_.error(e->mark(), strCat("'", e->key, "' must be a list, got ", kindName(e->value)));
    return false;
  }
  for (const YAML::Node& n : e->value) item(n);
  return true;
}

std::optional<std::vector<std::string>> ValueReader::stringList(const Entry* e) {
  std::vector<std::string> out;
  bool ok = true;
  const std::string what = e ? strCat("an item of '", e->key, "'") : "";
  if (!list(e, [&](const YAML::Node& n) {
        std::optional<std::string> s = scalarNode(n, what);
        if (s) {
          out.push_back(*s);
        } else {
          ok = false;
        }
      })) {
    return std::nullopt;
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<std::vector<int>> ValueReader::statusList(const Entry* e) {
  std::vector<int> out;
  bool ok = true;
  const std::string what = e ? strCat("a status in '", e->key, "'") : "";
  if (!list(e, [&](const YAML::Node& n) {
        std::optional<int64_t> v = integerNode(n, what, 100, 599);
        if (v) {
          out.push_back(static_cast<int>(*v));
        } else {
          ok = false;
        }
      })) {
    return std::nullopt;
  }
  if (!ok) return std::nullopt;
  return out;
}

void ValueReader::reportNotOneOf(const YAML::Mark& mark, std::string_view key, std::string_view got,
                                 const std::vector<std::string_view>& names) {
  diag_.error(mark, strCat("'", key, "' must be one of ", strJoin(names, ", "), "; got '", got, "'",
                           didYouMean(got, names)));
}

std::optional<nlohmann::ordered_json> ValueReader::json(const YAML::Node& n) {
  using Json = nlohmann::ordered_json;
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return Json(nullptr);
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (!isPlain(n)) return Json(s);
      if (isCoreTrue(s)) return Json(true);
      if (isCoreFalse(s)) return Json(false);
      if (s == "null" || s == "Null" || s == "NULL" || s == "~") return Json(nullptr);
      bool integral = false;
      if (looksNumeric(s, &integral)) {
        int64_t i = 0;
        uint64_t u = 0;
        if (integral && absl::SimpleAtoi(s, &i)) return Json(i);
        if (integral && absl::SimpleAtoi(s, &u)) return Json(u);
        double d = 0;
        if (absl::SimpleAtod(s, &d) && std::isfinite(d)) return Json(d);
        diag_.error(n.Mark(), strCat("number '", s, "' is out of range for JSON"));
        return std::nullopt;
      }
      const std::string lower = absl::AsciiStrToLower(s);
      if (lower == ".inf" || lower == "+.inf" || lower == "-.inf" || lower == ".nan") {
        diag_.error(n.Mark(), strCat("'", s, "' cannot be written as JSON"));
        return std::nullopt;
      }
      return Json(s);
    }
    case YAML::NodeType::Sequence: {
      Json out = Json::array();
      bool ok = true;
      for (const YAML::Node& item : n) {
        std::optional<Json> v = json(item);
        if (v) {
          out.push_back(std::move(*v));
        } else {
          ok = false;
        }
      }
      if (!ok) return std::nullopt;
      return out;
    }
    case YAML::NodeType::Map: {
      Json out = Json::object();
      bool ok = true;
      for (const auto& kv : n) {
        if (!kv.first.IsScalar()) {
          diag_.error(kv.first.Mark(), "JSON object keys must be plain strings");
          ok = false;
          continue;
        }
        const std::string key = kv.first.Scalar();
        if (out.contains(key)) {
          diag_.error(kv.first.Mark(), strCat("duplicate key '", key, "' in JSON object"));
          ok = false;
          continue;
        }
        std::optional<Json> v = json(kv.second);
        if (v) {
          out[key] = std::move(*v);
        } else {
          ok = false;
        }
      }
      if (!ok) return std::nullopt;
      return out;
    }
  }
  return std::nullopt;
}

bool isJsonPointer(std::string_view pointer) { return json::isValidPointer(pointer); }

}  // namespace airbag::config
