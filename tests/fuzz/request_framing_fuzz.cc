// Fuzzes how airbag frames client requests (MessageParser, Kind::kRequest):
// the bytes fed whole or split at a fuzzer-chosen point give the same heads,
// bodies and errors, so no split can make airbag and an upstream disagree
// about where a request ends.
#include "tests/fuzz/http_framing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  airbag::fuzz::checkSplitInvariance(airbag::http::MessageParser::Kind::kRequest, data, size);
  return 0;
}
