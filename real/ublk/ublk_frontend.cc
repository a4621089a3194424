// open_ublk_frontend (see ublk_frontend.h).
#include "real/ublk/ublk_frontend.h"

#include <fmt/format.h>

#include "real/ublk/ublk_block_device.h"

namespace hast::real::ublk {

std::string ublk_link(const config::ResourceConfig& resource) {
  if (resource.frontend.link) return *resource.frontend.link;
  return fmt::format("/dev/hast/{}", resource.name);
}

Result<std::unique_ptr<BlockFrontend>> open_ublk_frontend(
    fiber::Scheduler& scheduler, Ring& ring, Log& log, const config::ResourceConfig& resource,
    std::uint64_t data_size, std::uint32_t sector_size, const std::string& runtime_directory,
    const std::string& control_path) {
  HAST_ASSERT(resource.frontend.kind == config::FrontendKind::ublk);
  std::uint32_t sector = std::max<std::uint32_t>(512, sector_size);
  if (sector > 4096) {
    return fail(Errc::unsupported,
                fmt::format("cannot serve {} through ublk: provider sectors of {} bytes (at most "
                            "4096)",
                            resource.name, sector));
  }
  UblkDeviceOptions options;
  options.server.name = resource.name;
  options.server.size = data_size - data_size % sector;
  options.server.sector_size = sector;
  options.state_path = fmt::format("{}/{}.ublk", runtime_directory, resource.name);
  options.link = ublk_link(resource);
  auto device = UblkBlockDevice::open_real(scheduler, ring, log, std::move(options), control_path);
  if (!device) return fail(device.error());
  return std::unique_ptr<BlockFrontend>(std::move(*device));
}

bool close_ublk_frontend(BlockFrontend& frontend) {
  auto* device = dynamic_cast<UblkBlockDevice*>(&frontend);
  if (device == nullptr) return false;
  device->close();
  return true;
}

}  // namespace hast::real::ublk
