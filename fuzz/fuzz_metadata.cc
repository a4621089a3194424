// Fuzz target: bytes as a metadata block through decode_block (core/meta/metadata.h).
//
// Oracles, beyond "never crashes or asserts": inputs longer than a block are refused with
// Errc::invalid_argument and every other refusal is Errc::corruption; a decoded block
// passes check_metadata, encodes to a block that decodes to the same Metadata, and that
// block re-encodes byte for byte (the encoding is canonical). Inputs longer than a block
// are also decoded from their first 4096 bytes, so the search is not wasted on length.
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/assert.h"
#include "core/meta/metadata.h"

namespace {

namespace meta = hast::meta;

void check_block(std::span<const std::byte> block) {
  auto decoded = meta::decode_block(block, "fuzz");
  if (!decoded) {
    HAST_ASSERT(decoded.error().code() == hast::Errc::corruption);
    return;
  }
  HAST_ASSERT(meta::check_metadata(*decoded).has_value());
  auto encoded = meta::encode_block(*decoded);
  auto again = meta::decode_block(encoded, "fuzz");
  HAST_ASSERT(again.has_value());
  HAST_ASSERT(*again == *decoded);
  HAST_ASSERT(meta::encode_block(*again) == encoded);
  // The resource check compares names exactly.
  HAST_ASSERT(meta::check_resource(*decoded, "fuzz", decoded->resource).has_value());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto bytes = std::as_bytes(std::span(data, size));
  if (bytes.size() > meta::metadata_size) {
    auto refused = meta::decode_block(bytes, "fuzz");
    HAST_ASSERT(!refused.has_value());
    HAST_ASSERT(refused.error().code() == hast::Errc::invalid_argument);
    bytes = bytes.first(meta::metadata_size);
  }
  check_block(bytes);
  return 0;
}
