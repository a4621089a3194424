// Fuzz target: the NBD server's decoders (core/nbd/protocol.h).
//
// The first byte selects what the rest is fed to:
//   0  decode_client_flags over the next 4 bytes (with and without NO_ZEROES offered)
//   1  decode_option_header over the next 16 bytes
//   2  decode_export_request (INFO/GO data) and decode_export_name over the rest
//   3  decode_request_header over the next 28 bytes, then validate_request
//   4  a client's handshake stream: client flags, then options with their data, as the
//      server reads them, until the stream ends, fails, or enters transmission
//   5  a client's transmission stream: request headers, each WRITE followed by its
//      payload, as the server reads them, until the stream ends, fails or sends DISC
//   6  the client side: decode_option_reply_header and decode_simple_reply
//
// Oracles, beyond "never crashes or asserts": whatever decodes re-encodes to the same
// bytes (or an equal value); every failure carries a context and the error kind the
// contract names (corruption for a bad magic, invalid_argument or no_space otherwise);
// a request that validates lies within the export and is aligned.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "core/assert.h"
#include "core/nbd/protocol.h"

namespace {

using namespace hast::nbd;
using hast::Errc;
using Bytes = std::span<const std::byte>;

constexpr std::size_t steps_max = 256;

const ExportGeometry geometries[] = {
    {1 << 20, 512, 128 * 1024},
    {64ull << 30, 4096, 32 << 20},
    {0, 512, 512},
};

void check_failure(const hast::Error& error, Errc expected) {
  HAST_ASSERT(error.code() == expected);
  HAST_ASSERT(!error.context().empty());
}

void check_client_flags(Bytes rest) {
  if (rest.size() < client_flags_size) return;
  auto raw = rest.first(client_flags_size);
  auto narrow = decode_client_flags(raw, handshake_fixed_newstyle);
  auto wide = decode_client_flags(raw, handshake_fixed_newstyle | handshake_no_zeroes);
  if (narrow) HAST_ASSERT(wide && *wide == *narrow && (*narrow & client_no_zeroes) == 0);
  if (!wide) check_failure(wide.error(), Errc::invalid_argument);
  if (wide) HAST_ASSERT((*wide & ~(client_fixed_newstyle | client_no_zeroes)) == 0);
}

void check_option_header(Bytes rest) {
  if (rest.size() < option_header_size) return;
  auto raw = rest.first(option_header_size);
  auto header = decode_option_header(raw);
  if (!header) return check_failure(header.error(), Errc::corruption);
  auto again = encode_option_header(*header);
  HAST_ASSERT(std::memcmp(again.data(), raw.data(), option_header_size) == 0);
}

void check_export_data(Bytes rest) {
  auto request = decode_export_request(rest);
  if (request) {
    HAST_ASSERT(request->name.size() <= name_size_max);
    auto again = encode_export_request(*request);
    HAST_ASSERT(again.size() == rest.size());
    HAST_ASSERT(std::memcmp(again.data(), rest.data(), rest.size()) == 0);
  } else {
    check_failure(request.error(), Errc::invalid_argument);
  }
  auto name = decode_export_name(rest);
  if (name) HAST_ASSERT(name->size() == rest.size());
  if (!name) check_failure(name.error(), Errc::invalid_argument);
}

void check_validation(const RequestHeader& header) {
  for (const ExportGeometry& geometry : geometries) {
    auto valid = validate_request(header, geometry);
    if (!valid) {
      HAST_ASSERT(valid.error().code() == Errc::invalid_argument ||
                  valid.error().code() == Errc::no_space);
      HAST_ASSERT(!valid.error().context().empty());
      continue;
    }
    if (header.command == Command::flush || header.command == Command::disc) continue;
    HAST_ASSERT(header.offset <= geometry.size);
    HAST_ASSERT(header.length <= geometry.size - header.offset);
    HAST_ASSERT(header.offset % geometry.block_size_min == 0);
    HAST_ASSERT(header.length % geometry.block_size_min == 0);
  }
}

void check_request(Bytes rest) {
  if (rest.size() < request_header_size) return;
  auto raw = rest.first(request_header_size);
  auto header = decode_request_header(raw);
  if (!header) return check_failure(header.error(), Errc::corruption);
  auto again = encode_request_header(*header);
  HAST_ASSERT(std::memcmp(again.data(), raw.data(), request_header_size) == 0);
  check_validation(*header);
  auto reply = encode_simple_reply(SimpleReply{NbdError::inval, header->handle});
  HAST_ASSERT(decode_simple_reply(reply).value().handle == header->handle);
}

// Takes `size` bytes off the front of `rest`; false when the stream ends first.
bool take(Bytes& rest, std::size_t size, Bytes& out) {
  if (rest.size() < size) return false;
  out = rest.first(size);
  rest = rest.subspan(size);
  return true;
}

void check_handshake_stream(Bytes rest) {
  Bytes raw;
  if (!take(rest, client_flags_size, raw)) return;
  if (!decode_client_flags(raw, handshake_fixed_newstyle | handshake_no_zeroes)) return;
  for (std::size_t step = 0; step < steps_max; step++) {
    if (!take(rest, option_header_size, raw)) return;
    auto header = decode_option_header(raw);
    if (!header) return;
    Bytes data;
    if (!take(rest, header->length, data)) return;
    if (header->option == Option::export_name) {
      if (decode_export_name(data)) return;  // transmission
      continue;
    }
    if (header->option == Option::info || header->option == Option::go) {
      auto request = decode_export_request(data);
      if (request && header->option == Option::go) return;  // transmission
    }
    if (header->option == Option::abort) return;
  }
}

void check_transmission_stream(Bytes rest) {
  for (std::size_t step = 0; step < steps_max; step++) {
    Bytes raw;
    if (!take(rest, request_header_size, raw)) return;
    auto header = decode_request_header(raw);
    if (!header) return;
    check_validation(*header);
    if (header->command == Command::disc) return;
    Bytes payload;
    if (header->command == Command::write && !take(rest, header->length, payload)) return;
  }
}

void check_client_side(Bytes rest) {
  if (rest.size() >= option_reply_header_size) {
    auto header = decode_option_reply_header(rest.first(option_reply_header_size));
    if (!header) check_failure(header.error(), Errc::corruption);
  }
  if (rest.size() >= simple_reply_size) {
    auto reply = decode_simple_reply(rest.first(simple_reply_size));
    if (reply) {
      auto again = encode_simple_reply(*reply);
      HAST_ASSERT(std::memcmp(again.data(), rest.data(), simple_reply_size) == 0);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  auto rest = std::as_bytes(std::span(data + 1, size - 1));
  switch (data[0] % 7) {
    case 0:
      check_client_flags(rest);
      break;
    case 1:
      check_option_header(rest);
      break;
    case 2:
      check_export_data(rest);
      break;
    case 3:
      check_request(rest);
      break;
    case 4:
      check_handshake_stream(rest);
      break;
    case 5:
      check_transmission_stream(rest);
      break;
    default:
      check_client_side(rest);
      break;
  }
  return 0;
}
