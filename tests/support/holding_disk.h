// HoldingDisk: a node's disk with a trap. Once armed, the first write overlapping the
// trapped range waits until the test releases it (then goes to the disk) or the node dies
// (Errc::cancelled); every other operation passes through. HoldParts gives a node that
// disk and the test's queued frontends. For tests of a stuck disk write (a gray failure).
#pragma once

#include <cstdint>
#include <span>
#include <utility>

#include "core/fiber/event.h"
#include "core/io/disk.h"
#include "core/io/node_io.h"
#include "tests/support/forwarding_disk.h"
#include "tests/support/node_pair.h"
#include "tests/support/queued_frontend.h"

namespace hast::test {

class HoldingDisk final : public ForwardingDisk {
 public:
  // Traps writes overlapping [trap, trap + length) of the disk's offsets.
  HoldingDisk(Disk& inner, fiber::Scheduler& scheduler, std::uint64_t trap, std::uint64_t length)
      : ForwardingDisk(inner), release_(scheduler), trap_(trap), length_(length) {}

  Result<void> write(std::uint64_t offset, std::span<const std::byte> data, Fua fua) override {
    if (armed && !held && offset < trap_ + length_ && trap_ < offset + data.size()) {
      held = true;
      HAST_TRY(release_.wait());  // Errc::cancelled when the node dies
      auto written = inner_.write(offset, data, fua);
      landed = written.has_value();
      return written;
    }
    return inner_.write(offset, data, fua);
  }
  // Lets the held write go to the disk. Call from a fiber of the disk's node.
  void release() { release_.set(); }

  bool armed = false;
  bool held = false;    // the trapped write arrived and waits
  bool landed = false;  // it was released and written

 private:
  fiber::Event release_;
  std::uint64_t trap_;
  std::uint64_t length_;
};

// A node's disk (a HoldingDisk) and frontends (the test's queue of `capacity` requests,
// `on_complete` called for each answer).
class HoldParts final : public NodeParts {
 public:
  HoldParts(NodeIo& io, std::uint64_t trap, std::uint64_t length, std::size_t capacity,
            OnComplete on_complete, QueuedFrontend*& open)
      : disk_(io.disk, io.scheduler, trap, length),
        disks_(disk_),
        frontends_(io.scheduler, capacity, std::move(on_complete), open) {}
  replication::FrontendFactory& frontends() override { return frontends_; }
  replication::DiskProvider* disks() override { return &disks_; }
  HoldingDisk& disk() { return disk_; }

 private:
  HoldingDisk disk_;
  OneDiskProvider disks_;
  QueuedFrontends frontends_;
};

}  // namespace hast::test
