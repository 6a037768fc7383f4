// Bodies of the demo model server's answers: pure functions of the request and the behaviour,
// so the same request gives the same answer (apart from ids and timestamps).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace demo {

// One parsed HTTP request. Header names are lower-cased; repeated headers stay separate.
struct Request {
  std::string method;
  std::string url;
  std::string path;
  std::string query;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  int http_major = 1;
  int http_minor = 1;
  bool keep_alive = true;

  // The first header named `name` (lower case), or nullptr.
  const std::string* header(absl::string_view name) const;
  void clear();
};

// A score in [0, 1] that depends only on `body` and `seed`.
double scoreFor(absl::string_view body, uint64_t seed);

// `x` as a JSON number, or the (non-standard) literal NaN when `nan` is set.
std::string formatScore(double x, bool nan);

// Grows the JSON object `body` to about `target` bytes with a "padding" string member.
void padJsonObject(std::string& body, int64_t target);

// A JSON string literal for `s`; invalid UTF-8 is replaced rather than rejected.
std::string jsonString(absl::string_view s);
std::string dumpJson(const nlohmann::json& j);

std::string errorBody(int status, absl::string_view message);

// Text the chat model "generates": the last user message, or a greeting when there is none.
struct ChatPrompt {
  std::string model;
  std::string content;
  int64_t prompt_tokens = 0;
  bool stream = false;
};
// nullopt when the body is not a JSON object.
std::optional<ChatPrompt> parseChatPrompt(absl::string_view body, absl::string_view default_model,
                                          bool completions);

int64_t countWords(absl::string_view text);

std::string modelsBody(absl::string_view name, int64_t created);
std::string chatBody(absl::string_view id, int64_t created, const ChatPrompt& prompt,
                     bool missing_field);
std::string completionBody(absl::string_view id, int64_t created, const ChatPrompt& prompt,
                           bool missing_field);
std::string predictBody(absl::string_view name, double score, bool nan, bool missing_field);
// `request_id` is the "id" member of the request body, echoed when present.
std::string inferBody(absl::string_view model, const nlohmann::json& request_id, double score,
                      bool nan, bool missing_field);
std::string embeddingsBody(absl::string_view model, absl::string_view body, uint64_t seed, bool nan,
                           bool missing_field);
std::string kserveMetadataBody(absl::string_view model);
std::string echoBody(const Request& request);

// Piece `index` of `count` pieces of `text`, cut at word starts; empty when there are fewer
// words than pieces.
absl::string_view pieceOf(absl::string_view text, int64_t index, int64_t count);

// One SSE event "data: {...}\n\n" of a chat.completion.chunk (or text_completion) stream.
std::string chatChunkEvent(absl::string_view id, int64_t created, absl::string_view model,
                           absl::string_view content, bool first, bool last, bool completions,
                           int64_t pad_to);
// One NDJSON line of the generic token stream.
std::string ndjsonLine(absl::string_view model, int64_t index, int64_t count,
                       absl::string_view token, double score, bool nan, int64_t pad_to);

}  // namespace demo
