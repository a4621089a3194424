// ForwardingDisk: a Disk that passes every call to another one. Test disks that put a
// fault or a trap in front of a node's disk derive from it and override what they change
// (usually write()).
#pragma once

#include "core/io/disk.h"

namespace hast::test {

class ForwardingDisk : public Disk {
 public:
  explicit ForwardingDisk(Disk& inner) : inner_(inner) {}

  Result<void> read(std::uint64_t offset, std::span<std::byte> buffer) override {
    return inner_.read(offset, buffer);
  }
  Result<void> write(std::uint64_t offset, std::span<const std::byte> data, Fua fua) override {
    return inner_.write(offset, data, fua);
  }
  Result<void> flush() override { return inner_.flush(); }
  Result<void> discard(std::uint64_t offset, std::uint64_t length) override {
    return inner_.discard(offset, length);
  }
  std::uint64_t size() const override { return inner_.size(); }
  DiskProperties properties() const override { return inner_.properties(); }

 protected:
  Disk& inner_;
};

}  // namespace hast::test
