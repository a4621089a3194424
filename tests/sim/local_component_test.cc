// LocalComponent on a SimDisk: create and open, metadata and map durability across power
// loss, coalesced map writes, discards that read back as zeroes, the two copies of the
// metadata area.
#include <algorithm>
#include <vector>

#include <catch2/catch.hpp>

#include "core/fiber/task_group.h"
#include "core/replication/local_component.h"
#include "sim/node.h"
#include "sim/sim_disk.h"
#include "sim/world.h"
#include "tests/support/sim_fixtures.h"

using hast::NodeIo;
using hast::replication::CreateOptions;
using hast::replication::LocalComponent;

namespace {

constexpr std::uint64_t kDiskBytes = 8 << 20;

// One node on one disk (tests/support/sim_fixtures.h), world seed 11.
struct Bench : hast::test::NodeBench {
  explicit Bench(const hast::sim::SimDiskOptions& options) : NodeBench(11, options) {}
};

std::unique_ptr<LocalComponent> open(NodeIo& io, bool metaflush = true) {
  auto local = LocalComponent::open(io.disk, io.scheduler, "/dev/sim", "shared", metaflush);
  REQUIRE(local.has_value());
  return std::move(*local);
}

}  // namespace

TEST_CASE("LocalComponent: create, then open with HAST's checks", "[sim][local]") {
  Bench bench(hast::sim::SimDiskOptions{.size_bytes = kDiskBytes});
  bench.phase([](NodeIo& io) {
    auto created = hast::replication::create_local(io.disk, "shared",
                                                   CreateOptions{.extent_size_bytes = 1 << 20});
    REQUIRE(created.has_value());
    CHECK(created->resuid == 0);
    auto local = open(io);
    CHECK(local->data_size() == created->data_size_bytes);
    CHECK(local->metadata() == *created);
    auto other = LocalComponent::open(io.disk, io.scheduler, "/dev/sim", "tank", true);
    REQUIRE(!other);
    CHECK(other.error().context() == "Provider /dev/sim is not part of resource tank.");
    auto too_big = hast::replication::create_local(
        io.disk, "shared", CreateOptions{.media_size_bytes = kDiskBytes * 2});
    CHECK(!too_big);
  });
}

TEST_CASE("LocalComponent: metadata and map survive a power loss once persisted", "[sim][local]") {
  Bench bench(hast::sim::SimDiskOptions{.size_bytes = kDiskBytes});
  std::uint64_t dirty_offset = 3 << 20;
  bench.phase([&](NodeIo& io) {
    REQUIRE(hast::replication::create_local(io.disk, "shared", CreateOptions{}).has_value());
    auto local = open(io);
    auto updated = local->metadata();
    updated.resuid = 4242;
    updated.local_count = 7;
    REQUIRE(local->write_metadata(updated).has_value());
    REQUIRE(local->map().write_start(dirty_offset, 4096) == hast::meta::NeedsFlush::yes);
    REQUIRE(local->persist_map(local->map().generation()).has_value());
  });
  bench.power_loss();
  bench.phase([&](NodeIo& io) {
    auto local = open(io);
    CHECK(local->metadata().resuid == 4242);
    CHECK(local->metadata().local_count == 7);
    REQUIRE(local->load_map().has_value());
    CHECK(local->map().needs_sync(local->map().extent_of(dirty_offset)));
    CHECK(local->map().stats().sync_extents == 1);
  });
}

TEST_CASE("LocalComponent: concurrent map updates share durable writes", "[sim][local]") {
  Bench bench(hast::sim::SimDiskOptions{.size_bytes = kDiskBytes});
  std::uint64_t writes_before = 0;
  std::uint64_t writes_after = 0;
  bench.phase([&](NodeIo& io) {
    REQUIRE(hast::replication::create_local(io.disk, "shared",
                                            CreateOptions{.extent_size_bytes = 64 * 1024})
                .has_value());
    auto local = open(io);
    writes_before = bench.disk->stats().writes;
    hast::fiber::TaskGroup writers(io.scheduler);
    int persisted = 0;
    for (int i = 0; i < 16; i++) {
      REQUIRE(writers
                  .spawn("writer",
                         [&, i] {
                           std::uint64_t offset = std::uint64_t(i) * 64 * 1024;
                           REQUIRE(local->map().write_start(offset, 4096) ==
                                   hast::meta::NeedsFlush::yes);
                           REQUIRE(local->persist_map(local->map().generation()).has_value());
                           CHECK(local->map().durable_generation() >= 1);
                           persisted++;
                         })
                  .has_value());
    }
    REQUIRE(writers.join().has_value());
    CHECK(persisted == 16);
    writes_after = bench.disk->stats().writes;
  });
  // 16 writers, each with its own map change: far fewer than 16 image writes.
  CHECK(writes_after - writes_before < 16);
  CHECK(writes_after - writes_before >= 1);
}

TEST_CASE("LocalComponent: a discard reads back as zeroes on any device", "[sim][local]") {
  for (bool zeroes : {true, false}) {
    Bench bench(hast::sim::SimDiskOptions{.size_bytes = kDiskBytes, .discard_zeroes = zeroes});
    bench.phase([&](NodeIo& io) {
      REQUIRE(hast::replication::create_local(io.disk, "shared", CreateOptions{}).has_value());
      auto local = open(io);
      std::vector<std::byte> data(8192, std::byte{0x5a});
      REQUIRE(local->write(0, data, hast::Fua::no).has_value());
      REQUIRE(local->discard(0, 8192).has_value());
      std::vector<std::byte> back(8192, std::byte{1});
      REQUIRE(local->read(0, back).has_value());
      CHECK(std::all_of(back.begin(), back.end(), [](std::byte b) { return b == std::byte{0}; }));
    });
  }
}

TEST_CASE(
    "LocalComponent: the metadata area holds two copies of each generation on any sector "
    "size",
    "[sim][local]") {
  for (std::uint32_t sector : {512u, 2048u, 4096u}) {
    CAPTURE(sector);
    Bench bench(hast::sim::SimDiskOptions{.size_bytes = kDiskBytes, .sector_size = sector});
    bench.phase([&](NodeIo& io) {
      REQUIRE(hast::replication::create_local(io.disk, "shared", CreateOptions{}).has_value());
      auto local = open(io);
      CHECK(local->metadata_generation() == 1);  // create writes generation 1
      CHECK(local->opened_copy() == hast::meta::MetadataCopy::first);
      CHECK(local->opened_note().empty());
      auto updated = local->metadata();
      updated.local_count = 9;
      REQUIRE(local->write_metadata(updated).has_value());
      CHECK(local->metadata_generation() == 2);
    });
    // Durable (both writes FUA): the area is generation 2's, byte for byte.
    std::vector<std::byte> area(hast::meta::metadata_size);
    bench.disk->peek_stable(0, area);
    auto expected = hast::meta::decode_area(area);
    REQUIRE(expected.has_value());
    CHECK(expected->metadata.local_count == 9);
    auto encoded = hast::meta::encode_area(expected->metadata, 2);
    CHECK(std::equal(area.begin(), area.end(), encoded.begin(), encoded.end()));
  }
}

TEST_CASE("LocalComponent: with metaflush off a metadata write is still durable",
          "[sim][local]") {
  // metaflush off saves the activemap's flushes only: were metadata writes cached, a power
  // loss could drop or tear both copies of the area. Several seeds vary what the power
  // loss does with cached writes.
  for (std::uint64_t seed = 1; seed <= 8; ++seed) {
    CAPTURE(seed);
    hast::test::NodeBench bench(seed, hast::sim::SimDiskOptions{.size_bytes = kDiskBytes});
    bench.phase([](NodeIo& io) {
      REQUIRE(hast::replication::create_local(io.disk, "shared", CreateOptions{}).has_value());
      auto local = open(io, /*metaflush=*/false);
      auto updated = local->metadata();
      updated.local_count = 5;
      REQUIRE(local->write_metadata(updated).has_value());
    });
    bench.power_loss();
    std::vector<std::byte> area(hast::meta::metadata_size);
    bench.disk->peek_stable(0, area);
    auto stable = hast::meta::decode_area(area);
    REQUIRE(stable.has_value());
    CHECK(stable->metadata.local_count == 5);
    CHECK(stable->generation == 2);
  }
}
