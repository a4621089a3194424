// ActivemapOracle: O3 of reference/fault-model.md §6.5, activemap coverage, checked online
// from the disks' bytes (never asked of the code under test).
//
// Statement. Let U be the union of the two nodes' *persisted* activemaps: the bitmaps at
// offset 4096 of each disk's stable view (what survives a power loss), decoded with
// core/meta. At every checkpoint where the check applies, every extent outside U holds
// the same bytes on both nodes in every state a crash can leave the two disks in:
//   - the extent's stable data is byte-identical on the two disks, and
//   - every write the device holds in its volatile cache, and every write or discard in
//     flight to it, carries in each sector it touches of the extent the bytes the other
//     disk's stable view holds there.
// Together these cover the stable views, the current views (stable + cache) and every
// crash state of either disk (a subset of its cached writes, torn or reordered).
//
// Why the union. HAST's regular handshake (reference/hast-spec.md §8.2, decision.h) sends
// the secondary's on-disk map and the primary merges it into its own; the full-sync cases
// send an all-ones map. So an extent marked on either persisted map is copied by the next
// synchronisation (in which direction is O5's business), and an extent outside U never
// is: if the copies differ there they stay different for good, a silent divergence that a
// later failover exposes. While the pair is connected the secondary's map is clear (it
// clears it at the first request, after the primary made the merged map durable), so U
// is then the primary's persisted map, and the rule is "the map flush precedes the data
// write" on both nodes. The primary's map alone is not enough between a failover and the
// next handshake: the old primary, now secondary, holds the marks of its cut-off writes.
// The in-memory map is never consulted: a crash loses it, and reading it would be asking
// the code under test.
//
// When. Checkpoints come every `period` of simulated time, and just before and just after
// every node death (kill or power loss: the crash finds the disks as they are, caches and
// writes in flight included). A checkpoint applies when:
//   - both metadata blocks (stable view) decode, describe the same layout and carry the
//     same non-zero resuid: the nodes are paired (before the first handshake both data
//     areas are blank; a re-created node has resuid 0 until its first handshake);
//   - the owner has not suspended the check. The swarm suspends it from `hastctl create`
//     on a split-brain loser until the pair converged: the re-created node's map is blank
//     while its data area still holds the discarded history, and the first handshake
//     marks every extent (all-ones map) on the primary only after the secondary adopted
//     the pair's resuid (reported as a finding: a primary crash in that window turns the
//     next handshake into a regular sync that misses extents).
// Split-brain episodes are checked like any other state: each primary marks its own
// writes, so U still covers what differs.
//
// Pristine views only: lost and misdirected writes are overlays (sim_disk.h), so the
// pristine layer holds what each node asked its disk to store. Discards in flight count
// as zeroes (local_component writes zeroes on a device that does not discard to zero).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/meta/bitmap.h"
#include "core/meta/metadata.h"
#include "sim/cluster.h"

namespace hast::sim {

struct ActivemapOracleOptions {
  Duration period = std::chrono::milliseconds(100);
  std::size_t violations_max = 8;  // later ones are counted, not kept
};

class ActivemapOracle final : public WorldObserver {
 public:
  // Watches the two disks of `cluster` from now on (registers with its world).
  ActivemapOracle(SimCluster& cluster, ActivemapOracleOptions options = {});
  ~ActivemapOracle() override;
  ActivemapOracle(const ActivemapOracle&) = delete;
  ActivemapOracle& operator=(const ActivemapOracle&) = delete;

  // While suspended, checkpoints are skipped (see the file comment for when).
  void set_suspended(bool suspended) { suspended_ = suspended; }
  // Runs one checkpoint now; `why` names it in violations ("periodic", "before ...").
  void checkpoint(std::string_view why);

  const std::vector<Violation>& violations() const { return violations_; }
  std::uint64_t suppressed() const { return suppressed_; }
  std::uint64_t checkpoints() const { return checkpoints_; }
  std::uint64_t applied() const { return applied_; }  // checkpoints that applied

  // WorldObserver.
  void after_step() override;
  void before_death(NodeId node, DeathKind kind) override;
  void after_death(NodeId node, DeathKind kind) override;

 private:
  // What one disk's stable view says about itself.
  struct View {
    const SimDisk* disk = nullptr;
    meta::Metadata metadata;
    std::optional<meta::Bitmap> map;
  };
  struct Pair {
    std::array<View, 2> views;
    std::vector<bool> marked;  // U, per extent
    std::uint64_t extent_count = 0;
  };

  // Where bytes that may still land come from (for the violation's text).
  struct Source {
    enum class Kind : std::uint8_t { cached, in_flight, discard_in_flight };
    Kind kind;
    std::uint64_t seq = 0;  // the device's acceptance number of a cached write
    std::string text() const;
  };

  std::optional<Pair> read_pair() const;
  std::optional<View> read_view(NodeId id) const;
  bool covered(const Pair& pair, NodeId id, std::uint64_t disk_offset, std::uint64_t length) const;
  void check_unstable(const Pair& pair, NodeId id, std::string_view why);
  void check_range(const Pair& pair, NodeId id, std::uint64_t disk_offset,
                   std::span<const std::byte> data, const Source& source, std::string_view why);
  void check_stable(const Pair& pair, std::string_view why);
  void check_piece(const Pair& pair, std::uint64_t extent, std::uint64_t at, std::uint64_t length,
                   std::string_view why);
  void report(const Pair& pair, std::uint64_t extent, std::uint64_t sector, std::string detail,
              std::string_view why);
  static std::string describe_value(std::span<const std::byte> bytes);

  SimCluster& cluster_;
  ActivemapOracleOptions options_;
  bool suspended_ = false;
  Instant next_check_{};
  // Per piece of an extent within one chunk (by its disk offset): the two stable images'
  // chunk stamps when the piece last compared equal.
  std::map<std::uint64_t, std::pair<std::uint64_t, std::uint64_t>> verified_;
  std::vector<bool> reported_;  // per extent: one violation each
  std::vector<Violation> violations_;
  std::uint64_t suppressed_ = 0;
  std::uint64_t checkpoints_ = 0;
  std::uint64_t applied_ = 0;
};

}  // namespace hast::sim
