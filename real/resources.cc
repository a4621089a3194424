#include "real/resources.h"

#include <fmt/format.h>

#include "core/nbd/server.h"

namespace hast::real {

Result<Disk*> PosixDiskProvider::open(const config::ResourceConfig& resource) {
  auto found = open_.find(resource.name);
  if (found != open_.end()) return static_cast<Disk*>(found->second.get());
  auto disk = PosixDisk::open(ring_, resource.local_path);
  if (!disk) return fail(disk.error());
  Disk* opened = disk->get();
  open_.emplace(resource.name, std::move(*disk));
  return opened;
}

void PosixDiskProvider::close(const config::ResourceConfig& resource) {
  open_.erase(resource.name);
}

const PosixDisk* PosixDiskProvider::find(std::string_view resource) const {
  auto found = open_.find(resource);
  return found == open_.end() ? nullptr : found->second.get();
}

Result<std::unique_ptr<BlockFrontend>> RealFrontends::open(const config::ResourceConfig& resource,
                                                           std::uint64_t data_size) {
  const config::FrontendConfig& frontend = resource.frontend;
  switch (frontend.kind) {
    case config::FrontendKind::none:
      return std::unique_ptr<BlockFrontend>();
    case config::FrontendKind::fuse:
    case config::FrontendKind::ublk:
      return fail(Errc::unsupported,
                  fmt::format("frontend {} of resource {} is not available in this version; use "
                              "`frontend nbd` or `frontend none`",
                              config::frontend_name(frontend.kind), resource.name));
    case config::FrontendKind::nbd:
      break;
  }
  HAST_ASSERT(frontend.nbd_address.has_value());
  const PosixDisk* disk = disks_.find(resource.name);
  HAST_ASSERT_MSG(disk != nullptr, "frontend opened before the provider of {}", resource.name);
  nbd::NbdServerOptions options;
  options.address = frontend.nbd_address->address;
  options.export_name = resource.name;
  options.export_size = data_size;
  options.block_size_min = std::max<std::uint32_t>(512, disk->properties().sector_size);
  if (options.address.is_tcp()) {
    log_warning(log_,
                "[{}] Serving NBD on TCP address {}: NBD has no authentication, anyone "
                "who can reach it can read and write the device.",
                resource.name, frontend.nbd_address->text);
  }
  auto server = std::make_unique<nbd::NbdServer>(scheduler_, network_, log_, std::move(options));
  auto started = server->start();
  if (!started) {
    return fail(started.error().wrap(
        fmt::format("cannot serve NBD for {} on {}", resource.name, frontend.nbd_address->text)));
  }
  log_info(log_, "[{}] Serving NBD on {}.", resource.name, server->address().to_string());
  return std::unique_ptr<BlockFrontend>(std::move(server));
}

void RealFrontends::close(BlockFrontend& frontend) {
  static_cast<nbd::NbdServer&>(frontend).close();
}

}  // namespace hast::real
