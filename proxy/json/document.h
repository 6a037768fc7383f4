// A JSON body parsed once per request (rapidjson DOM) and looked into with
// RFC 6901 pointers; the cache key, answer checks and rules all reuse it.
#pragma once

#include <cstddef>
#include <string_view>

#include "rapidjson/document.h"

namespace airbag::json {

class Document {
 public:
  // Parses `text` (need not be NUL-terminated; not retained). NaN, Infinity
  // and -Infinity literals are accepted as numbers so that a model answer
  // carrying them can be reported as such instead of as "not JSON". Never
  // throws: a parse failure leaves ok() false.
  static Document parse(std::string_view text);

  Document() = default;  // not ok()
  Document(Document&& other) noexcept;
  Document& operator=(Document&& other) noexcept;
  Document(const Document&) = delete;
  Document& operator=(const Document&) = delete;

  // True when the text was one complete, valid JSON value.
  bool ok() const { return ok_; }

  // The value at an RFC 6901 pointer ("" = the whole document,
  // "/predictions/0/score", "~0" for '~' and "~1" for '/' in member names),
  // or nullptr when absent, when the pointer is malformed or when !ok().
  // The result lives as long as this Document. Does not allocate.
  const rapidjson::Value* find(std::string_view pointer) const;

  // The whole document; only meaningful when ok().
  const rapidjson::Value& root() const { return doc_; }

  // Length of the text it was parsed from (a size hint for writers).
  size_t textSize() const { return text_size_; }

 private:
  rapidjson::Document doc_;
  size_t text_size_ = 0;
  bool ok_ = false;
};

// The value at `pointer` below `root` (see Document::find).
const rapidjson::Value* findPointer(const rapidjson::Value& root, std::string_view pointer);

// True when `pointer` is "" or a sequence of "/token" parts whose '~' is
// always followed by '0' or '1'.
bool isValidPointer(std::string_view pointer);

// JSON value equality: numbers compare numerically (1 == 1.0, exact for
// integers beyond 2^53), strings by bytes, arrays element-wise in order,
// objects as member sets regardless of order. NaN equals nothing.
bool valueEquals(const rapidjson::Value& a, const rapidjson::Value& b);

// Three-way numeric comparison of two numbers: -1, 0, 1, or 2 when either is
// NaN (unordered). Exact for any mix of int64 / uint64; otherwise as doubles.
int compareNumbers(const rapidjson::Value& a, const rapidjson::Value& b);

}  // namespace airbag::json
