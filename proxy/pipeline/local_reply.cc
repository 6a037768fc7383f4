// Building local JSON replies; see local_reply.h.
#include "proxy/pipeline/local_reply.h"

#include "proxy/pipeline/answer_head.h"

namespace airbag::pipeline {

void appendJsonEscaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else {
          out += ch;
        }
    }
  }
}

void appendLocalReply(std::string& out, const LocalReply& r) {
  std::string body;
  body.reserve(96 + r.message.size() + r.route.size());
  body += R"({"error":{"code":")";
  appendJsonEscaped(body, r.code);
  body += R"(","message":")";
  appendJsonEscaped(body, r.message);
  body += '"';
  if (!r.route.empty()) {
    body += R"(,"route":")";
    appendJsonEscaped(body, r.route);
    body += '"';
  }
  body += "}}\n";
  AnswerMeta meta;
  meta.source = "none";
  meta.attempts = r.attempts;
  meta.request_id = r.request_id;
  meta.cache = r.cache;
  meta.admission = r.admission;
  meta.retry_after_seconds = r.retry_after_seconds;
  meta.close = r.close;
  meta.http10_keep_alive = r.http10_keep_alive;
  static const HeaderPairs kNoHeaders;
  appendAnswerHead(out, r.status, kNoHeaders, "application/json", Framing::kLength, body.size(),
                   meta);
  if (!r.head_only) out += body;
}

}  // namespace airbag::pipeline
