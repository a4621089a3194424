// Random: a node's source of random numbers.
//
// Model: injected per node. In simulation every node draws from its own stream derived
// from the world seed, so a run is reproducible and adding draws on one node does not
// disturb another. In production the source is the kernel's (getrandom). Core code
// never seeds or reads a global generator.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace hast {

class Random {
 public:
  virtual ~Random() = default;

  // 64 uniformly distributed bits. Does not suspend and cannot fail.
  virtual std::uint64_t next_u64() = 0;
};

// A uniformly distributed integer in [low, high] (both inclusive). Requires low <= high.
std::uint64_t uniform(Random& random, std::uint64_t low, std::uint64_t high);

// True with probability `p` (p <= 0 never, p >= 1 always).
bool chance(Random& random, double p);

// A uniformly distributed double in [0, 1).
double unit_interval(Random& random);

// Fills `out` with random bytes.
void fill_random(Random& random, std::span<std::byte> out);

}  // namespace hast
