// UblkBlockDevice (see ublk_block_device.h).
#include "real/ublk/ublk_block_device.h"

#include <unistd.h>

#include <utility>

#include <fmt/format.h>

namespace hast::real::ublk {

Result<std::unique_ptr<UblkBlockDevice>> UblkBlockDevice::open(fiber::Scheduler& scheduler,
                                                               Ring& ring, Log& log,
                                                               UblkServerOptions options,
                                                               std::string control_path) {
  std::string name = options.name;
  if (options.pid == 0) options.pid = ::getpid();
  auto kernel = RealUblkKernel::open(scheduler, ring, std::move(control_path));
  if (!kernel) {
    return fail(kernel.error().wrap(fmt::format("cannot serve {} through ublk", name)));
  }
  auto server = std::make_unique<UblkServer>(scheduler, **kernel, log, std::move(options));
  auto started = server->start();
  if (!started) {
    return fail(started.error().wrap(fmt::format("cannot serve {} through ublk", name)));
  }
  return std::unique_ptr<UblkBlockDevice>(
      new UblkBlockDevice(std::move(*kernel), std::move(server)));
}

}  // namespace hast::real::ublk
