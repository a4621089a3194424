// Names of the configuration enums, node-name matching (reference/hast-spec.md §2.4) and
// lookups in a resolved NodeConfig.
#include "core/config/config.h"

#include <fmt/format.h>

namespace hast::config {
namespace {

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); i++) {
    char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    char y = b[i] >= 'A' && b[i] <= 'Z' ? static_cast<char>(b[i] - 'A' + 'a') : b[i];
    if (x != y) return false;
  }
  return true;
}

// The host name sections match: the override when there is one.
std::string_view effective_hostname(const NodeIdentity& identity) {
  return identity.node_override ? std::string_view(*identity.node_override)
                                : std::string_view(identity.hostname);
}

// The host name up to its first dot, or nullopt when it has no dot.
std::optional<std::string_view> short_hostname(std::string_view hostname) {
  std::size_t dot = hostname.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  return hostname.substr(0, dot);
}

std::string hostid_name(std::uint64_t hostid) {
  return fmt::format("hostid{}", hostid);
}

}  // namespace

std::string_view replication_name(ReplicationMode mode) {
  switch (mode) {
    case ReplicationMode::fullsync:
      return "fullsync";
    case ReplicationMode::memsync:
      return "memsync";
    case ReplicationMode::async:
      return "async";
  }
  HAST_UNREACHABLE();
}

std::string_view frontend_name(FrontendKind kind) {
  switch (kind) {
    case FrontendKind::nbd:
      return "nbd";
    case FrontendKind::fuse:
      return "fuse";
    case FrontendKind::ublk:
      return "ublk";
    case FrontendKind::none:
      return "none";
  }
  HAST_UNREACHABLE();
}

std::vector<std::string> acceptable_node_names(const NodeIdentity& identity) {
  std::string_view hostname = effective_hostname(identity);
  std::vector<std::string> names;
  if (auto short_name = short_hostname(hostname); short_name && !short_name->empty()) {
    names.emplace_back(*short_name);
  }
  if (!hostname.empty()) names.emplace_back(hostname);
  if (!identity.machine_id.empty()) names.push_back(identity.machine_id);
  names.push_back(hostid_name(identity.hostid));
  HAST_ASSERT(!names.empty());
  return names;
}

bool node_matches(std::string_view node, const NodeIdentity& identity) {
  // An empty name is never a section name (the lexer has no empty strings); an empty
  // host name or machine id therefore matches nothing.
  if (node.empty()) return false;
  std::string_view hostname = effective_hostname(identity);
  if (node == hostname) return true;
  if (auto short_name = short_hostname(hostname); short_name && node == *short_name) {
    return true;
  }
  if (equal_ignoring_case(node, identity.machine_id)) return true;
  return node == hostid_name(identity.hostid);
}

const ResourceConfig* NodeConfig::find(std::string_view name) const {
  for (const ResourceConfig& resource : resources) {
    if (resource.name == name) return &resource;
  }
  return nullptr;
}

}  // namespace hast::config
