// Strict, error-collecting reading of yaml-cpp nodes for the config loader:
// every problem is recorded with its file:line:col and reading carries on, so
// one load reports all errors at once. Internal to proxy/config.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace airbag::config {

// Collected errors, each tied to a position in one file.
class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}

  // Records `message` at `mark` (yaml-cpp marks are 0-based; printed 1-based).
  void error(const YAML::Mark& mark, std::string message);

  bool empty() const { return errors_.empty(); }
  // All errors sorted by position, one "FILE:LINE:COL: message" per line.
  std::string text() const;

 private:
  struct Error {
    int line;
    int column;
    std::string message;
  };
  std::string file_;
  std::vector<Error> errors_;
};

// The closest of `candidates` to `word`, or empty when none is near enough
// to be a plausible typo.
std::string_view closestMatch(std::string_view word,
                              const std::vector<std::string_view>& candidates);

// " (did you mean 'x'?)" or "".
std::string didYouMean(std::string_view word, const std::vector<std::string_view>& candidates);

// Describes a node's kind for "expected X, got Y" messages.
std::string_view kindName(const YAML::Node& node);

// One key/value pair of a YAML map.
struct Entry {
  std::string key;
  YAML::Mark key_mark;
  YAML::Node value;
  // Where errors about the value point: the value itself, or the key when the
  // value is empty (yaml-cpp gives empty values the position of the next token).
  YAML::Mark mark() const;
};

// A YAML map read strictly: it must be a map, keys must be unique scalars and
// belong to `known`. Violations are reported on construction. A null node (an
// empty section such as `cache:`) reads as an empty map.
class MapReader {
 public:
  MapReader(Diagnostics& diag, const YAML::Node& node, std::string_view what,
            std::vector<std::string_view> known);

  // False when the node was not a map (already reported).
  bool valid() const { return valid_; }
  // The entry for `key`, or nullptr when absent.
  const Entry* find(std::string_view key) const;
  // As find(); reports "missing required key" at the map when absent.
  const Entry* require(std::string_view key);
  const std::vector<Entry>& entries() const { return entries_; }
  const YAML::Mark& mark() const { return mark_; }

 private:
  Diagnostics& diag_;
  std::string what_;
  YAML::Mark mark_;
  bool valid_ = true;
  std::vector<Entry> entries_;
};

// Typed readers. Each returns the value, or nullopt when `e` is null (absent)
// or the value is invalid (then an error has been reported).
class ValueReader {
 public:
  explicit ValueReader(Diagnostics& diag) : diag_(diag) {}

  std::optional<std::string> string(const Entry* e, bool allow_empty = false);
  std::optional<bool> boolean(const Entry* e);
  std::optional<int64_t> integer(const Entry* e, int64_t min, int64_t max);
  std::optional<double> number(const Entry* e);
  std::optional<absl::Duration> duration(const Entry* e, bool allow_zero = true);
  std::optional<uint64_t> size(const Entry* e, uint64_t min = 0);
  std::optional<double> ratio(const Entry* e);
  // A list of scalars; each item is passed to `item` with its mark. A single
  // scalar is not accepted in place of a list.
  bool list(const Entry* e, const std::function<void(const YAML::Node&)>& item);
  std::optional<std::vector<std::string>> stringList(const Entry* e);
  std::optional<std::vector<int>> statusList(const Entry* e);
  // One of `values` by name; reports the allowed names otherwise.
  template <typename T>
  std::optional<T> oneOf(const Entry* e,
                         const std::vector<std::pair<std::string_view, T>>& values) {
    std::optional<std::string> s = string(e);
    if (!s) return std::nullopt;
    std::vector<std::string_view> names;
    for (const auto& [name, value] : values) {
      if (name == *s) return value;
      names.push_back(name);
    }
    reportNotOneOf(e->mark(), e->key, *s, names);
    return std::nullopt;
  }
  void reportNotOneOf(const YAML::Mark& mark, std::string_view key, std::string_view got,
                      const std::vector<std::string_view>& names);

  // An integer scalar (not through an Entry), e.g. a list item.
  std::optional<int64_t> integerNode(const YAML::Node& n, std::string_view what, int64_t min,
                                     int64_t max);
  // A non-null scalar's text (not through an Entry), e.g. a list item.
  std::optional<std::string> scalarNode(const YAML::Node& n, std::string_view what);

  // Converts any YAML value to JSON: quoted scalars are strings; plain scalars
  // follow the YAML 1.2 core schema (null, true/false, numbers, else string).
  std::optional<nlohmann::ordered_json> json(const YAML::Node& n);

  Diagnostics& diag() { return diag_; }

 private:
  Diagnostics& diag_;
};

// True when `pointer` is a syntactically valid RFC 6901 JSON pointer.
bool isJsonPointer(std::string_view pointer);

}  // namespace airbag::config
