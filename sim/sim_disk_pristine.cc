// The pristine layer: sparse stable image, volatile write cache, crash states.
// See sim_disk_pristine.h for the model and the crash rule.
#include "sim/sim_disk_pristine.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <utility>

#include "core/assert.h"
#include "sim/byte_pool.h"

namespace hast::sim {
namespace {

static_assert(SparseImage::chunk_bytes == BytePool::buffer_bytes,
              "stable chunks and cache pieces are recycled through the BytePool");

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

std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

bool all_zero(std::span<const std::byte> bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; });
}

}  // namespace

// ---- SparseImage ----

SparseImage::SparseImage(std::uint64_t size_bytes) : size_(size_bytes) {
  HAST_ASSERT(size_bytes > 0);
  HAST_ASSERT(size_bytes % 512 == 0);
}

SparseImage::SparseImage(const SparseImage& other)
    : size_(other.size_),
      chunk_count_(other.chunk_count_),
      stamp_clock_(other.stamp_clock_),
      floor_(other.floor_) {
  pages_.reserve(other.pages_.size());
  for (const auto& page : other.pages_)
    pages_.push_back(page ? std::make_unique<Page>(*page) : nullptr);
}

SparseImage& SparseImage::operator=(const SparseImage& other) {
  if (this != &other) *this = SparseImage(other);
  return *this;
}

SparseImage::Chunk& SparseImage::entry(std::uint64_t index) {
  HAST_ASSERT(index * chunk_bytes < size_);
  const std::uint64_t page = index / page_chunks;
  if (page >= pages_.size()) pages_.resize(page + 1);
  if (!pages_[page]) pages_[page] = std::make_unique<Page>();
  return (*pages_[page])[index % page_chunks];
}

template <typename Fn>
void SparseImage::for_each_chunk(Fn&& fn) const {
  for (std::uint64_t page = 0; page < pages_.size(); page++) {
    if (!pages_[page]) continue;
    for (std::uint64_t k = 0; k < page_chunks; k++) {
      const Chunk& chunk = (*pages_[page])[k];
      if (!chunk.bytes.empty()) fn(page * page_chunks + k, std::span<const std::byte>(chunk.bytes));
    }
  }
}

void SparseImage::read(std::uint64_t offset, std::span<std::byte> out) const {
  HAST_ASSERT(offset <= size_);
  HAST_ASSERT(out.size() <= size_ - offset);
  std::uint64_t done = 0;
  while (done < out.size()) {
    const std::uint64_t position = offset + done;
    const std::uint64_t within = position % chunk_bytes;
    const std::uint64_t count = std::min<std::uint64_t>(chunk_bytes - within, out.size() - done);
    const std::byte* bytes = chunk_data(position / chunk_bytes);
    if (bytes == nullptr) {
      std::memset(out.data() + done, 0, count);
    } else {
      std::memcpy(out.data() + done, bytes + within, count);
    }
    done += count;
  }
}

void SparseImage::write(std::uint64_t offset, std::span<const std::byte> data) {
  HAST_ASSERT(offset <= size_);
  HAST_ASSERT(data.size() <= size_ - offset);
  std::uint64_t done = 0;
  while (done < data.size()) {
    const std::uint64_t position = offset + done;
    const std::uint64_t within = position % chunk_bytes;
    const std::uint64_t count = std::min<std::uint64_t>(chunk_bytes - within, data.size() - done);
    Chunk& chunk = entry(position / chunk_bytes);
    if (chunk.bytes.empty()) {
      chunk_count_++;
      if (count == chunk_bytes) {
        chunk.bytes = BytePool::copy_of(data.subspan(done, count));
      } else {
        chunk.bytes = BytePool::zeroes();
        std::memcpy(chunk.bytes.data() + within, data.data() + done, count);
      }
    } else {
      std::memcpy(chunk.bytes.data() + within, data.data() + done, count);
    }
    touch(chunk);
    done += count;
  }
}

void SparseImage::zero(std::uint64_t offset, std::uint64_t length) {
  HAST_ASSERT(offset <= size_);
  HAST_ASSERT(length <= size_ - offset);
  if (length == 0) return;
  const std::uint64_t end = offset + length;
  // Only allocated chunks need work; absent pages are skipped whole, which keeps a 1 GiB
  // discard cheap.
  for (std::uint64_t index = offset / chunk_bytes; index * chunk_bytes < end;) {
    const std::uint64_t page = index / page_chunks;
    if (page >= pages_.size()) break;
    if (!pages_[page]) {
      index = (page + 1) * page_chunks;
      continue;
    }
    Chunk& chunk = (*pages_[page])[index % page_chunks];
    if (!chunk.bytes.empty()) {
      const std::uint64_t chunk_start = index * chunk_bytes;
      const std::uint64_t from = std::max(offset, chunk_start);
      const std::uint64_t to = std::min(end, chunk_start + chunk_bytes);
      touch(chunk);
      if (from == chunk_start && to == chunk_start + chunk_bytes) {
        BytePool::give(std::move(chunk.bytes));
        chunk.bytes.clear();
        chunk_count_--;
      } else {
        std::memset(chunk.bytes.data() + (from - chunk_start), 0, to - from);
      }
    }
    index++;
  }
}

std::uint64_t SparseImage::chunk_stamp(std::uint64_t index) const {
  HAST_ASSERT(index * chunk_bytes < size_);
  const Chunk* chunk = find(index);
  return chunk == nullptr ? floor_ : std::max(floor_, chunk->stamp);
}

std::optional<std::uint64_t> SparseImage::first_difference(const SparseImage& other,
                                                           std::uint64_t offset,
                                                           std::uint64_t length) const {
  HAST_ASSERT(other.size_ == size_);
  HAST_ASSERT(offset <= size_ && length <= size_ - offset);
  static const std::vector<std::byte> zeroes(chunk_bytes);
  for (std::uint64_t done = 0; done < length;) {
    const std::uint64_t position = offset + done;
    const std::uint64_t within = position % chunk_bytes;
    const std::uint64_t count = std::min<std::uint64_t>(chunk_bytes - within, length - done);
    const std::byte* mine = chunk_data(position / chunk_bytes);
    const std::byte* theirs = other.chunk_data(position / chunk_bytes);
    const std::byte* a = (mine == nullptr ? zeroes.data() : mine) + within;
    const std::byte* b = (theirs == nullptr ? zeroes.data() : theirs) + within;
    if (a != b && std::memcmp(a, b, count) != 0) {
      return position + static_cast<std::uint64_t>(std::mismatch(a, a + count, b).first - a);
    }
    done += count;
  }
  return std::nullopt;
}

std::vector<std::uint64_t> SparseImage::chunk_indices() const {
  std::vector<std::uint64_t> indices;
  indices.reserve(chunk_count_);
  for_each_chunk(
      [&](std::uint64_t index, std::span<const std::byte>) { indices.push_back(index); });
  HAST_ASSERT(indices.size() == chunk_count_);
  HAST_ASSERT(std::is_sorted(indices.begin(), indices.end()));
  return indices;
}

std::uint64_t SparseImage::content_hash() const {
  ContentHasher hasher;
  for_each_chunk([&](std::uint64_t index, std::span<const std::byte> bytes) {
    hasher.add_chunk(index, bytes);
  });
  return hasher.value();
}

void ContentHasher::add_chunk(std::uint64_t index, std::span<const std::byte> bytes) {
  HAST_ASSERT(bytes.size() == SparseImage::chunk_bytes);
  HAST_ASSERT(bytes.size() % 8 == 0);
  if (all_zero(bytes)) return;
  std::uint64_t state = mix64(state_ ^ index);
  for (std::size_t i = 0; i < bytes.size(); i += 8) {
    std::uint64_t word = 0;
    std::memcpy(&word, bytes.data() + i, 8);
    state = (state ^ word) * 0x100000001b3ULL;
    state ^= state >> 29;
  }
  state_ = mix64(state + index);
}

void SparseImage::adopt_chunk(std::uint64_t index, PoolBytes&& bytes) {
  HAST_ASSERT(bytes.size() == chunk_bytes);
  HAST_ASSERT((index + 1) * chunk_bytes <= size_);
  Chunk& chunk = entry(index);
  if (chunk.bytes.empty()) {
    chunk_count_++;
  } else {
    BytePool::give(std::move(chunk.bytes));
  }
  chunk.bytes = std::move(bytes);
  touch(chunk);
}

// ---- PendingWrite ----

const std::byte* PendingWrite::bytes_at(std::uint64_t position) const {
  HAST_ASSERT(!zeroes());
  HAST_ASSERT(position < length);
  const std::uint64_t chunk = SparseImage::chunk_bytes;
  const std::uint64_t k = (offset + position) / chunk - offset / chunk;
  HAST_ASSERT(k < pieces.size());
  const std::uint64_t local = (offset + position) % chunk - (k == 0 ? offset % chunk : 0);
  HAST_ASSERT(local < pieces[k].size());
  return pieces[k].data() + local;
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
  // Split at chunk boundaries (the one copy of the bytes the device keeps).
  if (!data.empty()) {
    write.pieces.reserve((offset + length - 1) / SparseImage::chunk_bytes -
                         offset / SparseImage::chunk_bytes + 1);
  }
  for (std::uint64_t done = 0; done < data.size();) {
    const std::uint64_t within = (offset + done) % SparseImage::chunk_bytes;
    const std::uint64_t count =
        std::min<std::uint64_t>(SparseImage::chunk_bytes - within, data.size() - done);
    write.pieces.push_back(BytePool::copy_of(data.subspan(done, count)));
    done += count;
  }
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
  HAST_ASSERT(write.zeroes() || write.pieces.size() >= 1);
  const std::uint64_t sector = options_.sector_size;
  for_each_run(sectors, [&](std::size_t first, std::size_t count) {
    const std::uint64_t at = write.offset + first * sector;
    if (write.zeroes()) {
      image.zero(at, count * sector);
      return;
    }
    // A run may span chunk pieces: write it piece by piece.
    const std::uint64_t end = (first + count) * sector;
    for (std::uint64_t position = first * sector; position < end;) {
      const std::uint64_t within = (write.offset + position) % SparseImage::chunk_bytes;
      const std::uint64_t part = std::min(SparseImage::chunk_bytes - within, end - position);
      image.write(write.offset + position, std::span(write.bytes_at(position), part));
      position += part;
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
  // The write's sectors inside [offset, end), copied a run of set bits at a time (each
  // run split where the write's chunk pieces end).
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
    std::uint64_t position = i * sector;  // from the write's start
    const std::uint64_t stop = run_end * sector;
    std::byte* target = out.data() + (write.offset + position - offset);
    if (write.zeroes()) {
      std::memset(target, 0, stop - position);
    } else {
      while (position < stop) {
        const std::uint64_t within = (write.offset + position) % SparseImage::chunk_bytes;
        const std::uint64_t part = std::min(SparseImage::chunk_bytes - within, stop - position);
        std::memcpy(target, write.bytes_at(position), part);
        target += part;
        position += part;
      }
    }
    i = run_end;
  }
}

void PristineDisk::destage_front() {
  HAST_ASSERT(!cache_.empty());
  PendingWrite& front = cache_.front();
  const bool whole = std::all_of(front.live.begin(), front.live.end(), [](bool b) { return b; });
  if (whole && !front.zeroes()) {
    // Pieces that fill a chunk replace it as they are; the others are copied in.
    const std::uint64_t first_chunk = front.offset / SparseImage::chunk_bytes;
    std::uint64_t position = 0;
    for (std::size_t k = 0; k < front.pieces.size(); k++) {
      PoolBytes& piece = front.pieces[k];
      const std::uint64_t size = piece.size();
      if (size == SparseImage::chunk_bytes) {
        stable_.adopt_chunk(first_chunk + k, std::move(piece));
      } else {
        stable_.write(front.offset + position, piece);
      }
      position += size;
    }
    HAST_ASSERT(position == front.length);
  } else {
    apply_to(stable_, front, front.live);
  }
  HAST_ASSERT(cache_bytes_ >= front.byte_count());
  cache_bytes_ -= front.byte_count();
  for (PoolBytes& piece : front.pieces)
    BytePool::give(std::move(piece));
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
