// The metadata block: what a local component says about itself (reference/hast-spec.md
// §4.2), and its codec. Pure: bytes in, bytes out, no I/O.
//
// Format: an nv list (core/proto/nv.h, §6.2) at offset 0 of the component, zero-padded to
// metadata_size (4096) bytes. HAST's fields, in HAST's write order:
//
//   resource   string  resource name (must match the configuration's)
//   datasize   uint64  bytes of the data area
//   extentsize uint32  bytes per activemap bit
//   keepdirty  uint32  size of the keep-dirty LRU
//   offset     uint64  where the data area starts ("localoff")
//   resuid     uint64  random id of the pair, 0 = never paired
//   localcnt   uint64  generation counters (§8.1)
//   remotecnt  uint64
//   prevrole   string  "init", "primary" or "secondary": the role of the writer
//
// Our extensions, extra elements FreeBSD's hastd ignores (it looks fields up by name), and
// written only when they carry something, so a block of a resource that never used them
// is byte-identical to FreeBSD's:
//
//   stale        uint64[]  extents stale on this node (DESIGN.md §1.2 item 3): a local
//                          write failed there, reads go to the peer, resync repairs them.
//                          Strictly increasing, at most stale_extents_max, each < the
//                          extent count. Present only when non-empty (nv forbids an empty
//                          element anyway).
//   inconsistent uint8 = 1 this node is the target of a sync that has not completed
//                          (item 8). Present only when set.
//
// Decoding is as strict as HAST where HAST checks (every field present with its type) and
// stricter where HAST would go on with nonsense (zero or non-power-of-two extent size, a
// map that cannot fit before the data area, counts that overflow). Every rejection is
// Errc::corruption with a sentence naming the provider and the field.
//
// The metadata area and its second copy (torn-write protection, ours). The block is
// rewritten in place, and a power loss during that write can leave each sector old or
// new: a block whose nv no longer decodes would keep the resource from starting although
// every other byte is fine. FreeBSD reads the nv at offset 0 and ignores everything after
// its terminating zero, and the nv never reaches metadata_copy_offset (static_assert), so
// the second half of the area holds a second copy:
//
//   [0, 2048)     the first copy: the block above (what FreeBSD reads and writes)
//   [2048, 4096)  the second copy: a 32-byte header, then the same nv bytes
//     magic       8 bytes "HASTCOPY"
//     generation  uint64 LE  numbers our metadata writes, from 1
//     nv_bytes    uint32 LE  length of the nv that follows the header
//     first_crc   uint32 LE  crc32 of area[0, 2048) as this generation writes it
//     reserved    uint32     zero
//     copy_crc    uint32 LE  crc32 of header bytes [0, 28) followed by the nv bytes
//
// A write makes the second copy durable first, then the first copy (LocalComponent), so
// at any instant at most one copy is being written and the other is whole. Reading:
//   - a valid second copy whose first_crc matches the first copy: both hold the same
//     generation; the first copy is used;
//   - a valid second copy and a first copy that differs (torn, or older because the
//     write stopped between the two copies): the second copy is newer and is used;
//   - no valid second copy (absent, as FreeBSD and older writers leave the area, or
//     torn): the first copy is used alone, exactly as FreeBSD reads it.
// A writer that knows nothing of the second copy (FreeBSD) writes the whole area with
// zeroes after the nv, which erases the second copy, so a stale one is never preferred.
// On sectors of 4096 bytes the area is one sector, written with one (atomic) write.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/meta/layout.h"
#include "core/meta/role.h"
#include "core/result.h"

namespace hast::meta {

// Bound of the stale-on-primary list. A local write error that would need a 65th entry
// fails with EIO instead (DESIGN.md §1.2 item 3). 64 × 8 bytes keeps the block far below
// metadata_size.
inline constexpr std::size_t stale_extents_max = 64;
// Longest resource name a block may carry (NAME_MAX; the configuration enforces the same
// bound). With it, an encoded block always fits in metadata_size (static_assert in .cc).
inline constexpr std::size_t resource_name_length_max = 255;

struct Metadata {
  std::string resource;                  // `resource`
  std::uint64_t data_size_bytes = 0;     // `datasize`
  std::uint32_t extent_size_bytes = 0;   // `extentsize`
  std::uint32_t keep_dirty = 0;          // `keepdirty`, extents
  std::uint64_t local_offset_bytes = 0;  // `offset`
  std::uint64_t resuid = 0;              // `resuid`
  std::uint64_t local_count = 0;         // `localcnt`
  std::uint64_t remote_count = 0;        // `remotecnt`
  Role prev_role = Role::init;           // `prevrole`
  // Extensions (see the file comment).
  std::vector<ExtentIndex> stale_extents;  // `stale`, sorted, unique
  bool inconsistent = false;               // `inconsistent`

  friend bool operator==(const Metadata&, const Metadata&) = default;
};

// The block `hastctl create` writes: role init, resuid and counters 0, no extensions.
Metadata created_metadata(std::string resource, const Layout& layout, std::uint32_t keep_dirty);

// Checks what decode_block checks after parsing: a non-empty resource name of at most
// resource_name_length_max bytes without NUL; extent size a power of two; keep_dirty > 0;
// a data area > 0 bytes ending before 2^63; a local offset that leaves room for the
// metadata block and the activemap's bits; extent count ≤ extent_count_max; the stale list
// bounded, strictly increasing and within the extent count. Errc::corruption naming the
// first violation ("extentsize 3000 is not a power of 2").
Result<void> check_metadata(const Metadata& metadata);

// Encodes `metadata` (which must pass check_metadata: asserted) into a block: HAST's nine
// fields in HAST's order, then the extension fields that are set, then zeroes.
std::array<std::byte, metadata_size> encode_block(const Metadata& metadata);

// Decodes a block read from `provider` (used only in messages; pass the local path).
// `block` is at most metadata_size bytes (a shorter one reads as if zero-padded); bytes
// after the nv list's terminating zero are ignored, as HAST does. Errors, all
// Errc::corruption except the first:
//  - block longer than metadata_size: Errc::invalid_argument;
//  - malformed nv: "Metadata read from P is invalid: <nv error>";
//  - a field missing or of the wrong type: "Unable to read metadata from P: field
//    \"datasize\" (uint64) is missing" / "... is a uint32, expected uint64";
//  - prevrole not a role name, or a check_metadata failure:
//    "Metadata read from P is invalid: <reason>".
Result<Metadata> decode_block(std::span<const std::byte> block,
                              std::string_view provider = "the local component");

// HAST's check at open: the block must belong to `resource` (the configuration's name).
// Errc::invalid_argument "Provider P is not part of resource R." otherwise.
Result<void> check_resource(const Metadata& metadata, std::string_view provider,
                            std::string_view resource);

// Checks that the block describes a layout that fits the component it was read from: the
// extent size a multiple of the sector size, the local offset sector-aligned and past the
// activemap sized from the data size, the data area inside `media_size_bytes`.
// Errc::corruption "Metadata read from P does not fit the provider: <reason>" otherwise.
Result<void> check_fits_provider(const Metadata& metadata, std::string_view provider,
                                 std::uint64_t media_size_bytes, std::uint32_t sector_size_bytes);

// ---- The metadata area: the block and its second copy (see the file comment) ----

// Where the second copy starts; also the bytes the first copy may use.
inline constexpr std::uint32_t metadata_copy_offset = metadata_size / 2;
inline constexpr std::uint32_t metadata_copy_header_bytes = 32;

enum class MetadataCopy : std::uint8_t {
  first,   // offset 0: the block FreeBSD reads
  second,  // offset metadata_copy_offset: ours
};
std::string_view metadata_copy_name(MetadataCopy copy);

struct MetadataArea {
  Metadata metadata;
  // The generation of the area: of the valid second copy that vouches for the metadata,
  // 0 when there is none (an area FreeBSD wrote). The next write uses generation + 1.
  std::uint64_t generation = 0;
  // The copy the metadata was read from.
  MetadataCopy copy = MetadataCopy::first;
  // Empty when the copies agree (or there is no second copy); otherwise one sentence
  // saying why a copy was passed over ("the first copy is torn or older than the second
  // copy (generation 7): ...", "the second copy is unusable: checksum mismatch").
  std::string note;
};

// The whole area for `metadata` (which must pass check_metadata: asserted) written as
// generation `generation` (>= 1): the first copy is encode_block's bytes, the second
// copy its header and the same nv.
std::array<std::byte, metadata_size> encode_area(const Metadata& metadata,
                                                 std::uint64_t generation);

// Reads an area as described in the file comment. `area` is at most metadata_size bytes
// (shorter reads as zero-padded). Errors: those of decode_block for the first copy when no
// valid second copy exists, unchanged when the second copy is absent, and with
// "; the second copy at offset 2048 is unusable too: <reason>" appended when one was
// there but failed its checks.
Result<MetadataArea> decode_area(std::span<const std::byte> area,
                                 std::string_view provider = "the local component");

// ---- The stale-on-primary list (DESIGN.md §1.2 item 3) ----
// It lives here, not in the activemap: it is persisted in the metadata block, and adding
// an extent must be made durable (a metadata write) before the failed write is answered.
// The caller also marks the extent for sync in the activemap, so resync repairs it.

enum class StaleAdd : std::uint8_t {
  added,    // the list changed: write the metadata durably before answering
  present,  // already listed: nothing to write
  full,     // stale_extents_max reached: the write must fail with EIO
};

bool is_stale(const Metadata& metadata, ExtentIndex extent);
StaleAdd add_stale(Metadata& metadata, ExtentIndex extent);
// True when the extent was listed (the list changed: persist it).
bool remove_stale(Metadata& metadata, ExtentIndex extent);

}  // namespace hast::meta
