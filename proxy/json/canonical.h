// The canonical text of a JSON body, so that requests that mean the same
// thing share one cache key however they are spelled.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "proxy/json/document.h"

namespace airbag::json {

// Nesting deeper than this is not canonicalised (the caller keys on the raw
// bytes instead), which bounds the recursion of the writer.
inline constexpr int kMaxCanonicalDepth = 256;

// Returns the canonical text of `doc`: object members sorted by name (byte
// order, stable for duplicate names), no insignificant whitespace, numbers
// normalised (1, 1.0, 1e0 -> "1"; -0 -> "0"; integral values below 1e21 in
// plain digits; others in the shortest text that reads back as the same
// double; NaN/Infinity/-Infinity as those words), strings re-escaped one way
// only (", \ and control characters escaped, everything else raw UTF-8), and
// every object member or array element addressed by one of `ignore_pointers`
// left out (pointers that address nothing are skipped; ignoring "" yields "").
// Returns std::nullopt when !doc.ok() or nesting exceeds kMaxCanonicalDepth.
std::optional<std::string> canonicalize(const Document& doc,
                                        const std::vector<std::string>& ignore_pointers);

}  // namespace airbag::json
