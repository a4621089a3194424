// hastctl: the administrator's command (reference/hast-spec.md §3). `create` and `dump`
// work on the providers directly; `role`, `status`, `list` and `stop` talk to hastd over
// the control socket. Output and exit codes as FreeBSD's (core/control/format.h).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace hast::real {

struct HastctlOptions {
  std::string command;  // create, role, list, status, dump, stop
  std::string config_path = "/etc/hast.conf";
  std::optional<std::string> node;  // --node: as hastd's
  int debug = 0;
  bool json = false;   // status, list
  bool force = false;  // role primary on an inconsistent node
  std::optional<std::uint64_t> extent_size, keep_dirty, media_size;  // create
  std::optional<std::string> role;                                   // role
  std::vector<std::string> names;
};

// Parses argv (the subcommand first, then options, then names). Prints the usage and
// returns nullopt on a usage error (exit 64).
std::optional<HastctlOptions> parse_hastctl_args(int argc, char** argv);

// Runs the command; returns the exit code.
int run_hastctl(const HastctlOptions& options);

}  // namespace hast::real
