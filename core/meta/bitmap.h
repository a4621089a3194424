// Bitmap: a fixed-size set of extent bits, the building block of the activemap.
//
// Model: bit n is bit (n % 64) of 64-bit word n / 64. Serialised as FreeBSD's bitstring on
// a little-endian host (reference/hast-spec.md §4.3): byte k holds bits 8k..8k+7, least
// significant bit first, which is the words' little-endian byte order. Bits at or past
// size() are always zero in memory. All storage is allocated by the constructor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace hast::meta {

class Bitmap {
 public:
  explicit Bitmap(std::uint64_t bit_count);

  std::uint64_t size() const { return bit_count_; }
  bool test(std::uint64_t bit) const;
  void set(std::uint64_t bit);
  void clear(std::uint64_t bit);
  void set_all();
  void clear_all();
  // Number of set bits (a scan of every word).
  std::uint64_t count() const;
  bool any() const;
  // The first set bit at or after `from`, or nullopt.
  std::optional<std::uint64_t> find_next(std::uint64_t from) const;

  // Writes the bits LSB-first into `out`, which holds at least ceil(size/8) bytes; bytes
  // past the bits are zeroed.
  void store(std::span<std::byte> out) const;
  // Replaces the bits with the first size() bits of `in` (LSB-first). `in` holds at least
  // ceil(size/8) bytes (asserted); bits and bytes past size() are ignored.
  void load(std::span<const std::byte> in);
  // Bytes needed to store size() bits: ceil(size / 8).
  std::uint64_t byte_size() const { return (bit_count_ + 7) / 8; }

  friend bool operator==(const Bitmap&, const Bitmap&) = default;

 private:
  void clear_tail();

  std::uint64_t bit_count_;
  std::vector<std::uint64_t> words_;
};

}  // namespace hast::meta
