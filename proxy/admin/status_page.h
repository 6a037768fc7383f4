// The status page of GET /: the HTML asset (assets/status.html, embedded at
// build time) with the current state put in as plain tables, for browsers
// without JavaScript. Pure: JSON in, HTML out.
#pragma once

#include <string>
#include <string_view>

#include "nlohmann/json.hpp"

namespace airbag::admin {

// The page as written in assets/status.html.
extern const std::string_view kStatusPageHtml;

// Where renderStatusPage() puts the tables; the asset holds it once, inside
// its <noscript>.
inline constexpr std::string_view kStateTablesMarker = "<!--airbag:state-tables-->";

// `text` with & < > " ' as character references.
std::string htmlEscape(std::string_view text);

// Tables of the process (GET /status), the routes (GET /routes) and the
// upstreams (GET /upstreams, null when not available), every value escaped.
std::string renderStateTables(const nlohmann::json& status, const nlohmann::json& routes,
                              const nlohmann::json& upstreams);

// The page with renderStateTables() at its marker.
std::string renderStatusPage(const nlohmann::json& status, const nlohmann::json& routes,
                             const nlohmann::json& upstreams);

}  // namespace airbag::admin
