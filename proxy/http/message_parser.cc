// llhttp glue for MessageParser; see message_parser.h.
#include "proxy/http/message_parser.h"

#include <string_view>

namespace airbag::http {
namespace {

MessageParser* self(llhttp_t* p) { return static_cast<MessageParser*>(p->data); }

// The Transfer-Encoding values of a message, taken together, name exactly one
// coding, "chunked": anything else (gzip, a repeated chunked) is a coding
// airbag would have to apply or drop silently.
bool onlyChunked(const HeaderList& headers) {
  int codings = 0;
  bool chunked = false;
  for (size_t i = 0; i < headers.size(); ++i) {
    if (!iequals(headers.name(i), "transfer-encoding")) continue;
    std::string_view v = headers.value(i);
    size_t pos = 0;
    while (pos <= v.size()) {
      size_t comma = v.find(',', pos);
      if (comma == std::string_view::npos) comma = v.size();
      std::string_view t = v.substr(pos, comma - pos);
      while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
      while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
      if (!t.empty()) {
        ++codings;
        chunked = iequals(t, "chunked");
      }
      pos = comma + 1;
    }
  }
  return codings == 1 && chunked;
}

}  // namespace

MessageParser::MessageParser(Kind kind, Listener* listener) : listener_(listener) {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = &MessageParser::onMessageBeginCb;
  settings_.on_url = &MessageParser::onUrlCb;
  settings_.on_header_field = &MessageParser::onHeaderFieldCb;
  settings_.on_header_value = &MessageParser::onHeaderValueCb;
  settings_.on_headers_complete = &MessageParser::onHeadersCompleteCb;
  settings_.on_body = &MessageParser::onBodyCb;
  settings_.on_message_complete = &MessageParser::onMessageCompleteCb;
  llhttp_init(&parser_, kind == Kind::kRequest ? HTTP_REQUEST : HTTP_RESPONSE, &settings_);
  parser_.data = this;
}

void MessageParser::reset() {
  // llhttp keeps its own state between messages; only a paused or failed
  // parser needs resuming/re-initialising.
  if (llhttp_get_errno(&parser_) == HPE_PAUSED) {
    llhttp_resume(&parser_);
  } else if (llhttp_get_errno(&parser_) != HPE_OK) {
    llhttp_reset(&parser_);
  }
  headers_.clear();
  url_.clear();
  method_ = {};
  head_bytes_ = 0;
  content_length_ = 0;
  error_ = Error::kNone;
  own_reason_ = nullptr;
  started_ = false;
  headers_complete_ = false;
  in_value_ = false;
  complete_ = false;
}

MessageParser::Result MessageParser::execute(const char* data, size_t len, size_t* consumed) {
  *consumed = 0;
  if (complete_) return Result::kComplete;
  if (error_ != Error::kNone) return Result::kError;
  llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  if (err == HPE_OK) {
    *consumed = len;
    return Result::kNeedMore;
  }
  if (err == HPE_PAUSED && complete_) {
    *consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
    return Result::kComplete;
  }
  if (error_ == Error::kNone) error_ = (err == HPE_USER) ? Error::kListener : Error::kMalformed;
  return Result::kError;
}

MessageParser::Result MessageParser::finish() {
  if (complete_) return Result::kComplete;
  if (!started_) return Result::kNeedMore;
  llhttp_errno_t err = llhttp_finish(&parser_);
  if (complete_) return Result::kComplete;
  if (err != HPE_OK || !complete_) {
    if (error_ == Error::kNone) error_ = Error::kMalformed;
    return Result::kError;
  }
  return Result::kComplete;
}

bool MessageParser::countHead(size_t len) {
  head_bytes_ += len;
  if (head_bytes_ > max_header_bytes_) {
    error_ = Error::kHeadersTooLarge;
    return false;
  }
  return true;
}

int MessageParser::onMessageBeginCb(llhttp_t* p) {
  MessageParser* m = self(p);
  m->started_ = true;
  return 0;
}

int MessageParser::onUrlCb(llhttp_t* p, const char* at, size_t len) {
  MessageParser* m = self(p);
  if (!m->countHead(len)) return -1;
  m->url_.append(at, len);
  return 0;
}

int MessageParser::onHeaderFieldCb(llhttp_t* p, const char* at, size_t len) {
  MessageParser* m = self(p);
  // Header names are checked against RFC 9110's token characters by llhttp
  // itself (strict mode): "Bad Name" or a control byte never reaches here.
  bool new_name = m->in_value_ || m->headers_.size() == 0;
  // ": " and CRLF are counted once per header, with the first piece of its name.
  if (!m->countHead(len + (new_name ? 4 : 0))) return -1;
  if (new_name) {
    m->headers_.beginName();
    m->in_value_ = false;
  }
  m->headers_.appendName({at, len});
  return 0;
}

int MessageParser::onHeaderValueCb(llhttp_t* p, const char* at, size_t len) {
  MessageParser* m = self(p);
  if (!m->countHead(len)) return -1;
  if (!m->in_value_) {
    if (m->headers_.size() == 0 || m->headers_.name(m->headers_.size() - 1).empty())
      return m->fail(Error::kMalformed, "a header with an empty name");
    m->headers_.beginValue();
    m->in_value_ = true;
  }
  m->headers_.appendValue({at, len});
  return 0;
}

int MessageParser::checkHead() {
  // RFC 9110 §15: three digits, 100..599; llhttp reads any number of them.
  if (parser_.type == HTTP_RESPONSE && (parser_.status_code < 100 || parser_.status_code > 599))
    return fail(Error::kMalformed, "invalid status code");
  // A header with no value at all still needs a name.
  if (headers_.size() > 0 && headers_.name(headers_.size() - 1).empty())
    return fail(Error::kMalformed, "a header with an empty name");
  if ((parser_.flags & F_TRANSFER_ENCODING) && !onlyChunked(headers_))
    return fail(Error::kUnsupportedTransferCoding,
                "only the chunked transfer coding is supported");
  return 0;
}

int MessageParser::onHeadersCompleteCb(llhttp_t* p) {
  MessageParser* m = self(p);
  if (m->checkHead() < 0) return -1;
  m->headers_complete_ = true;
  if (p->type == HTTP_REQUEST) m->method_ = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
  m->content_length_ = (p->flags & F_CONTENT_LENGTH) ? p->content_length : 0;
  int r = m->listener_->onHeadersComplete();
  if (r < 0) {
    m->error_ = Error::kListener;
    return -1;
  }
  // 1xx, 204 and 304 answers end with their head, whatever length they claim
  // (RFC 9112 §6.3); llhttp would read a Content-Length body after a 204.
  if (p->type == HTTP_RESPONSE &&
      (p->status_code < 200 || p->status_code == 204 || p->status_code == 304))
    return 1;
  return r;
}

int MessageParser::onBodyCb(llhttp_t* p, const char* at, size_t len) {
  MessageParser* m = self(p);
  if (m->listener_->onBody({at, len}) < 0) {
    if (m->error_ == Error::kNone) m->error_ = Error::kListener;
    return -1;
  }
  return 0;
}

int MessageParser::onMessageCompleteCb(llhttp_t* p) {
  MessageParser* m = self(p);
  m->complete_ = true;
  if (m->listener_->onMessageComplete() < 0) {
    m->error_ = Error::kListener;
    return -1;
  }
  return HPE_PAUSED;
}

}  // namespace airbag::http
