// UblkBlockDevice: `frontend ublk` as one BlockFrontend object for RealFrontends: the real
// driver (RealUblkKernel) and the server on it (UblkServer), owned together so the kernel
// layer outlives the server that uses it.
//
// Lifetime: open() from a fiber (it suspends for the control commands; START_DEV's
// partition scan is served meanwhile only if the core already pulls requests, so the
// caller starts the core's frontend loop first or accepts that open() waits for it);
// close() from a fiber before destruction, as for UblkServer.
#pragma once

#include <memory>
#include <string>

#include "core/io/frontend.h"
#include "core/io/log.h"
#include "real/ring.h"
#include "real/ublk/ublk_device.h"
#include "real/ublk/ublk_server.h"

namespace hast::real::ublk {

class UblkBlockDevice final : public BlockFrontend {
 public:
  // Opens the control device and starts /dev/ublkbN (options.pid 0 means this process).
  // Errors: those of RealUblkKernel::open (not_found without the driver) and of
  // UblkServer::start, wrapped with the resource's name.
  static Result<std::unique_ptr<UblkBlockDevice>> open(
      fiber::Scheduler& scheduler, Ring& ring, Log& log, UblkServerOptions options,
      std::string control_path = "/dev/ublk-control");

  // See UblkServer::close().
  void close() { server_->close(); }

  Result<BlockRequest> next_request() override { return server_->next_request(); }
  void complete(const BlockRequest& request, Result<void> result) override {
    server_->complete(request, std::move(result));
  }

  UblkServer& server() { return *server_; }

 private:
  UblkBlockDevice(std::unique_ptr<RealUblkKernel> kernel, std::unique_ptr<UblkServer> server)
      : kernel_(std::move(kernel)), server_(std::move(server)) {}

  // Declared first: destroyed after the server.
  std::unique_ptr<RealUblkKernel> kernel_;
  std::unique_ptr<UblkServer> server_;
};

}  // namespace hast::real::ublk
