// Prng: a small, fast, seedable pseudo-random generator (xoshiro256**, seeded through
// SplitMix64), and the derivation of independent streams from one seed.
//
// Pure computation: the simulator gives every node and every subsystem its own stream
// (derive_seed(world_seed, stream)), so adding draws in one place does not reshuffle
// the others (reference/fault-model.md §3.7).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "core/io/random.h"

namespace hast {

// SplitMix64 step: advances `state` and returns the next output.
std::uint64_t splitmix64(std::uint64_t& state);

// A seed for stream `stream` of the run seeded with `seed`.
std::uint64_t derive_seed(std::uint64_t seed, std::string_view stream);

// FNV-1a over `text`, for stable names-to-numbers (never for security).
std::uint64_t fnv1a(std::string_view text);

class Prng final : public Random {
 public:
  explicit Prng(std::uint64_t seed);
  std::uint64_t next_u64() override;

 private:
  std::array<std::uint64_t, 4> state_{};
};

}  // namespace hast
