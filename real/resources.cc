#include "real/resources.h"

#include <fmt/format.h>

#include "core/nbd/server.h"
#include "real/fuse/fuse_device.h"
#include "real/ublk/ublk_frontend.h"

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

std::string runtime_directory(const config::ConfiguredAddress& control) {
  const Address& address = control.address;
  if (address.kind != Address::Kind::unix_socket) return std::string(default_runtime_directory);
  auto slash = address.path.rfind('/');
  if (slash == std::string::npos) return std::string(default_runtime_directory);
  if (slash == 0) return "/";
  return address.path.substr(0, slash);
}

Result<std::unique_ptr<BlockFrontend>> RealFrontends::open(const config::ResourceConfig& resource,
                                                           std::uint64_t data_size) {
  switch (resource.frontend.kind) {
    case config::FrontendKind::none:
      return std::unique_ptr<BlockFrontend>();
    case config::FrontendKind::nbd:
      return open_nbd(resource, data_size);
    case config::FrontendKind::fuse:
      return open_fuse(resource, data_size);
    case config::FrontendKind::ublk: {
      // Offered only when configured (fuse stays the default): real/ublk/ublk_frontend.h.
      const PosixDisk* disk = disks_.find(resource.name);
      HAST_ASSERT_MSG(disk != nullptr, "frontend opened before the provider of {}", resource.name);
      return ublk::open_ublk_frontend(scheduler_, disks_.ring(), log_, resource, data_size,
                                      disk->properties().sector_size, runtime_directory_);
    }
  }
  HAST_UNREACHABLE();
}

Result<std::unique_ptr<BlockFrontend>> RealFrontends::open_nbd(
    const config::ResourceConfig& resource, std::uint64_t data_size) {
  const config::FrontendConfig& frontend = resource.frontend;
  HAST_ASSERT(frontend.nbd_address.has_value());
  const PosixDisk* disk = disks_.find(resource.name);
  HAST_ASSERT_MSG(disk != nullptr, "frontend opened before the provider of {}", resource.name);
  nbd::NbdServerOptions options;
  options.address = frontend.nbd_address->address;
  options.export_name = resource.name;
  options.export_size = data_size;
  options.block_size_min = std::max<std::uint32_t>(512, disk->properties().sector_size);
  // Parts up to the largest request we accept: the link splits a longer one for a peer
  // that takes less (a FreeBSD peer, 128 KiB). A 1 MiB client write is then one local
  // write and one replication message instead of eight.
  options.part_bytes_max = proto::request_size_accept_max;
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

Result<std::unique_ptr<BlockFrontend>> RealFrontends::open_fuse(
    const config::ResourceConfig& resource, std::uint64_t data_size) {
  const config::FrontendConfig& frontend = resource.frontend;
  HAST_ASSERT(frontend.link.has_value());
  const PosixDisk* disk = disks_.find(resource.name);
  HAST_ASSERT_MSG(disk != nullptr, "frontend opened before the provider of {}", resource.name);
  fuse::FuseDeviceOptions options;
  options.name = resource.name;
  options.mount_point = fmt::format("{}/{}.fuse", runtime_directory_, resource.name);
  options.link = *frontend.link;
  options.size = data_size;
  options.sector_size = disk->properties().sector_size;
  auto device =
      std::make_unique<fuse::FuseBlockDevice>(scheduler_, disks_.ring(), log_, std::move(options));
  auto opened = device->open();
  if (!opened) {
    return fail(opened.error().wrap(
        fmt::format("cannot serve {} through FUSE at {}", resource.name, *frontend.link)));
  }
  return std::unique_ptr<BlockFrontend>(std::move(device));
}

void RealFrontends::close(BlockFrontend& frontend) {
  if (auto* fuse = dynamic_cast<fuse::FuseBlockDevice*>(&frontend)) {
    fuse->close();
    return;
  }
  if (ublk::close_ublk_frontend(frontend)) return;
  static_cast<nbd::NbdServer&>(frontend).close();
}

}  // namespace hast::real
