// Reason phrases for status lines we write.
#pragma once

#include <string_view>

namespace airbag::http {

// Returns the standard reason phrase for `status`, or "Unknown".
std::string_view reasonPhrase(int status);

}  // namespace airbag::http
