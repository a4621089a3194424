// Fuzz target: bytes as a .scn file through the scenario parser (sim/scenario.h).
//
// Oracles, beyond "never crashes or asserts": a rejection is Errc::invalid_argument whose
// context is "fuzz.scn:N: ..." with N a line of the text (1-based, at most one past the
// last newline); an accepted scenario names two distinct nodes with distinct hosts, its
// actions come in non-decreasing time order with lines inside the text, and its duration
// covers every action.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/assert.h"
#include "fuzz/fuzz_lines.h"
#include "sim/scenario.h"

namespace {

using hast::fuzz::error_line;
using hast::fuzz::line_count;

constexpr std::string_view kFile = "fuzz.scn";
constexpr std::string_view kLinePrefix = "fuzz.scn:";  // errors name "fuzz.scn:N: ..."

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = hast::sim::parse_scenario(text, kFile);
  long lines = line_count(text);
  if (!parsed) {
    HAST_ASSERT(parsed.error().code() == hast::Errc::invalid_argument);
    long line = error_line(parsed.error().context(), kLinePrefix);
    HAST_ASSERT_MSG(line >= 1 && line <= lines, "bad error line: {}", parsed.error().context());
    return 0;
  }
  const hast::sim::Scenario& scenario = *parsed;
  HAST_ASSERT(scenario.nodes[0] != scenario.nodes[1]);
  HAST_ASSERT(scenario.hosts[0] != scenario.hosts[1]);
  HAST_ASSERT(!scenario.actions.empty());
  hast::Duration previous{0};
  for (const hast::sim::Action& action : scenario.actions) {
    HAST_ASSERT(action.line >= 1 && action.line <= lines);
    HAST_ASSERT(action.at >= previous);
    HAST_ASSERT(action.at <= scenario.duration);
    HAST_ASSERT(action.node < 2);
    previous = action.at;
  }
  return 0;
}
