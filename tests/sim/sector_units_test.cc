// Tests of the compact storage under the simulated disk (sim/sector_units.h,
// sim/sparse_image.h): a unit is kept as its value only when that value gives back its
// exact bytes; an image reads back exactly what was written, whatever mix of stamped,
// zero and other data, compares and hashes as the bytes do. The SimDisk tests
// (sim_disk_test.cc) write stamped and other sectors side by side, so the crash rule,
// torn writes and faults are checked over both kinds of storage there.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <optional>
#include <vector>

#include <rapidcheck.h>
#include <catch2/catch.hpp>

#include "core/prng.h"
#include "sim/ground_truth.h"
#include "sim/sector_units.h"
#include "sim/sim_disk_pristine.h"
#include "sim/sparse_image.h"
#include "sim/stamp_body.h"
#include "tests/support/property.h"

using hast::sim::ContentHasher;
using hast::sim::decode_sector;
using hast::sim::encode_unit;
using hast::sim::expand_unit;
using hast::sim::SparseImage;
using hast::sim::stamp_sector;
using hast::sim::unit_bytes;
using hast::sim::UnitHead;
using hast::sim::UnitRun;

namespace {

using Bytes = std::vector<std::byte>;

Bytes stamped(std::uint64_t id, std::uint32_t index) {
  Bytes bytes(unit_bytes);
  stamp_sector(id, index, bytes);
  return bytes;
}

// Units of one kind: 0 zeroes, 1 stamped (write `id`, sectors from `index`), 2 a stamp
// with one body byte changed (near miss: must be kept whole), 3 random bytes, 4 a stamp
// naming write 0 (never valid).
Bytes units_of(int kind, std::size_t count, std::uint64_t id, std::uint32_t index,
               hast::Prng& random) {
  Bytes bytes(count * unit_bytes);
  for (std::size_t u = 0; u < count; u++) {
    std::span<std::byte> unit = std::span(bytes).subspan(u * unit_bytes, unit_bytes);
    if (kind == 0) continue;
    if (kind == 3) {
      hast::fill_random(random, unit);
      continue;
    }
    stamp_sector(kind == 4 ? 1 : id, index + static_cast<std::uint32_t>(u), unit);
    if (kind == 2) unit[16 + hast::uniform(random, 0, unit_bytes - 17)] ^= std::byte{0x01};
    if (kind == 4) std::memset(unit.data() + 4, 0, 8);
  }
  return bytes;
}

}  // namespace

TEST_CASE("Sector units: only a unit its value reproduces exactly is compact", "[sim]") {
  const Bytes zero(unit_bytes);
  CHECK(encode_unit(zero) == UnitHead{});
  const Bytes good = stamped(42, 7);
  const UnitHead head = encode_unit(good);
  CHECK(head == UnitHead{42, 7, UnitHead::Kind::stamped});
  Bytes back(unit_bytes);
  expand_unit(head, back);
  CHECK(back == good);

  // Any byte off, anywhere, and the unit is kept whole.
  for (std::size_t at = 0; at < unit_bytes; at += 37) {
    Bytes near = good;
    near[at] ^= std::byte{0x80};
    INFO("byte " << at);
    CHECK_FALSE(encode_unit(near).compact());
  }
  Bytes almost_zero(unit_bytes);
  almost_zero[unit_bytes - 1] = std::byte{1};
  CHECK_FALSE(encode_unit(almost_zero).compact());
  Bytes swapped = stamped(42, 8);  // the stamp of sector 8 over the body of sector 7
  std::memcpy(swapped.data() + 16, good.data() + 16, unit_bytes - 16);
  CHECK_FALSE(encode_unit(swapped).compact());
  Bytes no_write = good;
  std::memset(no_write.data() + 4, 0, 8);
  CHECK_FALSE(encode_unit(no_write).compact());
}

TEST_CASE("Sector units: a run keeps compact and raw units apart and reads both back", "[sim]") {
  hast::Prng random(5);
  Bytes bytes = units_of(1, 3, 9, 0, random);
  const Bytes raw = units_of(3, 2, 0, 0, random);
  bytes.insert(bytes.begin() + unit_bytes, raw.begin(), raw.end());  // s r r s s
  const Bytes zero(unit_bytes);
  bytes.insert(bytes.end(), zero.begin(), zero.end());  // ... z
  const UnitRun run(bytes);
  REQUIRE(run.size() == 6u);
  CHECK(run.raw_count() == 2u);
  CHECK(run.head(0).compact());
  CHECK_FALSE(run.head(1).compact());
  CHECK(run.head(5) == UnitHead{});
  Bytes back(bytes.size());
  run.read(0, back);
  CHECK(back == bytes);
  Bytes middle(3 * unit_bytes);
  run.read(2, middle);
  CHECK(std::equal(middle.begin(), middle.end(), bytes.begin() + 2 * unit_bytes));
}

TEST_CASE("Sparse image: reads give back the bytes written, whatever their kind", "[sim]") {
  hast::test::property(
      "sparse image matches a flat image",
      [] {
        const std::uint64_t size = 3 * SparseImage::chunk_bytes + 8 * unit_bytes;
        const std::uint64_t units = size / unit_bytes;
        hast::Prng random(*rc::gen::arbitrary<std::uint32_t>());
        SparseImage image(size);
        SparseImage other(size);
        Bytes flat(size);
        Bytes other_flat(size);
        const int steps = *rc::gen::inRange(1, 40);
        for (int step = 0; step < steps; step++) {
          const std::uint64_t first = *rc::gen::inRange<std::uint64_t>(0, units);
          const std::uint64_t count = *rc::gen::inRange<std::uint64_t>(1, units - first + 1);
          const int kind = *rc::gen::inRange(0, 6);
          const bool to_other = *rc::gen::inRange(0, 4) == 0;
          SparseImage& target = to_other ? other : image;
          Bytes& model = to_other ? other_flat : flat;
          if (kind == 5) {
            target.zero(first * unit_bytes, count * unit_bytes);
            std::fill_n(model.begin() + first * unit_bytes, count * unit_bytes, std::byte{0});
            continue;
          }
          const Bytes data = units_of(kind, count, 100 + step, 0, random);
          if (*rc::gen::arbitrary<bool>()) {
            target.write(first * unit_bytes, data);
          } else {
            // Through a run, as the disk cache destages: part of the run only.
            const UnitRun run(data);
            target.write_units(first * unit_bytes, run, 0, count);
          }
          std::copy(data.begin(), data.end(), model.begin() + first * unit_bytes);
        }
        // Whole, and at unaligned offsets and lengths.
        Bytes whole(size);
        image.read(0, whole);
        RC_ASSERT(whole == flat);
        for (int probe = 0; probe < 8; probe++) {
          const std::uint64_t at = *rc::gen::inRange<std::uint64_t>(0, size);
          const std::uint64_t length = *rc::gen::inRange<std::uint64_t>(0, size - at + 1);
          Bytes part(length);
          image.read(at, part);
          RC_ASSERT(std::equal(part.begin(), part.end(), flat.begin() + at));
          // first_difference agrees with comparing the flat bytes.
          auto differ = image.first_difference(other, at, length);
          auto [l, r] =
              std::mismatch(flat.begin() + at, flat.begin() + at + length, other_flat.begin() + at);
          std::optional<std::uint64_t> expected;
          if (l != flat.begin() + at + length)
            expected = static_cast<std::uint64_t>(l - flat.begin());
          RC_ASSERT(differ == expected);
        }
        // The content hash is the flat bytes' hash.
        ContentHasher hasher;
        for (std::uint64_t c = 0; c * SparseImage::chunk_bytes < size; c++) {
          Bytes chunk(SparseImage::chunk_bytes);
          const std::uint64_t n =
              std::min(SparseImage::chunk_bytes, size - c * SparseImage::chunk_bytes);
          std::copy_n(flat.begin() + c * SparseImage::chunk_bytes, n, chunk.begin());
          hasher.add_chunk(c, chunk);
        }
        RC_ASSERT(image.content_hash() == hasher.value());
        // A copy reads alike and shares nothing.
        SparseImage copy = image;
        image.zero(0, size);
        Bytes copied(size);
        copy.read(0, copied);
        RC_ASSERT(copied == flat);
      },
      200);
}

TEST_CASE("Sparse image: stamped data is compact, other data whole, zeroing releases", "[sim]") {
  hast::Prng random(3);
  SparseImage image(1 << 20);
  image.write(0, units_of(1, 64, 7, 0, random));  // two chunks of stamps
  CHECK(image.chunk_count() == 2u);
  CHECK(image.raw_unit_count() == 0u);
  image.write(40 * unit_bytes, units_of(2, 3, 7, 40, random));  // near misses: whole
  CHECK(image.raw_unit_count() == 3u);
  image.write(41 * unit_bytes, units_of(1, 1, 8, 0, random));  // a stamp over one of them
  CHECK(image.raw_unit_count() == 2u);
  image.zero(32 * unit_bytes, 32 * unit_bytes);  // the second chunk whole
  CHECK(image.chunk_count() == 1u);
  CHECK(image.raw_unit_count() == 0u);
  Bytes back(64 * unit_bytes);
  image.read(0, back);
  Bytes expected = units_of(1, 32, 7, 0, random);
  expected.resize(64 * unit_bytes);
  CHECK(back == expected);
}

TEST_CASE("Content hash: only all-zero chunks are skipped, one byte anywhere counts", "[sim]") {
  ContentHasher empty;
  empty.add_chunk(3, Bytes(SparseImage::chunk_bytes));
  CHECK(empty.value() == ContentHasher{}.value());
  const std::size_t last = SparseImage::chunk_bytes - 1;
  for (std::size_t at : {std::size_t{0}, unit_bytes - 1, unit_bytes, last}) {
    CAPTURE(at);
    Bytes chunk(SparseImage::chunk_bytes);
    chunk[at] = std::byte{1};
    ContentHasher hasher;
    hasher.add_chunk(3, chunk);
    CHECK(hasher.value() != ContentHasher{}.value());
  }
}

TEST_CASE("Pristine disk: a torn write over stamped sectors lands whole sectors", "[sim]") {
  hast::sim::PristineOptions options;
  options.size_bytes = 64 * 1024;
  hast::Prng random(11);
  int torn = 0;
  for (int round = 0; round < 40; round++) {
    hast::sim::PristineDisk disk(options);
    const Bytes old_bytes = units_of(1, 16, 1, 0, random);
    disk.accept(0, old_bytes.size(), old_bytes, hast::Fua::yes);
    const Bytes new_bytes = units_of(1, 16, 2, 0, random);
    disk.accept(0, new_bytes.size(), new_bytes, hast::Fua::no);
    const hast::sim::CrashState state = disk.sample_crash_state(random);
    torn += state.torn(disk.cache());
    disk.apply_crash_state(state);
    Bytes image(old_bytes.size());
    disk.read_stable(0, image);
    for (std::uint32_t s = 0; s < 16; s++) {
      const auto value = decode_sector(std::span(image).subspan(s * unit_bytes, unit_bytes));
      INFO("round " << round << " sector " << s);
      REQUIRE(value.kind == hast::sim::SectorValue::Kind::stamped);
      CHECK(value.index == s);
      CHECK((value.id == 1 || value.id == 2));
    }
  }
  CHECK(torn > 0);
}

TEST_CASE("Stamp body: the wide loops agree with the portable ones, byte for byte", "[sim]") {
  namespace body = hast::sim::stamp_body;
  INFO("wide loops in use: " << body::wide());
  hast::Prng random(17);
  for (int round = 0; round < 200; round++) {
    const std::uint64_t base = random.next_u64();
    Bytes wide(body::body_bytes + 32);
    Bytes portable(body::body_bytes + 32);
    const std::size_t shift = hast::uniform(random, 0, 31);  // any alignment
    body::fill(base, wide.data() + shift);
    body::fill_portable(base, portable.data() + shift);
    REQUIRE(wide == portable);
    CHECK(body::matches(base, wide.data() + shift));
    CHECK(body::matches_portable(base, wide.data() + shift));
    CHECK_FALSE(body::matches(base + 1, wide.data() + shift));
    // Every byte is checked: a flipped bit anywhere is seen by both.
    int missed = 0;
    for (std::size_t at = shift; at < shift + body::body_bytes; at++) {
      wide[at] ^= std::byte{0x10};
      missed += body::matches(base, wide.data() + shift);
      missed += body::matches_portable(base, wide.data() + shift);
      wide[at] ^= std::byte{0x10};
    }
    CHECK(missed == 0);
    Bytes zero(512 + 32);
    CHECK(body::all_zero(zero.data() + shift));
    zero[shift + hast::uniform(random, 0, 511)] = std::byte{0x01};
    CHECK_FALSE(body::all_zero(zero.data() + shift));
    CHECK_FALSE(body::all_zero_portable(zero.data() + shift));
  }
}
