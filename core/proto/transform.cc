// Payload compression and checksums (reference/hast-spec.md §6.5; FreeBSD's
// hast_proto.c, hast_compression.c, hast_checksum.c).
#include "core/proto/transform.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <limits>
#include <string>

#include <fmt/format.h>
#include <liblzf/lzf.h>
#include <openssl/sha.h>
#include <zlib.h>

namespace hast::proto {
namespace {

static_assert(std::endian::native == std::endian::little,
              "hole/lzf lengths and the crc32 hash are stored little-endian");

using Bytes = std::vector<std::byte>;

constexpr std::size_t crc32_hash_size = 4;
constexpr std::size_t sha256_hash_size = SHA256_DIGEST_LENGTH;
static_assert(sha256_hash_size == 32);
constexpr std::size_t origsize_size = sizeof(std::uint32_t);

void store_u32(std::byte* out, std::uint32_t value) {
  std::memcpy(out, &value, sizeof(value));
}

std::uint32_t load_u32(const std::byte* in) {
  std::uint32_t value = 0;
  std::memcpy(&value, in, sizeof(value));
  return value;
}

// Zero first byte, and every byte equal to the one before it: memcmp compares words at a
// time (a byte loop was ~3 % of the simulator's light workload on all-zero reads).
bool all_zero(std::span<const std::byte> data) {
  if (data.empty()) return true;
  return data[0] == std::byte{0} && std::memcmp(data.data(), data.data() + 1, data.size() - 1) == 0;
}

// hole: the 4-byte length of an all-zero buffer whose length is a multiple of 8, else
// nullopt (FreeBSD asserts the multiple of 8; we just send such a buffer raw).
std::optional<Bytes> hole_compress(std::span<const std::byte> data) {
  if (data.size() % 8 != 0 || !all_zero(data)) return std::nullopt;
  Bytes out(origsize_size);
  store_u32(out.data(), static_cast<std::uint32_t>(data.size()));
  return out;
}

// lzf: `[origsize][stream]` when the stream saves at least lzf_compress_min bytes.
std::optional<Bytes> lzf_compress_payload(std::span<const std::byte> data) {
  if (data.size() <= lzf_compress_min) return std::nullopt;
  auto limit = static_cast<unsigned int>(data.size() - lzf_compress_min);
  Bytes out(origsize_size + limit);
  unsigned int written = lzf_compress(data.data(), static_cast<unsigned int>(data.size()),
                                      out.data() + origsize_size, limit);
  if (written == 0) return std::nullopt;  // did not fit: send raw
  HAST_ASSERT(written <= limit);
  store_u32(out.data(), static_cast<std::uint32_t>(data.size()));
  out.resize(origsize_size + written);
  return out;
}

Bytes compute_hash(Checksum checksum, std::span<const std::byte> data) {
  HAST_ASSERT(data.size() <= std::numeric_limits<uInt>::max());
  auto* bytes = reinterpret_cast<const unsigned char*>(data.data());
  switch (checksum) {
    case Checksum::none:
      return {};
    case Checksum::crc32: {
      auto crc = static_cast<std::uint32_t>(::crc32(0L, bytes, static_cast<uInt>(data.size())));
      Bytes hash(crc32_hash_size);
      store_u32(hash.data(), crc);  // host order, as FreeBSD's bcopy of the uint32
      return hash;
    }
    case Checksum::sha256: {
      Bytes hash(sha256_hash_size);
      SHA256(bytes, data.size(), reinterpret_cast<unsigned char*>(hash.data()));
      return hash;
    }
  }
  HAST_UNREACHABLE();
}

// Reads an optional string field; a field of another type is corruption.
Result<std::optional<std::string_view>> optional_string(const Nv& nv, std::string_view name) {
  const Nv::Element* element = nv.find(name);
  if (element == nullptr) return std::optional<std::string_view>();
  auto value = nv.get_string(name);
  if (!value) {
    return fail(Errc::corruption, fmt::format("payload field '{}' is {}, not string", name,
                                              nv_type_name(element->type)));
  }
  return std::optional<std::string_view>(*value);
}

Result<void> verify_checksum(const Nv& nv, std::span<const std::byte> received) {
  auto name = optional_string(nv, "checksum");
  if (!name) return fail(name.error());
  if (!name->has_value()) return ok();
  auto checksum = parse_checksum(**name);
  if (!checksum || *checksum == Checksum::none) {
    return fail(Errc::unsupported, fmt::format("unknown checksum algorithm '{}'", **name));
  }
  auto hash = nv.get_uint8_array("hash");
  if (!hash) return fail(Errc::corruption, "checksum without a uint8-array 'hash' field");
  Bytes expected = compute_hash(*checksum, received);
  if (hash->size() != expected.size()) {
    return fail(Errc::corruption, fmt::format("{} hash of {} bytes, expected {}", **name,
                                              hash->size(), expected.size()));
  }
  if (std::memcmp(hash->data(), expected.data(), expected.size()) != 0) {
    return fail(Errc::corruption, fmt::format("{}: Hash mismatch.", **name));
  }
  return ok();
}

Result<ByteBuffer> hole_decompress(const ByteBuffer& received, std::size_t size_max) {
  if (received.size() != origsize_size) {
    return fail(
        Errc::corruption,
        fmt::format("hole payload: Unable to decompress (invalid size: {}).", received.size()));
  }
  std::uint32_t origsize = load_u32(received.data());
  if (origsize > size_max) {
    return fail(Errc::invalid_argument,
                fmt::format("hole of {} bytes over the limit of {}", origsize, size_max));
  }
  return ByteBuffer(origsize, std::byte{0});
}

Result<ByteBuffer> lzf_decompress_payload(const ByteBuffer& received, std::size_t size_max) {
  if (received.size() <= origsize_size) {
    return fail(Errc::corruption, fmt::format("lzf payload of {} bytes", received.size()));
  }
  std::uint32_t origsize = load_u32(received.data());
  if (origsize <= lzf_compress_min) {
    return fail(Errc::corruption,
                fmt::format("lzf original size {} <= {}", origsize, lzf_compress_min));
  }
  if (origsize > size_max) {
    return fail(Errc::invalid_argument,
                fmt::format("lzf original size {} over the limit of {}", origsize, size_max));
  }
  ByteBuffer out(origsize);  // lzf_decompress writes all of it, or the stream is rejected
  auto stream_size = static_cast<unsigned int>(received.size() - origsize_size);
  unsigned int produced =
      lzf_decompress(received.data() + origsize_size, stream_size, out.data(), origsize);
  if (produced != origsize) {
    return fail(Errc::corruption, fmt::format("lzf stream of {} bytes decompressed to {} "
                                              "bytes, expected {}",
                                              stream_size, produced, origsize));
  }
  return out;
}

Result<ByteBuffer> decompress(const Nv& nv, ByteBuffer received, std::size_t size_max) {
  auto name = optional_string(nv, "compression");
  if (!name) return fail(name.error());
  if (!name->has_value()) return received;
  auto compression = parse_compression(**name);
  if (compression == Compression::hole) return hole_decompress(received, size_max);
  if (compression == Compression::lzf) return lzf_decompress_payload(received, size_max);
  return fail(Errc::unsupported, fmt::format("unknown compression algorithm '{}'", **name));
}

}  // namespace

std::string_view compression_name(Compression compression) {
  switch (compression) {
    case Compression::none:
      return "none";
    case Compression::hole:
      return "hole";
    case Compression::lzf:
      return "lzf";
  }
  HAST_UNREACHABLE();
}

std::string_view checksum_name(Checksum checksum) {
  switch (checksum) {
    case Checksum::none:
      return "none";
    case Checksum::crc32:
      return "crc32";
    case Checksum::sha256:
      return "sha256";
  }
  HAST_UNREACHABLE();
}

std::optional<Compression> parse_compression(std::string_view name) {
  for (auto value : {Compression::none, Compression::hole, Compression::lzf}) {
    if (compression_name(value) == name) return value;
  }
  return std::nullopt;
}

std::optional<Checksum> parse_checksum(std::string_view name) {
  for (auto value : {Checksum::none, Checksum::crc32, Checksum::sha256}) {
    if (checksum_name(value) == name) return value;
  }
  return std::nullopt;
}

EncodedPayload encode_payload_view(Nv& nv, std::span<const std::byte> data, Compression compression,
                                   Checksum checksum) {
  HAST_ASSERT(data.size() <= std::numeric_limits<std::uint32_t>::max());
  EncodedPayload out;
  if (data.empty()) return out;
  std::optional<Bytes> compressed;
  if (compression != Compression::none) compressed = hole_compress(data);
  Compression used = compressed ? Compression::hole : Compression::none;
  if (!compressed && compression == Compression::lzf) {
    compressed = lzf_compress_payload(data);
    if (compressed) used = Compression::lzf;
  }
  if (compressed) out.compressed = std::move(*compressed);
  // Uncompressed data goes out as it is: no copy.
  out.bytes = compressed ? std::span<const std::byte>(out.compressed) : data;
  HAST_ASSERT(!out.bytes.empty());
  HAST_ASSERT(used == Compression::none || out.bytes.size() < data.size());

  if (used != Compression::none) nv.add_string("compression", compression_name(used));
  if (checksum != Checksum::none) {
    nv.add_string("checksum", checksum_name(checksum));
    Bytes hash = compute_hash(checksum, out.bytes);
    nv.add_raw(NvType::uint8_array, "hash", hash);
  }
  nv.add_uint32("size", static_cast<std::uint32_t>(out.bytes.size()));
  return out;
}

std::vector<std::byte> encode_payload(Nv& nv, std::span<const std::byte> data,
                                      Compression compression, Checksum checksum) {
  EncodedPayload encoded = encode_payload_view(nv, data, compression, checksum);
  if (!encoded.compressed.empty()) return std::move(encoded.compressed);
  return std::vector<std::byte>(encoded.bytes.begin(), encoded.bytes.end());
}

Result<ByteBuffer> decode_payload(const Nv& nv, ByteBuffer received, std::size_t size_max) {
  if (received.empty()) return received;
  if (received.size() > size_max) {
    return fail(Errc::invalid_argument,
                fmt::format("payload of {} bytes over the limit of {}", received.size(), size_max));
  }
  HAST_TRY(verify_checksum(nv, received));
  auto data = decompress(nv, std::move(received), size_max);
  if (!data) return data;
  HAST_ASSERT(data->size() <= size_max);
  return data;
}

}  // namespace hast::proto
