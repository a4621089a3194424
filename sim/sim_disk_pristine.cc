// The pristine layer: sparse stable image, volatile write cache, crash states.
// See sim_disk_pristine.h for the model and the crash rule.
#include "sim/sim_disk_pristine.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <utility>

#include "core/assert.h"

namespace hast::sim {
namespace {

// Calls fn(first, count) for every run of consecutive set bits of `mask`, in order.
template <typename Fn>
void for_each_run(const SectorMask& mask, Fn&& fn) {
  std::size_t covered = 0;
  std::size_t i = 0;
  while (i < mask.size()) {
    if (!mask[i]) {
      i++;
      continue;
    }
    std::size_t first = i;
    while (i < mask.size() && mask[i]) {
      i++;
    }
    HAST_ASSERT(i > first);
    covered += i - first;
    fn(first, i - first);
  }
  HAST_ASSERT(covered <= mask.size());
}

}  // namespace

// ---- PendingWrite ----

void PendingWrite::read(std::uint64_t position, std::span<std::byte> out) const {
  HAST_ASSERT(position % unit_bytes == 0 && out.size() % unit_bytes == 0);
  HAST_ASSERT(position <= length && out.size() <= length - position);
  if (zeroes()) {
    std::memset(out.data(), 0, out.size());
    return;
  }
  units.read(position / unit_bytes, out);
}

// ---- CrashState ----

bool CrashState::torn(const std::deque<PendingWrite>& cache) const {
  for (const CrashPiece& piece : pieces) {
    HAST_ASSERT(piece.index < cache.size());
    HAST_ASSERT(piece.sectors.size() == cache[piece.index].live.size());
    if (piece.sectors != cache[piece.index].live) return true;
  }
  return false;
}

bool CrashState::reordered() const {
  for (std::size_t i = 1; i < pieces.size(); i++) {
    if (pieces[i].index < pieces[i - 1].index) return true;
  }
  return false;
}

// ---- PristineDisk ----

PristineDisk::PristineDisk(const PristineOptions& options)
    : options_(options), stable_(options.size_bytes) {
  HAST_ASSERT(options.sector_size >= 512);
  HAST_ASSERT((options.sector_size & (options.sector_size - 1)) == 0);
  HAST_ASSERT(options.sector_size <= SparseImage::chunk_bytes);
  HAST_ASSERT(options.size_bytes % options.sector_size == 0);
  HAST_ASSERT(options.cache_writes_max >= 1);
}

void PristineDisk::check_range(std::uint64_t offset, std::uint64_t length) const {
  HAST_ASSERT_MSG(offset % options_.sector_size == 0, "unaligned offset {}", offset);
  HAST_ASSERT_MSG(length % options_.sector_size == 0, "unaligned length {}", length);
  HAST_ASSERT_MSG(offset <= size() && length <= size() - offset,
                  "range {}+{} beyond the disk ({} bytes)", offset, length, size());
}

SectorMask PristineDisk::full_mask(std::uint64_t length) const {
  HAST_ASSERT(length % options_.sector_size == 0);
  return SectorMask(length / options_.sector_size, true);
}

std::uint64_t PristineDisk::accept(std::uint64_t offset, std::uint64_t length,
                                   std::span<const std::byte> data, Fua fua,
                                   const SectorMask* mask) {
  check_range(offset, length);
  HAST_ASSERT(data.empty() || data.size() == length);
  if (length == 0) return 0;
  generation_++;
  if (fua == Fua::yes || !options_.volatile_cache) {
    // Durable now: earlier cached writes must never land over these sectors later. The
    // bytes go straight to stable (no cached copy to make first).
    const SectorMask live = mask != nullptr ? *mask : full_mask(length);
    HAST_ASSERT(live.size() == length / options_.sector_size);
    kill_cached_sectors(offset, live);
    write_runs(stable_, offset, data, live);
    return 0;
  }
  PendingWrite write;
  write.offset = offset;
  write.length = length;
  if (!data.empty()) write.units = UnitRun(data);  // the one copy the device keeps
  write.live = mask != nullptr ? *mask : full_mask(length);
  HAST_ASSERT(write.live.size() == length / options_.sector_size);
  write.seq = next_seq_++;
  cache_bytes_ += write.byte_count();
  cache_.push_back(std::move(write));
  while (cache_.size() > options_.cache_writes_max ||
         (cache_.size() > 1 && cache_bytes_ > options_.cache_bytes_max)) {
    destage_front();
  }
  invariants();
  return cache_.back().seq;
}

void PristineDisk::kill_cached_sectors(std::uint64_t offset, const SectorMask& sectors) {
  const std::uint64_t sector = options_.sector_size;
  const std::uint64_t end = offset + sectors.size() * sector;
  HAST_ASSERT(offset % sector == 0);
  for (PendingWrite& cached : cache_) {
    if (cached.offset >= end || cached.offset + cached.length <= offset) continue;
    for (std::size_t i = 0; i < cached.live.size(); i++) {
      const std::uint64_t position = cached.offset + i * sector;
      if (position < offset || position >= end) continue;
      if (sectors[(position - offset) / sector]) cached.live[i] = false;
    }
  }
  HAST_ASSERT(end <= size());
}

void PristineDisk::apply_to(SparseImage& image, const PendingWrite& write,
                            const SectorMask& sectors) const {
  HAST_ASSERT(sectors.size() == write.sector_count());
  HAST_ASSERT(write.zeroes() || write.units.size() * unit_bytes == write.length);
  const std::uint64_t sector = options_.sector_size;
  const std::uint64_t per_sector = sector / unit_bytes;
  for_each_run(sectors, [&](std::size_t first, std::size_t count) {
    const std::uint64_t at = write.offset + first * sector;
    if (write.zeroes()) {
      image.zero(at, count * sector);
    } else {
      image.write_units(at, write.units, first * per_sector, count * per_sector);
    }
  });
}

void PristineDisk::write_runs(SparseImage& image, std::uint64_t offset,
                              std::span<const std::byte> data, const SectorMask& sectors) const {
  HAST_ASSERT(data.empty() || data.size() == sectors.size() * options_.sector_size);
  const std::uint64_t sector = options_.sector_size;
  for_each_run(sectors, [&](std::size_t first, std::size_t count) {
    if (data.empty()) {
      image.zero(offset + first * sector, count * sector);
    } else {
      image.write(offset + first * sector, data.subspan(first * sector, count * sector));
    }
  });
}

void PristineDisk::overlay_onto(const PendingWrite& write, const SectorMask& sectors,
                                std::uint64_t offset, std::span<std::byte> out) const {
  HAST_ASSERT(sectors.size() == write.sector_count());
  HAST_ASSERT(offset % options_.sector_size == 0);
  const std::uint64_t end = offset + out.size();
  if (write.offset >= end || write.offset + write.length <= offset) return;
  const std::uint64_t sector = options_.sector_size;
  // The write's sectors inside [offset, end), expanded a run of set bits at a time.
  const std::size_t first = offset > write.offset ? (offset - write.offset) / sector : 0;
  const std::size_t last = std::min<std::size_t>(sectors.size(), (end - write.offset) / sector);
  std::size_t i = first;
  while (i < last) {
    if (!sectors[i]) {
      i++;
      continue;
    }
    std::size_t run_end = i + 1;
    while (run_end < last && sectors[run_end]) {
      run_end++;
    }
    const std::uint64_t position = i * sector;  // from the write's start
    const std::uint64_t stop = run_end * sector;
    write.read(position, out.subspan(write.offset + position - offset, stop - position));
    i = run_end;
  }
}

void PristineDisk::destage_front() {
  HAST_ASSERT(!cache_.empty());
  PendingWrite& front = cache_.front();
  apply_to(stable_, front, front.live);
  HAST_ASSERT(cache_bytes_ >= front.byte_count());
  cache_bytes_ -= front.byte_count();
  cache_.pop_front();
  generation_++;
}

void PristineDisk::make_durable(std::uint64_t watermark) {
  HAST_ASSERT(watermark < next_seq_);
  while (!cache_.empty() && cache_.front().seq <= watermark)
    destage_front();
  HAST_ASSERT(cache_.empty() || cache_.front().seq > watermark);
  invariants();
}

void PristineDisk::read_current(std::uint64_t offset, std::span<std::byte> out) const {
  check_range(offset, out.size());
  stable_.read(offset, out);
  for (const PendingWrite& write : cache_)
    overlay_onto(write, write.live, offset, out);
}

void PristineDisk::read_stable(std::uint64_t offset, std::span<std::byte> out) const {
  check_range(offset, out.size());
  stable_.read(offset, out);
}

std::vector<CrashState> PristineDisk::crash_states(std::size_t k, Random& random) const {
  std::vector<CrashState> states;
  const std::size_t n = cache_.size();
  if (n <= exhaustive_writes_max) {
    // All 2^n subsets, each applied in acceptance order.
    for (std::uint64_t subset = 0; subset < (std::uint64_t{1} << n); subset++) {
      CrashState state;
      state.generation = generation_;
      for (std::size_t i = 0; i < n; i++) {
        if ((subset >> i) & 1) state.pieces.push_back(CrashPiece{i, cache_[i].live});
      }
      states.push_back(std::move(state));
    }
    HAST_ASSERT(states.size() == (std::size_t{1} << n));
    return states;
  }
  // The two extremes first, then samples.
  for (std::size_t i = 0; i < k; i++) {
    CrashState state;
    state.generation = generation_;
    if (i == 1) {
      for (std::size_t w = 0; w < n; w++)
        state.pieces.push_back(CrashPiece{w, cache_[w].live});
    } else if (i > 1) {
      state = sample_crash_state(random);
    }
    states.push_back(std::move(state));
  }
  HAST_ASSERT(states.size() == k);
  return states;
}

CrashState PristineDisk::sample_crash_state(Random& random) const {
  CrashState state;
  state.generation = generation_;
  const std::size_t n = cache_.size();
  HAST_ASSERT(n <= options_.cache_writes_max);
  if (n == 0) return state;
  const std::uint64_t shape = uniform(random, 0, 7);
  if (shape == 0) return state;  // every cached write lost
  if (shape <= 3) {
    // A prefix in acceptance order (shape 1: all of it), as an in-order destage leaves.
    const std::size_t count = shape == 1 ? n : uniform(random, 0, n);
    for (std::size_t i = 0; i < count; i++)
      state.pieces.push_back(CrashPiece{i, cache_[i].live});
    return state;
  }
  // Each write dropped, applied whole or torn at sector granularity.
  for (std::size_t i = 0; i < n; i++) {
    const std::uint64_t fate = uniform(random, 0, 2);
    if (fate == 0) continue;
    CrashPiece piece{i, cache_[i].live};
    if (fate == 2) {
      for (std::size_t s = 0; s < piece.sectors.size(); s++) {
        if (piece.sectors[s] && chance(random, 0.5)) piece.sectors[s] = false;
      }
    }
    state.pieces.push_back(std::move(piece));
  }
  // Reordering: the pieces land in a random order half of the time.
  if (state.pieces.size() > 1 && chance(random, 0.5)) {
    for (std::size_t i = state.pieces.size() - 1; i > 0; i--) {
      std::swap(state.pieces[i], state.pieces[uniform(random, 0, i)]);
    }
  }
  HAST_ASSERT(state.pieces.size() <= n);
  return state;
}

void PristineDisk::read_crash_state(const CrashState& state, std::uint64_t offset,
                                    std::span<std::byte> out) const {
  HAST_ASSERT_MSG(state.generation == generation_, "stale crash state");
  check_range(offset, out.size());
  stable_.read(offset, out);
  for (const CrashPiece& piece : state.pieces) {
    HAST_ASSERT(piece.index < cache_.size());
    overlay_onto(cache_[piece.index], piece.sectors, offset, out);
  }
}

SparseImage PristineDisk::crash_state_image(const CrashState& state) const {
  HAST_ASSERT_MSG(state.generation == generation_, "stale crash state");
  SparseImage image = stable_;
  for (const CrashPiece& piece : state.pieces) {
    HAST_ASSERT(piece.index < cache_.size());
    apply_to(image, cache_[piece.index], piece.sectors);
  }
  return image;
}

void PristineDisk::apply_crash_state(const CrashState& state) {
  HAST_ASSERT_MSG(state.generation == generation_, "stale crash state");
  for (const CrashPiece& piece : state.pieces) {
    HAST_ASSERT(piece.index < cache_.size());
    apply_to(stable_, cache_[piece.index], piece.sectors);
  }
  cache_.clear();
  cache_bytes_ = 0;
  generation_++;
  invariants();
}

std::uint64_t PristineDisk::current_hash() const {
  // The chunks that can be non-zero: allocated in stable or touched by a cached write.
  std::set<std::uint64_t> indices;
  for (std::uint64_t index : stable_.chunk_indices())
    indices.insert(index);
  for (const PendingWrite& write : cache_) {
    const std::uint64_t last = (write.offset + write.length - 1) / SparseImage::chunk_bytes;
    for (std::uint64_t i = write.offset / SparseImage::chunk_bytes; i <= last; i++) {
      indices.insert(i);
    }
  }
  HAST_ASSERT(indices.empty() || *indices.rbegin() * SparseImage::chunk_bytes < size());
  ContentHasher hasher;
  std::vector<std::byte> chunk(SparseImage::chunk_bytes);
  for (std::uint64_t index : indices) {
    const std::uint64_t start = index * SparseImage::chunk_bytes;
    const std::uint64_t count = std::min(SparseImage::chunk_bytes, size() - start);
    std::fill(chunk.begin(), chunk.end(), std::byte{0});
    read_current(start, std::span(chunk).first(count));
    hasher.add_chunk(index, chunk);
  }
  HAST_ASSERT(indices.size() >= stable_.chunk_count());
  return hasher.value();
}

void PristineDisk::clear() {
  stable_.clear();
  cache_.clear();
  cache_bytes_ = 0;
  generation_++;
  HAST_ASSERT(stable_.chunk_count() == 0);
  invariants();
}

void PristineDisk::invariants() const {
  HAST_ASSERT(cache_.size() <= options_.cache_writes_max);
  HAST_ASSERT(options_.volatile_cache || cache_.empty());
  HAST_ASSERT(cache_.empty() || cache_.back().seq < next_seq_);
}

}  // namespace hast::sim
