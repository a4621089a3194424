// Metadata block codec (reference/hast-spec.md §4.2): a block built by hand from the spec
// as FreeBSD's `hastctl create` writes it, round trips, every rejection, extension fields,
// the stale-extent list, and robustness against mutated blocks.
#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "core/meta/metadata.h"
#include "core/prng.h"
#include "core/proto/nv.h"
#include "tests/support/property.h"

using hast::Errc;
using hast::meta::ExtentIndex;
using hast::meta::Metadata;
using hast::meta::Role;
using hast::proto::Nv;

namespace {

// Bytes from hex digits; spaces and other separators are ignored.
std::vector<std::byte> from_hex(std::string_view hex) {
  std::vector<std::byte> bytes;
  int high = -1;
  for (char c : hex) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) continue;
    int digit = std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (c | 0x20) - 'a' + 10;
    if (high < 0) {
      high = digit;
    } else {
      bytes.push_back(static_cast<std::byte>(high * 16 + digit));
      high = -1;
    }
  }
  REQUIRE(high < 0);
  return bytes;
}

// The metadata block FreeBSD's `hastctl create` writes for resource "shared" on a 10 GiB
// provider with 512-byte sectors and the defaults (2 MiB extents, keepdirty 64), built from
// §4.2 and §6.2 by hand: each element is type (1 byte), namesize (1), dsize (4, little
// endian), the name with its NUL padded to 8, the data padded to 8. Then zeroes to 4096.
// `name_pad` fills the name padding, which FreeBSD leaves uninitialised.
std::vector<std::byte> freebsd_created_block(std::string_view name_pad = "00") {
  std::string p7, p6, p5, p1;
  for (int i = 0; i < 7; i++)
    p7 += std::string(name_pad) + " ";
  p6 = p7.substr(0, 6 * 3);
  p5 = p7.substr(0, 5 * 3);
  p1 = p7.substr(0, 1 * 3);
  std::string hex =
      // resource = "shared": type 17 (string), namesize 9, dsize 7
      "11 09 07000000  7265736f75726365 00 " + p7 + " 736861726564 00 00" +
      // datasize = 10737413120 (0x27fffec00): type 8 (uint64), namesize 9, dsize 8
      "08 09 08000000  6461746173697a65 00 " + p7 + " 00ecff7f02000000" +
      // extentsize = 2097152 (0x200000): type 6 (uint32), namesize 11, dsize 4
      "06 0b 04000000  657874656e7473697a65 00 " + p5 + " 00002000 00000000" +
      // keepdirty = 64: type 6 (uint32), namesize 10, dsize 4
      "06 0a 04000000  6b656570646972747900 " + p6 + " 40000000 00000000" +
      // offset = 5120 (0x1400): type 8 (uint64), namesize 7, dsize 8
      "08 07 08000000  6f666673657400 " + p1 + " 0014000000000000" +
      // resuid = 0: type 8, namesize 7, dsize 8
      "08 07 08000000  72657375696400 " + p1 + " 0000000000000000" +
      // localcnt = 0: type 8, namesize 9, dsize 8
      "08 09 08000000  6c6f63616c636e74 00 " + p7 + " 0000000000000000" +
      // remotecnt = 0: type 8, namesize 10, dsize 8
      "08 0a 08000000  72656d6f7465636e7400 " + p6 + " 0000000000000000" +
      // prevrole = "init": type 17, namesize 9, dsize 5
      "11 09 05000000  70726576726f6c65 00 " + p7 + " 696e697400 000000";
  auto bytes = from_hex(hex);
  REQUIRE(bytes.size() == 30 + 30 + 30 + 30 + 22 + 22 + 30 + 30 + 30);
  bytes.resize(hast::meta::metadata_size, std::byte{0});
  return bytes;
}

Metadata sample_metadata() {
  Metadata m;
  m.resource = "shared";
  m.data_size_bytes = 10'737'413'120;
  m.extent_size_bytes = 2 * 1024 * 1024;
  m.keep_dirty = 64;
  m.local_offset_bytes = 5120;
  m.prev_role = Role::init;
  return m;
}

// The nine HAST fields of `m` as an nv list, skipping `skip` and replacing `retype`'s type.
Nv hast_fields(const Metadata& m, std::string_view skip = {}, std::string_view retype = {}) {
  Nv nv;
  auto u64 = [&](std::string_view name, std::uint64_t value) {
    if (name == skip) return;
    if (name == retype) {
      nv.add_uint32(name, static_cast<std::uint32_t>(value));
    } else {
      nv.add_uint64(name, value);
    }
  };
  auto u32 = [&](std::string_view name, std::uint32_t value) {
    if (name == skip) return;
    if (name == retype) {
      nv.add_uint64(name, value);
    } else {
      nv.add_uint32(name, value);
    }
  };
  auto str = [&](std::string_view name, std::string_view value) {
    if (name == skip) return;
    if (name == retype) {
      nv.add_uint8(name, 1);
    } else {
      nv.add_string(name, value);
    }
  };
  str("resource", m.resource);
  u64("datasize", m.data_size_bytes);
  u32("extentsize", m.extent_size_bytes);
  u32("keepdirty", m.keep_dirty);
  u64("offset", m.local_offset_bytes);
  u64("resuid", m.resuid);
  u64("localcnt", m.local_count);
  u64("remotecnt", m.remote_count);
  str("prevrole", hast::meta::role_name(m.prev_role));
  return nv;
}

hast::Result<Metadata> decode_nv(const Nv& nv) {
  auto bytes = nv.encode();
  return hast::meta::decode_block(bytes, "/dev/da0");
}

std::string decode_error(const Nv& nv) {
  auto decoded = decode_nv(nv);
  REQUIRE_FALSE(decoded.has_value());
  CHECK(decoded.error().code() == Errc::corruption);
  return decoded.error().context();
}

std::string check_error(const Metadata& m) {
  auto checked = hast::meta::check_metadata(m);
  REQUIRE_FALSE(checked.has_value());
  CHECK(checked.error().code() == Errc::corruption);
  return checked.error().context();
}

std::vector<std::string> element_names(const std::array<std::byte, 4096>& block) {
  auto nv = Nv::decode(block);
  REQUIRE(nv.has_value());
  std::vector<std::string> names;
  for (const auto& element : nv->elements())
    names.push_back(element.name);
  return names;
}

}  // namespace

TEST_CASE("Metadata: decodes a block built by hand as FreeBSD's hastctl create writes it",
          "[unit][meta]") {
  auto block = freebsd_created_block();
  auto decoded = hast::meta::decode_block(block, "/dev/da0");
  REQUIRE(decoded.has_value());
  CHECK(*decoded == sample_metadata());
  CHECK(decoded->stale_extents.empty());
  CHECK_FALSE(decoded->inconsistent);
  // The name padding is uninitialised in FreeBSD's blocks: its contents do not matter.
  auto garbage = hast::meta::decode_block(freebsd_created_block("a5"), "/dev/da0");
  REQUIRE(garbage.has_value());
  CHECK(*garbage == sample_metadata());
  // Our encoder writes the same bytes (zeroed padding): FreeBSD reads our blocks.
  auto encoded = hast::meta::encode_block(sample_metadata());
  CHECK(std::equal(encoded.begin(), encoded.end(), block.begin(), block.end()));
  // A block shorter than 4096 bytes reads as zero-padded.
  auto short_block = std::span(block).first(256);
  REQUIRE(hast::meta::decode_block(short_block).has_value());
}

TEST_CASE("Metadata: created_metadata is what hastctl create writes", "[unit][meta]") {
  auto layout = hast::meta::compute_layout(std::uint64_t{10} << 30, 2 * 1024 * 1024, 512);
  REQUIRE(layout.has_value());
  auto created = hast::meta::created_metadata("shared", *layout, 64);
  CHECK(created == sample_metadata());
  REQUIRE(hast::meta::check_fits_provider(created, "/dev/da0", std::uint64_t{10} << 30, 512));
}

TEST_CASE("Metadata: extension fields appear only when set", "[unit][meta]") {
  Metadata m = sample_metadata();
  std::vector<std::string> hast_names = {"resource",  "datasize",  "extentsize",
                                         "keepdirty", "offset",    "resuid",
                                         "localcnt",  "remotecnt", "prevrole"};
  CHECK(element_names(hast::meta::encode_block(m)) == hast_names);
  m.stale_extents = {ExtentIndex{3}, ExtentIndex{70}, ExtentIndex{5119}};
  m.inconsistent = true;
  m.prev_role = Role::secondary;
  auto block = hast::meta::encode_block(m);
  auto names = hast_names;
  names.push_back("stale");
  names.push_back("inconsistent");
  CHECK(element_names(block) == names);
  auto nv = Nv::decode(block);
  REQUIRE(nv.has_value());
  CHECK(nv->get_uint64_array("stale") == std::vector<std::uint64_t>{3, 70, 5119});
  CHECK(nv->get_uint8("inconsistent") == 1);
  CHECK(nv->get_string("prevrole") == "secondary");
  auto decoded = hast::meta::decode_block(block);
  REQUIRE(decoded.has_value());
  CHECK(*decoded == m);
  // A full stale list still fits with the longest resource name.
  m.resource = std::string(hast::meta::resource_name_length_max, 'r');
  m.stale_extents.clear();
  for (std::uint64_t i = 0; i < hast::meta::stale_extents_max; i++)
    m.stale_extents.push_back(ExtentIndex{i * 80});
  auto full = hast::meta::decode_block(hast::meta::encode_block(m));
  REQUIRE(full.has_value());
  CHECK(*full == m);
}

TEST_CASE("Metadata: a missing or mistyped field is named", "[unit][meta]") {
  Metadata m = sample_metadata();
  REQUIRE(decode_nv(hast_fields(m)).has_value());
  const std::vector<std::pair<std::string, std::string>> fields = {
      {"resource", "string"},  {"datasize", "uint64"},  {"extentsize", "uint32"},
      {"keepdirty", "uint32"}, {"offset", "uint64"},    {"resuid", "uint64"},
      {"localcnt", "uint64"},  {"remotecnt", "uint64"}, {"prevrole", "string"}};
  for (const auto& [name, type] : fields) {
    CAPTURE(name);
    CHECK(decode_error(hast_fields(m, name)) == "Unable to read metadata from /dev/da0: field \"" +
                                                    name + "\" (" + type + ") is missing");
    CHECK(decode_error(hast_fields(m, {}, name)).find("field \"" + name + "\" is a ") !=
          std::string::npos);
  }
  CHECK(decode_error(hast_fields(m, {}, "datasize")) ==
        "Unable to read metadata from /dev/da0: field \"datasize\" is a uint32, expected uint64");
  // The first element of a name wins, as in FreeBSD: a later well-typed duplicate is unused.
  Nv shadowed;
  shadowed.add_uint8("datasize", 1);
  Nv all_fields = hast_fields(m);
  for (const auto& element : all_fields.elements())
    shadowed.add_raw(element.type, element.name, element.data);
  CHECK(decode_error(shadowed).find("\"datasize\" is a uint8") != std::string::npos);
  // An empty block has no fields at all.
  std::array<std::byte, 4096> zeroes{};
  auto empty = hast::meta::decode_block(zeroes, "/dev/da0");
  REQUIRE_FALSE(empty.has_value());
  CHECK(empty.error().context().find("\"resource\" (string) is missing") != std::string::npos);
}

TEST_CASE("Metadata: malformed nv, bad extension fields and oversized blocks are rejected",
          "[unit][meta]") {
  auto block = freebsd_created_block();
  block[0] = std::byte{0x20};  // type 32 does not exist
  auto bad_type = hast::meta::decode_block(block, "/dev/da0");
  REQUIRE_FALSE(bad_type.has_value());
  CHECK(bad_type.error().code() == Errc::corruption);
  CHECK(bad_type.error().context().rfind("Metadata read from /dev/da0 is invalid: ", 0) == 0);
  std::vector<std::byte> oversized(4097, std::byte{0});
  auto too_long = hast::meta::decode_block(oversized);
  REQUIRE_FALSE(too_long.has_value());
  CHECK(too_long.error().code() == Errc::invalid_argument);

  Metadata m = sample_metadata();
  Nv prevrole = hast_fields(m, "prevrole");
  prevrole.add_string("prevrole", "master");
  CHECK(decode_error(prevrole) ==
        "Metadata read from /dev/da0 is invalid: prevrole \"master\" "
        "is not a role");
  Nv stale_type = hast_fields(m);
  stale_type.add_uint64("stale", 3);
  CHECK(decode_error(stale_type).find("\"stale\" is a uint64, expected uint64[]") !=
        std::string::npos);
  Nv stale_order = hast_fields(m);
  std::vector<std::uint64_t> unordered = {5, 3};
  stale_order.add_uint64_array("stale", unordered);
  CHECK(decode_error(stale_order).find("not strictly increasing") != std::string::npos);
  Nv stale_many = hast_fields(m);
  std::vector<std::uint64_t> many(hast::meta::stale_extents_max + 1);
  for (std::size_t i = 0; i < many.size(); i++)
    many[i] = i;
  stale_many.add_uint64_array("stale", many);
  CHECK(decode_error(stale_many).find("65 stale extents, more than 64") != std::string::npos);
  Nv flag_type = hast_fields(m);
  flag_type.add_string("inconsistent", "yes");
  CHECK(decode_error(flag_type).find("\"inconsistent\" is a string") != std::string::npos);
  // Unknown fields (a newer FreeBSD, another extension) are ignored.
  Nv unknown = hast_fields(m);
  unknown.add_uint32("future", 7);
  REQUIRE(decode_nv(unknown).has_value());
}

TEST_CASE("Metadata: bounds that HAST would not check", "[unit][meta]") {
  Metadata m = sample_metadata();
  auto with = [&](auto change) {
    Metadata copy = m;
    change(copy);
    return copy;
  };
  CHECK(check_error(with([](Metadata& x) { x.extent_size_bytes = 0; })) ==
        "extentsize 0 is not a power of 2");
  CHECK(check_error(with([](Metadata& x) { x.extent_size_bytes = 3000; })) ==
        "extentsize 3000 is not a power of 2");
  CHECK(check_error(with([](Metadata& x) { x.keep_dirty = 0; })) == "keepdirty is 0");
  CHECK(check_error(with([](Metadata& x) { x.data_size_bytes = 0; })) == "datasize is 0");
  CHECK(check_error(with([](Metadata& x) { x.resource.clear(); })) == "resource name is empty");
  CHECK(check_error(with([](Metadata& x) {
          x.resource = std::string(256, 'x');
        })).find("more than 255") != std::string::npos);
  CHECK(check_error(with([](Metadata& x) {
          x.local_offset_bytes = 4096;
        })).find("offset 4096 leaves no room") != std::string::npos);
  CHECK(check_error(with([](Metadata& x) {
          x.local_offset_bytes = ~std::uint64_t{0};
        })).find("passes 2^63") != std::string::npos);
  CHECK(check_error(with([](Metadata& x) {
          x.stale_extents = {ExtentIndex{5120}};
        })).find("stale extent 5120 is past the last extent (5119)") != std::string::npos);
  CHECK(check_error(with([](Metadata& x) {
          x.extent_size_bytes = 1;
          x.local_offset_bytes = std::uint64_t{1} << 40;
        })).find("more than 2147483647") != std::string::npos);
  // The same checks apply when decoding.
  Nv zero_extent = hast_fields(with([](Metadata& x) { x.extent_size_bytes = 0; }));
  CHECK(decode_error(zero_extent) ==
        "Metadata read from /dev/da0 is invalid: extentsize 0 is not a power of 2");
}

TEST_CASE("Metadata: resource name and provider checks", "[unit][meta]") {
  Metadata m = sample_metadata();
  REQUIRE(hast::meta::check_resource(m, "/dev/da0", "shared"));
  auto other = hast::meta::check_resource(m, "/dev/da0", "tank");
  REQUIRE_FALSE(other.has_value());
  CHECK(other.error().context() == "Provider /dev/da0 is not part of resource tank.");
  CHECK(other.error().code() == Errc::invalid_argument);

  std::uint64_t media = std::uint64_t{10} << 30;
  REQUIRE(hast::meta::check_fits_provider(m, "/dev/da0", media, 512));
  auto smaller = hast::meta::check_fits_provider(m, "/dev/da0", media - 512, 512);
  REQUIRE_FALSE(smaller.has_value());
  CHECK(smaller.error().context().find("past the provider's") != std::string::npos);
  // On 4 KiB sectors this block's offset 5120 is not aligned (and inside a 4 KiB map).
  auto sectors = hast::meta::check_fits_provider(m, "/dev/da0", media, 4096);
  REQUIRE_FALSE(sectors.has_value());
  CHECK(sectors.error().context().find("offset 5120 is not a multiple") != std::string::npos);
  Metadata small_extent = m;
  small_extent.extent_size_bytes = 512;
  small_extent.local_offset_bytes = 4096 + 4096 * 1024;
  small_extent.data_size_bytes = 512 * 1024;
  auto extent = hast::meta::check_fits_provider(small_extent, "/dev/da0", media, 4096);
  REQUIRE_FALSE(extent.has_value());
  CHECK(extent.error().context().find("extentsize 512 is not a multiple") != std::string::npos);
}

TEST_CASE("Metadata: the stale-on-primary list stays sorted and bounded", "[unit][meta]") {
  using hast::meta::StaleAdd;
  Metadata m = sample_metadata();
  CHECK(hast::meta::add_stale(m, ExtentIndex{9}) == StaleAdd::added);
  CHECK(hast::meta::add_stale(m, ExtentIndex{2}) == StaleAdd::added);
  CHECK(hast::meta::add_stale(m, ExtentIndex{9}) == StaleAdd::present);
  CHECK(m.stale_extents == std::vector<ExtentIndex>{ExtentIndex{2}, ExtentIndex{9}});
  CHECK(hast::meta::is_stale(m, ExtentIndex{2}));
  CHECK_FALSE(hast::meta::is_stale(m, ExtentIndex{3}));
  CHECK(hast::meta::remove_stale(m, ExtentIndex{2}));
  CHECK_FALSE(hast::meta::remove_stale(m, ExtentIndex{2}));
  for (std::uint64_t i = 100; m.stale_extents.size() < hast::meta::stale_extents_max; i++)
    REQUIRE(hast::meta::add_stale(m, ExtentIndex{i}) == StaleAdd::added);
  CHECK(hast::meta::add_stale(m, ExtentIndex{5000}) == StaleAdd::full);
  CHECK(hast::meta::add_stale(m, ExtentIndex{9}) == StaleAdd::present);
  auto decoded = hast::meta::decode_block(hast::meta::encode_block(m));
  REQUIRE(decoded.has_value());
  CHECK(*decoded == m);
}

TEST_CASE("Metadata: role names (prevrole) and wire codes", "[unit][meta]") {
  for (Role role : {Role::init, Role::primary, Role::secondary}) {
    CHECK(hast::meta::parse_role(hast::meta::role_name(role)) == role);
    CHECK(hast::meta::role_from_code(hast::meta::role_code(role)) == role);
  }
  CHECK(hast::meta::role_name(Role::secondary) == "secondary");
  CHECK(hast::meta::role_code(Role::init) == 1);
  CHECK(hast::meta::role_code(Role::primary) == 2);
  CHECK(hast::meta::role_code(Role::secondary) == 3);
  CHECK_FALSE(hast::meta::parse_role("Primary").has_value());
  CHECK_FALSE(hast::meta::parse_role("").has_value());
  CHECK_FALSE(hast::meta::role_from_code(0).has_value());
  CHECK_FALSE(hast::meta::role_from_code(4).has_value());
}

namespace {

// A random valid Metadata.
rc::Gen<Metadata> metadata_gen() {
  return rc::gen::exec([] {
    Metadata m;
    auto name_length = *rc::gen::inRange<std::size_t>(1, hast::meta::resource_name_length_max + 1);
    m.resource = *rc::gen::container<std::string>(name_length, rc::gen::inRange('a', '{'));
    m.extent_size_bytes = std::uint32_t{1} << *rc::gen::inRange(9, 31);
    std::uint64_t data_max =
        std::min(std::uint64_t{1} << 44, hast::meta::extent_count_max * m.extent_size_bytes);
    m.data_size_bytes = *rc::gen::inRange<std::uint64_t>(1, data_max + 1);
    std::uint64_t extents = hast::meta::extent_count_for(m.data_size_bytes, m.extent_size_bytes);
    m.keep_dirty = *rc::gen::inRange<std::uint32_t>(1, 100000);
    m.local_offset_bytes =
        4096 + hast::meta::map_bitmap_bytes(extents) + *rc::gen::inRange<std::uint64_t>(0, 1 << 20);
    m.resuid = *rc::gen::arbitrary<std::uint64_t>();
    m.local_count = *rc::gen::arbitrary<std::uint64_t>();
    m.remote_count = *rc::gen::arbitrary<std::uint64_t>();
    m.prev_role = *rc::gen::element(Role::init, Role::primary, Role::secondary);
    auto stale = *rc::gen::container<std::vector<std::uint64_t>>(
        *rc::gen::inRange<std::size_t>(0, hast::meta::stale_extents_max + 1),
        rc::gen::inRange<std::uint64_t>(0, extents));
    std::sort(stale.begin(), stale.end());
    stale.erase(std::unique(stale.begin(), stale.end()), stale.end());
    for (auto extent : stale)
      m.stale_extents.push_back(ExtentIndex{extent});
    m.inconsistent = *rc::gen::arbitrary<bool>();
    return m;
  });
}

}  // namespace

TEST_CASE("Metadata: encode then decode gives the same metadata", "[unit][meta]") {
  hast::test::property("metadata round trip", [] {
    Metadata m = *metadata_gen();
    RC_ASSERT(hast::meta::check_metadata(m).has_value());
    auto block = hast::meta::encode_block(m);
    auto decoded = hast::meta::decode_block(block);
    RC_ASSERT(decoded.has_value());
    RC_ASSERT(*decoded == m);
    RC_ASSERT(hast::meta::encode_block(*decoded) == block);
  });
}

TEST_CASE("Metadata: mutated and random blocks never crash the decoder", "[unit][meta]") {
  hast::test::property("metadata mutations", [](std::uint64_t seed) {
    Metadata m = *metadata_gen();
    auto block = hast::meta::encode_block(m);
    hast::Prng random(seed);
    auto flips = hast::uniform(random, 1, 8);
    for (std::uint64_t i = 0; i < flips; i++) {
      // Mostly the encoded part, sometimes anywhere.
      auto limit = hast::chance(random, 0.8) ? std::uint64_t{600} : std::uint64_t{4095};
      block[hast::uniform(random, 0, limit)] = static_cast<std::byte>(random.next_u64());
    }
    auto decoded = hast::meta::decode_block(block);
    if (!decoded) {
      RC_ASSERT(decoded.error().code() == Errc::corruption);
      return;
    }
    // Whatever decodes is valid and survives a round trip.
    RC_ASSERT(hast::meta::check_metadata(*decoded).has_value());
    auto again = hast::meta::decode_block(hast::meta::encode_block(*decoded));
    RC_ASSERT(again.has_value());
    RC_ASSERT(*again == *decoded);
  });
  hast::test::property("metadata random bytes", [](std::vector<std::uint8_t> bytes) {
    if (bytes.size() > 4096) bytes.resize(4096);
    auto decoded = hast::meta::decode_block(std::as_bytes(std::span(bytes)));
    if (decoded) RC_ASSERT(hast::meta::check_metadata(*decoded).has_value());
  });
}

// ---- The metadata area: the block and its second copy (torn-write protection) ----

namespace {

using hast::meta::MetadataArea;
using hast::meta::MetadataCopy;
using Area = std::array<std::byte, hast::meta::metadata_size>;

constexpr std::size_t kCopyOffset = hast::meta::metadata_copy_offset;

// A block whose nv spans several 512-byte sectors (a long stale list), so a tear at a
// sector boundary cuts through it.
Metadata long_metadata(std::uint64_t local_count) {
  Metadata m = sample_metadata();
  m.resource = std::string(200, 's');
  m.resuid = 0x1234'5678'9abc'def0;
  m.local_count = local_count;
  m.remote_count = 3;
  m.prev_role = Role::primary;
  for (std::uint64_t i = 0; i < hast::meta::stale_extents_max; i++)
    m.stale_extents.push_back(ExtentIndex{i * 7 + local_count % 7});
  return m;
}

MetadataArea decode_area_ok(std::span<const std::byte> area) {
  auto decoded = hast::meta::decode_area(area, "/dev/da0");
  REQUIRE(decoded.has_value());
  return *decoded;
}

// `old_area` with the sectors of [begin, end) whose bit is set in `mask` (sector i of the
// range is bit i) taken from `new_area`: what a write of that range torn by a power loss
// leaves.
Area torn(const Area& old_area, const Area& new_area, std::size_t begin, std::size_t end,
          std::size_t sector, std::uint64_t mask) {
  Area out = old_area;
  for (std::size_t i = 0; begin + i * sector < end; i++) {
    if ((mask >> i & 1) == 0) continue;
    std::size_t at = begin + i * sector;
    std::copy_n(new_area.begin() + static_cast<std::ptrdiff_t>(at), sector,
                out.begin() + static_cast<std::ptrdiff_t>(at));
  }
  return out;
}

bool same_bytes(std::span<const std::byte> a, std::span<const std::byte> b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

}  // namespace

TEST_CASE(
    "Metadata area: FreeBSD reads the first copy of our area unchanged, and the second "
    "copy has the documented bytes",
    "[unit][meta]") {
  Metadata m = sample_metadata();
  Area area = hast::meta::encode_area(m, 1);
  auto block = freebsd_created_block();
  // The first copy is FreeBSD's block byte for byte, and zero up to the second copy: its
  // nv ends where FreeBSD stops reading.
  CHECK(same_bytes(std::span(area).first(kCopyOffset), std::span(block).first(kCopyOffset)));
  // What FreeBSD decodes (the nv at offset 0 of the whole area) is the metadata.
  auto freebsd_view = hast::meta::decode_block(area, "/dev/da0");
  REQUIRE(freebsd_view.has_value());
  CHECK(*freebsd_view == m);
  // The second copy: header (magic, generation 1, nv 254 bytes, crc32 of the first copy,
  // reserved, crc32 of header and nv; values computed independently with Python's zlib),
  // then the same 254 nv bytes, then zeroes.
  auto header = from_hex("48415354434f5059 0100000000000000 fe000000 547265c6 00000000 14bec154");
  CHECK(same_bytes(std::span(area).subspan(kCopyOffset, 32), header));
  CHECK(same_bytes(std::span(area).subspan(kCopyOffset + 32, 254), std::span(block).first(254)));
  CHECK(std::all_of(area.begin() + kCopyOffset + 32 + 254, area.end(),
                    [](std::byte b) { return b == std::byte{0}; }));
  MetadataArea decoded = decode_area_ok(area);
  CHECK(decoded.metadata == m);
  CHECK(decoded.generation == 1);
  CHECK(decoded.copy == MetadataCopy::first);
  CHECK(decoded.note.empty());
}

TEST_CASE("Metadata area: an area FreeBSD wrote (no second copy) reads as before", "[unit][meta]") {
  for (std::string_view pad : {"00", "a5"}) {
    auto block = freebsd_created_block(pad);
    MetadataArea decoded = decode_area_ok(block);
    CHECK(decoded.metadata == sample_metadata());
    CHECK(decoded.generation == 0);
    CHECK(decoded.copy == MetadataCopy::first);
    CHECK(decoded.note.empty());
  }
  // FreeBSD writing over our area zero-fills the tail: the stale second copy is gone.
  Area ours = hast::meta::encode_area(long_metadata(9), 40);
  Area freebsd = hast::meta::encode_block(sample_metadata());
  CHECK(decode_area_ok(freebsd).metadata == sample_metadata());
  CHECK(decode_area_ok(ours).metadata == long_metadata(9));
  // A short read is zero-padded, as for decode_block.
  auto created = freebsd_created_block();
  CHECK(decode_area_ok(std::span(created).first(300)).metadata == sample_metadata());
  std::vector<std::byte> oversized(4097);
  auto too_long = hast::meta::decode_area(oversized);
  REQUIRE_FALSE(too_long.has_value());
  CHECK(too_long.error().code() == Errc::invalid_argument);
}

TEST_CASE(
    "Metadata area: a first copy torn at any sector boundary falls back to the second "
    "copy",
    "[unit][meta]") {
  // Generation 5 holds A, generation 6 writes B: the second copy of B is durable, then the
  // first copy's write is torn: each of its sectors old or new.
  Area a = hast::meta::encode_area(long_metadata(1), 5);
  Area b = hast::meta::encode_area(long_metadata(2), 6);
  Area second_written = a;
  std::copy(b.begin() + kCopyOffset, b.end(), second_written.begin() + kCopyOffset);
  int fallbacks = 0;
  for (std::size_t sector : {512u, 1024u, 2048u}) {
    std::size_t sectors = kCopyOffset / sector;
    for (std::uint64_t mask = 0; mask < (std::uint64_t{1} << sectors); mask++) {
      CAPTURE(sector, mask);
      Area state = torn(second_written, b, 0, kCopyOffset, sector, mask);
      MetadataArea decoded = decode_area_ok(state);
      CHECK(decoded.metadata == long_metadata(2));
      CHECK(decoded.generation == 6);
      // Sectors equal in A and B (the zero tail) make some masks land B whole.
      bool whole = same_bytes(std::span(state).first(kCopyOffset), std::span(b).first(kCopyOffset));
      if (!whole) fallbacks++;
      CHECK(decoded.copy == (whole ? MetadataCopy::first : MetadataCopy::second));
      CHECK(decoded.note.empty() == whole);
    }
  }
  // 512: 12 of 16 states are not B's first copy (sectors 2 and 3 are zero in both);
  // 1024: 2 of 4; 2048: 1 of 2.
  CHECK(fallbacks == 12 + 2 + 1);
  // A tear that keeps the nv decodable but mixes old and new fields is caught by the
  // checksum: sector 0 new, the rest old.
  Area mixed = torn(second_written, b, 0, kCopyOffset, 512, 0b0001);
  auto freebsd_view = hast::meta::decode_block(mixed, "/dev/da0");
  CHECK((!freebsd_view.has_value() || *freebsd_view != long_metadata(2)));
  CHECK(decode_area_ok(mixed).copy == MetadataCopy::second);
}

TEST_CASE("Metadata area: a torn second copy leaves the first copy in use", "[unit][meta]") {
  // Generation 5 holds A whole; the write of generation 6's second copy is torn, and the
  // first copy was not touched yet.
  Area a = hast::meta::encode_area(long_metadata(1), 5);
  Area b = hast::meta::encode_area(long_metadata(2), 6);
  for (std::size_t sector : {512u, 1024u, 2048u}) {
    std::size_t sectors = kCopyOffset / sector;
    for (std::uint64_t mask = 0; mask < (std::uint64_t{1} << sectors); mask++) {
      CAPTURE(sector, mask);
      Area state = torn(a, b, kCopyOffset, hast::meta::metadata_size, sector, mask);
      MetadataArea decoded = decode_area_ok(state);
      auto copy = std::span(state).subspan(kCopyOffset);
      if (same_bytes(copy, std::span(b).subspan(kCopyOffset))) {
        // Every sector that differs landed: the second copy is whole and newer.
        CHECK(decoded.metadata == long_metadata(2));
        CHECK(decoded.copy == MetadataCopy::second);
      } else {
        CHECK(decoded.metadata == long_metadata(1));
        CHECK(decoded.copy == MetadataCopy::first);
        bool old_whole = same_bytes(copy, std::span(a).subspan(kCopyOffset));
        CHECK(decoded.generation == (old_whole ? 5u : 0u));
        CHECK(decoded.note.empty() == old_whole);
      }
    }
  }
}

TEST_CASE("Metadata area: two whole copies, the newer wins", "[unit][meta]") {
  Area a = hast::meta::encode_area(long_metadata(1), 5);
  Area b = hast::meta::encode_area(long_metadata(2), 6);
  // The write of generation 6 stopped between the copies: the second copy is newer.
  Area between = a;
  std::copy(b.begin() + kCopyOffset, b.end(), between.begin() + kCopyOffset);
  MetadataArea decoded = decode_area_ok(between);
  CHECK(decoded.metadata == long_metadata(2));
  CHECK(decoded.generation == 6);
  CHECK(decoded.copy == MetadataCopy::second);
  CHECK(decoded.note ==
        "the first copy is torn or older than the second copy (generation 6): differs");
  // Both copies of one generation: the first is used, silently.
  MetadataArea same = decode_area_ok(b);
  CHECK(same.metadata == long_metadata(2));
  CHECK(same.generation == 6);
  CHECK(same.copy == MetadataCopy::first);
  CHECK(same.note.empty());
}

TEST_CASE("Metadata area: with neither copy usable the error is the first copy's", "[unit][meta]") {
  Area a = hast::meta::encode_area(long_metadata(1), 5);
  // No second copy and a torn first copy: exactly decode_block's error.
  Area no_copy = a;
  std::fill(no_copy.begin() + kCopyOffset, no_copy.end(), std::byte{0});
  no_copy[0] = std::byte{0x20};
  auto plain = hast::meta::decode_block(no_copy, "/dev/da0");
  REQUIRE_FALSE(plain.has_value());
  auto alone = hast::meta::decode_area(no_copy, "/dev/da0");
  REQUIRE_FALSE(alone.has_value());
  CHECK(alone.error().code() == Errc::corruption);
  CHECK(alone.error().context() == plain.error().context());
  CHECK(alone.error().context().rfind("Metadata read from /dev/da0 is invalid: ", 0) == 0);
  // A second copy that fails its checksum: the same sentence, and why the copy did not
  // help.
  Area both_bad = a;
  both_bad[0] = std::byte{0x20};
  both_bad[kCopyOffset + 40] ^= std::byte{0xff};
  auto neither = hast::meta::decode_area(both_bad, "/dev/da0");
  REQUIRE_FALSE(neither.has_value());
  CHECK(neither.error().code() == Errc::corruption);
  CHECK(neither.error().context() ==
        plain.error().context() +
            "; the second copy at offset 2048 is unusable too: checksum "
            "mismatch");
  // An all-zero area (never created): the missing-field error of today.
  Area zeroes{};
  auto empty = hast::meta::decode_area(zeroes, "/dev/da0");
  REQUIRE_FALSE(empty.has_value());
  CHECK(empty.error().context() ==
        "Unable to read metadata from /dev/da0: field \"resource\" (string) is missing");
}

TEST_CASE("Metadata area: the second copy's header is checked", "[unit][meta]") {
  Area a = hast::meta::encode_area(long_metadata(1), 5);
  auto copy_problem = [&](auto change) {
    Area bad = a;
    change(bad);
    MetadataArea decoded = decode_area_ok(bad);  // the first copy is whole
    CHECK(decoded.copy == MetadataCopy::first);
    CHECK(decoded.generation == 0);
    return decoded.note;
  };
  CHECK(copy_problem([](Area& x) { x[kCopyOffset + 8] = std::byte{9}; }) ==
        "the second copy is unusable: checksum mismatch");
  CHECK(copy_problem([](Area& x) {
          x[kCopyOffset + 16] = std::byte{0x00};
          x[kCopyOffset + 17] = std::byte{0x41};
        }) == "the second copy is unusable: its nv length 16640 is out of range");
  CHECK(copy_problem([](Area& x) { std::fill_n(x.begin() + kCopyOffset + 16, 4, std::byte{0}); }) ==
        "the second copy is unusable: its nv length 0 is out of range");
  // Not our magic: no second copy at all, nothing to report.
  CHECK(copy_problem([](Area& x) { x[kCopyOffset] = std::byte{'h'}; }).empty());
}

TEST_CASE("Metadata area: encode then decode, and mutated areas never crash the decoder",
          "[unit][meta]") {
  hast::test::property("metadata area round trip", [] {
    Metadata m = *metadata_gen();
    auto generation = *rc::gen::inRange<std::uint64_t>(1, ~std::uint64_t{0});
    Area area = hast::meta::encode_area(m, generation);
    auto freebsd_view = hast::meta::decode_block(area);
    RC_ASSERT(freebsd_view.has_value());
    RC_ASSERT(*freebsd_view == m);
    auto decoded = hast::meta::decode_area(area);
    RC_ASSERT(decoded.has_value());
    RC_ASSERT(decoded->metadata == m);
    RC_ASSERT(decoded->generation == generation);
    RC_ASSERT(decoded->copy == MetadataCopy::first);
  });
  hast::test::property("metadata area mutations", [](std::uint64_t seed) {
    Metadata m = *metadata_gen();
    Area area = hast::meta::encode_area(m, 3);
    hast::Prng random(seed);
    auto flips = hast::uniform(random, 1, 8);
    for (std::uint64_t i = 0; i < flips; i++)
      area[hast::uniform(random, 0, 4095)] = static_cast<std::byte>(random.next_u64());
    auto decoded = hast::meta::decode_area(area);
    if (!decoded) {
      RC_ASSERT(decoded.error().code() == Errc::corruption);
      return;
    }
    RC_ASSERT(hast::meta::check_metadata(decoded->metadata).has_value());
  });
}
