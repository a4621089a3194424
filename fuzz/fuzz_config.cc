// Fuzz target: bytes as hast.conf text through the parser, the printer and the resolver.
//
// Oracles, beyond "never crashes or asserts": a parse error names a line within the
// text (1-based, at most one past the last newline); a parsed Config prints to text that
// parses back and prints the same; resolving for a fixed identity, with and without a
// --node override and with no address family, gives a NodeConfig or a clean error.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/assert.h"
#include "core/config/config.h"
#include "fuzz/fuzz_lines.h"

namespace {

namespace config = hast::config;

using hast::fuzz::error_line;
using hast::fuzz::line_count;

void check_resolve(const config::Config& parsed, const config::NodeIdentity& identity,
                   config::AddressFamilies families) {
  auto node = config::resolve(parsed, identity, families);
  if (node) {
    HAST_ASSERT(!node->listen.empty());
    HAST_ASSERT(node->resources.size() == parsed.resources.size());
    return;
  }
  HAST_ASSERT(node.error().code() == hast::Errc::invalid_argument ||
              node.error().code() == hast::Errc::unsupported);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = config::parse(text);
  if (!parsed) {
    long line = error_line(parsed.error().context(), "line ");
    HAST_ASSERT_MSG(line >= 1 && line <= line_count(text), "bad error line: {}",
                    parsed.error().context());
    HAST_ASSERT(parsed.error().code() == hast::Errc::invalid_argument);
    return 0;
  }
  std::string printed = config::print(*parsed);
  auto reparsed = config::parse(printed);
  HAST_ASSERT_MSG(reparsed.has_value(), "printed config does not parse: {}\n{}",
                  reparsed ? "" : reparsed.error().context(), printed);
  HAST_ASSERT(config::print(*reparsed) == printed);

  config::NodeIdentity identity;
  identity.hostname = "fbsd_h1.example.org";
  identity.machine_id = "4C4C4544-0042-3510-8052-B4C04F4B4E31";
  identity.hostid = 3735928559;
  check_resolve(*parsed, identity, {});
  check_resolve(*parsed, identity, {.ipv4 = false, .ipv6 = false});
  identity.node_override = "node2";
  check_resolve(*parsed, identity, {});
  return 0;
}
