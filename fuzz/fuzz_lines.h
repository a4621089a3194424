// Line numbers in the fuzz targets' oracles for text parsers (fuzz_config.cc,
// fuzz_scenario.cc): a rejection must name a line of the text it was given.
#pragma once

#include <cstddef>
#include <string_view>

namespace hast::fuzz {

// The N of an error context "<prefix>N: ...", or 0 when it does not start that way (N
// stops growing past 10^9, so a long run of digits cannot overflow).
inline long error_line(std::string_view context, std::string_view prefix) {
  if (!context.starts_with(prefix)) return 0;
  long line = 0;
  std::size_t i = prefix.size();
  for (; i < context.size() && context[i] >= '0' && context[i] <= '9' && line < 1000000000; i++)
    line = line * 10 + (context[i] - '0');
  if (i == prefix.size() || context.substr(i, 2) != ": ") return 0;
  return line;
}

// The lines of `text`, 1-based: one more than its newlines (an error may name the line
// after the last newline).
inline long line_count(std::string_view text) {
  long newlines = 0;
  for (char c : text)
    newlines += c == '\n' ? 1 : 0;
  return newlines + 1;
}

}  // namespace hast::fuzz
