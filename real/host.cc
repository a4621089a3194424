#include "real/host.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "real/net.h"

namespace hast::real {
namespace {

std::string read_machine_id() {
  std::ifstream in("/etc/machine-id");
  std::string id;
  if (in) std::getline(in, id);
  return id;
}

bool family_supported(int family) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

Result<void> canonicalise(std::optional<config::ConfiguredAddress>& configured,
                          const std::string& path, const config::ResourceConfig& resource,
                          std::string_view what) {
  if (!configured || !configured->address.is_tcp()) return ok();
  auto canonical = canonical_address(configured->address);
  if (!canonical) {
    return fail(Errc::invalid_argument,
                fmt::format("{}: line {}: cannot resolve {} address {} of resource {}: {}", path,
                            resource.line, what, configured->text, resource.name,
                            canonical.error().message()));
  }
  configured->address = std::move(*canonical);
  return ok();
}

}  // namespace

config::NodeIdentity host_identity(const std::optional<std::string>& node_override) {
  config::NodeIdentity identity;
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) == 0) identity.hostname = name;
  identity.machine_id = read_machine_id();
  identity.hostid = static_cast<std::uint32_t>(::gethostid());
  identity.node_override = node_override;
  return identity;
}

config::AddressFamilies host_address_families() {
  return config::AddressFamilies{family_supported(AF_INET), family_supported(AF_INET6)};
}

Result<config::Config> load_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return fail(Errc::not_found, fmt::format("{}: cannot read: {}", path, std::strerror(errno)));
  }
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = config::parse(text.str());
  if (!parsed)
    return fail(parsed.error().code(), fmt::format("{}: {}", path, parsed.error().context()));
  return std::move(*parsed);
}

Result<config::NodeConfig> load_node_config(const std::string& path,
                                            const config::NodeIdentity& identity) {
  auto parsed = load_config(path);
  if (!parsed) return fail(parsed.error());
  auto resolved = config::resolve(*parsed, identity, host_address_families());
  if (!resolved) {
    return fail(resolved.error().code(), fmt::format("{}: {}", path, resolved.error().context()));
  }
  for (config::ResourceConfig& resource : resolved->resources) {
    HAST_TRY(canonicalise(resource.remote, path, resource, "remote"));
    HAST_TRY(canonicalise(resource.source, path, resource, "source"));
  }
  return std::move(*resolved);
}

int config_exit_code(const Error& error) {
  return error.code() == Errc::unsupported ? 75 : 78;
}

}  // namespace hast::real
