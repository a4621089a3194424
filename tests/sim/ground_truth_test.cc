// GroundTruth and the per-sector register oracle (O1): the stamp format, the admissibility
// rules on hand-made histories, and an end-to-end check of a node that serves random I/O
// straight from its SimDisk through kills and power losses — clean when the node flushes
// as it promises, caught by O1 when it acknowledges flushes it never made.
#include <vector>

#include <catch2/catch.hpp>

#include "sim/ground_truth.h"
#include "sim/node.h"
#include "sim/sim_disk.h"
#include "sim/world.h"
#include "tests/support/property.h"

using namespace std::chrono_literals;
using hast::Fua;
using hast::Instant;
using hast::sim::GroundTruth;
using hast::sim::SectorValue;

namespace {

Instant t(int ms) {
  return Instant{} + std::chrono::milliseconds(ms);
}

std::vector<std::byte> stamped(hast::sim::WriteId id, std::size_t sectors) {
  std::vector<std::byte> data(sectors * hast::sim::sector_bytes);
  hast::sim::stamp_sectors(id, data);
  return data;
}

std::vector<std::byte> zeroes(std::size_t sectors) {
  return std::vector<std::byte>(sectors * hast::sim::sector_bytes);
}

}  // namespace

TEST_CASE("GroundTruth: stamps decode to their write and sector; damage is garbage",
          "[sim][oracle]") {
  auto data = stamped(77, 3);
  auto value = hast::sim::decode_sector(std::span(data).subspan(512, 512));
  CHECK(value.kind == SectorValue::Kind::stamped);
  CHECK(value.id == 77);
  CHECK(value.index == 1);
  CHECK(hast::sim::decode_sector(zeroes(1)).kind == SectorValue::Kind::zero);
  data[700] ^= std::byte{1};
  CHECK(hast::sim::decode_sector(std::span(data).subspan(512, 512)).kind ==
        SectorValue::Kind::garbage);
}

TEST_CASE("GroundTruth: a read sees the last acknowledged write or a concurrent one",
          "[sim][oracle]") {
  GroundTruth truth;
  auto w1 = truth.begin_write(0, 1024, false, Fua::no, t(0));
  truth.end_write(w1, true, t(10));
  CHECK(truth.check_read(0, stamped(w1, 2), t(20), t(21)).empty());
  CHECK(truth.check_read(0, zeroes(2), t(20), t(21)).size() == 2);  // stale: w1 was acked
  CHECK(truth.check_read(0, zeroes(2), t(5), t(6)).empty());        // concurrent with w1

  auto w2 = truth.begin_write(512, 512, false, Fua::no, t(30));
  auto w2_data = stamped(w2, 1);
  CHECK(truth.check_read(512, w2_data, t(31), t(32)).empty());  // w2 in flight
  truth.end_write(w2, false, t(40));                            // w2 failed: maybe applied
  CHECK(truth.check_read(512, w2_data, t(50), t(51)).empty());
  auto w1_data = stamped(w1, 2);
  std::vector<std::byte> w1_second(w1_data.begin() + 512, w1_data.end());
  CHECK(truth.check_read(512, w1_second, t(50), t(51)).empty());  // a failed write excludes nothing
  // A sector of w1 read at the wrong place (a misdirected write) is not admissible.
  std::vector<std::byte> w1_first(w1_data.begin(), w1_data.begin() + 512);
  CHECK(truth.check_read(512, w1_first, t(50), t(51)).size() == 1);
  CHECK(truth.violations().size() == 3);
}

TEST_CASE("GroundTruth: a power loss may drop what was not flushed, never what was",
          "[sim][oracle]") {
  GroundTruth truth;
  auto w1 = truth.begin_write(0, 512, false, Fua::no, t(0));
  truth.end_write(w1, true, t(1));
  auto f = truth.begin_flush(t(2));
  truth.end_flush(f, true, t(3));
  auto w2 = truth.begin_write(0, 512, false, Fua::no, t(4));
  truth.end_write(w2, true, t(5));
  auto w3 = truth.begin_write(512, 512, false, Fua::yes, t(4));
  truth.end_write(w3, true, t(5));
  truth.power_loss(t(10));
  CHECK(truth.check_read(0, stamped(w1, 1), t(20), t(21)).empty());   // w2 may be lost
  CHECK(truth.check_read(0, zeroes(1), t(20), t(21)).size() == 1);    // but w1 was flushed
  CHECK(truth.check_read(512, zeroes(1), t(20), t(21)).size() == 1);  // w3 was FUA
}

namespace {

constexpr std::uint64_t kDiskBytes = 256 * 1024;

struct LocalRun {
  GroundTruth truth;
  bool honest_flush = true;
};

// A node that serves random client I/O straight from its disk, recording the ground truth
// the way the workload actor will for the replicated primary.
void serve_locally(hast::NodeIo& io, LocalRun& run, hast::sim::World& world) {
  std::vector<std::byte> buffer(8 * 512);
  while (true) {
    std::uint64_t sectors = hast::uniform(io.random, 1, 8);
    std::uint64_t offset = hast::uniform(io.random, 0, kDiskBytes / 512 - sectors) * 512;
    std::span<std::byte> span(buffer.data(), sectors * 512);
    auto choice = hast::uniform(io.random, 0, 9);
    if (choice < 4) {
      Instant issue = world.now();
      if (io.disk.read(offset, span)) run.truth.check_read(offset, span, issue, world.now());
    } else if (choice < 8) {
      Fua fua = choice == 7 ? Fua::yes : Fua::no;
      auto id = run.truth.begin_write(offset, span.size(), false, fua, world.now());
      hast::sim::stamp_sectors(id, span);
      auto written = io.disk.write(offset, span, fua);
      run.truth.end_write(id, written.has_value(), world.now());
    } else {
      auto flush = run.truth.begin_flush(world.now());
      auto flushed = run.honest_flush ? io.disk.flush() : hast::ok();
      run.truth.end_flush(flush, flushed.has_value(), world.now());
    }
    if (!io.scheduler.sleep_for(std::chrono::microseconds(hast::uniform(io.random, 0, 300)))) {
      return;
    }
  }
}

std::size_t run_local(std::uint64_t seed, bool honest_flush) {
  hast::sim::World world(seed);
  auto& disk = world.add_disk("d", hast::sim::SimDiskOptions{.size_bytes = kDiskBytes});
  auto& node = world.add_node(hast::sim::SimNodeOptions{.name = "n", .hosts = {"10.0.0.1"}});
  node.attach_disk(disk);
  LocalRun run;
  run.honest_flush = honest_flush;
  node.set_program([&](hast::NodeIo& io) { serve_locally(io, run, world); });
  node.start();
  auto& faults = world.stream("faults");
  for (int i = 0; i < 6; i++) {
    world.at(t(static_cast<int>(hast::uniform(faults, 100, 2900))), "fault", [&] {
      if (!node.running()) return node.start();
      bool power = hast::chance(faults, 0.5);
      power ? run.truth.power_loss(world.now()) : run.truth.cut_off_pending(world.now());
      power ? node.power_loss() : node.kill();
    });
  }
  world.run_for(3s);
  CHECK(run.truth.reads_checked() > 100);
  return run.truth.violations().size();
}

}  // namespace

TEST_CASE("GroundTruth: O1 holds for a node that keeps its promises through crashes",
          "[sim][oracle]") {
  hast::test::property(
      "local I/O through kills and power losses satisfies O1",
      [](std::uint32_t seed) { RC_ASSERT(run_local(seed, true) == 0u); }, 30);
}

TEST_CASE("GroundTruth: O1 catches a node that acknowledges flushes it never made",
          "[sim][oracle]") {
  int caught = 0;
  for (std::uint64_t seed = 1; seed <= 20; seed++)
    caught += run_local(seed, false) > 0 ? 1 : 0;
  CHECK(caught > 0);
}
