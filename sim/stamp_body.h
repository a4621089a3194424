// The body of a stamped sector (ground_truth.h): the 496 bytes after the 16-byte stamp,
// a function of (write, sector index) only, and the checks that read it back.
//
// Every write the workload issues is stamped, every read is checked, and the simulated
// disk checks every unit it stores (sector_units.h) and expands every compact unit it
// reads, so these loops run over every client byte several times. On x86-64 processors
// with AVX2 they run 32 bytes at a time (chosen once at start-up); elsewhere 16 bytes at
// a time (SSE2, NEON or plain code). Both give the same bytes and the same answers: the
// choice never changes a run.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hast::sim::stamp_body {

inline constexpr std::size_t stamp_bytes = 16;
inline constexpr std::size_t body_bytes = 512 - stamp_bytes;

// The value every body word of sector `index` of write `id` is derived from.
inline std::uint64_t base(std::uint64_t id, std::uint32_t index) {
  return id * 0x9e3779b97f4a7c15ULL ^ (std::uint64_t{index} << 40);
}

// Writes the body for `base` into body[0, body_bytes).
void fill(std::uint64_t base, std::byte* body);
// True when body[0, body_bytes) is exactly what fill(base, ...) writes.
bool matches(std::uint64_t base, const std::byte* body);
// True when sector[0, 512) is all zero.
bool all_zero(const std::byte* sector);

// The 16-byte-lane versions, whichever the three above use (tests compare them).
void fill_portable(std::uint64_t base, std::byte* body);
bool matches_portable(std::uint64_t base, const std::byte* body);
bool all_zero_portable(const std::byte* sector);
// True when the three above run the AVX2 versions.
bool wide();

}  // namespace hast::sim::stamp_body
