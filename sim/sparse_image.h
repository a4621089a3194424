// SparseImage: a simulated disk's image, stored sparsely and compactly.
//
// The image is cut in chunks of chunk_bytes, found through a two-level table (pages of
// page_chunks chunks, allocated on first use), so a lookup is two indexings and a 1 GiB
// image costs memory only for what was written. Absent chunks read as zeroes. Inside a
// chunk each 512-byte unit is kept as its value when it is a workload stamp or zeroes,
// else whole (sector_units.h): a chunk of stamped data costs 512 bytes, not 16 KiB, and
// reads give back exactly the bytes written.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "sim/byte_pool.h"
#include "sim/sector_units.h"

namespace hast::sim {

class SparseImage {
 public:
  static constexpr std::uint64_t chunk_bytes = 16 * 1024;
  static constexpr std::size_t chunk_units = chunk_bytes / unit_bytes;

  explicit SparseImage(std::uint64_t size_bytes);
  SparseImage(const SparseImage& other);
  SparseImage& operator=(const SparseImage& other);
  SparseImage(SparseImage&&) noexcept = default;
  SparseImage& operator=(SparseImage&&) noexcept = default;
  ~SparseImage() = default;

  std::uint64_t size() const { return size_; }
  // Copies bytes [offset, offset + out.size()) into `out`. The range lies within size().
  void read(std::uint64_t offset, std::span<std::byte> out) const;
  // Stores `data` at `offset`; both a whole number of units (unit_bytes), within size().
  void write(std::uint64_t offset, std::span<const std::byte> data);
  // Stores units [first, first + count) of `run` at `offset` (unit-aligned, within
  // size()), as they are kept there: nothing is encoded again.
  void write_units(std::uint64_t offset, const UnitRun& run, std::size_t first, std::size_t count);
  // Sets `length` bytes at `offset` (whole units) to zero, releasing the chunks it covers
  // whole.
  void zero(std::uint64_t offset, std::uint64_t length);
  void clear();
  // Chunks holding something (written since created, cleared or zeroed whole).
  std::size_t chunk_count() const { return chunk_count_; }
  // Units kept whole (not compact), over the image: tests and figures.
  std::uint64_t raw_unit_count() const;
  // Indices of the chunks holding something, ascending.
  std::vector<std::uint64_t> chunk_indices() const;
  // ContentHasher value over the image: equal bytes give equal hashes, whatever the
  // chunks that happen to be allocated.
  std::uint64_t content_hash() const;
  // A number that grows whenever a byte of chunk `index` may have changed (a write, zero
  // or clear touching it), so an unchanged stamp means unchanged bytes: an oracle skips
  // what it already compared. 0 for a chunk never touched since the image was created.
  std::uint64_t chunk_stamp(std::uint64_t index) const;
  // The first offset in [offset, offset + length) where this image and `other` (of the
  // same size) differ, or nullopt. Compares in place: equal compact units by their heads.
  std::optional<std::uint64_t> first_difference(const SparseImage& other, std::uint64_t offset,
                                                std::uint64_t length) const;

 private:
  struct Chunk {
    std::array<UnitHead, chunk_units> heads{};  // all zero while absent
    PoolBytes raw;                // chunk_bytes when a unit is raw (its bytes in place)
    std::uint32_t raw_units = 0;  // units whose head is raw
    bool present = false;         // counted in chunk_count_
    std::uint64_t stamp = 0;      // of its last change; kept after the chunk is released
  };
  static constexpr std::uint64_t page_chunks = 256;
  using Page = std::array<Chunk, page_chunks>;

  // The chunk's entry, or null when its page was never allocated.
  const Chunk* find(std::uint64_t index) const {
    const std::uint64_t page = index / page_chunks;
    if (page >= pages_.size() || !pages_[page]) return nullptr;
    return &(*pages_[page])[index % page_chunks];
  }
  // The chunk's entry, allocating its page when needed.
  Chunk& entry(std::uint64_t index);
  // The chunk's entry for a write: marked present, stamped.
  Chunk& written(std::uint64_t index);
  // Sets unit `u` of `chunk`: compact `head`, or the unit_bytes at `bytes` when head is raw.
  static void set_unit(Chunk& chunk, std::size_t u, const UnitHead& head, const std::byte* bytes);
  // Writes the bytes of unit `u` of `chunk` (null: absent) into `out` (unit_bytes).
  static void get_unit(const Chunk* chunk, std::size_t u, std::byte* out);
  // Releases a chunk's bytes and heads: it reads as zeroes.
  void release(Chunk& chunk);
  void touch(Chunk& chunk) { chunk.stamp = ++stamp_clock_; }
  // Calls fn(index, chunk) for every present chunk, ascending.
  template <typename Fn>
  void for_each_chunk(Fn&& fn) const;

  std::uint64_t size_;
  std::vector<std::unique_ptr<Page>> pages_;  // grown on demand, up to size_'s chunks
  std::size_t chunk_count_ = 0;
  std::uint64_t stamp_clock_ = 0;
  // Stamps below floor_ are stale: clear() changed everything at floor_.
  std::uint64_t floor_ = 0;
};

// Hash of a disk image fed chunk by chunk in ascending index order. All-zero chunks are
// skipped, so an absent chunk and a zeroed one hash alike.
class ContentHasher {
 public:
  void add_chunk(std::uint64_t index, std::span<const std::byte> bytes);
  std::uint64_t value() const { return state_; }

 private:
  std::uint64_t state_ = 0x243f6a8885a308d3ULL;
};

}  // namespace hast::sim
