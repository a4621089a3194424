// Payload transforms: compression then checksum on send, checksum then decompression on
// receive (reference/hast-spec.md §6.5). They apply to WRITE data, READ reply data and
// the handshake activemap.
//
// Model: the sender applies its own configuration and records what it did in nv fields
// appended after the message's own fields, in this order: `compression` (string, only
// when the data was actually compressed), `checksum` (string) and `hash` (uint8 array),
// then `size` (uint32, the bytes actually sent). The receiver honours whatever fields it
// finds; there is no negotiation. An empty payload gets no fields at all.
//
// Formats:
//   hole    the buffer is all zero (and its length a multiple of 8): 4-byte LE length.
//   lzf     hole first; otherwise, for buffers over 1024 bytes, `[uint32 LE origsize]
//           [liblzf stream]` when the stream fits in origsize - 1024 bytes; else raw.
//   crc32   zlib crc32 (initial 0) over the sent bytes, its uint32 in the sender's host
//           order (little-endian on every host we run on) as a 4-byte `hash`.
//   sha256  the 32-byte SHA-256 of the sent bytes.
//
// Where FreeBSD asserts on a malformed lzf payload (and so aborts the receiving process),
// decode_payload returns an error.
//
// Stack: lzf_compress keeps its hash table on the stack: 256 KiB with Debian's liblzf 3.6
// (HLOG 16, 4-byte offset slots), 512 KiB in builds with 8-byte pointer slots. Debian's
// build has no LZF_STATE_ARG (heap state), so encode_payload with Compression::lzf must
// run on a fiber whose stack is at least transform_stack_size_min bytes. A unit test runs
// every transform on a fiber stack of exactly that size and measures the use (about
// 257 KiB with Debian's build).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "core/io/byte_buffer.h"
#include "core/proto/nv.h"
#include "core/result.h"

namespace hast::proto {

// Configured compression of the payloads a node sends (hast.conf `compression`).
enum class Compression : std::uint8_t { none, hole, lzf };
// Configured checksum of the payloads a node sends (hast.conf `checksum`).
enum class Checksum : std::uint8_t { none, crc32, sha256 };

// "none", "hole", "lzf" / "none", "crc32", "sha256": the hast.conf keywords, the nv field
// values and the status strings.
std::string_view compression_name(Compression compression);
std::string_view checksum_name(Checksum checksum);
// The inverse of the *_name functions; nullopt for any other text.
std::optional<Compression> parse_compression(std::string_view name);
std::optional<Checksum> parse_checksum(std::string_view name);

// LZF is tried only on buffers over this many bytes and must save at least as many.
inline constexpr std::size_t lzf_compress_min = 1024;
// Minimum fiber stack for code that calls encode_payload (see the file comment).
inline constexpr std::size_t transform_stack_size_min = 1024 * 1024;

// What the send pipeline sends for one payload: `bytes`, which is either the caller's
// `data` itself (nothing was compressed: no copy is made, so `data` must stay valid and
// unchanged until the message is sent) or points into `compressed`, owned here. Move-only:
// a moved vector keeps its storage, so `bytes` survives a move but would not a copy.
struct EncodedPayload {
  EncodedPayload() = default;
  EncodedPayload(EncodedPayload&&) = default;
  EncodedPayload& operator=(EncodedPayload&&) = default;
  EncodedPayload(const EncodedPayload&) = delete;
  EncodedPayload& operator=(const EncodedPayload&) = delete;

  std::vector<std::byte> compressed;
  std::span<const std::byte> bytes;
};

// Send pipeline: the bytes to send for `data`, as an EncodedPayload that refers to `data`
// unless it was compressed; appends the pipeline fields and `size` to `nv`. An empty
// `data` gives empty bytes and adds nothing. Asserts that data fits a uint32. Pure; needs
// transform_stack_size_min of stack for Compression::lzf.
EncodedPayload encode_payload_view(Nv& nv, std::span<const std::byte> data, Compression compression,
                                   Checksum checksum);

// The same pipeline, returning its own copy of the bytes to send (encode_payload_view
// avoids the copy of an uncompressed payload).
std::vector<std::byte> encode_payload(Nv& nv, std::span<const std::byte> data,
                                      Compression compression, Checksum checksum);

// Receive pipeline: verifies the checksum of `received` (the payload as read from the
// wire), then decompresses it. `size_max` bounds both the received and the decompressed
// size. An uncompressed payload is returned as the same buffer, not copied (so it keeps
// its alignment, and a disk opened with O_DIRECT can write it as is). An empty
// `received` is returned as is, fields unchecked (FreeBSD reads nothing).
// Errors:
//   - received or decompressed size over size_max → Errc::invalid_argument;
//   - an unknown `checksum` or `compression` value → Errc::unsupported;
//   - `checksum` without a uint8-array `hash`, a hash of the wrong size, "Hash mismatch.",
//     a `hole` payload not exactly 4 bytes, an lzf payload of <= 4 bytes, an lzf origsize
//     <= 1024, an lzf stream that does not decompress to exactly origsize, a mistyped
//     `checksum`/`compression` field → Errc::corruption.
Result<ByteBuffer> decode_payload(const Nv& nv, ByteBuffer received, std::size_t size_max);

}  // namespace hast::proto
