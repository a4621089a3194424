// The body of a stamped sector (see stamp_body.h).
#include "sim/stamp_body.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace hast::sim::stamp_body {
namespace {

constexpr std::size_t kBodyWords = body_bytes / 8;
static_assert(body_bytes % 16 == 0, "the portable loops go 16 bytes at a time");
static_assert(kBodyWords == 62, "the AVX2 loops cover words 0..59 and then 58..61");

// The body word at byte `at` is base ^ (at + 1) * constant: the second factor depends on
// the position only, so it is computed once for all sectors. Padded to 64 words so wide
// loads never read past it.
constexpr std::array<std::uint64_t, 64> body_pattern() {
  std::array<std::uint64_t, 64> pattern{};
  for (std::size_t j = 0; j < kBodyWords; j++)
    pattern[j] = (8 * j + 1) * 0xbf58476d1ce4e5b9ULL;
  return pattern;
}
alignas(64) constexpr std::array<std::uint64_t, 64> kPattern = body_pattern();

// ---- Portable: two 64-bit lanes (SSE2 on x86-64, NEON on arm64, plain code elsewhere) ----

using Lanes = std::uint64_t __attribute__((vector_size(16)));

void fill_lanes(std::uint64_t base, std::byte* body) {
  const Lanes bases = {base, base};
  for (std::size_t j = 0; j < kBodyWords; j += 2) {
    Lanes pattern;
    std::memcpy(&pattern, kPattern.data() + j, sizeof pattern);
    const Lanes words = bases ^ pattern;
    std::memcpy(body + 8 * j, &words, sizeof words);
  }
}

bool matches_lanes(std::uint64_t base, const std::byte* body) {
  const Lanes bases = {base, base};
  Lanes differ = {0, 0};
  for (std::size_t j = 0; j < kBodyWords; j += 2) {
    Lanes pattern;
    Lanes words;
    std::memcpy(&pattern, kPattern.data() + j, sizeof pattern);
    std::memcpy(&words, body + 8 * j, sizeof words);
    differ |= words ^ pattern ^ bases;
  }
  return (differ[0] | differ[1]) == 0;
}

bool all_zero_lanes(const std::byte* sector) {
  Lanes any = {0, 0};
  for (std::size_t at = 0; at < 512; at += sizeof(Lanes)) {
    Lanes words;
    std::memcpy(&words, sector + at, sizeof words);
    any |= words;
  }
  return (any[0] | any[1]) == 0;
}

#if defined(__x86_64__)

// ---- AVX2: four words at a time; the body's 62 words as 0..59, then 58..61 ----

__attribute__((target("avx2"))) __m256i load(const void* at) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(at));
}

__attribute__((target("avx2"))) void fill_avx2(std::uint64_t base, std::byte* body) {
  const __m256i bases = _mm256_set1_epi64x(static_cast<long long>(base));
  for (std::size_t j = 0; j < 60; j += 4) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(body + 8 * j),
                        _mm256_xor_si256(load(kPattern.data() + j), bases));
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(body + 8 * 58),
                      _mm256_xor_si256(load(kPattern.data() + 58), bases));
}

// Words [j, j + 4) of `body` xor what fill() writes there: zero where they agree.
__attribute__((target("avx2"))) __m256i difference(const std::byte* body, __m256i bases,
                                                   std::size_t j) {
  return _mm256_xor_si256(load(body + 8 * j), _mm256_xor_si256(load(kPattern.data() + j), bases));
}

__attribute__((target("avx2"))) bool matches_avx2(std::uint64_t base, const std::byte* body) {
  const __m256i bases = _mm256_set1_epi64x(static_cast<long long>(base));
  __m256i even = _mm256_setzero_si256();  // two accumulators: the loads overlap
  __m256i odd = _mm256_setzero_si256();
  for (std::size_t j = 0; j < 56; j += 8) {
    even = _mm256_or_si256(even, difference(body, bases, j));
    odd = _mm256_or_si256(odd, difference(body, bases, j + 4));
  }
  even = _mm256_or_si256(even, difference(body, bases, 56));
  odd = _mm256_or_si256(odd, difference(body, bases, 58));
  const __m256i differ = _mm256_or_si256(even, odd);
  return _mm256_testz_si256(differ, differ) != 0;
}

__attribute__((target("avx2"))) bool all_zero_avx2(const std::byte* sector) {
  __m256i even = _mm256_setzero_si256();
  __m256i odd = _mm256_setzero_si256();
  for (std::size_t at = 0; at < 512; at += 64) {
    even = _mm256_or_si256(even, load(sector + at));
    odd = _mm256_or_si256(odd, load(sector + at + 32));
  }
  const __m256i any = _mm256_or_si256(even, odd);
  return _mm256_testz_si256(any, any) != 0;
}

bool detect_avx2() {
  __builtin_cpu_init();  // may run before other static constructors
  return __builtin_cpu_supports("avx2") != 0;
}

const bool kAvx2 = detect_avx2();

#endif

}  // namespace

void fill_portable(std::uint64_t base, std::byte* body) {
  fill_lanes(base, body);
}

bool matches_portable(std::uint64_t base, const std::byte* body) {
  return matches_lanes(base, body);
}

bool all_zero_portable(const std::byte* sector) {
  return all_zero_lanes(sector);
}

bool wide() {
#if defined(__x86_64__)
  return kAvx2;
#else
  return false;
#endif
}

void fill(std::uint64_t base, std::byte* body) {
#if defined(__x86_64__)
  if (kAvx2) return fill_avx2(base, body);
#endif
  fill_lanes(base, body);
}

bool matches(std::uint64_t base, const std::byte* body) {
#if defined(__x86_64__)
  if (kAvx2) return matches_avx2(base, body);
#endif
  return matches_lanes(base, body);
}

bool all_zero(const std::byte* sector) {
#if defined(__x86_64__)
  if (kAvx2) return all_zero_avx2(sector);
#endif
  return all_zero_lanes(sector);
}

}  // namespace hast::sim::stamp_body
