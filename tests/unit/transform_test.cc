// Payload transforms (reference/hast-spec.md §6.5): field order and hand-written golden
// bytes, hole and lzf rules, crc32/sha256 test vectors, every receive-side rejection,
// round-trip and mutation properties, and the lzf pipeline on a fiber stack of the
// production size with its stack use measured.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include <rapidcheck.h>
#include <catch2/catch.hpp>

#include "core/fiber/scheduler.h"
#include "core/io/byte_buffer.h"
#include "core/proto/nv.h"
#include "core/proto/transform.h"
#include "tests/support/property.h"
#include "tests/support/test_io.h"

using hast::Errc;
using hast::proto::Checksum;
using hast::proto::Compression;
using hast::proto::Nv;
using hast::proto::NvType;

namespace {

using Bytes = std::vector<std::byte>;

Bytes raw(std::initializer_list<int> values) {
  Bytes out;
  for (int value : values)
    out.push_back(static_cast<std::byte>(value));
  return out;
}

Bytes text(std::string_view s) {
  return Bytes(reinterpret_cast<const std::byte*>(s.data()),
               reinterpret_cast<const std::byte*>(s.data() + s.size()));
}

Bytes repeated(std::string_view pattern, std::size_t size) {
  Bytes out(size);
  for (std::size_t i = 0; i < size; i++)
    out[i] = static_cast<std::byte>(pattern[i % pattern.size()]);
  return out;
}

Bytes pseudo_random(std::size_t size, std::uint32_t seed) {
  Bytes out(size);
  for (auto& b : out) {
    seed = seed * 1664525 + 1013904223;
    b = static_cast<std::byte>(seed >> 24);
  }
  return out;
}

std::vector<std::string> names(const Nv& nv) {
  std::vector<std::string> out;
  for (const auto& element : nv.elements())
    out.push_back(element.name);
  return out;
}

// decode_payload on a ByteBuffer copy of `received`, its result as Bytes.
hast::Result<Bytes> decode(const Nv& nv, const Bytes& received, std::size_t limit) {
  auto out = hast::proto::decode_payload(nv, hast::ByteBuffer::copy_of(received), limit);
  if (!out) return hast::fail(out.error());
  return Bytes(out->begin(), out->end());
}

// Runs the send pipeline on a fresh nv; returns the nv and the bytes to send.
std::pair<Nv, Bytes> send(const Bytes& data, Compression compression, Checksum checksum) {
  Nv nv;
  Bytes out = hast::proto::encode_payload(nv, data, compression, checksum);
  return {std::move(nv), std::move(out)};
}

void require_failure(const Nv& nv, const Bytes& received, std::size_t limit, Errc code,
                     const std::string& needle) {
  auto decoded = decode(nv, received, limit);
  REQUIRE_FALSE(decoded.has_value());
  INFO(decoded.error().message());
  CHECK(decoded.error().code() == code);
  CHECK(decoded.error().context().find(needle) != std::string::npos);
}

// Heap stacks painted with a pattern; on return the deepest byte a fiber touched is found.
class PaintedStacks final : public hast::StackAllocator {
 public:
  explicit PaintedStacks(std::size_t size) : size_(size) {}
  hast::Stack allocate() override {
    void* base = ::operator new (size_, std::align_val_t{64});
    std::memset(base, paint, size_);
    return hast::Stack{base, size_};
  }
  void deallocate(hast::Stack stack) override {
    auto* bytes = static_cast<const unsigned char*>(stack.base);
    std::size_t untouched = 0;
    while (untouched < stack.size && bytes[untouched] == paint)
      untouched++;
    used_max_ = std::max(used_max_, stack.size - untouched);
    ::operator delete (stack.base, std::align_val_t{64});
  }
  std::size_t stack_size() const override { return size_; }
  std::size_t used_max() const { return used_max_; }

 private:
  static constexpr unsigned char paint = 0xa5;
  std::size_t size_;
  std::size_t used_max_ = 0;
};

}  // namespace

TEST_CASE("Transform: names are the hast.conf keywords", "[unit][proto]") {
  CHECK(hast::proto::compression_name(Compression::none) == "none");
  CHECK(hast::proto::compression_name(Compression::hole) == "hole");
  CHECK(hast::proto::compression_name(Compression::lzf) == "lzf");
  CHECK(hast::proto::checksum_name(Checksum::none) == "none");
  CHECK(hast::proto::checksum_name(Checksum::crc32) == "crc32");
  CHECK(hast::proto::checksum_name(Checksum::sha256) == "sha256");
  for (auto c : {Compression::none, Compression::hole, Compression::lzf})
    CHECK(hast::proto::parse_compression(hast::proto::compression_name(c)) == c);
  for (auto c : {Checksum::none, Checksum::crc32, Checksum::sha256})
    CHECK(hast::proto::parse_checksum(hast::proto::checksum_name(c)) == c);
  CHECK_FALSE(hast::proto::parse_compression("LZF").has_value());
  CHECK_FALSE(hast::proto::parse_checksum("md5").has_value());
  CHECK_FALSE(hast::proto::parse_checksum("").has_value());
}

TEST_CASE("Transform: crc32 pipeline fields match hand-written bytes", "[unit][proto]") {
  // CRC-32 of "123456789" is the standard check value 0xcbf43926.
  auto [nv, out] = send(text("123456789"), Compression::none, Checksum::crc32);
  CHECK(out == text("123456789"));
  auto expected = raw({
      // "checksum" = "crc32": string, namesize 9, dsize 6; name -> 16, data -> 8.
      0x11, 0x09, 0x06, 0x00, 0x00, 0x00,              //
      0x63, 0x68, 0x65, 0x63, 0x6b, 0x73, 0x75, 0x6d,  // "checksum"
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // NUL + 7 padding
      0x63, 0x72, 0x63, 0x33, 0x32, 0x00, 0x00, 0x00,  // "crc32\0" + 2 padding
      // "hash": uint8[] (10), namesize 5, dsize 4: the uint32 in host (LE) order.
      0x0a, 0x05, 0x04, 0x00, 0x00, 0x00,              //
      0x68, 0x61, 0x73, 0x68, 0x00, 0x00, 0x00, 0x00,  // "hash\0" + 3 padding
      0x26, 0x39, 0xf4, 0xcb, 0x00, 0x00, 0x00, 0x00,  // 0xcbf43926 little-endian
      // "size" = 9: uint32, namesize 5, dsize 4.
      0x06, 0x05, 0x04, 0x00, 0x00, 0x00,              //
      0x73, 0x69, 0x7a, 0x65, 0x00, 0x00, 0x00, 0x00,  // "size\0" + 3 padding
      0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
  });
  CHECK(nv.encode() == expected);
  auto back = decode(nv, out, 9);
  REQUIRE(back.has_value());
  CHECK(*back == text("123456789"));
}

TEST_CASE("Transform: hole pipeline sends the 4-byte length", "[unit][proto]") {
  auto [nv, out] = send(Bytes(4096), Compression::hole, Checksum::none);
  CHECK(out == raw({0x00, 0x10, 0x00, 0x00}));  // 4096 little-endian
  auto expected = raw({
      // "compression" = "hole": string, namesize 12, dsize 5.
      0x11, 0x0c, 0x05, 0x00, 0x00, 0x00,              //
      0x63, 0x6f, 0x6d, 0x70, 0x72, 0x65, 0x73, 0x73,  // "compress"
      0x69, 0x6f, 0x6e, 0x00, 0x00, 0x00, 0x00, 0x00,  // "ion\0" + 4 padding
      0x68, 0x6f, 0x6c, 0x65, 0x00, 0x00, 0x00, 0x00,  // "hole\0" + 3 padding
      // "size" = 4.
      0x06, 0x05, 0x04, 0x00, 0x00, 0x00,              //
      0x73, 0x69, 0x7a, 0x65, 0x00, 0x00, 0x00, 0x00,  //
      0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
  });
  CHECK(nv.encode() == expected);
  CHECK(*decode(nv, out, 4096) == Bytes(4096));
}

TEST_CASE("Transform: sha256 uses the 32-byte digest", "[unit][proto]") {
  auto [nv, out] = send(text("abc"), Compression::none, Checksum::sha256);
  auto digest = raw({0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                     0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                     0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad});
  CHECK(nv.get_string("checksum") == "sha256");
  CHECK(nv.find("hash")->type == NvType::uint8_array);
  CHECK(nv.find("hash")->data == digest);
  CHECK(nv.get_uint32("size") == 3);
}

TEST_CASE("Transform: fields follow the message's own, in pipeline order", "[unit][proto]") {
  Nv nv;
  nv.add_uint8("cmd", 2);
  auto out =
      hast::proto::encode_payload(nv, repeated("hast", 8192), Compression::lzf, Checksum::sha256);
  CHECK(names(nv) == std::vector<std::string>{"cmd", "compression", "checksum", "hash", "size"});
  CHECK(nv.get_string("compression") == "lzf");
  CHECK(nv.get_uint32("size") == out.size());
  // The checksum covers the compressed bytes.
  Nv plain;
  hast::proto::encode_payload(plain, out, Compression::none, Checksum::sha256);
  CHECK(plain.find("hash")->data == nv.find("hash")->data);

  Nv only_size;
  hast::proto::encode_payload(only_size, text("x"), Compression::none, Checksum::none);
  CHECK(names(only_size) == std::vector<std::string>{"size"});
  Nv empty;
  CHECK(hast::proto::encode_payload(empty, {}, Compression::lzf, Checksum::crc32).empty());
  CHECK(empty.empty());  // no payload, no fields, no size
}

TEST_CASE("Transform: hole only for all-zero buffers of a multiple of 8", "[unit][proto]") {
  auto [zero12, out12] = send(Bytes(12), Compression::hole, Checksum::none);
  CHECK_FALSE(zero12.exists("compression"));
  CHECK(out12 == Bytes(12));
  for (std::size_t at : {0, 1, 7, 2048, 4095}) {  // one non-zero byte anywhere
    Bytes almost(4096);
    almost[at] = std::byte{1};
    auto [nonzero, out] = send(almost, Compression::hole, Checksum::none);
    CHECK_FALSE(nonzero.exists("compression"));
    CHECK(out == almost);
  }
  auto [zero8, out8] = send(Bytes(8), Compression::hole, Checksum::none);
  CHECK(zero8.get_string("compression") == "hole");
  CHECK(out8 == raw({8, 0, 0, 0}));
  // lzf tries hole first.
  auto [lzf_zero, lzf_out] = send(Bytes(65536), Compression::lzf, Checksum::none);
  CHECK(lzf_zero.get_string("compression") == "hole");
  CHECK(lzf_out == raw({0x00, 0x00, 0x01, 0x00}));
}

TEST_CASE("Transform: lzf only over 1024 bytes and only when it saves 1024", "[unit][proto]") {
  auto [small, small_out] = send(repeated("a", 1024), Compression::lzf, Checksum::none);
  CHECK_FALSE(small.exists("compression"));
  CHECK(small_out.size() == 1024);
  // 1025 bytes would have to shrink to 1 byte: sent raw.
  auto [tight, tight_out] = send(repeated("a", 1025), Compression::lzf, Checksum::none);
  CHECK_FALSE(tight.exists("compression"));
  auto [noise, noise_out] = send(pseudo_random(4096, 7), Compression::lzf, Checksum::none);
  CHECK_FALSE(noise.exists("compression"));
  CHECK(noise_out == pseudo_random(4096, 7));
  auto [good, good_out] = send(repeated("a", 4096), Compression::lzf, Checksum::none);
  REQUIRE(good.get_string("compression") == "lzf");
  CHECK(std::vector<std::byte>(good_out.begin(), good_out.begin() + 4) ==
        raw({0x00, 0x10, 0x00, 0x00}));
  CHECK(good_out.size() <= 4 + 4096 - 1024);
  CHECK(*decode(good, good_out, 4096) == repeated("a", 4096));
  // hole compression does not try lzf.
  auto [hole, hole_out] = send(repeated("a", 4096), Compression::hole, Checksum::none);
  CHECK_FALSE(hole.exists("compression"));
}

TEST_CASE("Transform: the receiver rejects every malformed payload", "[unit][proto]") {
  auto [crc_nv, crc_out] = send(text("123456789"), Compression::none, Checksum::crc32);
  auto [lzf_nv, lzf_out] = send(repeated("hast", 8192), Compression::lzf, Checksum::none);
  REQUIRE(lzf_nv.get_string("compression") == "lzf");
  auto with = [](std::initializer_list<std::pair<std::string, std::string>> strings) {
    Nv nv;
    for (const auto& [name, value] : strings)
      nv.add_string(name, value);
    return nv;
  };

  SECTION("hash mismatch") {
    Bytes flipped = crc_out;
    flipped[0] ^= std::byte{1};
    require_failure(crc_nv, flipped, 100, Errc::corruption, "Hash mismatch.");
    auto [sha_nv, sha_out] = send(text("abc"), Compression::none, Checksum::sha256);
    sha_out[2] = std::byte{'d'};
    require_failure(sha_nv, sha_out, 100, Errc::corruption, "Hash mismatch.");
  }
  SECTION("hash missing or of the wrong size or type") {
    require_failure(with({{"checksum", "crc32"}}), text("x"), 100, Errc::corruption, "'hash'");
    Nv nv = with({{"checksum", "sha256"}});
    std::uint8_t short_hash[4] = {};
    nv.add_uint8_array("hash", short_hash);
    require_failure(nv, text("x"), 100, Errc::corruption, "hash of 4 bytes, expected 32");
    Nv typed = with({{"checksum", "crc32"}});
    typed.add_uint32("hash", 0);
    require_failure(typed, text("x"), 100, Errc::corruption, "'hash'");
  }
  SECTION("unknown algorithms") {
    require_failure(with({{"checksum", "md5"}}), text("x"), 100, Errc::unsupported, "'md5'");
    require_failure(with({{"checksum", "none"}}), text("x"), 100, Errc::unsupported, "'none'");
    require_failure(with({{"compression", "zstd"}}), text("x"), 100, Errc::unsupported, "'zstd'");
    require_failure(with({{"compression", "none"}}), text("x"), 100, Errc::unsupported, "'none'");
  }
  SECTION("mistyped algorithm fields") {
    Nv nv;
    nv.add_uint8("checksum", 1);
    require_failure(nv, text("x"), 100, Errc::corruption, "'checksum' is uint8");
    Nv other;
    other.add_uint8("compression", 1);
    require_failure(other, text("x"), 100, Errc::corruption, "'compression' is uint8");
  }
  SECTION("hole payload not 4 bytes, or too large") {
    Nv hole = with({{"compression", "hole"}});
    require_failure(hole, raw({0, 0x10, 0, 0, 0}), 100, Errc::corruption, "invalid size: 5");
    require_failure(hole, raw({0, 0x10, 0}), 100, Errc::corruption, "invalid size: 3");
    require_failure(hole, raw({0x01, 0x10, 0, 0}), 4096, Errc::invalid_argument, "4097");
    CHECK(*decode(hole, raw({0x00, 0x10, 0, 0}), 4096) == Bytes(4096));
  }
  SECTION("lzf payload of 4 bytes or less, small origsize, bad stream") {
    Nv lzf = with({{"compression", "lzf"}});
    require_failure(lzf, raw({0x00, 0x10, 0, 0}), 65536, Errc::corruption, "lzf payload of 4");
    Bytes small = lzf_out;
    small[0] = std::byte{0x00};  // origsize 1024 (0x400)
    small[1] = std::byte{0x04};
    small[2] = small[3] = std::byte{0};
    require_failure(lzf_nv, small, 65536, Errc::corruption, "original size 1024 <= 1024");
    Bytes longer = lzf_out;
    longer[1] = std::byte{0x30};  // origsize 0x3000: the stream yields only 8192
    require_failure(lzf_nv, longer, 65536, Errc::corruption, "expected 12288");
    Bytes shorter = lzf_out;
    shorter[1] = std::byte{0x10};  // origsize 4096: the stream overflows it
    require_failure(lzf_nv, shorter, 65536, Errc::corruption, "expected 4096");
    Bytes garbage = raw({0x00, 0x10, 0x00, 0x00, 0xff, 0xff, 0xff});
    require_failure(lzf, garbage, 65536, Errc::corruption, "expected 4096");
    require_failure(lzf_nv, lzf_out, 8191, Errc::invalid_argument, "8192 over the limit");
  }
  SECTION("received size over the limit") {
    require_failure(crc_nv, crc_out, 8, Errc::invalid_argument, "payload of 9 bytes");
  }
  SECTION("an empty payload is returned without looking at the fields") {
    auto empty = decode(with({{"checksum", "md5"}}), {}, 0);
    REQUIRE(empty.has_value());
    CHECK(empty->empty());
  }
}

TEST_CASE("Transform: every configuration round-trips every kind of data", "[unit][proto]") {
  hast::test::property("transform round trip", [] {
    auto kind = *rc::gen::inRange(0, 4);
    auto size = *rc::gen::inRange<std::size_t>(0, 20000);
    Bytes data;
    if (kind == 0) data = Bytes(size & ~std::size_t{7});
    if (kind == 1) data = pseudo_random(size, *rc::gen::arbitrary<std::uint32_t>());
    if (kind == 2) data = repeated(*rc::gen::nonEmpty<std::string>(), size);
    if (kind == 3) data = Bytes(size);  // zeros, any length
    auto compression = *rc::gen::element(Compression::none, Compression::hole, Compression::lzf);
    auto checksum = *rc::gen::element(Checksum::none, Checksum::crc32, Checksum::sha256);
    Nv nv;
    nv.add_uint64("seq", 1);
    auto out = hast::proto::encode_payload(nv, data, compression, checksum);
    RC_ASSERT(out.size() <= data.size());
    RC_ASSERT(nv.get_uint32("size").value_or(0) == out.size());
    RC_ASSERT(nv.exists("checksum") == (checksum != Checksum::none && !data.empty()));
    if (compression == Compression::none) RC_ASSERT(!nv.exists("compression"));
    auto back = decode(nv, out, data.size());
    RC_ASSERT(back.has_value());
    RC_ASSERT(*back == data);
  });
}

TEST_CASE("Transform: mutated payloads and fields fail cleanly", "[unit][proto]") {
  hast::test::property("transform mutations", [] {
    Bytes data = *rc::gen::element(Bytes(4096), repeated("replica", 6000), pseudo_random(300, 1));
    auto compression = *rc::gen::element(Compression::none, Compression::hole, Compression::lzf);
    auto checksum = *rc::gen::element(Checksum::none, Checksum::crc32, Checksum::sha256);
    Nv nv;
    Bytes out = hast::proto::encode_payload(nv, data, compression, checksum);
    Bytes mutated = out;
    auto flips = *rc::gen::inRange(1, 4);
    for (int i = 0; i < flips; i++) {
      auto at = *rc::gen::inRange<std::size_t>(0, mutated.size());
      mutated[at] ^= static_cast<std::byte>(*rc::gen::inRange(1, 256));
    }
    if (*rc::gen::arbitrary<bool>()) mutated.resize(*rc::gen::inRange<std::size_t>(0, out.size()));
    auto back = decode(nv, mutated, 1 << 20);
    // An empty payload is never checked (FreeBSD reads nothing); any other change is caught.
    bool changed = mutated != out && !mutated.empty();
    if (checksum != Checksum::none && changed) RC_ASSERT(!back.has_value());
    if (back) RC_ASSERT(back->size() <= (1u << 20));
    // Random values in the algorithm fields.
    Nv fields;
    fields.add_string("compression",
                      *rc::gen::element(std::string("hole"), std::string("lzf"), std::string("x")));
    fields.add_string("checksum", *rc::gen::element(std::string("crc32"), std::string("sha256"),
                                                    std::string("y")));
    auto hash = *rc::gen::container<std::vector<std::uint8_t>>(rc::gen::arbitrary<std::uint8_t>());
    if (!hash.empty()) fields.add_uint8_array("hash", hash);
    auto other = decode(fields, mutated, 1 << 20);
    if (other) RC_ASSERT(other->size() <= (1u << 20));
  });
}

TEST_CASE("Transform: every pipeline fits a fiber stack of the production size", "[unit][proto]") {
  // liblzf keeps its hash table on the stack; run every transform where production runs
  // it (a fiber of transform_stack_size_min) and measure the deepest stack byte touched.
  hast::test::ManualClock clock;
  PaintedStacks stacks(hast::proto::transform_stack_size_min);
  hast::fiber::Scheduler scheduler(clock, stacks, nullptr, hast::fiber::SchedulerOptions{});
  hast::test::ClockJumpPoller poller(clock);
  Bytes data = repeated("highly available storage ", 1 << 20);
  int round_trips = 0;
  bool lzf_used = false;
  for (auto compression : {Compression::none, Compression::hole, Compression::lzf}) {
    for (auto checksum : {Checksum::none, Checksum::crc32, Checksum::sha256}) {
      auto body = [&, compression, checksum] {
        Nv nv;
        auto out = hast::proto::encode_payload(nv, data, compression, checksum);
        lzf_used = lzf_used || nv.get_string("compression") == "lzf";
        auto back = decode(nv, out, data.size());
        if (back && *back == data) round_trips++;
      };
      REQUIRE(scheduler.spawn("transform", body).has_value());
    }
  }
  scheduler.run(poller);
  CHECK(round_trips == 9);
  CHECK(lzf_used);
  INFO("stack used: " << stacks.used_max() << " of " << hast::proto::transform_stack_size_min);
  CHECK(stacks.used_max() > 64 * 1024);  // lzf_compress's table really was on this stack
  CHECK(stacks.used_max() + 256 * 1024 < hast::proto::transform_stack_size_min);
}

TEST_CASE("Transform: the view sends uncompressed data in place, else what it compressed",
          "[unit][proto]") {
  for (auto compression : {Compression::none, Compression::hole, Compression::lzf}) {
    for (auto checksum : {Checksum::none, Checksum::crc32, Checksum::sha256}) {
      for (const Bytes& data : {pseudo_random(4096, 7), Bytes(4096), repeated("hast", 8192)}) {
        Nv copied_nv;
        Bytes copied = hast::proto::encode_payload(copied_nv, data, compression, checksum);
        Nv viewed_nv;
        auto viewed = hast::proto::encode_payload_view(viewed_nv, data, compression, checksum);
        // Same fields and bytes on the wire as the copying pipeline.
        CHECK(names(viewed_nv) == names(copied_nv));
        CHECK(viewed_nv.encoded_size() == copied_nv.encoded_size());
        CHECK(Bytes(viewed.bytes.begin(), viewed.bytes.end()) == copied);
        bool compressed = viewed_nv.find("compression") != nullptr;
        CHECK(compressed == !viewed.compressed.empty());
        // Uncompressed: the caller's own bytes, not a copy.
        if (!compressed) CHECK(viewed.bytes.data() == data.data());
        // A move keeps the bytes where they were.
        const std::byte* before = viewed.bytes.data();
        auto moved = std::move(viewed);
        CHECK(moved.bytes.data() == before);
      }
    }
  }
  Nv empty;
  CHECK(
      hast::proto::encode_payload_view(empty, {}, Compression::lzf, Checksum::crc32).bytes.empty());
  CHECK(empty.empty());
}

TEST_CASE("Transform: the receiver hands an uncompressed payload back in its own buffer",
          "[unit][proto]") {
  for (auto compression : {Compression::none, Compression::hole, Compression::lzf}) {
    for (auto checksum : {Checksum::none, Checksum::crc32, Checksum::sha256}) {
      for (const Bytes& data : {pseudo_random(4096, 9), Bytes(4096), repeated("hast", 8192)}) {
        auto [nv, out] = send(data, compression, checksum);
        auto received = hast::ByteBuffer::copy_of(out);
        const std::byte* where = received.data();
        auto back = hast::proto::decode_payload(nv, std::move(received), data.size());
        REQUIRE(back.has_value());
        CHECK(std::equal(back->begin(), back->end(), data.begin(), data.end()));
        // Aligned for direct I/O however it was decoded.
        CHECK(reinterpret_cast<std::uintptr_t>(back->data()) % hast::byte_buffer_alignment == 0);
        // Not compressed: the same buffer, no copy.
        if (nv.find("compression") == nullptr) CHECK(back->data() == where);
      }
    }
  }
}
