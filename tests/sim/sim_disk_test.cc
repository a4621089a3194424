// SimDisk: the pristine layer against a per-sector model of the Disk contract, crash-state
// enumeration, each fault overlay on its own, and determinism.
//
// Method: every sector written by a test holds a recognisable pattern naming a unique tag
// (tag 0 is an all-zero sector), so an image can be decoded into one tag per sector and a
// torn sector shows up as undecodable. SectorModel keeps, per sector, the last durable tag
// and the tags written since; the crash rule says a crash image holds, in every sector,
// one of those. Each property also shows it can fail: the model rejects a planted bad
// image, and the wrong model "unflushed writes survive a power loss" is refuted.
#include <algorithm>
#include <cstring>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <rapidcheck.h>
#include <catch2/catch.hpp>

#include "core/prng.h"
#include "sim/ground_truth.h"
#include "sim/node.h"
#include "sim/sim_disk.h"
#include "sim/world.h"
#include "tests/support/property.h"

using namespace std::chrono_literals;
using hast::Errc;
using hast::Fua;
using hast::Instant;
using hast::NodeIo;
using hast::sim::CrashState;
using hast::sim::SimDisk;
using hast::sim::SimDiskFaultKind;
using hast::sim::SimDiskFaults;
using hast::sim::SimDiskOptions;
using hast::sim::SimNode;
using hast::sim::SimNodeOptions;
using hast::sim::World;

namespace {

using Bytes = std::vector<std::byte>;

// The bytes of one sector carrying `tag`; tag 0 is all zeroes. An odd tag gives the
// workload's stamped data (each 512-byte unit stamp_sector(tag, unit)), which the disk
// keeps compact, an even one a pattern it keeps whole: consecutive sectors alternate, so
// every test here runs both kinds of storage, side by side in the same writes.
Bytes sector_bytes(std::uint64_t tag, std::uint32_t sector_size) {
  Bytes bytes(sector_size, std::byte{0});
  if (tag == 0) return bytes;
  if (tag % 2 == 1) {
    for (std::uint32_t unit = 0; unit < sector_size / 512; unit++)
      hast::sim::stamp_sector(tag, unit, std::span(bytes).subspan(unit * 512, 512));
    return bytes;
  }
  std::memcpy(bytes.data(), &tag, sizeof tag);
  for (std::size_t i = sizeof tag; i < bytes.size(); i++) {
    bytes[i] = static_cast<std::byte>((tag * 131 + i * 7) & 0xff);
  }
  return bytes;
}

// `count` consecutive sectors tagged first_tag, first_tag + 1, ...
Bytes run_bytes(std::uint64_t first_tag, std::size_t count, std::uint32_t sector_size) {
  Bytes bytes;
  for (std::size_t i = 0; i < count; i++) {
    Bytes one = sector_bytes(first_tag + i, sector_size);
    bytes.insert(bytes.end(), one.begin(), one.end());
  }
  return bytes;
}

// The tag of a sector, or nullopt when it holds no valid pattern (torn or garbage).
std::optional<std::uint64_t> decode(std::span<const std::byte> sector) {
  std::uint64_t tag = 0;
  std::memcpy(&tag, sector.data(), sizeof tag);
  if (std::memcmp(sector.data(), &hast::sim::stamp_magic, 4) == 0) {
    std::memcpy(&tag, sector.data() + 4, sizeof tag);  // a stamp: magic, then the write
  }
  Bytes expected = sector_bytes(tag, static_cast<std::uint32_t>(sector.size()));
  if (!std::equal(sector.begin(), sector.end(), expected.begin())) return std::nullopt;
  return tag;
}

// The Disk contract per sector: last durable tag, tags written since, current tag.
class SectorModel {
 public:
  explicit SectorModel(std::size_t sectors)
      : durable_(sectors, 0), since_(sectors), current_(sectors, 0) {}

  void write(std::size_t first, std::size_t count, std::uint64_t first_tag, bool durable_now) {
    for (std::size_t i = 0; i < count; i++) {
      const std::uint64_t tag = first_tag + i;
      current_[first + i] = tag;
      if (durable_now) {
        durable_[first + i] = tag;
        since_[first + i].clear();  // earlier unflushed writes may not land over it
      } else {
        since_[first + i].insert(tag);
      }
    }
  }
  void flush() {
    durable_ = current_;
    for (auto& tags : since_)
      tags.clear();
  }
  std::uint64_t current(std::size_t sector) const { return current_[sector]; }
  std::size_t sectors() const { return current_.size(); }

  // The first sector of a crash image breaking the crash rule, described.
  std::optional<std::string> check_crash(const Bytes& image, std::uint32_t sector_size) const {
    for (std::size_t s = 0; s < sectors(); s++) {
      auto tag = decode(std::span(image).subspan(s * sector_size, sector_size));
      if (!tag) return fmt::format("sector {} is torn or garbage", s);
      if (*tag != durable_[s] && !since_[s].contains(*tag)) {
        return fmt::format("sector {} holds tag {}: durable {}, {} written since", s, *tag,
                           durable_[s], since_[s].size());
      }
    }
    return std::nullopt;
  }
  // The first sector of an image that differs from the current view.
  std::optional<std::string> check_current(const Bytes& image, std::uint32_t sector_size) const {
    for (std::size_t s = 0; s < sectors(); s++) {
      auto tag = decode(std::span(image).subspan(s * sector_size, sector_size));
      if (!tag || *tag != current_[s]) {
        return fmt::format("sector {} holds {} instead of the current {}", s, tag.value_or(~0ULL),
                           current_[s]);
      }
    }
    return std::nullopt;
  }

 private:
  std::vector<std::uint64_t> durable_;
  std::vector<std::set<std::uint64_t>> since_;
  std::vector<std::uint64_t> current_;
};

SimDiskOptions small_disk(std::uint64_t sectors, std::uint32_t sector_size = 512) {
  SimDiskOptions options;
  options.size_bytes = sectors * sector_size;
  options.sector_size = sector_size;
  return options;
}

// A world with disk "a" attached to a running node "n1" whose program does nothing; run()
// executes a body in a fresh fiber of the node and steps the world until it returns.
struct Rig {
  Rig(std::uint64_t seed, const SimDiskOptions& options)
      : world(seed),
        disk(world.add_disk("a", options)),
        node(world.add_node(SimNodeOptions{.name = "n1", .hosts = {"10.0.0.1"}})) {
    node.attach_disk(disk);
    node.set_program([](NodeIo&) {});
    node.start();
  }

  bool run(const std::function<void(NodeIo&)>& body) {
    if (!node.running()) node.start();
    bool done = false;
    NodeIo& io = node.io();
    auto spawned = node.scheduler().spawn("test", [&] {
      body(io);
      done = true;
    });
    REQUIRE(spawned.has_value());
    return world.run_until([&] { return done; }, world.now() + 60s);
  }

  Bytes current() const {
    return image([&](auto off, auto out) { disk.peek_current(off, out); });
  }
  Bytes stable() const {
    return image([&](auto off, auto out) { disk.peek_stable(off, out); });
  }
  Bytes image(const std::function<void(std::uint64_t, std::span<std::byte>)>& read) const {
    Bytes bytes(disk.size());
    read(0, bytes);
    return bytes;
  }

  World world;
  SimDisk& disk;
  SimNode& node;
};

// One generated disk operation: kind 0-5 write, 6-7 FUA write, 8-9 flush.
struct Op {
  int kind;
  int sector;
  int count;
};

rc::Gen<std::vector<Op>> gen_ops(int sectors) {
  auto op = rc::gen::map(
      rc::gen::tuple(rc::gen::inRange(0, 10), rc::gen::inRange(0, sectors), rc::gen::inRange(1, 5)),
      [sectors](const std::tuple<int, int, int>& t) {
        auto [kind, sector, count] = t;
        return Op{kind, sector, std::min(count, sectors - sector)};
      });
  return rc::gen::container<std::vector<Op>>(op);
}

// Runs `ops` on the node, updating `model`; returns the read-after-write mismatches.
int apply_ops(Rig& rig, SectorModel& model, const std::vector<Op>& ops, bool durable_writes) {
  const std::uint32_t sector_size = rig.disk.options().sector_size;
  int mismatches = 0;
  int failures = 0;
  const bool finished = rig.run([&](NodeIo& io) {
    std::uint64_t next_tag = 1000;
    for (const Op& op : ops) {
      if (op.kind >= 8) {
        failures += !io.disk.flush().has_value();
        model.flush();
        continue;
      }
      const Fua fua = op.kind >= 6 ? Fua::yes : Fua::no;
      const Bytes data = run_bytes(next_tag, op.count, sector_size);
      failures += !io.disk.write(op.sector * sector_size, data, fua).has_value();
      model.write(op.sector, op.count, next_tag, durable_writes || fua == Fua::yes);
      Bytes back(data.size());
      failures += !io.disk.read(op.sector * sector_size, back).has_value();
      mismatches += back != data;
      next_tag += 100;
    }
  });
  REQUIRE(finished);
  REQUIRE(failures == 0);
  return mismatches;
}

}  // namespace

TEST_CASE("SimDisk: the model rejects a planted bad image (the checks can fail)", "[sim]") {
  SectorModel model(4);
  model.write(0, 2, 10, false);
  model.flush();
  model.write(1, 2, 20, false);
  Bytes good = run_bytes(10, 1, 512);
  for (std::uint64_t tag : {20, 21, 0}) {
    Bytes one = sector_bytes(tag, 512);
    good.insert(good.end(), one.begin(), one.end());
  }
  CHECK_FALSE(model.check_crash(good, 512).has_value());
  Bytes never_written = good;
  std::memcpy(never_written.data() + 512 * 3, run_bytes(99, 1, 512).data(), 512);
  CHECK(model.check_crash(never_written, 512).has_value());
  Bytes torn = good;
  torn[512 + 100] = std::byte{0xff};
  CHECK(model.check_crash(torn, 512).has_value());
  Bytes reverted = good;  // sector 0 back to zeroes after it was flushed
  std::fill(reverted.begin(), reverted.begin() + 512, std::byte{0});
  CHECK(model.check_crash(reverted, 512).has_value());
}

TEST_CASE("SimDisk: pristine layer obeys the crash rule under kill and power loss", "[sim]") {
  hast::test::property(
      "sim disk pristine layer crash rule",
      [](std::uint32_t seed) {
        const bool big_sectors = *rc::gen::arbitrary<bool>();
        const bool volatile_cache = *rc::gen::inRange(0, 4) != 0;
        const int ending = *rc::gen::inRange(0, 3);  // 0 nothing, 1 kill, 2 power loss
        const int sectors = 24;
        const auto ops = *gen_ops(sectors);
        SimDiskOptions options = small_disk(sectors, big_sectors ? 4096 : 512);
        options.volatile_cache = volatile_cache;
        Rig rig(seed, options);
        SectorModel model(sectors);
        RC_ASSERT(apply_ops(rig, model, ops, !volatile_cache) == 0);
        const std::uint32_t sector_size = options.sector_size;
        if (auto wrong = model.check_current(rig.current(), sector_size)) RC_FAIL(*wrong);
        if (!volatile_cache) RC_ASSERT(rig.disk.pending_write_count() == 0u);
        if (ending == 1) rig.node.kill();
        if (ending == 2) rig.node.power_loss();
        if (ending == 2) {
          RC_ASSERT(rig.disk.pending_write_count() == 0u);
          if (auto wrong = model.check_crash(rig.current(), sector_size)) RC_FAIL(*wrong);
        } else {
          // A kill loses nothing the disk acknowledged.
          if (auto wrong = model.check_current(rig.current(), sector_size)) RC_FAIL(*wrong);
        }
        if (auto wrong = model.check_crash(rig.stable(), sector_size)) RC_FAIL(*wrong);
      },
      60);
}

TEST_CASE("SimDisk: a kill applies or drops each write in flight, never an acked one", "[sim]") {
  std::uint64_t dropped = 0;
  std::uint64_t applied = 0;
  hast::test::property(
      "sim disk kill with writes in flight",
      [&](std::uint32_t seed) {
        const int kill_after_us = *rc::gen::inRange(50, 3000);
        SimDiskOptions options = small_disk(16);
        options.faults.latency_min = 20us;
        options.faults.latency_mean = 200us;
        Rig rig(seed, options);
        std::vector<std::uint64_t> acked(8, 0);
        std::vector<std::uint64_t> submitted(8, 0);
        for (std::size_t s = 0; s < acked.size(); s++) {
          auto spawned = rig.node.scheduler().spawn("writer", [&, s] {
            NodeIo& io = rig.node.io();
            for (std::uint64_t i = 1;; i++) {
              const std::uint64_t tag = (s + 1) * 100000 + i;
              submitted[s] = tag;
              if (!io.disk.write(s * 512, sector_bytes(tag, 512), Fua::no)) return;
              acked[s] = tag;
            }
          });
          RC_ASSERT(spawned.has_value());
        }
        rig.world.run_for(std::chrono::microseconds(kill_after_us));
        rig.node.kill();
        const Bytes image = rig.current();
        for (std::size_t s = 0; s < acked.size(); s++) {
          auto tag = decode(std::span(image).subspan(s * 512, 512));
          RC_ASSERT(tag.has_value());
          RC_ASSERT(*tag >= acked[s]);
          RC_ASSERT((*tag == acked[s] || *tag == submitted[s]));
        }
        RC_ASSERT(rig.disk.in_flight_count() == 0u);
        dropped += rig.disk.fault_count(SimDiskFaultKind::in_flight_dropped);
        applied += rig.disk.stats().in_flight_applied;
      },
      60);
  // Both fates happen: a model where in-flight writes always land (or never do) is wrong.
  CHECK(dropped > 0);
  CHECK(applied > 0);
}

// What became of an 8-sector write (old tags 1..8, new tags 101..108) in flight when its
// node died; each sector was checked to hold its old or its new tag.
struct InFlightFates {
  int dropped = 0;  // every sector old
  int whole = 0;    // every sector new
  int torn = 0;     // some old, some new
};

// One run: the old tags made durable, then the new ones written with `fua` and the node
// killed (or its power cut) halfway through the write's 100 us latency.
void die_mid_write(std::uint64_t seed, Fua fua, bool volatile_cache, bool power_loss,
                   InFlightFates& fates) {
  SimDiskOptions options = small_disk(16);
  options.volatile_cache = volatile_cache;
  options.faults.latency_min = 100us;
  options.faults.latency_mean = 0us;
  Rig rig(seed, options);
  REQUIRE(rig.run([](NodeIo& io) { REQUIRE(io.disk.write(0, run_bytes(1, 8, 512), Fua::yes)); }));
  const Bytes fresh = run_bytes(101, 8, 512);
  auto spawned = rig.node.scheduler().spawn(
      "writer", [&] { (void)rig.node.io().disk.write(0, fresh, fua); });
  REQUIRE(spawned.has_value());
  rig.world.run_for(50us);
  REQUIRE(rig.disk.in_flight_count() == 1u);
  if (power_loss) {
    rig.node.power_loss();
  } else {
    rig.node.kill();
  }
  REQUIRE(rig.disk.in_flight_count() == 0u);
  const Bytes image = rig.current();
  int fresh_sectors = 0;
  for (std::uint64_t s = 0; s < 8; s++) {
    auto tag = decode(std::span(image).subspan(s * 512, 512));
    INFO("seed " << seed << " sector " << s);
    REQUIRE((tag == s + 1 || tag == s + 101));  // sector atomicity: old or new, never torn
    fresh_sectors += tag == s + 101;
  }
  if (power_loss) REQUIRE(image == rig.stable());  // nothing volatile is left
  const std::uint64_t torn_logged = rig.disk.stats().in_flight_torn;
  if (fresh_sectors == 0) {
    fates.dropped++;
  } else if (fresh_sectors == 8) {
    fates.whole++;
  } else {
    fates.torn++;
    CHECK(torn_logged == 1u);
    CHECK(rig.disk.fault_count(SimDiskFaultKind::power_loss_torn) == 1u);
  }
  if (fresh_sectors == 0 || fresh_sectors == 8) CHECK(torn_logged == 0u);
}

TEST_CASE("SimDisk: a power loss tears a write in flight, FUA or not; a kill does not",
          "[sim]") {
  struct Case {
    Fua fua;
    bool volatile_cache;
    const char* name;
  };
  // Without a volatile cache a plain write is as durable as a FUA write, so only the
  // power cut itself can tear it (a cached write can also be torn by the cache's loss).
  const Case cases[] = {{Fua::no, true, "cached write"},
                        {Fua::yes, true, "FUA write"},
                        {Fua::no, false, "write, no volatile cache"}};
  for (const Case& c : cases) {
    INFO(c.name);
    InFlightFates cut;
    InFlightFates killed;
    for (std::uint64_t seed = 1; seed <= 60; seed++) {
      die_mid_write(seed, c.fua, c.volatile_cache, /*power_loss=*/true, cut);
      die_mid_write(seed, c.fua, c.volatile_cache, /*power_loss=*/false, killed);
    }
    INFO("power loss: dropped " << cut.dropped << ", whole " << cut.whole << ", torn "
                                << cut.torn);
    INFO("kill: dropped " << killed.dropped << ", whole " << killed.whole << ", torn "
                          << killed.torn);
    CHECK(cut.torn > 0);
    CHECK(cut.whole > 0);
    CHECK(cut.dropped > 0);
    // A kill: the kernel finishes the request or never starts it (and a kill loses no
    // cache), so whole or nothing.
    CHECK(killed.torn == 0);
    CHECK(killed.whole > 0);
    CHECK(killed.dropped > 0);
  }
}

TEST_CASE("SimDisk: power loss drops, tears and reorders unflushed writes", "[sim]") {
  int lost_seen = 0;
  int torn_seen = 0;
  int all_kept = 0;
  for (std::uint64_t seed = 1; seed <= 60; seed++) {
    Rig rig(seed, small_disk(64));
    SectorModel model(64);
    std::vector<Op> ops;
    for (int w = 0; w < 10; w++)
      ops.push_back(Op{0, w * 6, 4});
    REQUIRE(apply_ops(rig, model, ops, false) == 0);
    REQUIRE(rig.disk.pending_write_count() == 10u);
    rig.node.power_loss();
    const Bytes image = rig.current();
    INFO("seed " << seed);
    CHECK_FALSE(model.check_crash(image, 512).has_value());
    // The wrong model "an acknowledged write survives a power loss" must be refuted.
    if (!model.check_current(image, 512)) all_kept++;
    lost_seen += rig.disk.fault_count(SimDiskFaultKind::power_loss_dropped) > 0;
    torn_seen += rig.disk.fault_count(SimDiskFaultKind::power_loss_torn) > 0;
  }
  CHECK(all_kept < 60);
  CHECK(lost_seen > 0);
  CHECK(torn_seen > 0);
}

TEST_CASE("SimDisk: flushed and FUA writes survive power loss; FUA beats older cache", "[sim]") {
  for (std::uint64_t seed = 1; seed <= 30; seed++) {
    Rig rig(seed, small_disk(16));
    REQUIRE(rig.run([&](NodeIo& io) {
      REQUIRE(io.disk.write(0, run_bytes(1, 4, 512), Fua::no));
      REQUIRE(io.disk.flush());
      REQUIRE(io.disk.write(4 * 512, run_bytes(10, 2, 512), Fua::no));   // unflushed
      REQUIRE(io.disk.write(4 * 512, run_bytes(20, 1, 512), Fua::yes));  // durable
      REQUIRE(io.disk.write(8 * 512, run_bytes(30, 2, 512), Fua::yes));
    }));
    rig.node.power_loss();
    const Bytes image = rig.current();
    INFO("seed " << seed);
    for (std::uint64_t s = 0; s < 4; s++)
      CHECK(decode(std::span(image).subspan(s * 512, 512)) == s + 1);
    // The older cached write to sector 4 must never land over the FUA write.
    CHECK(decode(std::span(image).subspan(4 * 512, 512)) == 20u);
    CHECK(decode(std::span(image).subspan(8 * 512, 512)) == 30u);
    CHECK(decode(std::span(image).subspan(9 * 512, 512)) == 31u);
    auto sector5 = decode(std::span(image).subspan(5 * 512, 512));
    CHECK((sector5 == 0u || sector5 == 11u));
  }
}

TEST_CASE("SimDisk: crash states are all 2^n subsets up to 8 writes, else k samples", "[sim]") {
  hast::test::property(
      "sim disk crash states",
      [](std::uint32_t seed) {
        const int sectors = 12;
        auto prefix = *gen_ops(sectors);
        auto pending = *rc::gen::container<std::vector<Op>>(
            *rc::gen::inRange<std::size_t>(0, 20),
            rc::gen::map(rc::gen::tuple(rc::gen::inRange(0, 8), rc::gen::inRange(0, sectors),
                                        rc::gen::inRange(1, 4)),
                         [](const std::tuple<int, int, int>& t) {
                           auto [kind, sector, count] = t;
                           return Op{kind, sector, std::min(count, sectors - sector)};
                         }));
        prefix.push_back(Op{8, 0, 1});  // a flush: the pending writes start from here
        prefix.insert(prefix.end(), pending.begin(), pending.end());
        Rig rig(seed, small_disk(sectors));
        SectorModel model(sectors);
        RC_ASSERT(apply_ops(rig, model, prefix, false) == 0);
        const std::size_t n = rig.disk.pending_write_count();
        const std::uint64_t hash_before = rig.disk.content_hash();
        hast::Prng random(seed);
        const std::size_t k = 24;
        const std::vector<CrashState> states = rig.disk.crash_states(k, random);
        RC_ASSERT(states.size() == (n <= 8 ? (std::size_t{1} << n) : k));
        std::set<std::vector<std::size_t>> subsets;
        for (const CrashState& state : states) {
          Bytes image(rig.disk.size());
          rig.disk.read_crash_state(state, 0, image);
          if (auto wrong = model.check_crash(image, 512)) RC_FAIL(*wrong);
          Bytes materialised(rig.disk.size());
          rig.disk.crash_state_image(state).read(0, materialised);
          RC_ASSERT(materialised == image);
          std::vector<std::size_t> subset;
          for (const auto& piece : state.pieces)
            subset.push_back(piece.index);
          subsets.insert(subset);
        }
        if (n <= 8) RC_ASSERT(subsets.size() == states.size());
        // Enumeration leaves the disk alone.
        RC_ASSERT(rig.disk.pending_write_count() == n);
        RC_ASSERT(rig.disk.content_hash() == hash_before);
      },
      60);
}

TEST_CASE("SimDisk: sampled crash states include torn and reordered ones", "[sim]") {
  Rig rig(3, small_disk(128));
  SectorModel model(128);
  std::vector<Op> ops;
  for (int w = 0; w < 12; w++)
    ops.push_back(Op{0, (w * 37) % 120, 4});
  REQUIRE(apply_ops(rig, model, ops, false) == 0);
  REQUIRE(rig.disk.pending_write_count() == 12u);
  hast::Prng random(11);
  const auto states = rig.disk.crash_states(200, random);
  REQUIRE(states.size() == 200u);
  int torn = 0;
  int reordered = 0;
  for (const CrashState& state : states) {
    torn += state.torn(rig.disk.pristine().cache());
    reordered += state.reordered();
    Bytes image(rig.disk.size());
    rig.disk.read_crash_state(state, 0, image);
    CHECK_FALSE(model.check_crash(image, 512).has_value());
  }
  CHECK(torn > 0);
  CHECK(reordered > 0);
  CHECK(states[0].pieces.empty());        // everything lost
  CHECK(states[1].pieces.size() == 12u);  // everything landed
}

TEST_CASE("SimDisk: a latent sector error fails reads until the sector is rewritten", "[sim]") {
  Rig rig(5, small_disk(32));
  rig.disk.inject_latent_error(3);
  REQUIRE(rig.run([&](NodeIo& io) {
    Bytes sector(512);
    Bytes range(8 * 512);
    auto failed = io.disk.read(3 * 512, sector);
    REQUIRE_FALSE(failed.has_value());
    CHECK(failed.error().code() == Errc::io);
    CHECK_FALSE(io.disk.read(0, range).has_value());
    CHECK(io.disk.read(2 * 512, sector).has_value());
    CHECK(io.disk.read(4 * 512, sector).has_value());
    REQUIRE(io.disk.write(3 * 512, sector_bytes(7, 512), Fua::no));
    REQUIRE(io.disk.read(3 * 512, sector));
    CHECK(decode(sector) == 7u);
  }));
  CHECK(rig.disk.latent_error_count() == 0u);
  CHECK(rig.disk.fault_count(SimDiskFaultKind::latent_read) == 2u);

  // Created by writes at probability 1; hidden by faults_off(), back with set_faults().
  SimDiskFaults faults;
  faults.latent_error_probability = 1;
  rig.disk.set_faults(faults);
  REQUIRE(rig.run([&](NodeIo& io) {
    REQUIRE(io.disk.write(10 * 512, run_bytes(40, 4, 512), Fua::no));
    Bytes range(4 * 512);
    CHECK_FALSE(io.disk.read(10 * 512, range).has_value());
  }));
  CHECK(rig.disk.latent_error_count() == 1u);
  rig.disk.faults_off();
  REQUIRE(rig.run([&](NodeIo& io) {
    Bytes range(4 * 512);
    REQUIRE(io.disk.read(10 * 512, range));
    CHECK(range == run_bytes(40, 4, 512));
  }));
  rig.disk.set_faults(SimDiskFaults{});
  REQUIRE(rig.run([&](NodeIo& io) {
    Bytes range(4 * 512);
    CHECK_FALSE(io.disk.read(10 * 512, range).has_value());
  }));
  rig.disk.clear_latent_errors();
  CHECK(rig.disk.latent_error_count() == 0u);
}

TEST_CASE("SimDisk: transient EIO always at probability 1, never at 0", "[sim]") {
  SimDiskOptions options = small_disk(32);
  options.faults.read_error_probability = 1;
  options.faults.write_error_probability = 1;
  options.faults.flush_error_probability = 1;
  Rig rig(6, options);
  int failures = 0;
  REQUIRE(rig.run([&](NodeIo& io) {
    Bytes sector(512);
    for (int i = 0; i < 20; i++) {
      auto read = io.disk.read(i * 512, sector);
      auto write = io.disk.write(i * 512, sector_bytes(i + 1, 512), Fua::no);
      auto flush = io.disk.flush();
      auto discard = io.disk.discard(i * 512, 512);
      for (const auto* result : {&read, &write, &flush, &discard}) {
        failures += !result->has_value() && result->error().code() == Errc::io;
      }
    }
  }));
  CHECK(failures == 80);
  CHECK(rig.disk.fault_count(SimDiskFaultKind::write_error) == 20u);

  rig.disk.set_faults(SimDiskFaults{});
  failures = 0;
  REQUIRE(rig.run([&](NodeIo& io) {
    Bytes sector(512);
    for (int i = 0; i < 200; i++) {
      failures += !io.disk.write((i % 32) * 512, sector_bytes(i + 1, 512), Fua::no).has_value();
      failures += !io.disk.read((i % 32) * 512, sector).has_value();
      failures += !io.disk.flush().has_value();
    }
  }));
  CHECK(failures == 0);
}

TEST_CASE("SimDisk: a misdirected write lands whole elsewhere", "[sim]") {
  SimDiskOptions options = small_disk(64);
  options.faults.misdirect_probability = 1;
  Rig rig(8, options);
  const Bytes data = run_bytes(500, 2, 512);
  Bytes back(2 * 512);
  REQUIRE(rig.run([&](NodeIo& io) {
    REQUIRE(io.disk.write(5 * 512, data, Fua::no));
    REQUIRE(io.disk.read(5 * 512, back));
  }));
  REQUIRE(rig.disk.fault_count(SimDiskFaultKind::misdirected) == 1u);
  const auto& record = rig.disk.fault_log().back();
  CHECK(record.offset == 5 * 512u);
  CHECK(record.detail != 5 * 512u);
  CHECK(record.detail % 512 == 0u);
  // What the medium holds: zeroes, with the data at the place it landed.
  Bytes medium(64 * 512, std::byte{0});
  std::copy(data.begin(), data.end(), medium.begin() + static_cast<std::ptrdiff_t>(record.detail));
  CHECK(back == Bytes(medium.begin() + 5 * 512, medium.begin() + 7 * 512));
  CHECK(back != data);
  Bytes landed(2 * 512);
  rig.disk.peek_effective(record.detail, landed);
  CHECK(landed == data);
  Bytes pristine(2 * 512);
  rig.disk.peek_current(5 * 512, pristine);
  CHECK(pristine == data);  // the pristine layer holds what was asked for

  // The liveness phase switches the overlays off: reads return the pristine bytes.
  rig.disk.faults_off();
  REQUIRE(rig.run([&](NodeIo& io) { REQUIRE(io.disk.read(5 * 512, back)); }));
  CHECK(back == data);
  rig.disk.peek_effective(record.detail, landed);
  CHECK((record.detail == 4 * 512 || record.detail == 6 * 512 || landed != data));
}

TEST_CASE("SimDisk: a lost write reports success and vanishes, even when FUA", "[sim]") {
  SimDiskOptions options = small_disk(64);
  options.faults.lost_write_probability = 1;
  Rig rig(8, options);
  Bytes back(512);
  REQUIRE(rig.run([&](NodeIo& io) {
    REQUIRE(io.disk.write(20 * 512, run_bytes(600, 1, 512), Fua::yes));
    REQUIRE(io.disk.write(21 * 512, run_bytes(601, 1, 512), Fua::no));
    REQUIRE(io.disk.flush());
    REQUIRE(io.disk.read(20 * 512, back));
  }));
  CHECK(decode(back) == 0u);
  CHECK(rig.disk.fault_count(SimDiskFaultKind::lost) == 2u);
  rig.disk.peek_current(20 * 512, back);
  CHECK(decode(back) == 600u);
  rig.disk.faults_off();
  REQUIRE(rig.run([&](NodeIo& io) { REQUIRE(io.disk.read(21 * 512, back)); }));
  CHECK(decode(back) == 601u);
}

TEST_CASE("SimDisk: latency lies within its bounds and the slow tail happens", "[sim]") {
  SimDiskOptions options = small_disk(32);
  options.faults.latency_min = 1ms;
  options.faults.latency_mean = 2ms;
  Rig rig(9, options);
  std::vector<hast::Duration> latencies;
  auto measure = [&](int count) {
    latencies.clear();
    REQUIRE(rig.run([&](NodeIo& io) {
      Bytes sector(512);
      for (int i = 0; i < count; i++) {
        const Instant start = io.clock.now();
        REQUIRE(io.disk.read((i % 32) * 512, sector));
        latencies.push_back(io.clock.now() - start);
      }
    }));
  };
  measure(300);
  const hast::Duration bound = options.faults.latency_max();
  hast::Duration total{0};
  for (auto latency : latencies) {
    CHECK(latency >= 1ms);
    CHECK(latency <= bound);
    total += latency;
  }
  const auto mean = total / latencies.size();
  CHECK(mean > 2ms);
  CHECK(mean < 4500us);

  SimDiskFaults slow = options.faults;
  slow.slow_probability = 0.2;
  slow.slow_multiplier = 50;
  rig.disk.set_faults(slow);
  measure(100);
  CHECK(std::any_of(latencies.begin(), latencies.end(), [](auto l) { return l >= 50ms; }));
  CHECK(std::all_of(latencies.begin(), latencies.end(),
                    [&](auto l) { return l <= slow.latency_max(); }));
  CHECK(rig.disk.fault_count(SimDiskFaultKind::slow) > 0u);

  rig.disk.faults_off();  // the slow tail stops; the plain latency stays
  measure(200);
  CHECK(std::all_of(latencies.begin(), latencies.end(),
                    [&](auto l) { return l >= 1ms && l <= bound; }));
}

TEST_CASE("SimDisk: faults_off() stops every fault", "[sim]") {
  SimDiskOptions options = small_disk(64);
  options.faults.read_error_probability = 1;
  options.faults.write_error_probability = 1;
  options.faults.flush_error_probability = 1;
  options.faults.latent_error_probability = 1;
  options.faults.misdirect_probability = 1;
  options.faults.lost_write_probability = 1;
  options.faults.slow_probability = 1;
  options.faults.slow_multiplier = 10;
  Rig rig(10, options);
  rig.disk.inject_latent_error(7);
  rig.disk.faults_off();
  CHECK_FALSE(rig.disk.faults().any());
  const auto log_size = rig.disk.fault_log().size();
  int failures = 0;
  REQUIRE(rig.run([&](NodeIo& io) {
    for (int i = 0; i < 64; i++) {
      const Bytes data = sector_bytes(i + 1, 512);
      failures += !io.disk.write(i * 512, data, i % 2 ? Fua::yes : Fua::no).has_value();
      failures += !io.disk.flush().has_value();
      Bytes back(512);
      failures += !io.disk.read(i * 512, back).has_value();
      failures += back != data;
    }
  }));
  CHECK(failures == 0);
  CHECK(rig.disk.fault_log().size() == log_size);
}

TEST_CASE("SimDisk: discard reads as zeroes or, when not promised, old bytes or garbage", "[sim]") {
  for (bool zeroes : {true, false}) {
    SimDiskOptions options = small_disk(64);
    options.discard_zeroes = zeroes;
    Rig rig(12, options);
    REQUIRE(rig.run([&](NodeIo& io) {
      REQUIRE(io.disk.write(0, run_bytes(1, 64, 512), Fua::no));
      for (int i = 0; i < 16; i++)
        REQUIRE(io.disk.discard(i * 4 * 512, 2 * 512));
    }));
    CHECK(rig.disk.properties().discard_zeroes == zeroes);
    const Bytes image = rig.current();
    int kept = 0;
    for (std::uint64_t s = 0; s < 64; s++) {
      auto tag = decode(std::span(image).subspan(s * 512, 512));
      if (s % 4 >= 2) {
        CHECK(tag == s + 1);
      } else if (zeroes) {
        CHECK(tag == 0u);
      } else {
        kept += tag == s + 1;
        CHECK((!tag || tag == 0u || tag == s + 1));
      }
    }
    HAST_MAYBE(kept > 0);
  }
}

TEST_CASE("SimDisk: sparse storage, content hash and replacement by an empty disk", "[sim]") {
  SimDiskOptions options;
  options.size_bytes = 1ULL << 30;
  Rig rig(13, options);
  World empty_world(13);
  const std::uint64_t empty_hash = empty_world.add_disk("a", options).content_hash();
  REQUIRE(rig.run([&](NodeIo& io) {
    REQUIRE(io.disk.write(0, run_bytes(1, 8, 512), Fua::no));
    REQUIRE(io.disk.write((1ULL << 30) - 4096, run_bytes(9, 8, 512), Fua::no));
    REQUIRE(io.disk.flush());
    REQUIRE(io.disk.write(1ULL << 29, run_bytes(17, 8, 512), Fua::no));
  }));
  CHECK(rig.disk.pristine().stable().chunk_count() == 2u);
  const std::uint64_t hash = rig.disk.content_hash();
  CHECK(hash != empty_hash);
  CHECK(hash != rig.disk.stable_hash());
  REQUIRE(rig.run([&](NodeIo& io) { REQUIRE(io.disk.discard(0, 1ULL << 30)); }));
  REQUIRE(rig.run([&](NodeIo& io) { REQUIRE(io.disk.flush()); }));
  CHECK(rig.disk.pristine().stable().chunk_count() == 0u);
  CHECK(rig.disk.content_hash() == empty_hash);
  REQUIRE(
      rig.run([&](NodeIo& io) { REQUIRE(io.disk.write(4096, run_bytes(1, 1, 512), Fua::no)); }));
  rig.node.kill();
  rig.disk.replace_with_empty();
  CHECK(rig.disk.content_hash() == empty_hash);
  CHECK(rig.disk.fault_count(SimDiskFaultKind::replaced) == 1u);
}

TEST_CASE("SimDisk: a dead handle refuses I/O without suspending", "[sim]") {
  Rig rig(14, small_disk(16));
  hast::sim::SimDiskHandle handle(rig.world, rig.node, rig.disk);
  handle.mark_dead(hast::sim::DeathKind::kill);
  bool done = false;
  REQUIRE(rig.run([&](NodeIo&) {
    Bytes sector(512);
    const Instant start = rig.world.now();
    auto read = handle.read(0, sector);
    auto write = handle.write(0, sector, Fua::no);
    auto flush = handle.flush();
    auto discard = handle.discard(0, 512);
    for (const auto* result : {&read, &write, &flush, &discard}) {
      REQUIRE_FALSE(result->has_value());
      CHECK(result->error().code() == Errc::cancelled);
    }
    CHECK(rig.world.now() == start);
    done = true;
  }));
  CHECK(done);
}

namespace {

// A swarm run: random faults, concurrent random traffic, a power loss and a restart.
std::tuple<std::string, std::uint64_t, std::size_t> swarm_run(std::uint64_t seed) {
  World world(seed);
  SimDiskOptions options = small_disk(2048);
  options.faults = SimDiskFaults::swarm(world.stream("test/swarm"));
  SimDisk& disk = world.add_disk("a", options);
  SimNode& node = world.add_node(SimNodeOptions{.name = "n1", .hosts = {"10.0.0.1"}});
  node.attach_disk(disk);
  node.set_program([](NodeIo& io) {
    for (int f = 0; f < 3; f++) {
      auto spawned = io.scheduler.spawn("traffic", [&io] {
        Bytes buffer(8 * 512);
        for (int i = 0; i < 100; i++) {
          const std::uint64_t count = hast::uniform(io.random, 1, 8);
          const std::uint64_t offset = hast::uniform(io.random, 0, 2048 - count) * 512;
          std::span<std::byte> span(buffer.data(), count * 512);
          hast::fill_random(io.random, span);
          switch (hast::uniform(io.random, 0, 4)) {
            case 0:
              hast::ignore_error(io.disk.read(offset, span), "faults expected");
              break;
            case 1:
              hast::ignore_error(io.disk.write(offset, span, Fua::no), "faults");
              break;
            case 2:
              hast::ignore_error(io.disk.write(offset, span, Fua::yes), "faults");
              break;
            case 3:
              hast::ignore_error(io.disk.flush(), "faults expected");
              break;
            default:
              hast::ignore_error(io.disk.discard(offset, span.size()), "faults");
          }
        }
      });
      REQUIRE(spawned.has_value());
    }
  });
  node.start();
  world.run_for(20ms);
  node.power_loss();
  node.start();
  world.run_for(2s);
  return {world.hash().hex(), disk.content_hash(), disk.fault_log().size()};
}

}  // namespace

TEST_CASE("SimDisk: same seed, same run; another seed, another run", "[sim]") {
  hast::test::property(
      "sim disk determinism",
      [](std::uint32_t seed) {
        const auto first = swarm_run(seed);
        RC_ASSERT(first == swarm_run(seed));
        RC_ASSERT(std::get<0>(first) != std::get<0>(swarm_run(std::uint64_t{seed} + 1)));
      },
      20);
}

TEST_CASE("SimDisk: swarm draws each fault on for some seeds and off for others", "[sim]") {
  int on[7] = {};
  for (std::uint64_t seed = 1; seed <= 64; seed++) {
    hast::Prng random(seed);
    const SimDiskFaults faults = SimDiskFaults::swarm(random);
    const double rates[7] = {faults.read_error_probability,  faults.write_error_probability,
                             faults.flush_error_probability, faults.latent_error_probability,
                             faults.misdirect_probability,   faults.lost_write_probability,
                             faults.slow_probability};
    for (int i = 0; i < 7; i++) {
      CHECK(rates[i] >= 0);
      CHECK(rates[i] < 0.1);
      on[i] += rates[i] > 0;
    }
    CHECK(faults.latency_min > hast::Duration{0});
  }
  for (int count : on) {
    CHECK(count > 5);
    CHECK(count < 59);
  }
}
