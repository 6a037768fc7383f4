// The answer-head writer; see answer_head.h.
#include "proxy/pipeline/answer_head.h"

#include "proxy/http/status.h"
#include "proxy/http/text.h"

namespace airbag::pipeline {

void appendAnswerHead(std::string& out, int status, const HeaderPairs& headers,
                      std::string_view content_type, Framing framing, uint64_t length,
                      const AnswerMeta& meta) {
  http::append(out, "HTTP/1.1 ", status, " ", http::reasonPhrase(status), "\r\n");
  if (!content_type.empty()) http::append(out, "content-type: ", content_type, "\r\n");
  for (const auto& [name, value] : headers) http::append(out, name, ": ", value, "\r\n");
  http::append(out, "x-airbag-source: ", meta.source, "\r\nx-airbag-attempts: ", meta.attempts,
               "\r\n");
  if (!meta.cache.empty()) http::append(out, "x-airbag-cache: ", meta.cache, "\r\n");
  if (!meta.admission.empty()) http::append(out, "x-airbag-admission: ", meta.admission, "\r\n");
  if (!meta.request_id.empty()) http::append(out, "x-request-id: ", meta.request_id, "\r\n");
  if (meta.retry_after_seconds)
    http::append(out, "retry-after: ", *meta.retry_after_seconds, "\r\n");
  switch (framing) {
    case Framing::kLength:
      http::append(out, "content-length: ", length, "\r\n");
      break;
    case Framing::kChunked:
      out += "transfer-encoding: chunked\r\n";
      break;
    case Framing::kUntilClose:
    case Framing::kNone:
      break;
  }
  if (meta.close)
    out += "connection: close\r\n";
  else if (meta.http10_keep_alive)
    out += "connection: keep-alive\r\n";
  out += "\r\n";
}

}  // namespace airbag::pipeline
