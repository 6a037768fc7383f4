// The Prometheus text exposition parser; see prometheus_text.h.
#include "proxy/upstream/prometheus_text.h"

#include <cmath>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace airbag::upstream {
namespace {

bool isNameStart(char c) { return absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool isNameChar(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Reads one sample line (no line break in it) into `out`; the reason on failure.
class LineParser {
 public:
  explicit LineParser(std::string_view line) : s_(line) {}

  const char* parse(PromSample& out) {
    size_t start = i_;
    // Metric names may hold colons (recording rules, vLLM's "vllm:" prefix).
    if (i_ >= s_.size() || !(isNameStart(s_[i_]) || s_[i_] == ':')) return "expected a metric name";
    while (i_ < s_.size() && (isNameChar(s_[i_]) || s_[i_] == ':')) ++i_;
    out.name = s_.substr(start, i_ - start);
    out.labels = {};
    if (i_ < s_.size() && s_[i_] == '{') {
      size_t open = ++i_;
      if (const char* why = labels()) return why;
      out.labels = s_.substr(open, i_ - 1 - open);
    }
    if (!blanks()) return "expected a space before the value";
    size_t v = i_;
    while (i_ < s_.size() && s_[i_] != ' ' && s_[i_] != '\t') ++i_;
    if (!number(s_.substr(v, i_ - v), out.value)) return "the value is not a number";
    if (!blanks()) return i_ < s_.size() ? "unexpected text after the value" : nullptr;
    if (s_[i_] == '#') return nullptr;  // an OpenMetrics exemplar
    size_t t = i_;
    while (i_ < s_.size() && s_[i_] != ' ' && s_[i_] != '\t') ++i_;
    double ts;
    if (!number(s_.substr(t, i_ - t), ts) || !std::isfinite(ts))
      return "the timestamp is not a number";
    blanks();
    if (i_ < s_.size() && s_[i_] != '#') return "unexpected text after the timestamp";
    return nullptr;
  }

 private:
  // After '{': label pairs up to and including '}'.
  const char* labels() {
    while (true) {
      spaces();
      if (i_ >= s_.size()) return "unterminated label set";
      if (s_[i_] == '}') {
        ++i_;
        return nullptr;
      }
      if (!isNameStart(s_[i_])) return "expected a label name";
      while (i_ < s_.size() && isNameChar(s_[i_])) ++i_;
      spaces();
      if (i_ >= s_.size() || s_[i_] != '=') return "expected '=' after a label name";
      ++i_;
      spaces();
      if (i_ >= s_.size() || s_[i_] != '"') return "expected a quoted label value";
      ++i_;
      while (true) {
        if (i_ >= s_.size()) return "unterminated label value";
        char c = s_[i_++];
        if (c == '"') break;
        if (c == '\\') {
          if (i_ >= s_.size()) return "unterminated label value";
          char e = s_[i_++];
          if (e != '\\' && e != '"' && e != 'n') return "bad escape in a label value";
        }
      }
      spaces();
      if (i_ < s_.size() && s_[i_] == ',') {
        ++i_;
      } else if (i_ < s_.size() && s_[i_] != '}') {
        return "expected ',' or '}' after a label value";
      }
    }
  }

  void spaces() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  // Skips at least one blank; false (nothing skipped) at the end or before text.
  bool blanks() {
    size_t from = i_;
    spaces();
    return i_ > from && i_ < s_.size();
  }

  static bool number(std::string_view v, double& out) {
    if (v.empty()) return false;
    if (v == "+Inf" || v == "Inf" || v == "+inf" || v == "inf") {
      out = std::numeric_limits<double>::infinity();
      return true;
    }
    if (v == "-Inf" || v == "-inf") {
      out = -std::numeric_limits<double>::infinity();
      return true;
    }
    if (v == "NaN" || v == "nan") {
      out = std::numeric_limits<double>::quiet_NaN();
      return true;
    }
    // Only plain decimal and exponent forms (Go's strconv output), not hex.
    for (char c : v)
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '+' &&
          c != 'e' && c != 'E')
        return false;
    return absl::SimpleAtod(absl::string_view(v.data(), v.size()), &out);
  }

  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

absl::Status forEachPromSample(std::string_view text,
                               absl::FunctionRef<void(const PromSample&)> on_sample) {
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') continue;
    PromSample sample;
    if (const char* why = LineParser(line.substr(first)).parse(sample))
      return absl::InvalidArgumentError(absl::StrCat("line ", line_no, ": ", why));
    on_sample(sample);
  }
  return absl::OkStatus();
}

}  // namespace airbag::upstream
