// HTTP header storage for the data plane: names and values live in one arena
// string that keeps its capacity across requests, so a keep-alive connection
// parses headers without heap churn.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace airbag::http {

// ASCII case-insensitive equality (header names, tokens).
bool iequals(std::string_view a, std::string_view b);

// True for headers that belong to one connection and must not be forwarded
// (RFC 9110 §7.6.1): Connection, Keep-Alive, Proxy-Connection,
// Proxy-Authenticate, Proxy-Authorization, TE, Trailer, Transfer-Encoding,
// Upgrade.
bool isHopByHop(std::string_view name);

// The headers the proxy treats specially, told apart with one length switch
// and at most a couple of comparisons (cheaper than asking iequals for each).
enum class HeaderKind : uint8_t {
  kOther,
  kHopByHop,  // any of isHopByHop() except the two below
  kConnection,
  kTransferEncoding,
  kHost,
  kContentLength,
  kContentType,
  kExpect,
  kRequestId,     // x-request-id
  kBudget,        // x-airbag-timeout-ms
  kAirbag,        // any other x-airbag-*
  kRetryAfter,
  kCacheControl,
  kPragma,
};
HeaderKind classifyHeader(std::string_view name);

// True for answer headers passed on to the client (and kept with a cached
// answer): not hop-by-hop, not framing, not the ones airbag sets itself.
bool isRelayedAnswerHeader(HeaderKind kind);

// True for content types whose bodies are streams of events or records (SSE,
// NDJSON, JSON Lines, JSON text sequences): relayed as they come.
bool isStreamingContentType(std::string_view content_type);

// True for a Host header value a server may accept (RFC 9112 §3.2, RFC 3986
// §3.2.2): a reg-name, IPv4 or bracketed IP literal, optionally ":port".
// Empty is refused, as nginx does.
bool isValidHost(std::string_view host);

// True when `token` appears in a comma-separated header value (case-insensitive).
bool headerHasToken(std::string_view value, std::string_view token);

class HeaderList {
 public:
  void clear() {
    arena_.clear();
    entries_.clear();
  }
  // Adds a complete header.
  void add(std::string_view name, std::string_view value);

  // Incremental building, as llhttp delivers names and values in pieces.
  void beginName() { entries_.push_back({static_cast<uint32_t>(arena_.size()), 0, 0, 0}); }
  void appendName(std::string_view piece);
  void beginValue();
  void appendValue(std::string_view piece);

  size_t size() const { return entries_.size(); }
  std::string_view name(size_t i) const {
    return {arena_.data() + entries_[i].name_off, entries_[i].name_len};
  }
  std::string_view value(size_t i) const {
    return {arena_.data() + entries_[i].value_off, entries_[i].value_len};
  }
  // Returns the first value of `name` (case-insensitive), if present.
  std::optional<std::string_view> get(std::string_view name) const;

 private:
  struct Entry {
    uint32_t name_off, name_len, value_off, value_len;
  };
  std::string arena_;
  std::vector<Entry> entries_;
};

}  // namespace airbag::http
