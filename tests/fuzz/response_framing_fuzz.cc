// Fuzzes how airbag frames upstream answers (MessageParser, Kind::kResponse):
// fed whole or split, the same answers result, and a delivered head always
// carries a status in 100..599. The first byte also chooses whether the
// answer is to a HEAD request (no body follows).
#include "tests/fuzz/http_framing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  airbag::fuzz::checkSplitInvariance(airbag::http::MessageParser::Kind::kResponse, data, size);
  return 0;
}
