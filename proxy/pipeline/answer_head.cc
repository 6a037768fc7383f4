// The answer-head writer; see answer_head.h.
#include "proxy/pipeline/answer_head.h"

#include "proxy/http/status.h"
#include "proxy/http/text.h"

namespace airbag::pipeline {

void appendAnswerHead(std::string& out, int status, const HeaderPairs& headers,
                      std::string_view content_type, Framing framing, uint64_t length,
                      const AnswerMeta& meta) {
  std::string_view reason = http::reasonPhrase(status);
  // The literals below come to under 256 bytes, plus four numbers.
  size_t bound = 256 + 4 * http::BoundedWriter::kMaxDecimal + reason.size() +
                 content_type.size() + meta.source.size() + meta.cache.size() +
                 meta.admission.size() + meta.cache_tier.size() + meta.request_id.size();
  for (const auto& [name, value] : headers) bound += name.size() + value.size() + 4;
  http::BoundedWriter w(out, bound);
  w.add("HTTP/1.1 ", status, " ", reason, "\r\n");
  if (!content_type.empty()) w.add("content-type: ", content_type, "\r\n");
  for (const auto& [name, value] : headers) w.add(name, ": ", value, "\r\n");
  w.add("x-airbag-source: ", meta.source, "\r\nx-airbag-attempts: ", meta.attempts, "\r\n");
  if (!meta.cache.empty()) w.add("x-airbag-cache: ", meta.cache, "\r\n");
  if (!meta.admission.empty()) w.add("x-airbag-admission: ", meta.admission, "\r\n");
  if (!meta.cache_tier.empty()) w.add("x-airbag-cache-tier: ", meta.cache_tier, "\r\n");
  if (!meta.request_id.empty()) w.add("x-request-id: ", meta.request_id, "\r\n");
  if (meta.retry_after_seconds) w.add("retry-after: ", *meta.retry_after_seconds, "\r\n");
  switch (framing) {
    case Framing::kLength:
      w.add("content-length: ", length, "\r\n");
      break;
    case Framing::kChunked:
      w.add("transfer-encoding: chunked\r\n");
      break;
    case Framing::kUntilClose:
    case Framing::kNone:
      break;
  }
  if (meta.close)
    w.add("connection: close\r\n");
  else if (meta.http10_keep_alive)
    w.add("connection: keep-alive\r\n");
  w.add("\r\n");
}

}  // namespace airbag::pipeline
