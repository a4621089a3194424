// xoshiro256** (Blackman and Vigna, public domain algorithm), written from its definition.
#include "core/prng.h"

#include <algorithm>
#include <cstring>

#include "core/assert.h"

namespace hast {
namespace {

std::uint64_t rotl(std::uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

}  // namespace

std::uint64_t splitmix64(std::uint64_t& state) {
  state += 0x9e3779b97f4a7c15ULL;
  std::uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::uint64_t fnv1a(std::string_view text) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

std::uint64_t derive_seed(std::uint64_t seed, std::string_view stream) {
  std::uint64_t state = seed ^ fnv1a(stream);
  splitmix64(state);
  return splitmix64(state);
}

Prng::Prng(std::uint64_t seed) {
  std::uint64_t state = seed;
  for (auto& word : state_)
    word = splitmix64(state);
  HAST_ASSERT(std::any_of(state_.begin(), state_.end(), [](auto w) { return w != 0; }));
}

std::uint64_t Prng::next_u64() {
  const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
  const std::uint64_t t = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= t;
  state_[3] = rotl(state_[3], 45);
  return result;
}

std::uint64_t uniform(Random& random, std::uint64_t low, std::uint64_t high) {
  HAST_ASSERT(low <= high);
  const std::uint64_t span = high - low;
  if (span == UINT64_MAX) return random.next_u64();
  const std::uint64_t range = span + 1;
  // Rejection sampling keeps the distribution exactly uniform.
  const std::uint64_t limit = UINT64_MAX - UINT64_MAX % range;
  std::uint64_t draw = random.next_u64();
  while (draw >= limit)
    draw = random.next_u64();
  return low + draw % range;
}

double unit_interval(Random& random) {
  return static_cast<double>(random.next_u64() >> 11) * 0x1.0p-53;
}

bool chance(Random& random, double p) {
  if (p <= 0.0) return false;
  if (p >= 1.0) return true;
  return unit_interval(random) < p;
}

void fill_random(Random& random, std::span<std::byte> out) {
  std::size_t done = 0;
  while (done < out.size()) {
    std::uint64_t word = random.next_u64();
    std::size_t n = std::min(out.size() - done, sizeof(word));
    std::memcpy(out.data() + done, &word, n);
    done += n;
  }
}

}  // namespace hast
