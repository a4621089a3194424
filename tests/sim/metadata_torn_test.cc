// A metadata write torn by a power loss: the node comes back (core/meta/metadata.h, the
// second copy). reference/fault-model.md §6.6 rows 4, 6 and 12.
//
// Method: a node creates the resource, writes a metadata block whose nv spans sectors,
// then starts one more metadata update and the power goes while one of its writes is in
// flight. The SimDisk applies a cached write whole, drops it or tears it per sector at a
// power loss, but a FUA write never sits in its cache; a FUA write still in flight is
// exactly such a write (not durable until it completes), so a disk in front of the
// SimDisk sends the chosen write to the cache and never completes it. After the power
// loss the area must read (old or new metadata, nothing else), and a HastNode must take
// the primary role on the disk, which leaves both copies whole again. Seeds vary which of
// the two writes is cut and how the power loss treats it; the loop runs until enough
// tears of each copy were seen. The node reports the copy it opened in its status (what
// `hastctl list` shows) and logs a warning when it passed one over.
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <catch2/catch.hpp>

#include "core/config/config.h"
#include "core/control/format.h"
#include "core/control/status.h"
#include "core/fiber/event.h"
#include "core/meta/metadata.h"
#include "core/replication/local_component.h"
#include "core/replication/node.h"
#include "sim/node.h"
#include "sim/sim_disk.h"
#include "sim/world.h"
#include "tests/support/forwarding_disk.h"
#include "tests/support/node_pair.h"
#include "tests/support/sim_fixtures.h"

using hast::NodeIo;
using hast::meta::ExtentIndex;
using hast::meta::Metadata;
using hast::meta::MetadataCopy;
using hast::replication::CreateOptions;
using hast::replication::LocalComponent;

namespace {

constexpr std::uint64_t kDiskBytes = 8 << 20;

// A disk in front of the node's SimDisk. The `catch_at`-th write into the metadata area
// from now goes to the device's volatile cache and never completes: the power loss that
// follows decides what lands of it.
class InFlightMetadataDisk final : public hast::test::ForwardingDisk {
 public:
  // `caught` receives the offset of the write it holds.
  InFlightMetadataDisk(hast::Disk& inner, hast::fiber::Scheduler& scheduler,
                       std::optional<std::uint64_t>& caught)
      : ForwardingDisk(inner), never_(scheduler), caught_(caught) {}

  int catch_at = 0;  // 0: none

  hast::Result<void> write(std::uint64_t offset, std::span<const std::byte> data,
                           hast::Fua fua) override {
    if (offset >= hast::meta::metadata_size || catch_at == 0 || --catch_at > 0) {
      return inner_.write(offset, data, fua);
    }
    HAST_TRY(inner_.write(offset, data, hast::Fua::no));
    caught_ = offset;
    return never_.wait();  // fails only when the node dies
  }

 private:
  hast::fiber::Event never_;
  std::optional<std::uint64_t>& caught_;
};

// The block before the update cut by the power loss (generation 2) and the one it writes.
Metadata before_cut(const Metadata& created) {
  Metadata m = created;
  m.resuid = 0xfeed'beef;
  m.local_count = 4;
  m.remote_count = 3;
  m.prev_role = hast::meta::Role::primary;
  // The stale list makes the nv span two 512-byte sectors.
  for (std::uint64_t i = 0; i < hast::meta::stale_extents_max; i++)
    m.stale_extents.push_back(ExtentIndex{i});
  return m;
}

Metadata after_cut(const Metadata& before) {
  Metadata m = before;
  m.local_count = 5;
  m.stale_extents.erase(m.stale_extents.begin());
  return m;
}

struct Outcome {
  std::uint64_t caught_offset = 0;
  bool torn = false;  // the power loss tore the cut write
  bool new_metadata = false;
  MetadataCopy copy = MetadataCopy::first;
  std::optional<MetadataCopy> reported;  // by the primary's status
  bool warned = false;                   // the node logged the copy it read
};

// The node of one run: hasta of the pair configuration, its remote absent.
struct Run {
  explicit Run(std::uint64_t seed, std::uint32_t sector_size)
      : world(seed, hast::sim::WorldOptions{.replay_command = "metadata_torn_test",
                                            .keep_trace = true,
                                            .echo_logs = false}) {
    disk = &world.add_disk("hasta-disk", hast::sim::SimDiskOptions{.size_bytes = kDiskBytes,
                                                                   .sector_size = sector_size});
    node = &world.add_node(
        hast::sim::SimNodeOptions{.name = "hasta", .hosts = {"10.0.0.1"}, .stack_size = 1 << 20});
    node->attach_disk(*disk);
  }

  // Runs `body` on the node until `until` holds (the node keeps running).
  void run(const std::function<void(NodeIo&)>& body, const std::function<bool()>& until) {
    node->set_program(body);
    node->start();
    REQUIRE(world.run_until(until, world.now() + std::chrono::seconds(60)));
  }

  hast::sim::World world;
  hast::sim::SimDisk* disk = nullptr;
  hast::sim::SimNode* node = nullptr;
};

// hastd on the disk: becomes primary, then stops. Returns the metadata copy its status
// reported as primary.
std::optional<MetadataCopy> become_primary(NodeIo& io) {
  auto resolved = hast::test::resolve_pair_config(hast::test::kPairA, hast::test::kPairConfig);
  hast::test::NoFrontends frontends;
  hast::test::NoEvents events;
  hast::replication::HastNode hast(io, std::move(resolved), events, frontends, {});
  REQUIRE(hast.start().has_value());
  auto role = hast.set_role("shared", hast::meta::Role::primary);
  INFO((role ? std::string("ok") : role.error().message()));
  CHECK(role.has_value());
  auto status = hast.status("shared");
  REQUIRE(status.has_value());
  CHECK(status->role == hast::meta::Role::primary);
  REQUIRE(hast.set_role("shared", hast::meta::Role::init).has_value());
  auto off = hast.status("shared");
  REQUIRE(off.has_value());
  CHECK_FALSE(off->metadata_copy.has_value());  // role init: nothing open
  hast.stop();
  return status->metadata_copy;
}

// A log line of the node saying which copy it read ("read from its second copy: ...").
bool warned_about_copy(const hast::sim::World& world) {
  for (const std::string& line : world.trace_lines()) {
    if (line.find("Metadata of /dev/sim read from its") != std::string::npos) return true;
  }
  return false;
}

Outcome one_run(std::uint64_t seed, std::uint32_t sector_size, int catch_at) {
  Run run(seed, sector_size);
  Metadata before;
  Metadata after;
  Outcome outcome;
  std::optional<std::uint64_t> caught;
  run.run(
      [&](NodeIo& io) {
        auto created = hast::replication::create_local(
            io.disk, "shared", CreateOptions{.extent_size_bytes = 64 << 10});
        REQUIRE(created.has_value());
        before = before_cut(*created);
        after = after_cut(before);
        InFlightMetadataDisk disk(io.disk, io.scheduler, caught);
        auto local = LocalComponent::open(disk, io.scheduler, "/dev/sim", "shared", true);
        REQUIRE(local.has_value());
        REQUIRE((*local)->write_metadata(before).has_value());
        disk.catch_at = catch_at;
        auto cut = (*local)->write_metadata(after);
        CHECK(!cut.has_value());  // only the node's death ends the cut write
      },
      [&] { return caught.has_value(); });
  REQUIRE(run.disk->pending_write_count() == 1);  // the cut write, in the cache
  std::size_t torn_before = run.disk->fault_count(hast::sim::SimDiskFaultKind::power_loss_torn);
  run.node->power_loss();
  outcome.caught_offset = *caught;
  outcome.torn = run.disk->fault_count(hast::sim::SimDiskFaultKind::power_loss_torn) > torn_before;
  bool done = false;
  run.run(
      [&](NodeIo& io) {
        // The area reads: the old block or the new one, nothing else.
        auto area = hast::replication::read_metadata_area(io.disk, "/dev/sim", "shared");
        INFO((area ? std::string("read") : area.error().message()));
        REQUIRE(area.has_value());
        CHECK((area->metadata == before || area->metadata == after));
        outcome.new_metadata = area->metadata == after;
        outcome.copy = area->copy;
        outcome.reported = become_primary(io);
        // Opening the component wrote both copies again (and the primary its counters).
        auto again = hast::replication::read_metadata_area(io.disk, "/dev/sim", "shared");
        REQUIRE(again.has_value());
        CHECK(again->copy == MetadataCopy::first);
        CHECK(again->note.empty());
        if (area->copy == MetadataCopy::second) {
          CHECK(again->generation > area->generation);
        } else {
          CHECK(again->generation >= area->generation);
        }
        done = true;
      },
      [&] { return done; });
  outcome.warned = warned_about_copy(run.world);
  run.node->kill();
  return outcome;
}

}  // namespace

TEST_CASE(
    "Metadata torn: a power loss during either metadata write leaves the node able to "
    "start, with the old or the new block",
    "[sim][local][metadata]") {
  int torn_first = 0;   // the first copy's write torn
  int torn_second = 0;  // the second copy's write torn
  int from_second = 0;  // the area was read from the second copy
  int new_blocks = 0;
  std::uint64_t seed = 1;
  for (; seed <= 400 && (torn_first < 6 || torn_second < 6); seed++) {
    int catch_at = seed % 2 == 0 ? 1 : 2;  // 1: the second copy's write; 2: the first's
    CAPTURE(seed, catch_at);
    Outcome outcome = one_run(seed, 512, catch_at);
    CHECK(outcome.caught_offset == (catch_at == 1 ? hast::meta::metadata_copy_offset : 0));
    if (outcome.torn) (catch_at == 1 ? torn_second : torn_first)++;
    if (outcome.copy == MetadataCopy::second) from_second++;
    // The node's own word for the copy it opened.
    CHECK(outcome.reported == outcome.copy);
    if (outcome.copy == MetadataCopy::second) CHECK(outcome.warned);
    if (outcome.new_metadata) new_blocks++;
  }
  INFO("seeds run: " << seed - 1);
  CHECK(torn_first >= 6);
  CHECK(torn_second >= 6);
  CHECK(from_second > 0);  // a torn first copy did happen, and the second copy served
  CHECK(new_blocks > 0);
}

TEST_CASE("Metadata torn: on 4 KiB sectors the area is one write that lands whole or not",
          "[sim][local][metadata]") {
  for (std::uint64_t seed = 1; seed <= 12; seed++) {
    CAPTURE(seed);
    Outcome outcome = one_run(seed, 4096, 1);
    CHECK(outcome.caught_offset == 0);
    CHECK_FALSE(outcome.torn);
    CHECK(outcome.copy == MetadataCopy::first);
    CHECK(outcome.reported == MetadataCopy::first);
    CHECK_FALSE(outcome.warned);
  }
}

// FreeBSD's block (the first copy) torn: its first sector from a newer write, its second
// from the older one. The node opens the second copy, says so in its status and in
// `hastctl list`, logs it, and writes both copies again: the next open reads the first.
TEST_CASE("Metadata torn: the status and hastctl list report an open from the second copy",
          "[sim][local][metadata]") {
  Run run(5, 512);
  std::optional<MetadataCopy> opened;
  std::optional<MetadataCopy> reopened;
  std::string list;
  bool done = false;
  run.run(
      [&](NodeIo& io) {
        auto created = hast::replication::create_local(
            io.disk, "shared", CreateOptions{.extent_size_bytes = 64 << 10});
        REQUIRE(created.has_value());
        Metadata before = before_cut(*created);
        REQUIRE(io.disk.write(0, hast::meta::encode_area(before, 2), hast::Fua::yes).has_value());
        auto newer = hast::meta::encode_area(after_cut(before), 3);
        REQUIRE(io.disk.write(0, std::span(newer).first(512), hast::Fua::yes).has_value());

        auto resolved =
            hast::test::resolve_pair_config(hast::test::kPairA, hast::test::kPairConfig);
        hast::config::ResourceConfig config = resolved.resources.at(0);
        hast::test::NoFrontends frontends;
        hast::test::NoEvents events;
        hast::replication::HastNode hast(io, std::move(resolved), events, frontends, {});
        REQUIRE(hast.start().has_value());
        REQUIRE(hast.set_role("shared", hast::meta::Role::secondary).has_value());
        auto status = hast.status("shared");
        REQUIRE(status.has_value());
        opened = status->metadata_copy;
        hast::proto::StatusReply reply{{hast::control::wire_status(*status, config, {})}, 0};
        list = hast::control::format_list(reply);
        REQUIRE(hast.set_role("shared", hast::meta::Role::init).has_value());
        REQUIRE(hast.set_role("shared", hast::meta::Role::secondary).has_value());
        reopened = hast.status("shared")->metadata_copy;
        hast.stop();
        done = true;
      },
      [&] { return done; });
  run.node->kill();
  CHECK(opened == MetadataCopy::second);
  INFO(list);
  CHECK(list.find("  metadata: read from the second copy\n") != std::string::npos);
  CHECK(warned_about_copy(run.world));
  CHECK(reopened == MetadataCopy::first);
}
