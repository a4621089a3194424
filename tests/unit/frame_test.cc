// Message framing (reference/hast-spec.md §6.1): hand-written header and frame bytes,
// header validation, send/receive over an in-memory connection, oversized payloads that
// are discarded with the framing kept, and properties over random messages and bytes.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include <rapidcheck.h>
#include <catch2/catch.hpp>

#include "core/proto/frame.h"
#include "core/proto/nv.h"
#include "tests/support/property.h"

using hast::Errc;
using hast::proto::Message;
using hast::proto::Nv;
using hast::proto::RecvLimits;

namespace {

std::vector<std::byte> raw(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int value : values)
    out.push_back(static_cast<std::byte>(value));
  return out;
}

// A loopback byte pipe: what is sent can be received. recv_exact fails with
// Errc::disconnected (consuming the rest) when fewer bytes remain than asked for.
class PipeConnection final : public hast::Connection {
 public:
  hast::Result<void> send(std::span<const std::byte> data, hast::Deadline) override {
    sends.emplace_back(data.begin(), data.end());
    bytes.insert(bytes.end(), data.begin(), data.end());
    return hast::ok();
  }
  hast::Result<void> send_gather(std::span<const std::byte> head, std::span<const std::byte> body,
                                 hast::Deadline deadline) override {
    gathers++;
    return Connection::send_gather(head, body, deadline);
  }
  hast::Result<void> recv_exact(std::span<std::byte> buffer, hast::Deadline) override {
    if (bytes.size() - read_at < buffer.size()) {
      read_at = bytes.size();
      return hast::fail(Errc::disconnected, "peer closed");
    }
    if (!buffer.empty()) std::memcpy(buffer.data(), bytes.data() + read_at, buffer.size());
    read_at += buffer.size();
    recv_calls++;
    return hast::ok();
  }
  void close() override {}
  hast::Address peer_address() const override {
    return hast::Address{hast::Address::Kind::tcp, "10.0.0.2", 8457, ""};
  }
  hast::Address local_address() const override {
    return hast::Address{hast::Address::Kind::tcp, "10.0.0.1", 8457, ""};
  }

  std::vector<std::byte> bytes;
  std::size_t read_at = 0;
  std::vector<std::vector<std::byte>> sends;
  int gathers = 0;
  int recv_calls = 0;
};

Nv keepalive_nv() {
  Nv nv;
  nv.add_uint8("cmd", 5);
  return nv;
}

// An nv announcing `size` payload bytes.
Nv sized_nv(std::uint32_t size) {
  Nv nv;
  nv.add_uint64("seq", 1);
  nv.add_uint32("size", size);
  return nv;
}

}  // namespace

TEST_CASE("Frame: header bytes are version then LE nv size", "[unit][proto]") {
  auto header = hast::proto::encode_header({2, 0x01020304});
  CHECK(std::vector<std::byte>(header.begin(), header.end()) ==
        raw({0x02, 0x04, 0x03, 0x02, 0x01}));
  auto decoded = hast::proto::decode_header(raw({0x01, 0x16, 0x00, 0x00, 0x00}), 1024);
  REQUIRE(decoded.has_value());
  CHECK(decoded->version == 1);
  CHECK(decoded->nv_size == 22);
  // Lower versions are accepted, including 0.
  CHECK(hast::proto::decode_header(raw({0x00, 0x08, 0, 0, 0}), 1024).has_value());
}

TEST_CASE("Frame: a KEEPALIVE frame matches its hand-written bytes", "[unit][proto]") {
  auto frame = hast::proto::encode_frame(2, keepalive_nv(), {});
  auto expected = raw({
      0x02,                                            // header version 2
      0x16, 0x00, 0x00, 0x00,                          // nv size 22, little-endian
      0x02, 0x04, 0x01, 0x00, 0x00, 0x00,              // uint8, namesize 4, dsize 1
      0x63, 0x6d, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00,  // "cmd\0" + 4 padding
      0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // 5 = KEEPALIVE + 7 padding
  });
  CHECK(frame == expected);
}

TEST_CASE("Frame: header validation names the problem", "[unit][proto]") {
  SECTION("a version above 2 is unsupported") {
    auto decoded = hast::proto::decode_header(raw({0x03, 0x16, 0, 0, 0}), 1024);
    REQUIRE_FALSE(decoded.has_value());
    CHECK(decoded.error().code() == Errc::unsupported);
    CHECK(decoded.error().context() == "protocol version 3 not supported");
    CHECK(hast::proto::decode_header(raw({0xff, 0x16, 0, 0, 0}), 1024).error().code() ==
          Errc::unsupported);
  }
  SECTION("an nv size of 0 is corruption, not an abort") {
    auto decoded = hast::proto::decode_header(raw({0x02, 0, 0, 0, 0}), 1024);
    REQUIRE_FALSE(decoded.has_value());
    CHECK(decoded.error().code() == Errc::corruption);
    CHECK(decoded.error().context().find("nv of 0 bytes") != std::string::npos);
  }
  SECTION("an nv over the limit is corruption") {
    auto decoded = hast::proto::decode_header(raw({0x02, 0x01, 0x04, 0, 0}), 1024);
    REQUIRE_FALSE(decoded.has_value());
    CHECK(decoded.error().code() == Errc::corruption);
    CHECK(decoded.error().context().find("1025") != std::string::npos);
    CHECK(hast::proto::decode_header(raw({0x02, 0x00, 0x04, 0, 0}), 1024).has_value());
  }
}

TEST_CASE("Frame: send_message sends header+nv, then the payload; recv_message reads both",
          "[unit][proto]") {
  PipeConnection pipe;
  std::vector<std::byte> payload(100);
  for (std::size_t i = 0; i < payload.size(); i++)
    payload[i] = static_cast<std::byte>(i);
  REQUIRE(hast::proto::send_message(pipe, 2, sized_nv(100), payload, std::nullopt).has_value());
  CHECK(pipe.gathers == 1);  // one transport operation for both parts
  REQUIRE(pipe.sends.size() == 2);
  CHECK(pipe.sends[0].size() == 5 + sized_nv(100).encoded_size());
  CHECK(pipe.sends[1] == payload);
  REQUIRE(hast::proto::send_message(pipe, 1, keepalive_nv(), {}, std::nullopt).has_value());
  CHECK(pipe.sends.size() == 3);  // no empty payload send

  auto first = hast::proto::recv_message(pipe, RecvLimits{}, std::nullopt);
  REQUIRE(first.has_value());
  CHECK(first->version == 2);
  CHECK(first->nv == sized_nv(100));
  CHECK(std::ranges::equal(first->payload, payload));
  // Received into an aligned buffer, which a disk opened with O_DIRECT takes as it is.
  CHECK(reinterpret_cast<std::uintptr_t>(first->payload.data()) % hast::byte_buffer_alignment == 0);
  CHECK_FALSE(first->payload_discarded);
  auto second = hast::proto::recv_message(pipe, RecvLimits{}, std::nullopt);
  REQUIRE(second.has_value());
  CHECK(second->version == 1);
  CHECK(second->nv == keepalive_nv());
  CHECK(second->payload.empty());
  CHECK(pipe.read_at == pipe.bytes.size());
}

TEST_CASE("Frame: a SendBatch sends the bytes of one send_message each, in one gathered send",
          "[unit][proto]") {
  using hast::proto::SendBatch;
  std::vector<std::byte> small(100, std::byte{0x11});
  std::vector<std::byte> big(SendBatch::copy_payload_bytes_max + 1, std::byte{0x22});
  // What one send_message per message puts on the wire.
  PipeConnection expected;
  REQUIRE(hast::proto::send_message(expected, 2, sized_nv(100), small, std::nullopt));
  REQUIRE(hast::proto::send_message(expected, 2, keepalive_nv(), {}, std::nullopt));
  REQUIRE(hast::proto::send_message(expected, 1, sized_nv(100), small, std::nullopt));
  REQUIRE(hast::proto::send_message(expected, 2, sized_nv(static_cast<std::uint32_t>(big.size())),
                                    big, std::nullopt));

  PipeConnection pipe;
  SendBatch batch;
  CHECK(batch.empty());
  CHECK(batch.has_room());
  batch.add(2, sized_nv(100), small);
  batch.add(2, keepalive_nv(), {});
  batch.add(1, sized_nv(100), small);
  CHECK(batch.has_room());
  batch.add(2, sized_nv(static_cast<std::uint32_t>(big.size())), big);
  CHECK(batch.size() == 4);
  CHECK_FALSE(batch.has_room());  // a payload too large to copy ends the batch
  REQUIRE(batch.send(pipe, std::nullopt));
  CHECK(pipe.gathers == 1);
  REQUIRE(pipe.sends.size() == 2);
  CHECK(pipe.sends[1] == big);  // the last payload goes in place, not copied
  CHECK(pipe.bytes == expected.bytes);
  CHECK(batch.empty());

  // Emptied and reusable; a batch of one makes send_message's call exactly.
  PipeConnection alone;
  batch.add(2, sized_nv(100), small);
  REQUIRE(batch.send(alone, std::nullopt));
  CHECK(alone.gathers == 1);
  CHECK(alone.sends ==
        std::vector<std::vector<std::byte>>(expected.sends.begin(), expected.sends.begin() + 2));

  // Every message is received as sent.
  RecvLimits limits;
  limits.payload_max = static_cast<std::uint32_t>(big.size());
  limits.payload_discard_max = limits.payload_max;
  auto one = hast::proto::recv_message(pipe, limits, std::nullopt);
  REQUIRE(one);
  CHECK(std::ranges::equal(one->payload, small));
  auto two = hast::proto::recv_message(pipe, limits, std::nullopt);
  REQUIRE(two);
  CHECK(two->nv == keepalive_nv());
  auto three = hast::proto::recv_message(pipe, limits, std::nullopt);
  REQUIRE(three);
  CHECK(three->version == 1);
  auto four = hast::proto::recv_message(pipe, limits, std::nullopt);
  REQUIRE(four);
  CHECK(std::ranges::equal(four->payload, big));
}

TEST_CASE("Frame: a SendBatch stops taking messages at its bounds", "[unit][proto]") {
  using hast::proto::SendBatch;
  SendBatch batch;
  std::size_t added = 0;
  while (batch.has_room()) {
    batch.add(2, keepalive_nv(), {});
    added++;
  }
  CHECK(added == SendBatch::messages_max);
  PipeConnection pipe;
  REQUIRE(batch.send(pipe, std::nullopt));
  CHECK(pipe.gathers == 1);

  std::vector<std::byte> payload(SendBatch::copy_payload_bytes_max, std::byte{0x33});
  added = 0;
  while (batch.has_room()) {
    batch.add(2, sized_nv(static_cast<std::uint32_t>(payload.size())), payload);
    added++;
  }
  // Bytes copied stay under buffer_bytes_max (the last payload is not copied).
  CHECK(added == SendBatch::buffer_bytes_max / SendBatch::copy_payload_bytes_max);
  REQUIRE(batch.send(pipe, std::nullopt));
  CHECK(pipe.sends.back().size() == payload.size());
}

TEST_CASE("Frame: an oversized payload within the discard bound is consumed and flagged",
          "[unit][proto]") {
  PipeConnection pipe;
  RecvLimits limits{.nv_size_max = 4096, .payload_max = 4096, .payload_discard_max = 300000};
  std::vector<std::byte> big(200000, std::byte{0x5a});
  pipe.bytes = hast::proto::encode_frame(2, sized_nv(200000), big);
  auto after = hast::proto::encode_frame(2, keepalive_nv(), {});
  pipe.bytes.insert(pipe.bytes.end(), after.begin(), after.end());

  auto message = hast::proto::recv_message(pipe, limits, std::nullopt);
  REQUIRE(message.has_value());
  CHECK(message->payload_discarded);
  CHECK(message->payload.empty());
  CHECK(message->nv.get_uint64("seq") == 1);
  CHECK(pipe.recv_calls >= 2 + 200000 / (64 * 1024));
  // The stream kept its framing: the next message reads intact.
  auto next = hast::proto::recv_message(pipe, limits, std::nullopt);
  REQUIRE(next.has_value());
  CHECK(next->nv == keepalive_nv());
}

TEST_CASE("Frame: receive errors name the peer and the part", "[unit][proto]") {
  PipeConnection pipe;
  auto expect_error = [&pipe](Errc code, const std::string& needle,
                              RecvLimits limits = RecvLimits{}) {
    pipe.read_at = 0;
    auto message = hast::proto::recv_message(pipe, limits, std::nullopt);
    REQUIRE_FALSE(message.has_value());
    INFO(message.error().message());
    CHECK(message.error().code() == code);
    CHECK(message.error().context().find("receiving message from tcp://10.0.0.2:8457") == 0);
    CHECK(message.error().context().find(needle) != std::string::npos);
  };
  SECTION("payload over the discard bound") {
    pipe.bytes = hast::proto::encode_frame(2, sized_nv(5000), std::vector<std::byte>(5000));
    expect_error(Errc::invalid_argument, "payload of 5000 bytes over the limit of 4999",
                 RecvLimits{.payload_max = 100, .payload_discard_max = 4999});
  }
  SECTION("a mistyped size field") {
    Nv nv;
    nv.add_uint64("size", 4);  // encode_frame would assert: build the bytes by hand
    auto header = hast::proto::encode_header({2, static_cast<std::uint32_t>(nv.encoded_size())});
    pipe.bytes.assign(header.begin(), header.end());
    nv.encode_to(pipe.bytes);
    expect_error(Errc::corruption, "field 'size' is uint64, not uint32");
  }
  SECTION("a bad header") {
    pipe.bytes = raw({0x03, 0x16, 0, 0, 0});
    expect_error(Errc::unsupported, "protocol version 3 not supported");
  }
  SECTION("a bad nv") {
    pipe.bytes = raw({0x02, 0x08, 0, 0, 0, 0x40, 1, 1, 0, 0, 0, 0, 0});
    expect_error(Errc::corruption, "unknown type 64");
  }
  SECTION("the stream ends in the header, the nv or the payload") {
    auto frame = hast::proto::encode_frame(2, sized_nv(64), std::vector<std::byte>(64));
    pipe.bytes.assign(frame.begin(), frame.begin() + 3);
    expect_error(Errc::disconnected, "header");
    pipe.bytes.assign(frame.begin(), frame.begin() + 20);
    expect_error(Errc::disconnected, "nv of 44 bytes");
    pipe.bytes.assign(frame.begin(), frame.end() - 1);
    expect_error(Errc::disconnected, "payload of 64 bytes");
  }
}

TEST_CASE("Frame: a payload exactly at the limits is accepted", "[unit][proto]") {
  PipeConnection pipe;
  RecvLimits limits{.nv_size_max = 44, .payload_max = 64, .payload_discard_max = 64};
  pipe.bytes = hast::proto::encode_frame(2, sized_nv(64), std::vector<std::byte>(64));
  auto message = hast::proto::recv_message(pipe, limits, std::nullopt);
  REQUIRE(message.has_value());
  CHECK(message->payload.size() == 64);
  // A control-socket style receiver accepts no payload at all.
  pipe.read_at = 0;
  auto none =
      hast::proto::recv_message(pipe, {.payload_max = 0, .payload_discard_max = 0}, std::nullopt);
  REQUIRE_FALSE(none.has_value());
  CHECK(none.error().code() == Errc::invalid_argument);
}

TEST_CASE("Frame: random messages round-trip through encode_frame and recv_message",
          "[unit][proto]") {
  hast::test::property("frame round trip", [] {
    auto version = *rc::gen::inRange<std::uint8_t>(0, 3);
    auto payload =
        *rc::gen::container<std::vector<std::uint8_t>>(rc::gen::arbitrary<std::uint8_t>());
    auto names = *rc::gen::nonEmpty(rc::gen::container<std::vector<std::string>>(
        rc::gen::container<std::string>(rc::gen::inRange<char>('a', 'z' + 1))));
    Nv nv;
    for (const auto& name : names) {
      if (name != "size") nv.add_uint64(name, *rc::gen::arbitrary<std::uint64_t>());
    }
    if (!payload.empty() || nv.empty())
      nv.add_uint32("size", static_cast<std::uint32_t>(payload.size()));
    auto bytes = std::as_bytes(std::span(payload));
    PipeConnection pipe;
    pipe.bytes = hast::proto::encode_frame(version, nv, bytes);
    auto message = hast::proto::recv_message(pipe, RecvLimits{}, std::nullopt);
    RC_ASSERT(message.has_value());
    RC_ASSERT(message->version == version);
    RC_ASSERT(message->nv == nv);
    RC_ASSERT(std::ranges::equal(message->payload, bytes));
    RC_ASSERT(pipe.read_at == pipe.bytes.size());
  });
}

TEST_CASE("Frame: random bytes never crash the receiver", "[unit][proto]") {
  hast::test::property("frame random bytes", [] {
    PipeConnection pipe;
    auto input = *rc::gen::container<std::vector<std::uint8_t>>(rc::gen::arbitrary<std::uint8_t>());
    // Often start with a plausible header so the nv and payload paths are reached.
    if (*rc::gen::arbitrary<bool>() && input.size() >= 5) {
      input[0] = *rc::gen::inRange<std::uint8_t>(0, 3);
      std::uint32_t nv_size = static_cast<std::uint32_t>(input.size() - 5);
      std::memcpy(input.data() + 1, &nv_size, 4);
    }
    pipe.bytes.assign(reinterpret_cast<const std::byte*>(input.data()),
                      reinterpret_cast<const std::byte*>(input.data() + input.size()));
    RecvLimits limits{.nv_size_max = 4096, .payload_max = 64, .payload_discard_max = 128};
    auto message = hast::proto::recv_message(pipe, limits, std::nullopt);
    if (message) {
      RC_ASSERT(message->payload.size() <= 64);
      RC_ASSERT(message->version <= 2);
    }
  });
}
