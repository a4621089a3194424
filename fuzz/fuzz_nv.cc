// Fuzz target: bytes as an nv blob through Nv::decode (reference/hast-spec.md §6.2).
//
// Oracles, beyond "never crashes or asserts": a rejection is Errc::corruption naming the
// element's byte offset; a decoded list re-encodes to bytes that decode to the same list
// and re-encode to the same bytes (name padding, the host-order flag and trailing zero
// padding are the only things that may not survive).
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/assert.h"
#include "core/proto/nv.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using hast::proto::Nv;
  auto input = std::as_bytes(std::span(data, size));
  auto decoded = Nv::decode(input);
  if (!decoded) {
    HAST_ASSERT(decoded.error().code() == hast::Errc::corruption);
    HAST_ASSERT(decoded.error().context().rfind("nv element at byte ", 0) == 0);
    return 0;
  }
  auto encoded = decoded->encode();
  HAST_ASSERT(encoded.size() == decoded->encoded_size());
  HAST_ASSERT(encoded.size() <= input.size());
  auto again = Nv::decode(encoded);
  HAST_ASSERT(again.has_value());
  HAST_ASSERT(*again == *decoded);
  HAST_ASSERT(again->encode() == encoded);
  for (const auto& element : decoded->elements()) {
    HAST_ASSERT(decoded->exists(element.name));
    HAST_ASSERT(!element.data.empty());
  }
  return 0;
}
