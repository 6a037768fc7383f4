// Answer validation against the route's JSON checks.
#include "proxy/json/validate.h"

#include <charconv>
#include <cmath>
#include <string_view>

namespace airbag::json {
namespace {

JsonType typeOf(const rapidjson::Value& v) {
  switch (v.GetType()) {
    case rapidjson::kObjectType:
      return JsonType::kObject;
    case rapidjson::kArrayType:
      return JsonType::kArray;
    case rapidjson::kStringType:
      return JsonType::kString;
    case rapidjson::kNumberType:
      return JsonType::kNumber;
    case rapidjson::kFalseType:
    case rapidjson::kTrueType:
      return JsonType::kBoolean;
    case rapidjson::kNullType:
      break;
  }
  return JsonType::kNull;
}

std::string numberText(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), d);
  return std::string(buf, static_cast<size_t>(r.ptr - buf));
}

std::string where(const JsonCheck& check) {
  return check.pointer.empty() ? std::string("the answer") : check.pointer;
}

ValidationResult fail(const JsonCheck& check, std::string_view what) {
  ValidationResult r;
  r.ok = false;
  r.reason = where(check);
  r.reason.push_back(' ');
  r.reason.append(what);
  return r;
}

ValidationResult notA(const JsonCheck& check, const rapidjson::Value& v, JsonType wanted) {
  std::string what = "is ";
  what += jsonTypeName(typeOf(v));
  what += ", not ";
  what += wanted == JsonType::kArray || wanted == JsonType::kObject ? "an " : "a ";
  what += jsonTypeName(wanted);
  return fail(check, what);
}

ValidationResult checkOne(const Document& answer, const JsonCheck& check) {
  const rapidjson::Value* v = answer.find(check.pointer);
  if (check.exists.has_value() && !*check.exists) {
    return v == nullptr ? ValidationResult{} : fail(check, "must be absent");
  }
  if (v == nullptr) return fail(check, "is missing");
  if (check.type.has_value() && typeOf(*v) != *check.type) return notA(check, *v, *check.type);
  const bool numeric = check.finite || check.min.has_value() || check.max.has_value();
  if (numeric) {
    if (!v->IsNumber()) return notA(check, *v, JsonType::kNumber);
    const double d = v->GetDouble();
    if (std::isnan(d)) return fail(check, "is NaN");
    if (check.finite && std::isinf(d)) return fail(check, "is " + numberText(d));
    // Compared as doubles: bounds come from YAML as doubles anyway.
    if (check.min.has_value() && d < *check.min) {
      return fail(check, "is " + numberText(d) + ", below min " + numberText(*check.min));
    }
    if (check.max.has_value() && d > *check.max) {
      return fail(check, "is " + numberText(d) + ", above max " + numberText(*check.max));
    }
  }
  if (check.min_items.has_value()) {
    if (!v->IsArray()) return notA(check, *v, JsonType::kArray);
    if (v->Size() < *check.min_items) {
      return fail(check, "has " + std::to_string(v->Size()) + " items, fewer than " +
                             std::to_string(*check.min_items));
    }
  }
  return {};
}

}  // namespace

ValidationResult validate(const Document& answer, const std::vector<JsonCheck>& checks) {
  if (checks.empty()) return {};
  if (!answer.ok()) return ValidationResult{false, "the answer is not valid JSON"};
  for (const JsonCheck& check : checks) {
    ValidationResult r = checkOne(answer, check);
    if (!r.ok) return r;
  }
  return {};
}

}  // namespace airbag::json
