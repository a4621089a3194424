// Host facts for hastd and hastctl: who this host is (for `on <node>` sections), which
// address families it supports, and the configuration file read and resolved for it.
#pragma once

#include <optional>
#include <string>

#include "core/config/config.h"
#include "core/result.h"

namespace hast::real {

// The host name (gethostname), /etc/machine-id and gethostid(); `node_override`
// (--node) replaces the host name for matching (config::NodeIdentity).
config::NodeIdentity host_identity(const std::optional<std::string>& node_override);

// IPv4 and IPv6 support, probed by creating a socket of each family.
config::AddressFamilies host_address_families();

// Reads `path`, parses and resolves it for `identity`, then replaces every remote and
// source address by its canonical numeric form (looked up once here, so admission
// compares literals and reconnects never block on name lookups; the configured text
// stays for messages). Error contexts name the file and the 1-based line
// ("/etc/hast.conf: line 3: ..."); config_exit_code() gives hastd's exit code.
Result<config::NodeConfig> load_node_config(const std::string& path,
                                            const config::NodeIdentity& identity);

// Only reads and parses `path`.
Result<config::Config> load_config(const std::string& path);

// EX_TEMPFAIL (75) for "No address to listen on." (Errc::unsupported), else EX_CONFIG (78).
int config_exit_code(const Error& error);

}  // namespace hast::real
