// Metadata block codec (reference/hast-spec.md §4.2) and the stale-extent list.
#include "core/meta/metadata.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>

#include <fmt/format.h>
#include <zlib.h>

#include "core/proto/nv.h"

namespace hast::meta {
namespace {

using proto::Nv;
using proto::NvType;

// Size of one encoded nv element (§6.2), for the static bound below.
constexpr std::size_t element_bytes(std::size_t name_length, std::size_t data_bytes) {
  auto round8 = [](std::size_t n) { return (n + 7) / 8 * 8; };
  return 6 + round8(name_length + 1) + round8(data_bytes);
}

// The largest block encode_block can produce: every field at its largest.
constexpr std::size_t encoded_size_max =
    element_bytes(8, resource_name_length_max + 1) +  // resource
    element_bytes(8, 8) + element_bytes(10, 4) +      // datasize, extentsize
    element_bytes(9, 4) + element_bytes(6, 8) +       // keepdirty, offset
    element_bytes(6, 8) + element_bytes(8, 8) +       // resuid, localcnt
    element_bytes(9, 8) + element_bytes(8, 10) +      // remotecnt, prevrole
    element_bytes(5, 8 * stale_extents_max) +         // stale
    element_bytes(12, 1);                             // inconsistent
static_assert(encoded_size_max < metadata_size, "a full metadata block must fit in 4096 bytes");
// The first copy ends with a zero byte before the second copy starts (FreeBSD stops
// reading there), and the second copy's header and nv fit in the second half.
static_assert(encoded_size_max < metadata_copy_offset, "the block must end before the copy");
static_assert(metadata_copy_header_bytes + encoded_size_max <= metadata_size - metadata_copy_offset,
              "the second copy must fit in the second half of the area");

constexpr std::uint64_t offset_limit = std::numeric_limits<std::int64_t>::max();

Unexpected invalid(std::string_view provider, std::string_view reason) {
  return fail(Errc::corruption,
              fmt::format("Metadata read from {} is invalid: {}", provider, reason));
}

Unexpected unfit(std::string_view provider, std::string_view reason) {
  return fail(Errc::corruption,
              fmt::format("Metadata read from {} does not fit the provider: {}", provider, reason));
}

// The first element named `name`, required to exist with `type`.
Result<const Nv::Element*> required(const Nv& nv, std::string_view name, NvType type,
                                    std::string_view provider) {
  const Nv::Element* element = nv.find(name);
  if (element == nullptr) {
    return fail(Errc::corruption,
                fmt::format("Unable to read metadata from {}: field \"{}\" ({}) is missing",
                            provider, name, proto::nv_type_name(type)));
  }
  if (element->type != type) {
    return fail(
        Errc::corruption,
        fmt::format("Unable to read metadata from {}: field \"{}\" is a {}, expected {}", provider,
                    name, proto::nv_type_name(element->type), proto::nv_type_name(type)));
  }
  return element;
}

Result<std::uint64_t> required_u64(const Nv& nv, std::string_view name, std::string_view at) {
  auto element = required(nv, name, NvType::uint64, at);
  if (!element) return fail(element.error());
  return *nv.get_uint64(name);
}

Result<std::uint32_t> required_u32(const Nv& nv, std::string_view name, std::string_view at) {
  auto element = required(nv, name, NvType::uint32, at);
  if (!element) return fail(element.error());
  return *nv.get_uint32(name);
}

Result<std::string_view> required_string(const Nv& nv, std::string_view name, std::string_view at) {
  auto element = required(nv, name, NvType::string, at);
  if (!element) return fail(element.error());
  return *nv.get_string(name);
}

// HAST's nine fields. Bounds are checked afterwards (check_metadata).
Result<Metadata> decode_hast_fields(const Nv& nv, std::string_view at) {
  Metadata metadata;
  auto resource = required_string(nv, "resource", at);
  auto data_size = required_u64(nv, "datasize", at);
  auto extent_size = required_u32(nv, "extentsize", at);
  auto keep_dirty = required_u32(nv, "keepdirty", at);
  auto local_offset = required_u64(nv, "offset", at);
  auto resuid = required_u64(nv, "resuid", at);
  auto local_count = required_u64(nv, "localcnt", at);
  auto remote_count = required_u64(nv, "remotecnt", at);
  auto prev_role = required_string(nv, "prevrole", at);
  // Report the first missing field in HAST's write order.
  HAST_TRY(resource);
  HAST_TRY(data_size);
  HAST_TRY(extent_size);
  HAST_TRY(keep_dirty);
  HAST_TRY(local_offset);
  HAST_TRY(resuid);
  HAST_TRY(local_count);
  HAST_TRY(remote_count);
  HAST_TRY(prev_role);
  auto role = parse_role(*prev_role);
  if (!role) return invalid(at, fmt::format("prevrole \"{}\" is not a role", *prev_role));
  metadata.resource = std::string(*resource);
  metadata.data_size_bytes = *data_size;
  metadata.extent_size_bytes = *extent_size;
  metadata.keep_dirty = *keep_dirty;
  metadata.local_offset_bytes = *local_offset;
  metadata.resuid = *resuid;
  metadata.local_count = *local_count;
  metadata.remote_count = *remote_count;
  metadata.prev_role = *role;
  HAST_ASSERT(!metadata.inconsistent);
  HAST_ASSERT(metadata.stale_extents.empty());
  return metadata;
}

// Our extension fields; absent fields leave the defaults.
Result<void> decode_extensions(const Nv& nv, std::string_view at, Metadata& metadata) {
  HAST_ASSERT(metadata.stale_extents.empty());
  if (const Nv::Element* stale = nv.find("stale"); stale != nullptr) {
    if (stale->type != NvType::uint64_array) {
      return invalid(at, fmt::format("field \"stale\" is a {}, expected uint64[]",
                                     proto::nv_type_name(stale->type)));
    }
    auto items = *nv.get_uint64_array("stale");
    if (items.size() > stale_extents_max) {
      return invalid(
          at, fmt::format("{} stale extents, more than {}", items.size(), stale_extents_max));
    }
    for (std::uint64_t item : items)
      metadata.stale_extents.push_back(ExtentIndex{item});
  }
  if (const Nv::Element* flag = nv.find("inconsistent"); flag != nullptr) {
    if (flag->type != NvType::uint8) {
      return invalid(at, fmt::format("field \"inconsistent\" is a {}, expected uint8",
                                     proto::nv_type_name(flag->type)));
    }
    metadata.inconsistent = *nv.get_uint8("inconsistent") != 0;
  }
  HAST_ASSERT(metadata.stale_extents.size() <= stale_extents_max);
  return ok();
}

Result<void> check_stale(const Metadata& metadata, std::uint64_t extent_count) {
  HAST_ASSERT(extent_count > 0);
  const auto& stale = metadata.stale_extents;
  if (stale.size() > stale_extents_max) {
    return fail(Errc::corruption,
                fmt::format("{} stale extents, more than {}", stale.size(), stale_extents_max));
  }
  for (std::size_t i = 0; i < stale.size(); i++) {
    if (stale[i].value >= extent_count) {
      return fail(Errc::corruption, fmt::format("stale extent {} is past the last extent ({})",
                                                stale[i].value, extent_count - 1));
    }
    if (i > 0 && stale[i - 1] >= stale[i]) {
      return fail(Errc::corruption, "stale extents are not strictly increasing");
    }
  }
  return ok();
}

Result<void> check_resource_name(std::string_view name) {
  if (name.empty()) return fail(Errc::corruption, "resource name is empty");
  if (name.size() > resource_name_length_max) {
    return fail(Errc::corruption, fmt::format("resource name of {} bytes, more than {}",
                                              name.size(), resource_name_length_max));
  }
  if (name.find('\0') != std::string_view::npos) {
    return fail(Errc::corruption, "resource name contains a NUL byte");
  }
  return ok();
}

}  // namespace

Metadata created_metadata(std::string resource, const Layout& layout, std::uint32_t keep_dirty) {
  HAST_ASSERT(layout.data_size_bytes > 0);
  HAST_ASSERT(layout.local_offset_bytes == metadata_size + layout.map_size_bytes);
  Metadata metadata;
  metadata.resource = std::move(resource);
  metadata.data_size_bytes = layout.data_size_bytes;
  metadata.extent_size_bytes = layout.extent_size_bytes;
  metadata.keep_dirty = keep_dirty;
  metadata.local_offset_bytes = layout.local_offset_bytes;
  metadata.prev_role = Role::init;
  return metadata;
}

Result<void> check_metadata(const Metadata& m) {
  HAST_TRY(check_resource_name(m.resource));
  if (!is_power_of_two(m.extent_size_bytes)) {
    return fail(Errc::corruption,
                fmt::format("extentsize {} is not a power of 2", m.extent_size_bytes));
  }
  if (m.keep_dirty == 0) return fail(Errc::corruption, "keepdirty is 0");
  if (m.data_size_bytes == 0) return fail(Errc::corruption, "datasize is 0");
  if (m.local_offset_bytes > offset_limit ||
      m.data_size_bytes > offset_limit - m.local_offset_bytes) {
    return fail(Errc::corruption, fmt::format("offset {} + datasize {} passes 2^63",
                                              m.local_offset_bytes, m.data_size_bytes));
  }
  std::uint64_t extents = extent_count_for(m.data_size_bytes, m.extent_size_bytes);
  if (extents > extent_count_max) {
    return fail(Errc::corruption,
                fmt::format("datasize {} needs {} extents of {} bytes, more than {}",
                            m.data_size_bytes, extents, m.extent_size_bytes, extent_count_max));
  }
  std::uint64_t map_end = metadata_size + map_bitmap_bytes(extents);
  if (m.local_offset_bytes < map_end) {
    return fail(Errc::corruption,
                fmt::format("offset {} leaves no room for the metadata block and the "
                            "activemap ({} bytes)",
                            m.local_offset_bytes, map_end));
  }
  return check_stale(m, extents);
}

namespace {

// The nv of a block: HAST's fields, then the extensions that are set.
std::vector<std::byte> encode_nv(const Metadata& metadata) {
  auto valid = check_metadata(metadata);
  HAST_ASSERT_MSG(valid.has_value(), "encoding invalid metadata: {}", valid.error().message());
  Nv nv;
  nv.add_string("resource", metadata.resource);
  nv.add_uint64("datasize", metadata.data_size_bytes);
  nv.add_uint32("extentsize", metadata.extent_size_bytes);
  nv.add_uint32("keepdirty", metadata.keep_dirty);
  nv.add_uint64("offset", metadata.local_offset_bytes);
  nv.add_uint64("resuid", metadata.resuid);
  nv.add_uint64("localcnt", metadata.local_count);
  nv.add_uint64("remotecnt", metadata.remote_count);
  nv.add_string("prevrole", role_name(metadata.prev_role));
  if (!metadata.stale_extents.empty()) {
    std::vector<std::uint64_t> items;
    for (ExtentIndex extent : metadata.stale_extents)
      items.push_back(extent.value);
    nv.add_uint64_array("stale", items);
  }
  if (metadata.inconsistent) nv.add_uint8("inconsistent", 1);
  std::vector<std::byte> bytes = nv.encode();
  HAST_ASSERT(!bytes.empty());
  HAST_ASSERT(bytes.size() <= encoded_size_max);
  return bytes;
}

}  // namespace

std::array<std::byte, metadata_size> encode_block(const Metadata& metadata) {
  std::vector<std::byte> bytes = encode_nv(metadata);
  std::array<std::byte, metadata_size> block{};
  std::memcpy(block.data(), bytes.data(), bytes.size());
  return block;
}

Result<Metadata> decode_block(std::span<const std::byte> block, std::string_view provider) {
  if (block.size() > metadata_size) {
    return fail(Errc::invalid_argument, fmt::format("metadata block of {} bytes, more than {}",
                                                    block.size(), metadata_size));
  }
  auto nv = Nv::decode(block);
  if (!nv) return invalid(provider, nv.error().context());
  auto metadata = decode_hast_fields(*nv, provider);
  if (!metadata) return metadata;
  HAST_TRY(decode_extensions(*nv, provider, *metadata));
  if (auto valid = check_metadata(*metadata); !valid) {
    return invalid(provider, valid.error().context());
  }
  HAST_ASSERT(metadata->extent_size_bytes > 0);
  HAST_ASSERT(metadata->stale_extents.size() <= stale_extents_max);
  return metadata;
}

Result<void> check_resource(const Metadata& metadata, std::string_view provider,
                            std::string_view resource) {
  if (metadata.resource == resource) return ok();
  return fail(Errc::invalid_argument,
              fmt::format("Provider {} is not part of resource {}.", provider, resource));
}

Result<void> check_fits_provider(const Metadata& m, std::string_view provider,
                                 std::uint64_t media_size_bytes, std::uint32_t sector_size_bytes) {
  if (auto valid = check_metadata(m); !valid) return invalid(provider, valid.error().context());
  if (!is_power_of_two(sector_size_bytes) || sector_size_bytes > metadata_size) {
    return unfit(provider, fmt::format("sector size {} is unusable", sector_size_bytes));
  }
  if (m.extent_size_bytes % sector_size_bytes != 0) {
    return unfit(provider, fmt::format("extentsize {} is not a multiple of the sector size {}",
                                       m.extent_size_bytes, sector_size_bytes));
  }
  if (m.local_offset_bytes % sector_size_bytes != 0) {
    return unfit(provider, fmt::format("offset {} is not a multiple of the sector size {}",
                                       m.local_offset_bytes, sector_size_bytes));
  }
  std::uint64_t map_end =
      metadata_size + map_ondisk_bytes(m.data_size_bytes, m.extent_size_bytes, sector_size_bytes);
  if (m.local_offset_bytes < map_end) {
    return unfit(provider, fmt::format("offset {} is inside the activemap (which ends at {})",
                                       m.local_offset_bytes, map_end));
  }
  if (m.local_offset_bytes + m.data_size_bytes > media_size_bytes) {
    return unfit(provider, fmt::format("the data area ends at {}, past the provider's {} bytes",
                                       m.local_offset_bytes + m.data_size_bytes, media_size_bytes));
  }
  return ok();
}

// ---- The metadata area ----
namespace {

constexpr std::array<std::byte, 8> copy_magic = {std::byte{'H'}, std::byte{'A'}, std::byte{'S'},
                                                 std::byte{'T'}, std::byte{'C'}, std::byte{'O'},
                                                 std::byte{'P'}, std::byte{'Y'}};
// Offsets inside the second copy's header (file comment of metadata.h).
constexpr std::size_t at_generation = 8;
constexpr std::size_t at_nv_bytes = 16;
constexpr std::size_t at_first_crc = 20;
constexpr std::size_t at_copy_crc = 28;
static_assert(at_copy_crc + 4 == metadata_copy_header_bytes);
constexpr std::size_t copy_nv_bytes_max =
    metadata_size - metadata_copy_offset - metadata_copy_header_bytes;

void store_le(std::span<std::byte> to, std::uint64_t value, std::size_t bytes) {
  HAST_ASSERT(to.size() >= bytes);
  for (std::size_t i = 0; i < bytes; i++)
    to[i] = static_cast<std::byte>(value >> (8 * i));
}

std::uint64_t load_le(std::span<const std::byte> from, std::size_t bytes) {
  HAST_ASSERT(from.size() >= bytes);
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < bytes; i++)
    value |= std::uint64_t(from[i]) << (8 * i);
  return value;
}

std::uint32_t crc_of(std::span<const std::byte> bytes, std::uint32_t crc = 0) {
  HAST_ASSERT(bytes.size() <= metadata_size);
  auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  return static_cast<std::uint32_t>(::crc32(crc, data, static_cast<uInt>(bytes.size())));
}

// The second copy's checksum: its header up to copy_crc, then its nv.
std::uint32_t copy_crc_of(std::span<const std::byte> copy, std::size_t nv_bytes) {
  HAST_ASSERT(metadata_copy_header_bytes + nv_bytes <= copy.size());
  std::uint32_t crc = crc_of(copy.first(at_copy_crc));
  return crc_of(copy.subspan(metadata_copy_header_bytes, nv_bytes), crc);
}

// The first copy's checksum, as the second copy records it.
std::uint32_t first_crc_of(std::span<const std::byte> area) {
  HAST_ASSERT(area.size() == metadata_size);
  return crc_of(area.first(metadata_copy_offset));
}

// A valid second copy, or why there is none (`present`: the magic was there).
struct SecondCopy {
  std::optional<Metadata> metadata;
  std::uint64_t generation = 0;
  std::uint32_t first_crc = 0;
  bool present = false;
  std::string problem;
};

SecondCopy decode_second(std::span<const std::byte> area, std::string_view provider) {
  HAST_ASSERT(area.size() == metadata_size);
  auto copy = area.subspan(metadata_copy_offset);
  SecondCopy second;
  second.present = std::equal(copy_magic.begin(), copy_magic.end(), copy.begin());
  if (!second.present) return second;
  std::uint64_t nv_bytes = load_le(copy.subspan(at_nv_bytes), 4);
  if (nv_bytes == 0 || nv_bytes > copy_nv_bytes_max) {
    second.problem = fmt::format("its nv length {} is out of range", nv_bytes);
    return second;
  }
  if (load_le(copy.subspan(at_copy_crc), 4) != copy_crc_of(copy, nv_bytes)) {
    second.problem = "checksum mismatch";
    return second;
  }
  second.generation = load_le(copy.subspan(at_generation), 8);
  second.first_crc = static_cast<std::uint32_t>(load_le(copy.subspan(at_first_crc), 4));
  if (second.generation == 0) {
    second.problem = "generation 0";
    return second;
  }
  auto metadata = decode_block(copy.subspan(metadata_copy_header_bytes, nv_bytes), provider);
  if (!metadata) {
    second.problem = metadata.error().context();
    return second;
  }
  second.metadata = std::move(*metadata);
  return second;
}

}  // namespace

std::string_view metadata_copy_name(MetadataCopy copy) {
  return copy == MetadataCopy::first ? "first" : "second";
}

std::array<std::byte, metadata_size> encode_area(const Metadata& metadata,
                                                 std::uint64_t generation) {
  HAST_ASSERT(generation > 0);
  std::vector<std::byte> nv = encode_nv(metadata);
  HAST_ASSERT(nv.size() < metadata_copy_offset && nv.size() <= copy_nv_bytes_max);
  std::array<std::byte, metadata_size> area{};
  std::copy(nv.begin(), nv.end(), area.begin());
  std::span<std::byte> copy = std::span(area).subspan(metadata_copy_offset);
  std::copy(copy_magic.begin(), copy_magic.end(), copy.begin());
  store_le(copy.subspan(at_generation), generation, 8);
  store_le(copy.subspan(at_nv_bytes), nv.size(), 4);
  store_le(copy.subspan(at_first_crc), first_crc_of(area), 4);
  std::copy(nv.begin(), nv.end(), copy.begin() + metadata_copy_header_bytes);
  std::size_t nv_bytes = nv.size();
  store_le(copy.subspan(at_copy_crc), copy_crc_of(copy, nv_bytes), 4);
  return area;
}

Result<MetadataArea> decode_area(std::span<const std::byte> area, std::string_view provider) {
  if (area.size() > metadata_size) {
    return fail(Errc::invalid_argument,
                fmt::format("metadata area of {} bytes, more than {}", area.size(), metadata_size));
  }
  std::array<std::byte, metadata_size> padded{};
  std::copy(area.begin(), area.end(), padded.begin());
  SecondCopy second = decode_second(padded, provider);
  auto first = decode_block(padded, provider);
  if (second.metadata && first && first_crc_of(padded) == second.first_crc) {
    return MetadataArea{std::move(*first), second.generation, MetadataCopy::first, {}};
  }
  if (second.metadata) {
    // The write of this generation stopped before the first copy was whole.
    std::string why = first ? "differs" : first.error().context();
    return MetadataArea{std::move(*second.metadata), second.generation, MetadataCopy::second,
                        fmt::format("the first copy is torn or older than the second copy "
                                    "(generation {}): {}",
                                    second.generation, why)};
  }
  if (!first) {
    if (!second.present) return fail(first.error());
    return fail(Errc::corruption,
                fmt::format("{}; the second copy at offset {} is unusable too: {}",
                            first.error().context(), metadata_copy_offset, second.problem));
  }
  std::string note;
  if (second.present) note = fmt::format("the second copy is unusable: {}", second.problem);
  return MetadataArea{std::move(*first), 0, MetadataCopy::first, std::move(note)};
}

bool is_stale(const Metadata& metadata, ExtentIndex extent) {
  return std::binary_search(metadata.stale_extents.begin(), metadata.stale_extents.end(), extent);
}

StaleAdd add_stale(Metadata& metadata, ExtentIndex extent) {
  auto& stale = metadata.stale_extents;
  HAST_ASSERT(stale.size() <= stale_extents_max);
  auto at = std::lower_bound(stale.begin(), stale.end(), extent);
  if (at != stale.end() && *at == extent) return StaleAdd::present;
  if (stale.size() == stale_extents_max) return StaleAdd::full;
  stale.insert(at, extent);
  HAST_ASSERT(std::is_sorted(stale.begin(), stale.end()));
  return StaleAdd::added;
}

bool remove_stale(Metadata& metadata, ExtentIndex extent) {
  auto& stale = metadata.stale_extents;
  auto at = std::lower_bound(stale.begin(), stale.end(), extent);
  if (at == stale.end() || *at != extent) return false;
  stale.erase(at);
  HAST_ASSERT(!is_stale(metadata, extent));
  return true;
}

}  // namespace hast::meta
