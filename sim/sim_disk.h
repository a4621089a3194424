// SimDisk: the simulated disk device, and SimDiskHandle: a node incarnation's Disk on it.
//
// Model (DESIGN.md §6, reference/fault-model.md §6.2, STYLE.md R11). A SimDisk is owned by
// the World and outlives node incarnations. It has two layers:
// - the pristine layer (sim_disk_pristine.h): a durable image plus a volatile write cache
//   visible to reads; power loss applies, drops or tears (per sector) the cached writes in
//   any order; crash states can be enumerated without disturbing the disk;
// - fault overlays on top, decided per operation from per-seed probabilities (swarm
//   testing: each fault on or off per seed): transient EIO on read, write and flush;
//   latent sector errors (a sector fails every read until rewritten); misdirected writes
//   (the whole write lands at another sector-aligned offset, reported success); lost
//   writes (reported success, never stored); latency with a minimum, an exponential mean
//   and a slow tail. An overlay keeps the faulty medium content per sector apart from the
//   pristine bytes, so faults_off() (the liveness phase) switches every overlay off at
//   once and reads return pristine bytes again; peek_* always read the pristine layer.
//
// Operations are split in two: the handle submits (begin_*) and, after the drawn latency,
// completes (complete_*) them from a world event, so concurrent operations take effect in
// completion order. Writes in flight are known to the device. When their node's process
// dies (a kill) each is applied whole or dropped: the kernel either completes the request
// or never started it. When the power goes, a write in flight (FUA or not) may be cut
// mid-transfer: each of its sectors independently keeps its old bytes or takes the new ones
// (sector atomicity), the sectors that landed being on the medium (durable); then the
// power loss drops or tears the cache. Every operation and fault decision goes to
// world.trace(); randomness comes only from the world stream "disk/<name>". Same seed,
// same behaviour.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/io/clock.h"
#include "core/io/disk.h"
#include "core/prng.h"
#include "sim/node.h"
#include "sim/sim_disk_pristine.h"
#include "sim/world.h"

namespace hast::sim {

// Fault probabilities and latency of one disk, drawn per seed. Probabilities are per
// operation; 0 never fires, 1 always fires.
struct SimDiskFaults {
  double read_error_probability = 0;    // transient EIO on a read
  double write_error_probability = 0;   // transient EIO on a write or discard (maybe torn)
  double flush_error_probability = 0;   // EIO on a flush (nothing made durable)
  double latent_error_probability = 0;  // a write leaves one of its sectors unreadable
  double misdirect_probability = 0;     // a write lands whole at another offset
  double lost_write_probability = 0;    // a write reports success and is never stored
  // Latency of every operation: latency_min plus an exponential part of mean
  // latency_mean (capped at exponential_cap times the mean), times slow_multiplier
  // with probability slow_probability (the slow tail; a gray failure).
  Duration latency_min = std::chrono::microseconds(50);
  Duration latency_mean = std::chrono::microseconds(100);
  double slow_probability = 0;
  double slow_multiplier = 1;

  static constexpr double exponential_cap = 20;

  // The largest latency this configuration can draw.
  Duration latency_max() const;
  // True when some fault (not the plain latency) can fire.
  bool any() const;
  // A swarm-testing mix: each fault independently off (0) or on with a drawn rate.
  static SimDiskFaults swarm(Random& random);
};

struct SimDiskOptions {
  std::uint64_t size_bytes = 0;
  std::uint32_t sector_size = 512;
  bool volatile_cache = true;
  bool discard_zeroes = true;
  SimDiskFaults faults{};
  // Bounds of the volatile cache: beyond them the oldest write is destaged (made durable).
  std::size_t cache_writes_max = 256;
  std::uint64_t cache_bytes_max = 64 * 1024 * 1024;
  // Bound of the fault log; later records are counted, not kept.
  std::size_t fault_log_max = 100'000;
};

// What the fault log records. Beside injected faults it records what a power loss or a
// death did to unsynced writes, which is what an oracle needs to judge lost data.
enum class SimDiskFaultKind : std::uint8_t {
  read_error,          // transient EIO on a read
  write_error,         // transient EIO on a write; detail: sectors applied anyway
  flush_error,         // EIO on a flush
  discard_error,       // EIO on a discard
  latent_created,      // offset: the sector made unreadable
  latent_read,         // a read failed on a latent error; offset: the sector
  misdirected,         // offset/length: intended range; detail: where it landed
  lost,                // a write reported success and was not stored
  slow,                // an operation drew the slow tail; detail: latency in ns
  power_loss_dropped,  // a cached write lost whole by a power loss
  power_loss_torn,     // a cached or in-flight write torn; detail: sectors that landed
  in_flight_dropped,   // a write in flight when its node died, never applied
  replaced,            // the disk was replaced by an empty one
};
inline constexpr std::size_t sim_disk_fault_kind_count = 13;

std::string_view sim_disk_fault_kind_name(SimDiskFaultKind kind);

struct SimDiskFaultRecord {
  Instant when;
  SimDiskFaultKind kind;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  std::uint64_t detail = 0;
};

// Counts of operations, for coverage reports.
struct SimDiskStats {
  std::uint64_t reads = 0;
  std::uint64_t writes = 0;
  std::uint64_t fua_writes = 0;
  std::uint64_t flushes = 0;
  std::uint64_t discards = 0;
  std::uint64_t power_losses = 0;
  std::uint64_t in_flight_applied = 0;  // writes in flight at a death that still landed
  std::uint64_t in_flight_torn = 0;     // writes in flight at a power loss, partly landed
};

class SimDisk {
 public:
  // Draws randomness from world.stream("disk/" + name). `options.size_bytes` is a
  // non-zero multiple of the sector size; the sector size a power of two in [512, 16 KiB].
  SimDisk(World& world, std::string name, const SimDiskOptions& options);
  SimDisk(const SimDisk&) = delete;
  SimDisk& operator=(const SimDisk&) = delete;

  const std::string& name() const { return name_; }
  std::uint64_t size() const { return options_.size_bytes; }
  const SimDiskOptions& options() const { return options_; }
  DiskProperties properties() const;

  // ---- Operations, driven by SimDiskHandle ----
  // Each returns at once: submission and completion are separate calls, the handle
  // waits the drawn latency in between. `owner` identifies the submitting handle.

  // A fresh owner id for a handle.
  std::uint64_t register_owner() { return next_owner_++; }
  // Draws the latency of one operation (traced; logs the slow tail).
  Duration draw_latency(std::string_view kind);
  // Registers a write (data copied) or a discard in flight; returns its operation id.
  std::uint64_t begin_write(std::uint64_t owner, std::uint64_t offset,
                            std::span<const std::byte> data, Fua fua);
  // The same without the copy: `data` must stay valid until the write completes, the
  // owner's writes are settled, or adopt_write(op) copied it (the handle's caller waits
  // for the completion; its buffer is only at risk when that wait is cancelled).
  std::uint64_t begin_write_borrowed(std::uint64_t owner, std::uint64_t offset,
                                     std::span<const std::byte> data, Fua fua);
  // A borrowed write still in flight takes a copy of its bytes (no-op when owned or done).
  void adopt_write(std::uint64_t op);
  std::uint64_t begin_discard(std::uint64_t owner, std::uint64_t offset, std::uint64_t length);
  // Completes a write or discard: draws its faults and applies it. Errc::io on a
  // transient error (the write may then be applied whole, in part or not at all).
  Result<void> complete_write(std::uint64_t op);
  // Reads what the medium holds now. Errc::io on a transient or latent error.
  Result<void> complete_read(std::uint64_t offset, std::span<std::byte> out);
  // A flush submitted now covers every write completed so far: returns that watermark.
  std::uint64_t begin_flush();
  Result<void> complete_flush(std::uint64_t watermark);
  // The owner died; its writes in flight are settled in submission order, without faults.
  // DeathKind::kill: each is applied whole or dropped, drawn per write (the kernel finishes
  // the request or never started it). DeathKind::power_loss: each is dropped, applied
  // whole or torn (each sector independently old or new), a third of the time each; the
  // sectors that land are durable, a torn write is logged as power_loss_torn. Call it
  // before power_loss(), which then settles the cache.
  void settle_in_flight(std::uint64_t owner, DeathKind kind);
  std::size_t in_flight_count() const { return in_flight_.size(); }
  // A write or discard submitted and not completed yet (oracles: what may land next).
  struct InFlightWrite {
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    std::span<const std::byte> data;  // empty for a discard
    bool discard = false;
  };
  // In submission order; the spans stay valid until the next operation on the disk.
  std::vector<InFlightWrite> in_flight_writes() const;

  // ---- Power loss and crash states ----
  // Applies a random subset of the cached writes, torn per sector and reordered, drops
  // the rest, and empties the cache. The overloads without `random` use the disk's stream.
  void power_loss(Random& random);
  void power_loss();
  // All 2^n crash states when n <= 8 writes are cached, else k sampled ones (including
  // torn and reordered ones). Does not change the disk; a state stays valid until the
  // next write, flush, discard or power loss changes the pristine layer.
  std::vector<CrashState> crash_states(std::size_t k, Random& random) const;
  void read_crash_state(const CrashState& state, std::uint64_t offset,
                        std::span<std::byte> out) const;
  SparseImage crash_state_image(const CrashState& state) const;

  // ---- Inspection (tests and oracles; never from core code) ----
  // Pristine bytes a read would see (cache applied), without faults.
  void peek_current(std::uint64_t offset, std::span<std::byte> out) const;
  // Pristine bytes that survive a power loss dropping the whole cache.
  void peek_stable(std::uint64_t offset, std::span<std::byte> out) const;
  // What a read returns when it does not fail: pristine bytes with the overlays
  // (misdirected or lost content) applied while overlays are on.
  void peek_effective(std::uint64_t offset, std::span<std::byte> out) const;
  std::size_t pending_write_count() const { return pristine_.pending_count(); }
  const PristineDisk& pristine() const { return pristine_; }
  // ContentHasher value of the data area as peek_current shows it.
  std::uint64_t content_hash() const { return pristine_.current_hash(); }
  // ContentHasher value of what peek_stable shows.
  std::uint64_t stable_hash() const { return pristine_.stable().content_hash(); }

  // ---- Fault control ----
  // New fault probabilities; overlays are switched on again.
  void set_faults(const SimDiskFaults& faults);
  const SimDiskFaults& faults() const { return faults_; }
  // The liveness phase: no new faults (latency stays, the slow tail goes) and every
  // existing overlay (latent, misdirected, lost content) is switched off.
  void faults_off();
  bool overlays_on() const { return overlays_on_; }
  void clear_latent_errors();
  // Makes `sector` (an index, not a byte offset) fail reads until it is rewritten.
  void inject_latent_error(std::uint64_t sector);
  bool has_latent_error(std::uint64_t sector) const { return latent_.contains(sector); }
  std::size_t latent_error_count() const { return latent_.size(); }
  std::size_t overlay_sector_count() const { return overlay_.size(); }
  // The disk is swapped for an empty one: data, cache and overlays gone. Only while no
  // write is in flight (between incarnations).
  void replace_with_empty();

  const std::vector<SimDiskFaultRecord>& fault_log() const { return fault_log_; }
  std::uint64_t fault_count(SimDiskFaultKind kind) const;
  const SimDiskStats& stats() const { return stats_; }

 private:
  struct InFlight {
    std::uint64_t owner = 0;
    bool discard = false;
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    std::vector<std::byte> data;          // owned bytes, or empty while borrowed
    std::span<const std::byte> borrowed;  // the caller's bytes (begin_write_borrowed)
    Fua fua = Fua::no;

    std::span<const std::byte> bytes() const {
      return data.empty() ? borrowed : std::span<const std::byte>(data);
    }
  };

  std::uint64_t submit_write(std::uint64_t owner, std::uint64_t offset, std::uint64_t length,
                             Fua fua);
  void store(const InFlight& op, std::span<const std::byte> data, const SectorMask* mask);
  Result<void> fail_write(const InFlight& op);
  void lose_write(const InFlight& op);
  void misdirect_write(const InFlight& op);
  void capture_stale(std::uint64_t offset, std::uint64_t length);
  void maybe_create_latent(const InFlight& op);
  Result<void> complete_discard(const InFlight& op);
  void settle_killed(const InFlight& op);
  void settle_power_cut(const InFlight& op);
  void clear_overlays(std::uint64_t offset, const SectorMask& sectors);
  void log_power_loss(const CrashState& state);
  void record(SimDiskFaultKind kind, std::uint64_t offset, std::uint64_t length,
              std::uint64_t detail = 0);
  void trace(std::string_view kind, std::uint64_t a = 0, std::uint64_t b = 0);
  void check_range(std::uint64_t offset, std::uint64_t length) const;
  std::uint64_t sector_count(std::uint64_t length) const;
  void invariants() const;

  World& world_;
  std::string name_;
  std::uint64_t tag_;  // fnv1a(name), names the disk in the trace
  SimDiskOptions options_;
  SimDiskFaults faults_;
  Prng& random_;
  PristineDisk pristine_;
  // Overlays: faulty medium content by sector, and sectors that fail reads.
  std::map<std::uint64_t, std::vector<std::byte>> overlay_;
  std::set<std::uint64_t> latent_;
  bool overlays_on_ = true;
  std::map<std::uint64_t, InFlight> in_flight_;  // by operation id: submission order
  std::uint64_t next_op_ = 1;
  std::uint64_t next_owner_ = 1;
  std::vector<SimDiskFaultRecord> fault_log_;
  std::array<std::uint64_t, sim_disk_fault_kind_count> fault_counts_{};
  SimDiskStats stats_;
};

// A node incarnation's Disk on a SimDisk. Every operation suspends the calling fiber for
// the drawn latency and takes effect when it completes. Created by the node at each start
// (the node registers it as a resource); after mark_dead() calls fail with
// Errc::cancelled without suspending and no completion touches the node again.
class SimDiskHandle final : public Disk, public NodeResource {
 public:
  SimDiskHandle(World& world, SimNode& node, SimDisk& disk);
  ~SimDiskHandle() override;
  SimDiskHandle(const SimDiskHandle&) = delete;
  SimDiskHandle& operator=(const SimDiskHandle&) = delete;

  // Disk (core/io/disk.h): contracts as documented there. Misaligned or out-of-range
  // requests are asserted. A wait cancelled by the scheduler returns Errc::cancelled
  // while the operation itself still completes on the device (as a real I/O would).
  Result<void> read(std::uint64_t offset, std::span<std::byte> buffer) override;
  Result<void> write(std::uint64_t offset, std::span<const std::byte> data, Fua fua) override;
  Result<void> flush() override;
  Result<void> discard(std::uint64_t offset, std::uint64_t length) override;
  std::uint64_t size() const override { return disk_.size(); }
  DiskProperties properties() const override { return disk_.properties(); }

  // NodeResource: the node dies. Writes in flight are settled as SimDisk::settle_in_flight
  // says for `kind`; with DeathKind::power_loss the device then loses its volatile cache.
  // Idempotent.
  void mark_dead(DeathKind kind) override;
  bool dead() const { return dead_; }
  SimDisk& device() const { return disk_; }

 private:
  // Shared between a waiting fiber and its completion event. A read completes straight
  // into the caller's buffer (`read_target`) while the caller still waits; once its wait
  // was cancelled (`abandoned`) the buffer may be gone and the event reads into scratch.
  struct Completion {
    Result<void> result;
    std::span<std::byte> read_target;
    bool abandoned = false;
    bool done = false;
  };
  // Suspends the calling fiber for the drawn latency; then `complete(Completion&)`, a
  // callable returning Result<void>, runs from the completion event (sim_disk.cc).
  template <typename Completer>
  Result<void> await(std::string_view kind, const std::shared_ptr<Completion>& completion,
                     Completer complete);
  void check_request(std::uint64_t offset, std::uint64_t length) const;

  World& world_;
  SimNode& node_;
  SimDisk& disk_;
  std::uint64_t owner_;
  // Cleared by mark_dead() and the destructor; completion events check it first.
  std::shared_ptr<bool> alive_;
  bool dead_ = false;
};

}  // namespace hast::sim
