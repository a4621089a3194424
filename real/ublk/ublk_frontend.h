// `frontend ublk [LINK]` for hastd (real/resources.h: RealFrontends): a resource's settings
// turned into a UblkBlockDevice on the real driver.
//
// The device: the resource's data size rounded down to whole provider sectors, logical
// blocks of the provider's sector size, one queue of 64 tags, 512 KiB requests, user
// recovery; the id persisted in <runtime directory>/<resource>.ublk; LINK as configured,
// /dev/hast/<resource> by default.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/config/config.h"
#include "core/io/frontend.h"
#include "core/io/log.h"
#include "real/ring.h"

namespace hast::real::ublk {

// Opens the ublk frontend of `resource` (suspends; START_DEV and the link follow in the
// background, see ublk_block_device.h). Errors name the resource; without the driver
// (no `control_path`) the message names the device node and the fix.
Result<std::unique_ptr<BlockFrontend>> open_ublk_frontend(
    fiber::Scheduler& scheduler, Ring& ring, Log& log, const config::ResourceConfig& resource,
    std::uint64_t data_size, std::uint32_t sector_size, const std::string& runtime_directory,
    const std::string& control_path = "/dev/ublk-control");

// Tears `frontend` down if open_ublk_frontend made it: true; false for another kind.
bool close_ublk_frontend(BlockFrontend& frontend);

// The link of `resource`: the configured one, or /dev/hast/<resource>.
std::string ublk_link(const config::ResourceConfig& resource);

}  // namespace hast::real::ublk
