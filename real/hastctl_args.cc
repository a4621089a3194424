// hastctl's command line (reference/hast-spec.md §3.1): the subcommand first, then
// options (getopt style, plus the long options --node, --json and --force), then names.
#include <cstdio>
#include <string_view>

#include <fmt/format.h>

#include "core/meta/role.h"
#include "real/hastctl.h"

namespace hast::real {
namespace {

constexpr const char* kUsage =
    "usage: hastctl create [-d] [-c config] [-e extentsize] [-k keepdirty]\n"
    "\t\t[-m mediasize] [--node name] name ...\n"
    "       hastctl role [-d] [-c config] [--force] [--node name] <init | primary | secondary>\n"
    "\t\tall | name ...\n"
    "       hastctl list [-d] [-c config] [--json] [--node name] [all | name ...]\n"
    "       hastctl status [-d] [-c config] [--json] [--node name] [all | name ...]\n"
    "       hastctl dump [-d] [-c config] [--node name] [all | name ...]\n"
    "       hastctl stop [-d] [-c config] [--node name]\n";

std::nullopt_t usage() {
  std::fputs(kUsage, stderr);
  return std::nullopt;
}

// FreeBSD's expand_number(3): a number with an optional k, m, g, t, p or e suffix
// (1024-based, either case).
std::optional<std::uint64_t> expand_number(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::uint64_t value = 0;
  std::size_t i = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; i++) {
    if (value > (UINT64_MAX - 9) / 10) return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(text[i] - '0');
  }
  if (i == 0) return std::nullopt;
  if (i == text.size()) return value;
  if (i + 1 != text.size()) return std::nullopt;
  constexpr std::string_view suffixes = "kmgtpe";
  auto shift = suffixes.find(static_cast<char>(text[i] | 0x20));
  if (shift == std::string_view::npos) return std::nullopt;
  unsigned bits = 10 * static_cast<unsigned>(shift + 1);
  if (value > (UINT64_MAX >> bits)) return std::nullopt;
  return value << bits;
}

bool valid_command(std::string_view command) {
  for (std::string_view known : {"create", "role", "list", "status", "dump", "stop"}) {
    if (command == known) return true;
  }
  return false;
}

// Applies the option at argv[i] (advancing i past its value). False: a usage error.
bool apply_option(HastctlOptions& options, int argc, char** argv, int& i) {
  std::string_view arg = argv[i];
  if (arg == "-d") return ++options.debug > 0;
  if (arg == "--json" && (options.command == "status" || options.command == "list")) {
    return options.json = true;
  }
  if (arg == "--force" && options.command == "role") return options.force = true;
  bool takes_value = arg == "-c" || arg == "--node" ||
                     (options.command == "create" && (arg == "-e" || arg == "-k" || arg == "-m"));
  if (!takes_value || i + 1 >= argc) return false;
  std::string_view value = argv[++i];
  if (arg == "-c") options.config_path = value;
  if (arg == "--node") options.node = std::string(value);
  if (arg == "-e" || arg == "-k" || arg == "-m") {
    auto number = expand_number(value);
    const char* what = arg == "-e" ? "extentsize" : arg == "-k" ? "keepdirty" : "mediasize";
    if (!number) {
      fmt::print(stderr, "hastctl: Invalid {}\n", what);
      return false;
    }
    (arg == "-e"   ? options.extent_size
     : arg == "-k" ? options.keep_dirty
                   : options.media_size) = number;
  }
  return true;
}

}  // namespace

std::optional<HastctlOptions> parse_hastctl_args(int argc, char** argv) {
  if (argc < 2 || !valid_command(argv[1])) return usage();
  HastctlOptions options;
  options.command = argv[1];
  int i = 2;
  for (; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
    if (std::string_view(argv[i]) == "--") {
      i++;
      break;
    }
    if (!apply_option(options, argc, argv, i)) return usage();
  }
  for (; i < argc; i++)
    options.names.emplace_back(argv[i]);
  if (options.command == "role") {
    if (options.names.empty() || !meta::parse_role(options.names.front())) return usage();
    options.role = options.names.front();
    options.names.erase(options.names.begin());
  }
  bool needs_names = options.command == "create" || options.command == "role";
  if (needs_names && options.names.empty()) return usage();
  if (options.command == "stop" && !options.names.empty()) return usage();
  return options;
}

}  // namespace hast::real
