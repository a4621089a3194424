// Nv codec (reference/hast-spec.md §6.2): golden bytes written by hand from the spec, one
// decode per type, every validation rule, lookups, and properties over random element
// lists and random or mutated bytes.
//
// Golden layout reminder, per element: type(1) namesize(1) dsize(4, LE), the name with its
// NUL padded to a multiple of 8, the data padded with zeros to a multiple of 8.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include <rapidcheck.h>
#include <catch2/catch.hpp>

#include "core/proto/nv.h"
#include "tests/support/property.h"

using hast::Errc;
using hast::proto::Nv;
using hast::proto::NvType;

namespace {

std::vector<std::byte> bytes(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int value : values) {
    REQUIRE(value >= 0);
    REQUIRE(value <= 0xff);
    out.push_back(static_cast<std::byte>(value));
  }
  return out;
}

std::vector<std::byte> raw(std::initializer_list<int> values) {
  return bytes(values);
}

void require_corruption(const std::vector<std::byte>& input, const std::string& needle) {
  auto decoded = Nv::decode(input);
  REQUIRE_FALSE(decoded.has_value());
  CHECK(decoded.error().code() == Errc::corruption);
  INFO(decoded.error().message());
  CHECK(decoded.error().context().find(needle) != std::string::npos);
}

// ---- Generators ----

std::size_t item_size(NvType type) {
  return hast::proto::nv_item_size(type);
}

bool is_scalar(NvType type) {
  return type <= NvType::uint64;
}

// A valid element of a random type, name and size.
rc::Gen<Nv::Element> gen_element() {
  return rc::gen::exec([] {
    auto type = static_cast<NvType>(*rc::gen::inRange(1, 18));
    auto name_size = *rc::gen::weightedOneOf<std::size_t>(
        {{8, rc::gen::inRange<std::size_t>(0, 12)}, {1, rc::gen::inRange<std::size_t>(0, 255)}});
    std::string name;
    for (std::size_t i = 0; i < name_size; i++)
      name.push_back(*rc::gen::inRange<char>(1, 127));
    std::vector<std::byte> data;
    if (type == NvType::string) {
      auto length = *rc::gen::inRange<std::size_t>(0, 40);
      for (std::size_t i = 0; i < length; i++)
        data.push_back(static_cast<std::byte>(*rc::gen::inRange(1, 256)));
      data.push_back(std::byte{0});
    } else {
      std::size_t count = is_scalar(type) ? 1 : *rc::gen::inRange<std::size_t>(1, 9);
      for (std::size_t i = 0; i < count * item_size(type); i++)
        data.push_back(static_cast<std::byte>(*rc::gen::inRange(0, 256)));
    }
    return Nv::Element{type, name, data};
  });
}

Nv build(const std::vector<Nv::Element>& elements) {
  Nv nv;
  for (const auto& element : elements)
    nv.add_raw(element.type, element.name, element.data);
  return nv;
}

}  // namespace

// ---- Golden encodings ----

TEST_CASE("Nv: encodes a uint8 element exactly as §6.2 lays it out", "[unit][proto]") {
  Nv nv;
  nv.add_uint8("cmd", 5);
  auto expected = raw({
      0x02,                                            // type 2 = uint8, high bit clear
      0x04,                                            // namesize = strlen("cmd") + 1
      0x01, 0x00, 0x00, 0x00,                          // dsize = 1, little-endian
      0x63, 0x6d, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00,  // "cmd\0" padded to 8
      0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // 5, zero-padded to 8
  });
  CHECK(nv.encode() == expected);
  CHECK(nv.encoded_size() == 6 + 8 + 8);
}

TEST_CASE("Nv: encodes several elements in order with little-endian integers", "[unit][proto]") {
  Nv nv;
  nv.add_string("resource", "shared");
  nv.add_uint64("resuid", 0x0102030405060708);
  nv.add_int16("error", -2);
  std::uint8_t token[3] = {0xaa, 0xbb, 0xcc};
  nv.add_uint8_array("tok", token);
  auto expected = raw({
      // "resource" = "shared": type 17, namesize 9, dsize 7; name 9 -> 16, data 7 -> 8.
      0x11, 0x09, 0x07, 0x00, 0x00, 0x00,              //
      0x72, 0x65, 0x73, 0x6f, 0x75, 0x72, 0x63, 0x65,  // "resource"
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // NUL + 7 padding
      0x73, 0x68, 0x61, 0x72, 0x65, 0x64, 0x00, 0x00,  // "shared\0" + 1 padding
      // "resuid" uint64: type 8, namesize 7, dsize 8; the value least significant first.
      0x08, 0x07, 0x08, 0x00, 0x00, 0x00,              //
      0x72, 0x65, 0x73, 0x75, 0x69, 0x64, 0x00, 0x00,  // "resuid\0" + 1 padding
      0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,  //
      // "error" int16 -2: type 3, namesize 6, dsize 2; two's complement 0xfffe LE.
      0x03, 0x06, 0x02, 0x00, 0x00, 0x00,              //
      0x65, 0x72, 0x72, 0x6f, 0x72, 0x00, 0x00, 0x00,  // "error\0" + 2 padding
      0xfe, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
      // "tok" uint8[3]: type 10, namesize 4, dsize 3.
      0x0a, 0x04, 0x03, 0x00, 0x00, 0x00,              //
      0x74, 0x6f, 0x6b, 0x00, 0x00, 0x00, 0x00, 0x00,  // "tok\0" + 4 padding
      0xaa, 0xbb, 0xcc, 0x00, 0x00, 0x00, 0x00, 0x00,  //
  });
  CHECK(nv.encode() == expected);
  auto decoded = Nv::decode(expected);
  REQUIRE(decoded.has_value());
  CHECK(*decoded == nv);
}

// ---- Decoding each type ----

TEST_CASE("Nv: decodes every type 1..17 from hand-written bytes", "[unit][proto]") {
  // Each element is named "x" (namesize 2, padded to 8): header, "x\0" + 6 padding, data.
  struct Case {
    NvType type;
    std::vector<std::byte> encoded;
    std::vector<std::byte> data;
  };
  auto header = [](int type, int dsize) {
    return raw({type, 0x02, dsize, 0x00, 0x00, 0x00, 0x78, 0x00, 0, 0, 0, 0, 0, 0});
  };
  auto join = [](std::vector<std::byte> a, const std::vector<std::byte>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  std::vector<Case> cases = {
      {NvType::int8, join(header(1, 1), raw({0xfe, 0, 0, 0, 0, 0, 0, 0})), raw({0xfe})},
      {NvType::uint8, join(header(2, 1), raw({0xc8, 0, 0, 0, 0, 0, 0, 0})), raw({0xc8})},
      {NvType::int16, join(header(3, 2), raw({0xfe, 0xff, 0, 0, 0, 0, 0, 0})), raw({0xfe, 0xff})},
      {NvType::uint16, join(header(4, 2), raw({0x34, 0x12, 0, 0, 0, 0, 0, 0})), raw({0x34, 0x12})},
      {NvType::int32, join(header(5, 4), raw({0xfe, 0xff, 0xff, 0xff, 0, 0, 0, 0})),
       raw({0xfe, 0xff, 0xff, 0xff})},
      {NvType::uint32, join(header(6, 4), raw({0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0})),
       raw({0x78, 0x56, 0x34, 0x12})},
      {NvType::int64, join(header(7, 8), raw({0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})),
       raw({0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})},
      {NvType::uint64, join(header(8, 8), raw({8, 7, 6, 5, 4, 3, 2, 1})),
       raw({8, 7, 6, 5, 4, 3, 2, 1})},
      {NvType::int8_array, join(header(9, 2), raw({0xff, 0x01, 0, 0, 0, 0, 0, 0})),
       raw({0xff, 0x01})},
      {NvType::uint8_array, join(header(10, 3), raw({1, 2, 3, 0, 0, 0, 0, 0})), raw({1, 2, 3})},
      {NvType::int16_array, join(header(11, 4), raw({0xff, 0xff, 0x02, 0x00, 0, 0, 0, 0})),
       raw({0xff, 0xff, 0x02, 0x00})},
      {NvType::uint16_array, join(header(12, 2), raw({0x02, 0x01, 0, 0, 0, 0, 0, 0})),
       raw({0x02, 0x01})},
      {NvType::int32_array, join(header(13, 8), raw({0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0})),
       raw({0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0})},
      {NvType::uint32_array,
       join(header(14, 12), raw({1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0})),
       raw({1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0})},
      {NvType::int64_array,
       join(header(15, 8), raw({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})),
       raw({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})},
      {NvType::uint64_array,
       join(header(16, 16), raw({1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0})),
       raw({1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0})},
      {NvType::string, join(header(17, 3), raw({0x68, 0x69, 0x00, 0, 0, 0, 0, 0})),
       raw({0x68, 0x69, 0x00})},
  };
  REQUIRE(cases.size() == 17);
  for (const auto& c : cases) {
    INFO("type " << static_cast<int>(c.type));
    auto decoded = Nv::decode(c.encoded);
    REQUIRE(decoded.has_value());
    REQUIRE(decoded->elements().size() == 1);
    const auto& element = decoded->elements()[0];
    CHECK(element.type == c.type);
    CHECK(element.name == "x");
    CHECK(element.data == c.data);
    CHECK(decoded->encode() == c.encoded);  // our encoder produces the same bytes
  }
  // The typed getters read the same values.
  CHECK(Nv::decode(cases[0].encoded)->get_int8("x") == -2);
  CHECK(Nv::decode(cases[1].encoded)->get_uint8("x") == 200);
  CHECK(Nv::decode(cases[2].encoded)->get_int16("x") == -2);
  CHECK(Nv::decode(cases[3].encoded)->get_uint16("x") == 0x1234);
  CHECK(Nv::decode(cases[4].encoded)->get_int32("x") == -2);
  CHECK(Nv::decode(cases[5].encoded)->get_uint32("x") == 0x12345678u);
  CHECK(Nv::decode(cases[6].encoded)->get_int64("x") == -2);
  CHECK(Nv::decode(cases[7].encoded)->get_uint64("x") == 0x0102030405060708u);
  CHECK(Nv::decode(cases[9].encoded)->get_uint8_array("x") == std::vector<std::uint8_t>{1, 2, 3});
  CHECK(Nv::decode(cases[15].encoded)->get_uint64_array("x") == std::vector<std::uint64_t>{1, 2});
  CHECK(Nv::decode(cases[16].encoded)->get_string("x") == "hi");
}

// ---- Validation rules ----

TEST_CASE("Nv: every validation rule rejects with Errc::corruption", "[unit][proto]") {
  // A valid one-element base to break: uint32 "x" = 1.
  auto good = raw({0x06, 0x02, 0x04, 0, 0, 0, 0x78, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0});
  REQUIRE(Nv::decode(good).has_value());

  SECTION("unknown type") {
    auto input = good;
    input[0] = std::byte{18};
    require_corruption(input, "unknown type 18");
    input[0] = std::byte{0x7f};
    require_corruption(input, "unknown type 127");
    input[0] = std::byte{0x80};  // the host-order flag on type 0
    require_corruption(input, "unknown type 0");
  }
  SECTION("dsize 0") {
    require_corruption(raw({0x06, 0x02, 0, 0, 0, 0, 0x78, 0, 0, 0, 0, 0, 0, 0}), "data size 0");
  }
  SECTION("bad name length") {
    auto input = good;
    input[1] = std::byte{0};  // namesize 0
    require_corruption(input, "name size 0");
    input = good;
    input[1] = std::byte{3};  // claims "x?\0" but the NUL is at index 1
    require_corruption(input, "name length");
    input = good;
    input[7] = std::byte{'y'};  // "xy" without its NUL at namesize - 1
    require_corruption(input, "name length");
  }
  SECTION("string without NUL or with an interior NUL") {
    auto header = raw({0x11, 0x02, 0x03, 0, 0, 0, 0x78, 0, 0, 0, 0, 0, 0, 0});
    auto no_nul = header;
    for (int b : {0x61, 0x62, 0x63, 0, 0, 0, 0, 0})
      no_nul.push_back(std::byte(b));
    require_corruption(no_nul, "not NUL-terminated");
    auto interior = header;
    for (int b : {0x61, 0x00, 0x00, 0, 0, 0, 0, 0})
      interior.push_back(std::byte(b));
    require_corruption(interior, "interior NUL");
  }
  SECTION("scalar of the wrong size") {
    auto input = good;
    input[2] = std::byte{2};  // uint32 of 2 bytes
    require_corruption(input, "uint32 of 2 bytes");
    input = good;
    input[0] = std::byte{0x08};  // uint64 of 4 bytes
    require_corruption(input, "uint64 of 4 bytes");
  }
  SECTION("array not a multiple of the item size") {
    auto input = good;
    input[0] = std::byte{12};  // uint16[] of 3 bytes
    input[2] = std::byte{3};
    require_corruption(input, "uint16[] of 3 bytes");
    input[0] = std::byte{16};  // uint64[] of 4 bytes
    input[2] = std::byte{4};
    require_corruption(input, "uint64[] of 4 bytes");
  }
  SECTION("truncated element") {
    require_corruption(raw({0x06, 0x02, 0x04}), "truncated header");
    auto input = good;
    input.resize(good.size() - 4);  // data padding missing
    require_corruption(input, "past the end");
    input.resize(10);  // name cut
    require_corruption(input, "past the end");
  }
  SECTION("element past the end") {
    auto input = good;
    input[5] = std::byte{0x80};  // dsize 0x80000004
    require_corruption(input, "past the end");
    input = good;
    input[1] = std::byte{200};  // a name longer than the buffer
    require_corruption(input, "past the end");
  }
  SECTION("a bad second element fails the whole list") {
    auto input = good;
    input.insert(input.end(), good.begin(), good.end());
    input[22] = std::byte{0x30};
    require_corruption(input, "nv element at byte 22");
  }
}

TEST_CASE("Nv: a zero byte where an element would start ends the list", "[unit][proto]") {
  auto input = raw({0x02, 0x02, 0x01, 0, 0, 0, 0x78, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0,
                    // a zero type byte, then garbage that would not validate
                    0x00, 0xff, 0xff, 0xff, 0x13, 0x37});
  auto decoded = Nv::decode(input);
  REQUIRE(decoded.has_value());
  CHECK(decoded->elements().size() == 1);
  CHECK(decoded->get_uint8("x") == 7);
  // All-zero input is an empty list; so is an empty one.
  CHECK(Nv::decode(raw({0, 0, 0, 0, 0, 0, 0, 0}))->empty());
  CHECK(Nv::decode({})->empty());
}

TEST_CASE("Nv: the host-order flag is accepted and the value read as is", "[unit][proto]") {
  auto input = raw({0x86, 0x02, 0x04, 0,    0, 0, 0x78, 0, 0, 0, 0, 0, 0, 0,  // 0x80 | uint32
                    0x78, 0x56, 0x34, 0x12, 0, 0, 0,    0});
  auto decoded = Nv::decode(input);
  REQUIRE(decoded.has_value());
  CHECK(decoded->get_uint32("x") == 0x12345678u);
  CHECK(decoded->elements()[0].type == NvType::uint32);
  input[0] = std::byte{0x91};  // 0x80 | string
  input[2] = std::byte{0x01};
  input[14] = std::byte{0x00};
  CHECK(Nv::decode(input)->get_string("x") == "");
}

TEST_CASE("Nv: name padding bytes are ignored whatever they hold", "[unit][proto]") {
  // FreeBSD leaves the padding after the name uninitialised.
  auto input = raw({0x02, 0x02, 0x01, 0, 0, 0, 0x78, 0x00, 0xde, 0xad, 0xbe,
                    0xef, 0x55, 0xaa, 9, 0, 0, 0,    0,    0,    0,    0});
  auto decoded = Nv::decode(input);
  REQUIRE(decoded.has_value());
  CHECK(decoded->get_uint8("x") == 9);
  CHECK(decoded->elements()[0].name == "x");
}

TEST_CASE("Nv: lookups use the first element of a name; a type mismatch is nullopt",
          "[unit][proto]") {
  Nv nv;
  nv.add_uint8("x", 1);
  nv.add_uint32("x", 2);
  nv.add_string("s", "text");
  CHECK(nv.get_uint8("x") == 1);
  CHECK_FALSE(nv.get_uint32("x").has_value());  // no search past the first "x"
  CHECK(nv.exists("x"));
  CHECK(nv.find("x")->type == NvType::uint8);
  CHECK_FALSE(nv.get_uint8("s").has_value());
  CHECK_FALSE(nv.get_uint8_array("s").has_value());
  CHECK_FALSE(nv.get_uint8("missing").has_value());
  CHECK_FALSE(nv.exists("missing"));
  CHECK(nv.get_string("s") == "text");
  auto decoded = Nv::decode(nv.encode());
  REQUIRE(decoded.has_value());
  CHECK(decoded->get_uint8("x") == 1);
  CHECK_FALSE(decoded->get_uint32("x").has_value());
}

TEST_CASE("Nv: names up to 254 bytes and the empty name", "[unit][proto]") {
  Nv nv;
  std::string longest(hast::proto::nv_name_length_max, 'n');
  nv.add_uint8(longest, 1);
  nv.add_uint8("", 2);
  auto encoded = nv.encode();
  CHECK(std::to_integer<int>(encoded[1]) == 255);
  auto decoded = Nv::decode(encoded);
  REQUIRE(decoded.has_value());
  CHECK(decoded->get_uint8(longest) == 1);
  CHECK(decoded->get_uint8("") == 2);
}

// ---- Properties ----

TEST_CASE("Nv: random element lists round-trip through encode and decode", "[unit][proto]") {
  hast::test::property("nv round trip", [] {
    auto elements = *rc::gen::container<std::vector<Nv::Element>>(gen_element());
    Nv nv = build(elements);
    auto encoded = nv.encode();
    RC_ASSERT(encoded.size() == nv.encoded_size());
    RC_ASSERT(encoded.size() % 8 == 6 * elements.size() % 8);
    auto decoded = Nv::decode(encoded);
    RC_ASSERT(decoded.has_value());
    RC_ASSERT(decoded->elements() == elements);
    // Trailing zero padding changes nothing.
    encoded.resize(encoded.size() + *rc::gen::inRange(0, 16), std::byte{0});
    RC_ASSERT(*Nv::decode(encoded) == nv);
    // Lookups see the first element of each name.
    for (const auto& element : elements) {
      auto first = std::find_if(elements.begin(), elements.end(),
                                [&](const Nv::Element& e) { return e.name == element.name; });
      RC_ASSERT(*decoded->find(element.name) == *first);
    }
  });
}

TEST_CASE("Nv: random bytes never crash the decoder", "[unit][proto]") {
  hast::test::property("nv random bytes", [] {
    auto input = *rc::gen::container<std::vector<std::uint8_t>>(rc::gen::arbitrary<std::uint8_t>());
    auto decoded = Nv::decode(std::as_bytes(std::span(input)));
    if (!decoded) {
      RC_ASSERT(decoded.error().code() == Errc::corruption);
      return;
    }
    auto again = Nv::decode(decoded->encode());
    RC_ASSERT(again.has_value());
    RC_ASSERT(*again == *decoded);
  });
}

TEST_CASE("Nv: mutated valid encodings decode or fail cleanly", "[unit][proto]") {
  hast::test::property("nv mutated bytes", [] {
    auto elements = *rc::gen::nonEmpty(rc::gen::container<std::vector<Nv::Element>>(gen_element()));
    auto encoded = build(elements).encode();
    auto mutations = *rc::gen::inRange(1, 6);
    for (int i = 0; i < mutations; i++) {
      auto at = *rc::gen::inRange<std::size_t>(0, encoded.size());
      switch (*rc::gen::inRange(0, 3)) {
        case 0:
          encoded[at] = static_cast<std::byte>(*rc::gen::arbitrary<std::uint8_t>());
          break;
        case 1:
          encoded[at] ^= static_cast<std::byte>(1 << *rc::gen::inRange(0, 8));
          break;
        default:
          encoded.resize(at);
          break;
      }
      if (encoded.empty()) break;
    }
    auto decoded = Nv::decode(encoded);
    if (!decoded) {
      RC_ASSERT(decoded.error().code() == Errc::corruption);
      RC_ASSERT(decoded.error().context().find("nv element at byte") == 0);
      return;
    }
    RC_ASSERT(*Nv::decode(decoded->encode()) == *decoded);
  });
}

TEST_CASE("NvBytes: short data in place, long data on the heap; copies, moves and equality",
          "[unit][proto]") {
  using hast::proto::NvBytes;
  for (std::size_t size : std::initializer_list<std::size_t>{1, 8, NvBytes::inline_bytes_max,
                                                             NvBytes::inline_bytes_max + 1, 300}) {
    INFO("size " << size);
    std::vector<std::byte> source(size);
    for (std::size_t i = 0; i < size; i++)
      source[i] = static_cast<std::byte>(i * 7 + 1);
    NvBytes bytes(source);
    CHECK(bytes.size() == size);
    CHECK(bytes == source);
    CHECK(std::vector<std::byte>(bytes.begin(), bytes.end()) == source);
    NvBytes copy = bytes;
    CHECK(copy == bytes);
    CHECK(copy.data() != bytes.data());
    NvBytes moved = std::move(copy);
    CHECK(moved == source);
    CHECK(copy.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty
    std::vector<std::byte> other = source;
    other.back() ^= std::byte{0xff};
    CHECK_FALSE(bytes == other);
    CHECK_FALSE(bytes == NvBytes(std::span<const std::byte>(source).first(size - 1)));
  }
}
