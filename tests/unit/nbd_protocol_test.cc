// The NBD codec (core/nbd/protocol.h): exact bytes of what the server sends, decoders that
// reject malformed input with a Result, round trips, and the request validation table.
#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <rapidcheck.h>
#include <catch2/catch.hpp>

#include "core/nbd/protocol.h"
#include "tests/support/property.h"

using namespace hast::nbd;
using hast::Errc;

namespace {

std::vector<std::byte> bytes_of(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int value : values)
    out.push_back(static_cast<std::byte>(value));
  return out;
}

template <typename Container>
std::vector<std::byte> to_vector(const Container& container) {
  return std::vector<std::byte>(container.begin(), container.end());
}

std::vector<std::byte> text(std::string_view s) {
  auto view = std::as_bytes(std::span(s.data(), s.size()));
  return std::vector<std::byte>(view.begin(), view.end());
}

std::vector<std::byte> concat(std::vector<std::byte> a, const std::vector<std::byte>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST_CASE("nbd protocol: the greeting is NBDMAGIC, IHAVEOPT and the handshake flags",
          "[unit][nbd]") {
  auto greeting = encode_greeting(handshake_fixed_newstyle | handshake_no_zeroes);
  auto expected = concat(text("NBDMAGICIHAVEOPT"), bytes_of({0, 3}));
  CHECK(to_vector(greeting) == expected);
}

TEST_CASE("nbd protocol: client flags beyond those offered are refused", "[unit][nbd]") {
  constexpr std::uint16_t both = handshake_fixed_newstyle | handshake_no_zeroes;
  CHECK(decode_client_flags(bytes_of({0, 0, 0, 0}), both).value() == 0);
  CHECK(decode_client_flags(bytes_of({0, 0, 0, 3}), both).value() == 3);
  auto not_offered = decode_client_flags(bytes_of({0, 0, 0, 2}), handshake_fixed_newstyle);
  REQUIRE(!not_offered);
  CHECK(not_offered.error().code() == Errc::invalid_argument);
  CHECK(!decode_client_flags(bytes_of({0, 0, 0, 4}), both));
  CHECK(!decode_client_flags(bytes_of({0x80, 0, 0, 0}), both));
  CHECK(!decode_client_flags(bytes_of({0, 0, 0}), both));
}

TEST_CASE("nbd protocol: option headers round-trip, and a bad magic is corruption", "[unit][nbd]") {
  OptionHeader header{Option::go, 0x01020304};
  auto encoded = encode_option_header(header);
  CHECK(to_vector(encoded) == concat(text("IHAVEOPT"), bytes_of({0, 0, 0, 7, 1, 2, 3, 4})));
  CHECK(decode_option_header(encoded).value() == header);
  auto unknown = decode_option_header(encode_option_header({static_cast<Option>(99), 0}));
  REQUIRE(unknown.has_value());
  CHECK(static_cast<std::uint32_t>(unknown->option) == 99);
  encoded[0] = std::byte{'X'};
  auto bad = decode_option_header(encoded);
  REQUIRE(!bad);
  CHECK(bad.error().code() == Errc::corruption);
  CHECK(!decode_option_header(std::span(encoded).first(15)));
}

TEST_CASE("nbd protocol: INFO/GO data decodes, and inconsistent lengths are invalid",
          "[unit][nbd]") {
  ExportRequest request{"disk0", {InfoType::block_size, InfoType::name}};
  auto data = encode_export_request(request);
  CHECK(data ==
        concat(concat(bytes_of({0, 0, 0, 5}), text("disk0")), bytes_of({0, 2, 0, 3, 0, 1})));
  CHECK(decode_export_request(data).value() == request);
  CHECK(decode_export_request(encode_export_request({"", {}})).value() == ExportRequest{});

  auto invalid = [](const std::vector<std::byte>& bytes) {
    auto decoded = decode_export_request(bytes);
    return !decoded && decoded.error().code() == Errc::invalid_argument;
  };
  CHECK(invalid({}));
  CHECK(invalid(bytes_of({0, 0, 0, 0, 0})));                 // too short for the count
  CHECK(invalid(bytes_of({0, 0, 0, 9, 'a', 0, 0})));         // name past the end
  CHECK(invalid(bytes_of({0, 0, 0, 1, 'a', 0, 2, 0, 3})));   // one info where two announced
  CHECK(invalid(bytes_of({0, 0, 0, 1, 'a', 0, 0, 0})));      // trailing byte
  CHECK(invalid(bytes_of({0, 0, 0, 2, 'a', 0, 0, 0})));      // NUL in the name
  CHECK(invalid(bytes_of({0xff, 0xff, 0xff, 0xff, 0, 0})));  // huge name length
  std::vector<std::byte> long_name = bytes_of({0, 0, 0x10, 0x01});
  long_name.resize(4 + 4097 + 2, std::byte{'x'});
  long_name[long_name.size() - 2] = std::byte{0};
  long_name[long_name.size() - 1] = std::byte{0};
  CHECK(invalid(long_name));
}

TEST_CASE("nbd protocol: EXPORT_NAME names are strings of at most 4096 bytes", "[unit][nbd]") {
  CHECK(decode_export_name(text("disk0")).value() == "disk0");
  CHECK(decode_export_name({}).value().empty());
  CHECK(!decode_export_name(bytes_of({'a', 0})));
  CHECK(!decode_export_name(std::vector<std::byte>(4097, std::byte{'a'})));
}

TEST_CASE("nbd protocol: option replies and their data", "[unit][nbd]") {
  auto ack = encode_option_reply(Option::go, OptionReply::ack);
  CHECK(ack ==
        bytes_of({0, 3, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0}));
  auto header = decode_option_reply_header(ack);
  REQUIRE(header.has_value());
  CHECK(*header == OptionReplyHeader{Option::go, OptionReply::ack, 0});
  auto unsup = encode_option_reply(Option::structured_reply, OptionReply::err_unsup, text("no"));
  CHECK(decode_option_reply_header(std::span(unsup).first(20)).value().length == 2);
  CHECK(static_cast<std::uint32_t>(OptionReply::err_unknown) == 0x80000006u);

  CHECK(encode_info_export(0x0102030405060708, 0x0105) ==
        bytes_of({0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1, 5}));
  CHECK(encode_info_block_size(512, 4096, 131072) ==
        bytes_of({0, 3, 0, 0, 2, 0, 0, 0, 0x10, 0, 0, 2, 0, 0}));
  CHECK(encode_info_name("d") == bytes_of({0, 1, 'd'}));
  CHECK(encode_server_entry("d") == bytes_of({0, 0, 0, 1, 'd'}));
  CHECK(encode_export_name_reply(1024, transmission_has_flags, false).size() == 10);
  auto padded = encode_export_name_reply(1024, transmission_has_flags, true);
  CHECK(padded.size() == 134);
  CHECK(std::all_of(padded.begin() + 10, padded.end(),
                    [](std::byte b) { return b == std::byte{0}; }));
}

TEST_CASE("nbd protocol: request headers decode, and a bad magic is corruption", "[unit][nbd]") {
  auto raw = bytes_of({0x25, 0x60, 0x95, 0x13, 0, 1, 0, 1, 0,    0, 0, 0, 0, 0,
                       0,    42,   0,    0,    0, 0, 0, 0, 0x10, 0, 0, 0, 2, 0});
  auto header = decode_request_header(raw);
  REQUIRE(header.has_value());
  CHECK(header->flags == command_flag_fua);
  CHECK(header->command == Command::write);
  CHECK(header->handle == 42);
  CHECK(header->offset == 4096);
  CHECK(header->length == 512);
  CHECK(to_vector(encode_request_header(*header)) == raw);
  raw[3] = std::byte{0x14};
  auto bad = decode_request_header(raw);
  REQUIRE(!bad);
  CHECK(bad.error().code() == Errc::corruption);
  CHECK(!decode_request_header(std::span(raw).first(27)));
}

TEST_CASE("nbd protocol: simple replies", "[unit][nbd]") {
  SimpleReply reply{NbdError::inval, 0x1122334455667788};
  auto encoded = encode_simple_reply(reply);
  CHECK(to_vector(encoded) == bytes_of({0x67, 0x44, 0x66, 0x98, 0, 0, 0, 22, 0x11, 0x22, 0x33, 0x44,
                                        0x55, 0x66, 0x77, 0x88}));
  CHECK(decode_simple_reply(encoded).value() == reply);
  encoded[0] = std::byte{0};
  CHECK(!decode_simple_reply(encoded));
}

TEST_CASE("nbd protocol: encode and decode are inverse for any request header", "[unit][nbd]") {
  hast::test::property(
      "nbd request header round trip",
      [](std::uint16_t flags, std::uint16_t command, std::uint64_t handle, std::uint64_t offset,
         std::uint32_t length) {
        RequestHeader header{flags, static_cast<Command>(command), handle, offset, length};
        auto decoded = decode_request_header(encode_request_header(header));
        RC_ASSERT(decoded.has_value());
        RC_ASSERT(*decoded == header);
      });
}

TEST_CASE("nbd protocol: requests are judged against the export", "[unit][nbd]") {
  ExportGeometry geometry{1 << 20, 512, 32 << 20};
  struct Case {
    RequestHeader request;
    std::optional<Errc> expected;
  };
  auto req = [](Command command, std::uint64_t offset, std::uint32_t length,
                std::uint16_t flags = 0) {
    return RequestHeader{flags, command, 7, offset, length};
  };
  std::vector<Case> cases = {
      {req(Command::read, 0, 4096), std::nullopt},
      {req(Command::read, (1 << 20) - 512, 512), std::nullopt},
      {req(Command::read, 0, 0), std::nullopt},  // zero length: answered at once
      {req(Command::write, 512, 1024, command_flag_fua), std::nullopt},
      {req(Command::flush, 123, 5), std::nullopt},  // offset and length ignored
      {req(Command::trim, 0, 1 << 20, command_flag_fua), std::nullopt},
      {req(Command::write_zeroes, 0, 4096, command_flag_no_hole), std::nullopt},
      {req(Command::read, 1 << 20, 512), Errc::invalid_argument},                // past the end
      {req(Command::read, 0xffffffffffffff00ull, 512), Errc::invalid_argument},  // wraps
      {req(Command::trim, 1 << 20, 512), Errc::invalid_argument},
      {req(Command::write, (1 << 20) - 512, 1024), Errc::no_space},
      {req(Command::write_zeroes, 1 << 20, 512), Errc::no_space},
      {req(Command::read, 100, 512), Errc::invalid_argument},  // unaligned offset
      {req(Command::write, 0, 100), Errc::invalid_argument},   // unaligned length
      {req(Command::cache, 0, 512), Errc::invalid_argument},
      {req(Command::block_status, 0, 512), Errc::invalid_argument},
      {req(static_cast<Command>(77), 0, 512), Errc::invalid_argument},
      {req(Command::read, 0, 512, command_flag_df), Errc::invalid_argument},
      {req(Command::write_zeroes, 0, 512, command_flag_fast_zero), Errc::invalid_argument},
      {req(Command::read, 0, 512, 0x8000), Errc::invalid_argument},
  };
  for (const Case& c : cases) {
    INFO(command_name(c.request.command)
         << " " << c.request.offset << "+" << c.request.length << " flags " << c.request.flags);
    auto result = validate_request(c.request, geometry);
    if (!c.expected) {
      CHECK(result.has_value());
    } else {
      REQUIRE(!result);
      CHECK(result.error().code() == *c.expected);
      CHECK(!result.error().context().empty());
    }
  }
  ExportGeometry small{1 << 30, 4096, 1 << 20};
  CHECK(!validate_request(req(Command::read, 0, 2 << 20), small));  // over the payload cap
  CHECK(validate_request(req(Command::trim, 0, 2 << 20), small));   // no payload: no cap
  CHECK(!validate_request(req(Command::read, 512, 4096), small));   // 4096-byte sectors
}

TEST_CASE("nbd protocol: block errors map onto the errno values NBD defines", "[unit][nbd]") {
  CHECK(nbd_error_of(Errc::io) == NbdError::io);
  CHECK(nbd_error_of(Errc::corruption) == NbdError::io);
  CHECK(nbd_error_of(Errc::disconnected) == NbdError::io);
  CHECK(nbd_error_of(Errc::timed_out) == NbdError::io);
  CHECK(nbd_error_of(Errc::invalid_argument) == NbdError::inval);
  CHECK(nbd_error_of(Errc::no_space) == NbdError::nospc);
  CHECK(nbd_error_of(Errc::unsupported) == NbdError::notsup);
  CHECK(nbd_error_of(Errc::cancelled) == NbdError::shutdown);
  CHECK(nbd_error_of(Errc::split_brain) == NbdError::perm);
  CHECK(static_cast<std::uint32_t>(NbdError::shutdown) == 108);
  CHECK(nbd_error_name(NbdError::nospc) == "ENOSPC");
  CHECK(option_name(Option::go) == "GO");
  CHECK(command_name(Command::write_zeroes) == "WRITE_ZEROES");
}
