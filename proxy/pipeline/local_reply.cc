// Building local JSON replies; see local_reply.h.
#include "proxy/pipeline/local_reply.h"

#include "proxy/http/text.h"
#include "proxy/http/status.h"

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
  http::append(out, "HTTP/1.1 ", r.status, " ", http::reasonPhrase(r.status),
                  "\r\ncontent-type: application/json\r\ncontent-length: ", body.size(),
                  "\r\nx-airbag-source: none\r\nx-airbag-attempts: ", r.attempts, "\r\n");
  if (!r.request_id.empty()) http::append(out, "x-request-id: ", r.request_id, "\r\n");
  if (r.retry_after_seconds) http::append(out, "retry-after: ", *r.retry_after_seconds, "\r\n");
  if (!r.cache.empty()) http::append(out, "x-airbag-cache: ", r.cache, "\r\n");
  if (r.close)
    out += "connection: close\r\n";
  else if (r.http10_keep_alive)
    out += "connection: keep-alive\r\n";
  out += "\r\n";
  if (!r.head_only) out += body;
}

}  // namespace airbag::pipeline
