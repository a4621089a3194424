// Prng: determinism, stream independence, uniform ranges.
#include <array>
#include <set>

#include <catch2/catch.hpp>

#include "core/prng.h"
#include "tests/support/property.h"

TEST_CASE("Prng: same seed same stream; derived streams differ", "[unit][prng]") {
  hast::Prng a(42), b(42), c(43);
  bool differs = false;
  for (int i = 0; i < 100; i++) {
    auto x = a.next_u64();
    CHECK(x == b.next_u64());
    differs = differs || x != c.next_u64();
  }
  CHECK(differs);
  CHECK(hast::derive_seed(1, "disk/a") != hast::derive_seed(1, "disk/b"));
  CHECK(hast::derive_seed(1, "disk/a") != hast::derive_seed(2, "disk/a"));
  CHECK(hast::derive_seed(1, "disk/a") == hast::derive_seed(1, "disk/a"));
}

TEST_CASE("Prng: uniform stays in range and reaches both ends", "[unit][prng]") {
  hast::test::property("uniform(low, high) lies in [low, high]",
                       [](std::uint64_t seed, std::uint32_t low, std::uint16_t width) {
                         hast::Prng random(seed);
                         std::uint64_t high = std::uint64_t{low} + width;
                         for (int i = 0; i < 50; i++) {
                           auto value = hast::uniform(random, low, high);
                           RC_ASSERT(value >= low);
                           RC_ASSERT(value <= high);
                         }
                       });
  hast::Prng random(7);
  std::set<std::uint64_t> seen;
  for (int i = 0; i < 1000; i++)
    seen.insert(hast::uniform(random, 3, 6));
  CHECK(seen == std::set<std::uint64_t>{3, 4, 5, 6});
  CHECK(!hast::chance(random, 0.0));
  CHECK(hast::chance(random, 1.0));
}
