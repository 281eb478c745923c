// text.hpp: hostile text made safe for one-line error messages.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

namespace benchrun {

// At most max characters of s, non-printable bytes as '?', "..." when cut.
inline std::string printable(std::string_view s, size_t max = 160) {
  std::string out;
  out.reserve(std::min(s.size(), max) + 3);
  for (char c : s.substr(0, max)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > max) out += "...";
  return out;
}

// ASCII lowercase.
inline std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

}  // namespace benchrun
