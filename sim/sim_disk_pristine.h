// The pristine layer of a simulated disk: a durable ("stable") image plus a volatile write
// cache, and the crash states the pair can fall into on power loss.
//
// Model (reference/fault-model.md §6.2, STYLE.md R11, after SQLite test6.c and
// FoundationDB AsyncFileNonDurable): the device keeps
// - `stable`: the bytes that survive a power loss, stored sparsely (chunks of
//   SparseImage::chunk_bytes, absent chunks read as zeroes), so a 1 GiB simulated disk
//   costs memory only for what was written, and compactly (sparse_image.h);
// - `cache`: the writes the device accepted but has not made durable, in acceptance order.
//   Reads see stable with the cache applied on top, oldest first.
// A write goes to the cache (or straight to stable without a volatile cache); a FUA write
// goes straight to stable and kills the overlapping sectors of every earlier cached write,
// so those can never land later and "resurrect" over it. make_durable(watermark) (a
// completed flush) moves every cached write accepted up to the watermark into stable, in
// order. A full cache destages its oldest write, as a real write-back cache does.
//
// Crash rule (the invariant every crash state satisfies): after a power loss every sector
// holds its last durable value or one of the values written to it since. A crash state is
// an ordered list of pieces, each a cached write and the subset of its live sectors that
// reaches stable (a torn write lands only some of its sectors; order may differ from
// acceptance order: reordering). Sector writes are atomic (the sector is the atomic unit).
//
// Faults (EIO, latent errors, misdirected or lost writes) are not here: they are overlays
// kept by SimDisk on top of this layer, so the liveness phase can switch them off.
// Pure data structure: no World, no clock; randomness only from the Random passed in.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "core/io/disk.h"
#include "core/io/random.h"
#include "sim/sector_units.h"
#include "sim/sparse_image.h"

namespace hast::sim {

// One bit per sector of a request: which sectors take part.
using SectorMask = std::vector<bool>;

// A write the device accepted and has not made durable. Its bytes are kept as units
// (sector_units.h: stamped and zero units as their 16-byte value), so destaging it moves
// heads, not bytes.
struct PendingWrite {
  std::uint64_t seq = 0;  // acceptance order, from 1
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  UnitRun units;    // one per unit_bytes of the write; none: the write stores zeroes
  SectorMask live;  // false once a later FUA write made the sector durable

  bool zeroes() const { return units.empty(); }
  std::size_t sector_count() const { return live.size(); }
  // Bytes the write stands for, as the cache bounds count them (0 for zeroes).
  std::uint64_t byte_count() const { return zeroes() ? 0 : length; }
  // Writes the write's bytes [position, position + out.size()) into `out`: whole units
  // within the write. Zeroes for a zeroes write.
  void read(std::uint64_t position, std::span<std::byte> out) const;
};

// One cached write (by its position in the cache) and the sectors of it that land.
struct CrashPiece {
  std::size_t index = 0;
  SectorMask sectors;  // a subset of the write's live sectors
};

// What stable would hold after a power loss: `pieces` applied over stable in order.
// Valid only while the pristine layer's generation() equals `generation`.
struct CrashState {
  std::uint64_t generation = 0;
  std::vector<CrashPiece> pieces;

  // True when some piece lands only part of its write's live sectors.
  bool torn(const std::deque<PendingWrite>& cache) const;
  // True when the pieces are not in acceptance order.
  bool reordered() const;
};

struct PristineOptions {
  std::uint64_t size_bytes = 0;
  std::uint32_t sector_size = 512;
  bool volatile_cache = true;
  // Bounds of the write cache; beyond either the oldest write is destaged.
  std::size_t cache_writes_max = 256;
  std::uint64_t cache_bytes_max = 64 * 1024 * 1024;
};

class PristineDisk {
 public:
  // Exhaustive crash-state enumeration is used up to this many cached writes.
  static constexpr std::size_t exhaustive_writes_max = 8;

  explicit PristineDisk(const PristineOptions& options);

  std::uint64_t size() const { return options_.size_bytes; }
  std::uint32_t sector_size() const { return options_.sector_size; }
  bool volatile_cache() const { return options_.volatile_cache; }

  // Accepts a write of `length` bytes at `offset`: `data` (length bytes), or zeroes when
  // `data` is empty. `mask` (one bit per sector, or null for all) selects the sectors
  // that are written, for a write torn by an error. With Fua::yes or without a volatile
  // cache the sectors are durable at once. Returns the write's sequence number (0 when
  // it went straight to stable). Offset and length are sector-aligned and in range.
  std::uint64_t accept(std::uint64_t offset, std::uint64_t length, std::span<const std::byte> data,
                       Fua fua, const SectorMask* mask = nullptr);

  // The sequence number of the newest accepted write: a flush issued now covers up to it.
  std::uint64_t watermark() const { return next_seq_ - 1; }
  // Makes every cached write with seq <= watermark durable (a flush completing).
  void make_durable(std::uint64_t watermark);

  // What a read sees: stable with the cache applied.
  void read_current(std::uint64_t offset, std::span<std::byte> out) const;
  // What survives if every cached write is lost.
  void read_stable(std::uint64_t offset, std::span<std::byte> out) const;

  const std::deque<PendingWrite>& cache() const { return cache_; }
  std::size_t pending_count() const { return cache_.size(); }
  // Changes whenever stable or the cache changes; crash states carry it.
  std::uint64_t generation() const { return generation_; }

  // ---- Crash states ----
  // Every subset of the cache (applied in acceptance order) when it holds at most
  // exhaustive_writes_max writes; otherwise `k` sampled states (drop all, apply all,
  // then prefixes, torn and reordered subsets). Does not change the disk.
  std::vector<CrashState> crash_states(std::size_t k, Random& random) const;
  // One state drawn as a power loss would draw it.
  CrashState sample_crash_state(Random& random) const;
  void read_crash_state(const CrashState& state, std::uint64_t offset,
                        std::span<std::byte> out) const;
  SparseImage crash_state_image(const CrashState& state) const;
  // Power loss: stable becomes `state` and the cache is emptied.
  void apply_crash_state(const CrashState& state);

  // ContentHasher value of the current view (stable with the cache applied).
  std::uint64_t current_hash() const;
  const SparseImage& stable() const { return stable_; }
  // An empty disk (replaced): stable zeroes, cache empty.
  void clear();

 private:
  SectorMask full_mask(std::uint64_t length) const;
  void kill_cached_sectors(std::uint64_t offset, const SectorMask& sectors);
  void apply_to(SparseImage& image, const PendingWrite& write, const SectorMask& sectors) const;
  // Writes the runs of `sectors` (one bit per sector from `offset`) of `data` into
  // `image`, or zeroes them when `data` is empty.
  void write_runs(SparseImage& image, std::uint64_t offset, std::span<const std::byte> data,
                  const SectorMask& sectors) const;
  void overlay_onto(const PendingWrite& write, const SectorMask& sectors, std::uint64_t offset,
                    std::span<std::byte> out) const;
  void destage_front();
  void check_range(std::uint64_t offset, std::uint64_t length) const;
  void invariants() const;

  PristineOptions options_;
  SparseImage stable_;
  std::deque<PendingWrite> cache_;
  std::uint64_t cache_bytes_ = 0;
  std::uint64_t next_seq_ = 1;
  std::uint64_t generation_ = 0;
};

}  // namespace hast::sim
