// RESP, the Redis protocol, through hiredis's encoder and reply reader only:
// the bytes go over our own non-blocking socket on the worker's loop.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/types/span.h"

struct redisReader;

namespace airbag::shared_cache {

// One reply, as a plain value (hiredis's reply tree is copied and freed).
struct Reply {
  enum class Type : uint8_t { kString, kArray, kInteger, kNil, kStatus, kError };
  Type type = Type::kNil;
  std::string str;  // kString, kStatus, kError
  int64_t integer = 0;
  std::vector<Reply> elements;  // kArray

  bool isError() const { return type == Type::kError; }
  bool isOk() const { return type == Type::kStatus && str == "OK"; }
};

// Appends the RESP encoding of one command (its arguments, binary-safe) to `out`.
void appendCommand(std::string& out, absl::Span<const std::string_view> args);

// Turns the bytes a server sends into replies. Not thread-safe.
class ReplyReader {
 public:
  ReplyReader();
  ~ReplyReader();
  ReplyReader(const ReplyReader&) = delete;
  ReplyReader& operator=(const ReplyReader&) = delete;

  // Takes more bytes. False: the stream is not RESP (the connection is
  // unusable from here on).
  bool feed(std::string_view bytes);
  // The next complete reply, if one is in. Sets *broken on a protocol error.
  std::optional<Reply> next(bool* broken);

 private:
  redisReader* reader_;
  long budget_;  // array elements the reply being read may still hold
};

// Where a cluster error reply sends a command: "MOVED 3999 127.0.0.1:6381"
// or "ASK 3999 127.0.0.1:6381". Null for any other error.
struct Redirect {
  bool ask = false;  // ASK: this command only, after ASKING
  int slot = 0;
  std::string host;
  int port = 0;
};
std::optional<Redirect> parseRedirect(std::string_view error);

}  // namespace airbag::shared_cache
