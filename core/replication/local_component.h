// LocalComponent: a resource's local disk as the replication code sees it (reference/
// hast-spec.md §4): the metadata block at offset 0, the activemap image at 4096, the data
// area at the metadata's local offset; plus `create` (what `hastctl create` writes).
//
// Model: data I/O takes device offsets (0 = first byte of the data area) and adds the
// local offset. Durability (DESIGN.md §1.2 item 5): metadata and activemap writes that a
// later acknowledgement depends on are made durable first — a FUA write, which the device
// may implement as write + flush. An administrator who sets `metaflush off` trades that
// guarantee for speed on activemap writes, as in HAST; metadata writes stay durable.
//
// The metadata area holds two copies of the block (core/meta/metadata.h): a write makes
// the second copy durable, then the first, so a power loss in the middle of a metadata
// write tears at most one copy and the area still reads (the newer whole copy wins). That
// ordering needs both writes durable (FUA), so metadata writes are FUA even with
// `metaflush off` (HAST skips their flush too; they are rare, and without it a power loss
// could tear both copies).
//
// Map writes are coalesced: persist_map(g) returns once an image at least as new as
// generation g is durable. While one fiber writes the image, others wanting a newer
// generation wait, and the next write covers all of them (one durable write serves every
// write that waited on it). A discard reads back as zeroes afterwards: where the device
// does not promise that, the range is written with zeroes instead (defect 6).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <functional>

#include "core/fiber/semaphore.h"
#include "core/fiber/wait_queue.h"
#include "core/io/byte_buffer.h"
#include "core/io/disk.h"
#include "core/meta/activemap.h"
#include "core/meta/metadata.h"
#include "core/replication/mutation.h"
#include "core/result.h"

namespace hast::replication {

struct CreateOptions {
  std::uint32_t extent_size_bytes = meta::default_extent_size_bytes;
  std::uint32_t keep_dirty = meta::default_keep_dirty;
  std::uint64_t media_size_bytes = 0;  // 0: the whole disk
};

// `hastctl create`: computes the layout and writes a fresh metadata area (role init,
// resuid and counters 0, generation 1: both copies, in one write) and a zeroed
// activemap, durably. Errors: Errc::invalid_argument
// for a bad geometry (the message says which), Errc::io for a failed write.
Result<meta::Metadata> create_local(Disk& disk, std::string_view resource,
                                    const CreateOptions& options);

// Reads and checks the metadata block of `disk` ("Unable to read metadata from P", "Provider
// P is not part of resource R.", …). `provider` names the disk in messages.
Result<meta::Metadata> read_metadata(Disk& disk, std::string_view provider,
                                     std::string_view resource);
// The same, with the area's generation and which copy was read (decode_area).
Result<meta::MetadataArea> read_metadata_area(Disk& disk, std::string_view provider,
                                              std::string_view resource);

class LocalComponent {
 public:
  // Opens the component: reads and checks the metadata and sizes the activemap from it.
  // When the copies disagreed (a metadata write was interrupted: one copy is torn or
  // older), the area is written again at once so both copies hold what was read; a
  // failure of that write is left to the next metadata update, which writes both copies
  // whatever it changes (as after any failed metadata write).
  static Result<std::unique_ptr<LocalComponent>> open(Disk& disk, fiber::Scheduler& scheduler,
                                                      std::string_view provider,
                                                      std::string_view resource, bool metaflush);

  const meta::Metadata& metadata() const { return metadata_; }
  // The generation of the last metadata area written (or read at open; 0 for an area
  // without a second copy). Each write uses the next one, whether or not it succeeds.
  std::uint64_t metadata_generation() const { return generation_; }
  // How open() found the area: which copy it read, and why it passed one over (empty when
  // the copies agreed).
  meta::MetadataCopy opened_copy() const { return opened_copy_; }
  const std::string& opened_note() const { return opened_note_; }
  std::uint64_t data_size() const { return metadata_.data_size_bytes; }
  std::uint32_t sector_size() const { return disk_.properties().sector_size; }
  const std::string& provider() const { return provider_; }
  Disk& disk() { return disk_; }

  // Applies `change` to the current metadata and writes the result durably; on success it
  // becomes metadata(). Updates are serialised: each starts from the block the previous
  // one wrote, so concurrent updates (a stale extent added while another is removed)
  // never undo each other. `change` returns false when it changed nothing: the block is
  // then written only when the disk is not known to hold metadata() (the last write
  // failed). So a successful return always means the disk durably holds metadata() with
  // the change, whether or not memory already had it. Errors: the write failed; the
  // block on disk is then unknown (old, new or torn) and metadata() keeps the old value.
  Result<void> update_metadata(const std::function<bool(meta::Metadata&)>& change);
  // Writes `updated` as the whole block (create and tests): update_metadata's last word.
  Result<void> write_metadata(const meta::Metadata& updated);
  // True when the disk is known to hold metadata(): no metadata write is in flight and
  // the last one succeeded. Never suspends.
  bool metadata_settled() const { return writing_ == nullptr && !failed_.has_value(); }
  // True when a block that the disk may hold instead of metadata() satisfies `test`: the
  // one being written, or the one whose write failed (it may have landed in whole) until
  // a later write succeeds. False when settled. Never suspends.
  bool unsettled_block_matches(const std::function<bool(const meta::Metadata&)>& test) const;
  // Returns once the disk is known to hold metadata(): waits for a write in flight, and
  // writes the block again after a failed write. Errors: that write failed.
  Result<void> settle_metadata();

  // ---- Data area (device offsets) ----
  Result<void> read(std::uint64_t offset, std::span<std::byte> buffer);
  Result<void> write(std::uint64_t offset, std::span<const std::byte> data, Fua fua);
  Result<void> flush();
  Result<void> discard(std::uint64_t offset, std::uint64_t length);
  Result<void> write_zeroes(std::uint64_t offset, std::uint64_t length, Fua fua);

  // ---- Activemap ----
  meta::Activemap& map() { return map_; }
  // Loads the on-disk image into the map (a primary at start: everything marked is to
  // be synced).
  Result<void> load_map();
  // Returns once the image of generation `generation` or newer is durable (coalesced).
  Result<void> persist_map(std::uint64_t generation);
  // Writes a zeroed image (the secondary, once the primary has its map). Durable.
  Result<void> clear_map_on_disk();
  // The on-disk image as stored (for the handshake reply of a secondary).
  Result<std::vector<std::byte>> read_map_image();

  bool metaflush() const { return metaflush_; }
  // Configuration reload: applies to the metadata and activemap writes that start next.
  void set_metaflush(bool metaflush) { metaflush_ = metaflush; }

  // Simulator only: skip_activemap_flush and skip_metadata_flush (mutation.h).
  void test_set_mutation(Mutation mutation) { mutation_ = mutation; }

 private:
  LocalComponent(Disk& disk, fiber::Scheduler& scheduler, std::string provider,
                 meta::Metadata metadata, bool metaflush);
  Fua durable() const { return metaflush_ ? Fua::yes : Fua::no; }
  // Writes the area: the second copy, then the first (one write when a sector holds both).
  Result<void> write_area(std::span<const std::byte> area, Fua fua);
  void check_range(std::uint64_t offset, std::uint64_t length) const;

  Disk& disk_;
  std::string provider_;
  meta::Metadata metadata_;
  std::uint64_t generation_ = 0;
  meta::MetadataCopy opened_copy_ = meta::MetadataCopy::first;
  std::string opened_note_;
  meta::Activemap map_;
  // Aligned for direct I/O (no bounce copy per map write); its tail past the bitmap's
  // bytes stays zero.
  ByteBuffer map_buffer_;
  bool metaflush_;
  Mutation mutation_ = Mutation::none;
  bool map_writing_ = false;
  fiber::WaitQueue map_written_;
  fiber::Semaphore metadata_lock_;
  // The metadata block being written (null when none), and the last one whose write
  // failed until a write succeeds: the Disk contract lets a failed write land in whole,
  // in part or not at all, so the disk may hold either besides metadata().
  const meta::Metadata* writing_ = nullptr;
  std::optional<meta::Metadata> failed_;
};

}  // namespace hast::replication
