// The resolver: a Config plus this host's identity gives the NodeConfig it runs with.
//
// Method: the sections that match this host are collected in file order; a setting
// comes from the last matching section that sets it (HAST overwrote as it parsed), then
// from the enclosing level, then from the default (reference/hast-spec.md §2.3):
//   control, pidfile   global node section -> global -> default
//   listen             union of global and matching global node sections -> default
//   replication, checksum, compression, timeout, exec, syncrate, busypoll
//                      resource -> global -> default
//   metaflush          resource node -> resource -> global -> on
//   name, local, frontend   resource node -> resource (-> resource name, -, fuse)
//   remote, source     resource node only
// The checks follow HAST's order: per resource a matching section, then remote, then
// local; after all resources an address to listen on.
#include <fmt/format.h>

#include "core/config/config.h"
#include "core/config/lexer.h"

namespace hast::config {
namespace {

// Where `frontend nbd` listens when the control socket is not a Unix socket, and where
// `frontend fuse` and `frontend ublk` put their link, when the file does not say.
constexpr std::string_view nbd_socket_directory = "/var/run/hast";
constexpr std::string_view link_directory = "/dev/hast";

using SectionList = std::vector<const Settings*>;

SectionList matching_sections(const std::vector<NodeSection>& nodes, const NodeIdentity& identity) {
  SectionList sections;
  for (const NodeSection& node : nodes) {
    if (node_matches(node.node, identity)) sections.push_back(&node.settings);
  }
  return sections;
}

// The value of `field` in the last of `sections` that sets it.
template <typename T>
std::optional<T> last_set(const SectionList& sections, std::optional<T> Settings::*field) {
  for (auto it = sections.rbegin(); it != sections.rend(); ++it) {
    HAST_ASSERT(*it != nullptr);
    if (((*it)->*field).has_value()) return (*it)->*field;
  }
  return std::nullopt;
}

// The first of `candidates` that is set, else `fallback`.
template <typename T>
T first_of(std::initializer_list<std::optional<T>> candidates, T fallback) {
  for (const std::optional<T>& candidate : candidates) {
    if (candidate.has_value()) return *candidate;
  }
  return fallback;
}

// A compiled-in default address; it always parses.
ConfiguredAddress default_address(std::string_view text) {
  auto address = parse_address(text, default_port);
  HAST_ASSERT(address.has_value());
  HAST_ASSERT(!text.empty());
  return ConfiguredAddress{std::string(text), std::move(*address)};
}

// Fills in the defaults of a frontend: nbd's socket and the link of fuse and ublk are per
// resource.
// The NBD socket goes next to the control socket, so that two nodes on one machine (each
// with its own control socket) get their own.
FrontendConfig complete_frontend(FrontendConfig frontend, std::string_view resource,
                                 std::string_view socket_directory) {
  HAST_ASSERT(!resource.empty());
  if (frontend.kind == FrontendKind::nbd && !frontend.nbd_address) {
    // Built directly, not parsed: a resource name may contain "://".
    Address address;
    address.kind = Address::Kind::unix_socket;
    address.path = fmt::format("{}/{}.nbd", socket_directory, resource);
    frontend.nbd_address = ConfiguredAddress{address.path, address};
  }
  bool linked = frontend.kind == FrontendKind::fuse || frontend.kind == FrontendKind::ublk;
  if (linked && !frontend.link) {
    frontend.link = fmt::format("{}/{}", link_directory, resource);
  }
  return frontend;
}

// "line N: <problem>" naming the resource's line; a Config built in code rather than
// parsed may have no lines (0), and then the message stands alone.
Unexpected resource_error(const ResourceSection& section, std::string_view problem) {
  if (section.line >= 1) return config_error(section.line, problem);
  return fail(Errc::invalid_argument, std::string(problem));
}

std::string join(const std::vector<std::string>& names) {
  std::string joined;
  for (const std::string& name : names) {
    if (!joined.empty()) joined += ", ";
    joined += name;
  }
  return joined;
}

// The node-level settings of a resource: name, local, remote, source, frontend.
Result<void> resolve_resource_node(const ResourceSection& section, const SectionList& nodes,
                                   ResourceConfig& resource) {
  const Settings& settings = section.settings;
  resource.provider_name = first_of<std::string>(
      {last_set(nodes, &Settings::provider_name), settings.provider_name}, section.name);
  auto local_path = first_of<std::string>(
      {last_set(nodes, &Settings::local_path), settings.local_path}, std::string());
  auto remote = last_set(nodes, &Settings::remote);
  if (!remote) {
    return resource_error(
        section, fmt::format("Remote address not configured for resource {}.", section.name));
  }
  if (local_path.empty()) {
    return resource_error(section, fmt::format("Path to local component not configured for "
                                               "resource {}.",
                                               section.name));
  }
  resource.local_path = std::move(local_path);
  resource.remote = std::move(remote->address);
  resource.source = last_set(nodes, &Settings::source);
  FrontendConfig frontend = first_of<FrontendConfig>(
      {last_set(nodes, &Settings::frontend), settings.frontend}, FrontendConfig{});
  resource.frontend = std::move(frontend);
  return ok();
}

Result<ResourceConfig> resolve_resource(const Settings& global, const ResourceSection& section,
                                        const NodeIdentity& identity) {
  HAST_ASSERT(!section.name.empty());
  SectionList nodes = matching_sections(section.nodes, identity);
  if (nodes.empty()) {
    return resource_error(section,
                          fmt::format("No resource {} configuration for this node (acceptable "
                                      "node names: {}).",
                                      section.name, join(acceptable_node_names(identity))));
  }
  const Settings& settings = section.settings;
  ResourceConfig resource;
  resource.name = section.name;
  resource.line = section.line;
  HAST_TRY(resolve_resource_node(section, nodes, resource));
  resource.replication = first_of({settings.replication, global.replication}, default_replication);
  resource.checksum = first_of({settings.checksum, global.checksum}, default_checksum);
  resource.compression = first_of({settings.compression, global.compression}, default_compression);
  resource.timeout_seconds =
      first_of({settings.timeout_seconds, global.timeout_seconds}, default_timeout_seconds);
  resource.exec_path = first_of({settings.exec_path, global.exec_path}, std::string());
  resource.metaflush =
      first_of({last_set(nodes, &Settings::metaflush), settings.metaflush, global.metaflush}, true);
  resource.syncrate_bytes_per_second = first_of(
      {settings.syncrate_bytes_per_second, global.syncrate_bytes_per_second}, std::uint64_t{0});
  resource.busypoll_us =
      first_of({settings.busypoll_us, global.busypoll_us}, default_busypoll_us);
  HAST_ASSERT(resource.timeout_seconds > 0);
  return resource;
}

// control, pidfile and listen; the default listen addresses only for supported families.
Result<void> resolve_daemon(const Config& config, const NodeIdentity& identity,
                            AddressFamilies families, NodeConfig& node) {
  SectionList sections = matching_sections(config.nodes, identity);
  node.control = first_of({last_set(sections, &Settings::control), config.global.control},
                          default_address(default_control));
  node.pidfile = first_of({last_set(sections, &Settings::pidfile), config.global.pidfile},
                          std::string(default_pidfile));
  node.listen = config.global.listen;
  for (const Settings* section : sections) {
    node.listen.insert(node.listen.end(), section->listen.begin(), section->listen.end());
  }
  if (node.listen.empty()) {
    if (families.ipv4) node.listen.push_back(default_address(default_listen_ipv4));
    if (families.ipv6) node.listen.push_back(default_address(default_listen_ipv6));
  }
  // hastd exits EX_TEMPFAIL here, not EX_CONFIG: a distinct error kind lets it.
  if (node.listen.empty()) return fail(Errc::unsupported, "No address to listen on.");
  return ok();
}

}  // namespace

Result<NodeConfig> resolve(const Config& config, const NodeIdentity& identity,
                           AddressFamilies families) {
  NodeConfig node;
  for (const ResourceSection& section : config.resources) {
    auto resource = resolve_resource(config.global, section, identity);
    if (!resource) return fail(resource.error());
    node.resources.push_back(std::move(*resource));
  }
  HAST_TRY(resolve_daemon(config, identity, families, node));
  HAST_ASSERT(!node.listen.empty());
  std::string_view directory = nbd_socket_directory;
  const Address& control = node.control.address;
  if (control.kind == Address::Kind::unix_socket) {
    auto slash = control.path.rfind('/');
    if (slash != std::string::npos) directory = std::string_view(control.path).substr(0, slash);
    if (slash == 0) directory = "/";
  }
  for (ResourceConfig& resource : node.resources) {
    resource.frontend = complete_frontend(std::move(resource.frontend), resource.name, directory);
  }
  return node;
}

}  // namespace hast::config
