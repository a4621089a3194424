// Bitmap storage and its LSB-first serialisation.
#include "core/meta/bitmap.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "core/assert.h"

namespace hast::meta {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the bitmap's byte form is its words' memory order on a little-endian host");

constexpr std::uint64_t word_bits = 64;

}  // namespace

Bitmap::Bitmap(std::uint64_t bit_count)
    : bit_count_(bit_count), words_((bit_count + word_bits - 1) / word_bits, 0) {
  HAST_ASSERT(words_.size() * word_bits >= bit_count_);
}

bool Bitmap::test(std::uint64_t bit) const {
  HAST_ASSERT(bit < bit_count_);
  return (words_[bit / word_bits] >> (bit % word_bits)) & 1;
}

void Bitmap::set(std::uint64_t bit) {
  HAST_ASSERT(bit < bit_count_);
  words_[bit / word_bits] |= std::uint64_t{1} << (bit % word_bits);
}

void Bitmap::clear(std::uint64_t bit) {
  HAST_ASSERT(bit < bit_count_);
  words_[bit / word_bits] &= ~(std::uint64_t{1} << (bit % word_bits));
}

void Bitmap::set_all() {
  for (auto& word : words_)
    word = ~std::uint64_t{0};
  clear_tail();
}

void Bitmap::clear_all() {
  for (auto& word : words_)
    word = 0;
}

void Bitmap::clear_tail() {
  std::uint64_t used = bit_count_ % word_bits;
  if (used != 0) words_.back() &= (std::uint64_t{1} << used) - 1;
}

std::uint64_t Bitmap::count() const {
  std::uint64_t total = 0;
  for (auto word : words_)
    total += static_cast<std::uint64_t>(std::popcount(word));
  HAST_ASSERT(total <= bit_count_);
  return total;
}

bool Bitmap::any() const {
  for (auto word : words_) {
    if (word != 0) return true;
  }
  return false;
}

std::optional<std::uint64_t> Bitmap::find_next(std::uint64_t from) const {
  if (from >= bit_count_) return std::nullopt;
  std::uint64_t index = from / word_bits;
  std::uint64_t word = words_[index] & (~std::uint64_t{0} << (from % word_bits));
  while (word == 0) {
    index++;
    if (index == words_.size()) return std::nullopt;
    word = words_[index];
  }
  std::uint64_t bit = index * word_bits + static_cast<std::uint64_t>(std::countr_zero(word));
  HAST_ASSERT(bit >= from);
  HAST_ASSERT(bit < bit_count_);  // the tail past size() is kept clear
  return bit;
}

void Bitmap::store(std::span<std::byte> out) const {
  HAST_ASSERT(out.size() >= byte_size());
  std::fill(out.begin(), out.end(), std::byte{0});
  if (byte_size() > 0) std::memcpy(out.data(), words_.data(), byte_size());
  HAST_ASSERT(byte_size() <= words_.size() * sizeof(std::uint64_t));
}

void Bitmap::load(std::span<const std::byte> in) {
  HAST_ASSERT(in.size() >= byte_size());
  clear_all();
  if (byte_size() > 0) std::memcpy(words_.data(), in.data(), byte_size());
  clear_tail();
  HAST_ASSERT(count() <= bit_count_);
}

}  // namespace hast::meta
