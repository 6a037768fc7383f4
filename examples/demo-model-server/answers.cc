// Answer bodies of the demo model server. Hot answers (/predict, infer) are formatted by hand
// so the server stays cheap when it stands in for a model under benchmark load.
#include "answers.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace demo {

using nlohmann::json;

const std::string* Request::header(absl::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return &v;
  }
  return nullptr;
}

void Request::clear() {
  method.clear();
  url.clear();
  path.clear();
  query.clear();
  headers.clear();
  body.clear();
  http_major = 1;
  http_minor = 1;
  keep_alive = true;
}

double scoreFor(absl::string_view body, uint64_t seed) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a, then a splitmix64 finaliser to spread bits
  for (unsigned char c : body) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h ^= seed + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

std::string formatScore(double x, bool nan) {
  if (nan) return "NaN";
  return absl::StrCat(x);
}

void padJsonObject(std::string& body, int64_t target) {
  constexpr absl::string_view kOpen = ",\"padding\":\"";
  const int64_t overhead = static_cast<int64_t>(kOpen.size()) + 1;
  const int64_t size = static_cast<int64_t>(body.size());
  if (target <= size + overhead || body.empty() || body.back() != '}') return;
  const bool empty_object = body.size() == 2;
  body.pop_back();
  absl::StrAppend(&body, empty_object ? kOpen.substr(1) : kOpen);
  body.append(static_cast<size_t>(target - size - overhead), 'x');
  body.append("\"}");
}

std::string dumpJson(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string jsonString(absl::string_view s) { return dumpJson(json(std::string(s))); }

std::string errorBody(int status, absl::string_view message) {
  return absl::StrCat("{\"error\":{\"message\":", jsonString(message),
                      ",\"type\":\"demo_error\",\"code\":", status, "}}");
}

int64_t countWords(absl::string_view text) {
  int64_t n = 0;
  bool in_word = false;
  for (char c : text) {
    const bool space = absl::ascii_isspace(static_cast<unsigned char>(c));
    if (!space && !in_word) ++n;
    in_word = !space;
  }
  return n;
}

namespace {

// Chat message content is a string or a list of {"type":"text","text":...} parts.
std::string textOf(const json& content) {
  if (content.is_string()) return content.get<std::string>();
  std::string out;
  if (content.is_array()) {
    for (const json& part : content) {
      if (part.is_object() && part.contains("text") && part["text"].is_string()) {
        out += part["text"].get<std::string>();
      }
    }
  }
  return out;
}

}  // namespace

std::optional<ChatPrompt> parseChatPrompt(absl::string_view body, absl::string_view default_model,
                                          bool completions) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  ChatPrompt p;
  p.model = std::string(default_model);
  if (j.contains("model") && j["model"].is_string()) p.model = j["model"].get<std::string>();
  if (j.contains("stream") && j["stream"].is_boolean()) p.stream = j["stream"].get<bool>();
  bool found = false;
  if (completions) {
    if (j.contains("prompt")) {
      const json& prompt = j["prompt"];
      if (prompt.is_string()) {
        p.content = prompt.get<std::string>();
        found = true;
      } else if (prompt.is_array() && !prompt.empty() && prompt.back().is_string()) {
        p.content = prompt.back().get<std::string>();
        found = true;
      }
      p.prompt_tokens = countWords(p.content);
    }
  } else if (j.contains("messages") && j["messages"].is_array()) {
    for (const json& m : j["messages"]) {
      if (!m.is_object() || !m.contains("content")) continue;
      std::string text = textOf(m["content"]);
      p.prompt_tokens += countWords(text);
      if (m.contains("role") && m["role"] == "user") {
        p.content = std::move(text);
        found = true;
      }
    }
  }
  if (!found) p.content = absl::StrCat("Hello from ", default_model, ".");
  return p;
}

std::string modelsBody(absl::string_view name, int64_t created) {
  return absl::StrCat("{\"object\":\"list\",\"data\":[{\"id\":", jsonString(name),
                      ",\"object\":\"model\",\"created\":", created, ",\"owned_by\":\"demo\"}]}");
}

namespace {

std::string usageJson(const ChatPrompt& p) {
  const int64_t completion = countWords(p.content);
  return absl::StrCat("\"usage\":{\"prompt_tokens\":", p.prompt_tokens,
                      ",\"completion_tokens\":", completion,
                      ",\"total_tokens\":", p.prompt_tokens + completion, "}");
}

}  // namespace

std::string chatBody(absl::string_view id, int64_t created, const ChatPrompt& p,
                     bool missing_field) {
  std::string out = absl::StrCat("{\"id\":", jsonString(id),
                                 ",\"object\":\"chat.completion\",\"created\":", created,
                                 ",\"model\":", jsonString(p.model), ",");
  if (!missing_field) {
    absl::StrAppend(&out,
                    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":",
                    jsonString(p.content), "},\"finish_reason\":\"stop\"}],");
  }
  absl::StrAppend(&out, usageJson(p), "}");
  return out;
}

std::string completionBody(absl::string_view id, int64_t created, const ChatPrompt& p,
                           bool missing_field) {
  std::string out = absl::StrCat("{\"id\":", jsonString(id),
                                 ",\"object\":\"text_completion\",\"created\":", created,
                                 ",\"model\":", jsonString(p.model), ",");
  if (!missing_field) {
    absl::StrAppend(&out, "\"choices\":[{\"index\":0,\"text\":", jsonString(p.content),
                    ",\"finish_reason\":\"stop\"}],");
  }
  absl::StrAppend(&out, usageJson(p), "}");
  return out;
}

std::string predictBody(absl::string_view name, double score, bool nan, bool missing_field) {
  std::string out = "{";
  if (!missing_field) {
    absl::StrAppend(&out, "\"predictions\":[{\"score\":", formatScore(score, nan), ",\"label\":\"",
                    score >= 0.5 ? "positive" : "negative", "\"}],");
  }
  absl::StrAppend(&out, "\"model\":", jsonString(name), "}");
  return out;
}

std::string inferBody(absl::string_view model, const json& request_id, double score, bool nan,
                      bool missing_field) {
  std::string out = absl::StrCat("{\"model_name\":", jsonString(model), ",\"model_version\":\"1\"");
  if (request_id.is_string()) absl::StrAppend(&out, ",\"id\":", dumpJson(request_id));
  if (!missing_field) {
    absl::StrAppend(&out,
                    ",\"outputs\":[{\"name\":\"score\",\"shape\":[1],\"datatype\":\"FP32\","
                    "\"data\":[",
                    formatScore(score, nan), "]}]");
  }
  out += "}";
  return out;
}

std::string embeddingsBody(absl::string_view model, absl::string_view body, uint64_t seed, bool nan,
                           bool missing_field) {
  json j = json::parse(body, nullptr, false);
  std::vector<std::string> inputs;
  std::string model_name(model);
  if (j.is_object()) {
    if (j.contains("model") && j["model"].is_string()) model_name = j["model"].get<std::string>();
    if (j.contains("input")) {
      const json& in = j["input"];
      if (in.is_string()) inputs.push_back(in.get<std::string>());
      if (in.is_array()) {
        for (const json& e : in) inputs.push_back(dumpJson(e));
      }
    }
  }
  if (inputs.empty()) inputs.emplace_back();
  std::string out = "{\"object\":\"list\",";
  if (!missing_field) {
    out += "\"data\":[";
    for (size_t i = 0; i < inputs.size(); ++i) {
      absl::StrAppend(&out, i ? "," : "", "{\"object\":\"embedding\",\"index\":", i,
                      ",\"embedding\":[");
      for (uint64_t d = 0; d < 8; ++d) {
        absl::StrAppend(&out, d ? "," : "",
                        formatScore(scoreFor(inputs[i], seed * 131 + d) * 2 - 1, nan && d == 0));
      }
      out += "]}";
    }
    out += "],";
  }
  int64_t tokens = 0;
  for (const std::string& s : inputs) tokens += countWords(s);
  absl::StrAppend(&out, "\"model\":", jsonString(model_name),
                  ",\"usage\":{\"prompt_tokens\":", tokens, ",\"total_tokens\":", tokens, "}}");
  return out;
}

std::string kserveMetadataBody(absl::string_view model) {
  return absl::StrCat("{\"name\":", jsonString(model),
                      ",\"versions\":[\"1\"],\"platform\":\"demo\","
                      "\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[-1]}],"
                      "\"outputs\":[{\"name\":\"score\",\"datatype\":\"FP32\",\"shape\":[1]}]}");
}

std::string echoBody(const Request& r) {
  json headers = json::object();
  for (const auto& [k, v] : r.headers) {
    auto it = headers.find(k);
    if (it == headers.end()) {
      headers[k] = v;
    } else {
      *it = absl::StrCat(it->get<std::string>(), ", ", v);
    }
  }
  json j = json::object();
  j["method"] = r.method;
  j["path"] = r.path;
  j["query"] = r.query;
  j["http_version"] = absl::StrCat(r.http_major, ".", r.http_minor);
  j["headers"] = std::move(headers);
  j["body_length"] = r.body.size();
  j["body"] = r.body;
  return dumpJson(j);
}

absl::string_view pieceOf(absl::string_view text, int64_t index, int64_t count) {
  if (count <= 0 || index < 0 || index >= count) return {};
  // Pieces end at word starts, so a stream's deltas look like tokens and concatenate back to
  // the whole text.
  std::vector<size_t> starts = {0};
  for (size_t i = 1; i < text.size(); ++i) {
    if (absl::ascii_isspace(static_cast<unsigned char>(text[i - 1])) &&
        !absl::ascii_isspace(static_cast<unsigned char>(text[i]))) {
      starts.push_back(i);
    }
  }
  const size_t words = starts.size();
  starts.push_back(text.size());
  // Rounded up, so when words are scarce they come first and the tail events are empty.
  const auto boundary = [&](int64_t k) {
    const size_t n = static_cast<size_t>(count);
    return starts[(static_cast<size_t>(k) * words + n - 1) / n];
  };
  const size_t begin = boundary(index);
  const size_t end = boundary(index + 1);
  return text.substr(begin, end - begin);
}

std::string chatChunkEvent(absl::string_view id, int64_t created, absl::string_view model,
                           absl::string_view content, bool first, bool last, bool completions,
                           int64_t pad_to) {
  auto build = [&](absl::string_view text) {
    std::string out = absl::StrCat("data: {\"id\":", jsonString(id), ",\"object\":\"",
                                   completions ? "text_completion" : "chat.completion.chunk",
                                   "\",\"created\":", created, ",\"model\":", jsonString(model),
                                   ",\"choices\":[{\"index\":0,");
    if (completions) {
      absl::StrAppend(&out, "\"text\":", jsonString(text));
    } else {
      absl::StrAppend(&out, "\"delta\":{", first ? "\"role\":\"assistant\"," : "",
                      "\"content\":", jsonString(text), "}");
    }
    absl::StrAppend(&out, ",\"finish_reason\":", last ? "\"stop\"" : "null", "}]}\n\n");
    return out;
  };
  std::string event = build(content);
  if (pad_to > static_cast<int64_t>(event.size())) {
    std::string padded(content);
    padded.append(static_cast<size_t>(pad_to) - event.size(), 'x');
    event = build(padded);
  }
  return event;
}

std::string ndjsonLine(absl::string_view model, int64_t index, int64_t count,
                       absl::string_view token, double score, bool nan, int64_t pad_to) {
  const bool done = index + 1 >= count;
  std::string line = absl::StrCat(
      "{\"model\":", jsonString(model), ",\"index\":", index, ",\"token\":", jsonString(token),
      ",\"score\":", formatScore(score, nan), ",\"done\":", done ? "true" : "false", "}");
  padJsonObject(line, pad_to - 1);
  line += "\n";
  return line;
}

}  // namespace demo
