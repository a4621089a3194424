// The stale-on-primary record (DESIGN.md §1.2 defect 3) is durable before the write it
// excuses is acknowledged. Regression for the O8 finding of
// scenarios/row09-primary-write-eio-memsync.scn (seeds 2 and 12): a metadata write that
// removed a stale extent failed but landed (the Disk contract allows it), memory still
// listed the extent, so a later failed local write in it found "already stale", wrote
// nothing and was acknowledged while the disk listed no stale extent for it.
#include <memory>

#include <catch2/catch.hpp>

#include "core/fiber/event.h"
#include "core/fiber/task_group.h"
#include "core/meta/metadata.h"
#include "core/replication/local_component.h"
#include "sim/node.h"
#include "sim/sim_disk.h"
#include "sim/world.h"
#include "tests/support/forwarding_disk.h"
#include "tests/support/sim_fixtures.h"

using hast::NodeIo;
using hast::meta::ExtentIndex;
using hast::meta::Metadata;
using hast::replication::CreateOptions;
using hast::replication::LocalComponent;

namespace {

constexpr std::uint64_t kDiskBytes = 8 << 20;
constexpr ExtentIndex kExtent{2};

// A disk in front of the node's SimDisk whose metadata writes (offset 0) can be held at a
// gate, or made to land whole and then report EIO, as a failing device may.
class MetadataFaultDisk final : public hast::test::ForwardingDisk {
 public:
  explicit MetadataFaultDisk(hast::Disk& inner) : ForwardingDisk(inner) {}

  bool land_then_fail_next = false;         // the next metadata write lands, then EIO
  hast::fiber::Event* gate = nullptr;       // when set, metadata writes wait for it
  bool held = false;                        // a metadata write is waiting at the gate

  hast::Result<void> write(std::uint64_t offset, std::span<const std::byte> data,
                           hast::Fua fua) override {
    if (offset < hast::meta::metadata_size && gate != nullptr) {  // either copy's write
      held = true;
      auto opened = gate->wait();
      held = false;
      if (!opened) return opened;
    }
    auto written = inner_.write(offset, data, fua);
    if (!written || offset != 0 || !land_then_fail_next) return written;
    land_then_fail_next = false;
    return hast::fail(hast::Errc::io, "injected: the metadata write landed, then EIO");
  }

};

// One node on one SimDisk of kDiskBytes (tests/support/sim_fixtures.h), world seed 5.
struct Bench : hast::test::NodeBench {
  Bench() : NodeBench(5, hast::sim::SimDiskOptions{.size_bytes = kDiskBytes}) {}
};

// `hastctl create` of resource shared with 1 MiB extents.
void create(hast::Disk& disk) {
  REQUIRE(hast::replication::create_local(disk, "shared",
                                          CreateOptions{.extent_size_bytes = 1 << 20})
              .has_value());
}

std::unique_ptr<LocalComponent> open(hast::Disk& disk, NodeIo& io) {
  auto local = LocalComponent::open(disk, io.scheduler, "/dev/sim", "shared", true);
  REQUIRE(local.has_value());
  return std::move(*local);
}

// The stale list as the disk holds it (what a restart, and the judge, see).
bool stale_on_disk(hast::Disk& disk) {
  auto metadata = hast::replication::read_metadata(disk, "/dev/sim", "shared");
  REQUIRE(metadata.has_value());
  return hast::meta::is_stale(*metadata, kExtent);
}

// What Primary::mark_stale asks of the metadata: add the extent, write only on a change.
hast::Result<void> mark(LocalComponent& local) {
  return local.update_metadata([](Metadata& marked) {
    return hast::meta::add_stale(marked, kExtent) == hast::meta::StaleAdd::added;
  });
}

hast::Result<void> unmark(LocalComponent& local) {
  return local.update_metadata(
      [](Metadata& updated) { return hast::meta::remove_stale(updated, kExtent); });
}

bool stale_block(const Metadata& block) {
  return hast::meta::is_stale(block, kExtent);
}

}  // namespace

TEST_CASE("Stale record: a stale mark memory already holds is written again after a metadata "
          "write failed and may have landed",
          "[sim][local][stale]") {
  Bench bench;
  bench.phase([&](NodeIo& io) {
    create(io.disk);
    MetadataFaultDisk disk(io.disk);
    auto local = open(disk, io);
    REQUIRE(mark(*local).has_value());
    CHECK(stale_on_disk(io.disk));
    CHECK(local->metadata_settled());

    // A resync repaired the extent; removing it from the list fails, after landing.
    disk.land_then_fail_next = true;
    REQUIRE(!unmark(*local));
    CHECK(hast::meta::is_stale(local->metadata(), kExtent));  // memory: the old block
    CHECK(!stale_on_disk(io.disk));                           // disk: the new one
    CHECK(!local->metadata_settled());
    CHECK(local->unsettled_block_matches([](const Metadata& b) { return !stale_block(b); }));

    // A local write in the extent fails again: the mark must reach the disk before the
    // write may be acknowledged, although memory already lists the extent.
    REQUIRE(mark(*local).has_value());
    CHECK(stale_on_disk(io.disk));
    CHECK(local->metadata_settled());
    CHECK(!local->unsettled_block_matches([](const Metadata&) { return true; }));
  });
  bench.power_loss();
  bench.phase([&](NodeIo& io) {
    auto local = open(io.disk, io);
    CHECK(hast::meta::is_stale(local->metadata(), kExtent));
  });
}

TEST_CASE("Stale record: a failed metadata write is written again by the next update, "
          "whatever it changes",
          "[sim][local][stale]") {
  Bench bench;
  bench.phase([&](NodeIo& io) {
    create(io.disk);
    MetadataFaultDisk disk(io.disk);
    auto local = open(disk, io);
    // Adding fails after landing: memory does not list the extent, the disk does.
    disk.land_then_fail_next = true;
    REQUIRE(!mark(*local));
    CHECK(!hast::meta::is_stale(local->metadata(), kExtent));
    CHECK(stale_on_disk(io.disk));
    CHECK(local->unsettled_block_matches(stale_block));
    // A no-op update (unmark finds nothing) settles the disk on metadata().
    REQUIRE(unmark(*local).has_value());
    CHECK(!stale_on_disk(io.disk));
    CHECK(local->metadata_settled());
    // settle_metadata: nothing to do when settled; a rewrite after a failure.
    REQUIRE(local->settle_metadata().has_value());
    disk.land_then_fail_next = true;
    REQUIRE(!mark(*local));
    REQUIRE(local->settle_metadata().has_value());
    CHECK(!stale_on_disk(io.disk));
    CHECK(local->metadata_settled());
  });
}

TEST_CASE("Stale record: a stale mark being written is visible to other fibers, and settling "
          "waits for it",
          "[sim][local][stale]") {
  Bench bench;
  bench.phase([&](NodeIo& io) {
    create(io.disk);
    MetadataFaultDisk disk(io.disk);
    auto local = open(disk, io);
    hast::fiber::Event gate(io.scheduler);
    disk.gate = &gate;
    hast::fiber::TaskGroup fibers(io.scheduler);
    bool marked = false;
    REQUIRE(fibers.spawn("mark", [&] { marked = mark(*local).has_value(); }).has_value());
    while (!disk.held) io.scheduler.yield();
    // In flight: memory does not list the extent yet, the block on its way does.
    CHECK(!hast::meta::is_stale(local->metadata(), kExtent));
    CHECK(!local->metadata_settled());
    CHECK(local->unsettled_block_matches(stale_block));
    bool settled = false;
    REQUIRE(fibers.spawn("settle", [&] { settled = local->settle_metadata().has_value(); })
                .has_value());
    io.scheduler.yield();
    CHECK(!settled);  // waits for the write in flight
    gate.set();
    REQUIRE(fibers.join().has_value());
    CHECK(marked);
    CHECK(settled);
    CHECK(hast::meta::is_stale(local->metadata(), kExtent));
    CHECK(stale_on_disk(io.disk));
    CHECK(local->metadata_settled());
  });
}
