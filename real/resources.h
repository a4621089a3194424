// What hastd plugs into HastNode for real resources: the providers (PosixDisk, opened
// when a role leaves init) and the frontends (NBD now; FUSE and ublk with issue 5).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "core/io/log.h"
#include "core/io/network.h"
#include "core/replication/node.h"
#include "real/posix_disk.h"
#include "real/ring.h"

namespace hast::real {

// Opens each resource's `local` path as a PosixDisk (exclusive lock: a second hastd or a
// running `hastctl create` makes the role change fail with the path named).
class PosixDiskProvider final : public replication::DiskProvider {
 public:
  explicit PosixDiskProvider(Ring& ring) : ring_(ring) {}
  Result<Disk*> open(const config::ResourceConfig& resource) override;
  void close(const config::ResourceConfig& resource) override;
  // The open disk of `resource`, or null.
  const PosixDisk* find(std::string_view resource) const;

 private:
  Ring& ring_;
  std::map<std::string, std::unique_ptr<PosixDisk>, std::less<>> open_;
};

// Frontends of a primary: `frontend nbd` serves the resource on its NBD address (a TCP
// address is served with a warning in the log: NBD has no authentication); `none` serves
// nothing. `fuse` and `ublk` are refused until they exist (the role change fails, naming
// the frontend), never silently replaced by another.
class RealFrontends final : public replication::FrontendFactory {
 public:
  RealFrontends(fiber::Scheduler& scheduler, Network& network, Log& log,
                const PosixDiskProvider& disks)
      : scheduler_(scheduler), network_(network), log_(log), disks_(disks) {}
  Result<std::unique_ptr<BlockFrontend>> open(const config::ResourceConfig& resource,
                                              std::uint64_t data_size) override;
  void close(BlockFrontend& frontend) override;

 private:
  fiber::Scheduler& scheduler_;
  Network& network_;
  Log& log_;
  const PosixDiskProvider& disks_;
};

}  // namespace hast::real
