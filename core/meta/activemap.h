// Activemap: which extents of the data area may differ between the two nodes, in memory
// and as the bitmap stored at offset 4096 (reference/hast-spec.md §4.3, §5, §8.3).
//
// Pure (STYLE.md R10): every operation updates memory and says whether the on-disk image
// changed ("needs flush"); the caller writes the image. All storage is allocated by the
// constructor; no operation allocates except encode_image() (encode_image_to does not).
//
// Model, per extent e:
//   pending(e)  writes started and not completed (HAST's memtab counter, without its trick
//               of adding "sync requests" to the counter);
//   sync(e)     the extent must be copied to the peer (HAST's syncmap): a write the peer
//               did not acknowledge, the peer's map at connect, the map read at start-up,
//               or a full sync;
//   lru(e)      e is among the keep_dirty most recently written extents.
//   dirty(e)    = pending(e) > 0 || sync(e)       (HAST's memmap; ndirty counts these)
//   image(e)    = dirty(e) || lru(e)              (what encode_image() writes)
// Invariants: image(e) holds while a write to e is pending, and while sync(e) holds. So an
// extent is clear on disk only when every write to it completed, was acknowledged by the
// secondary, and nothing since asked for it to be synced: the O3 oracle's core.
//
// HAST defect 2 (DESIGN.md §1.2), fixed here: HAST clears a completed write's extent even
// when its remote leg failed or was cut by a disconnect; write_complete(…, RemoteAck::no)
// moves the extent to sync instead. Also fixed: HAST's sync walk clears an extent when it
// moves past it, even if a write the secondary did not acknowledge landed in the part
// already copied; here such a mark made after the walk entered the extent keeps its sync
// bit through sync_extent_done (the next pass copies it again). Each pass of the walk has
// a number, carried by its chunks: a completion from an earlier pass (copies still in
// flight at a reconnect) never clears anything, so a pipelined sync cannot clear an extent
// on the strength of a copy made before a later mark.
//
// Flushing and coalescing. generation() increases by one every time the image changes,
// and every operation returns NeedsFlush::yes exactly when it changed the image. An image
// bit is never cleared while a write to the extent is pending, so a write that waits for
// "an image at least as new as generation g is durable" is covered by any later image.
// One map write can therefore serve every write waiting on it:
//
//   // a writer fiber
//   if (map.write_start(off, len) == NeedsFlush::yes) wait_until_durable(map.generation());
//   // the flusher fiber, woken by waiters
//   while (map.image_changed_since(map.durable_generation())) {
//     auto g = map.generation();
//     map.encode_image_to(buffer);           // then write at 4096 durably (FUA or + flush)
//     map.map_flushed(g);                    // wake writers waiting on generation ≤ g
//   }
//
// Setting a bit (write_start on a new extent, need_sync, merge, set_all_dirty) must be
// durable before the data write proceeds or before anything that depends on it is
// acknowledged (DESIGN.md §1.2 item 5); clearing a bit (write_complete, sync_extent_done,
// LRU eviction) may be written lazily: a stale set bit only costs a resync.
//
// Geometry. The map covers the data area: extent_count = ceil(data_size / extent_size),
// and the image is map_ondisk_bytes(data_size, …) bytes (layout.h), sized from the
// metadata as DESIGN.md §1.2 item 11 requires. Bits at or past extent_count are written as
// zero and ignored when read (load_image, merge): they stand for no data, and a FreeBSD
// secondary sends a map sized from its provider (§4.3) whose tail may hold anything.
//
// Offsets and lengths are device bytes (0 = first byte of the data area). A range must be
// non-empty and inside the data area: that is checked where requests enter the node, so
// here it is asserted, as are call-order preconditions (completing a write never started).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "core/meta/bitmap.h"
#include "core/meta/extent_lru.h"
#include "core/meta/layout.h"
#include "core/result.h"

namespace hast::meta {

// Whether the on-disk image changed. Every function returning it is [[nodiscard]]:
// dropping it loses a required flush.
enum class NeedsFlush : bool { no = false, yes = true };

// Whether the secondary acknowledged a write (its final reply succeeded).
enum class RemoteAck : bool { no = false, yes = true };

// One step of the sync walk: a piece of one extent to copy.
struct SyncChunk {
  std::uint64_t offset = 0;      // device byte offset
  std::uint64_t length = 0;      // bytes, 0 < length ≤ max_bytes
  ExtentIndex extent;            // the extent the chunk lies in
  std::uint64_t pass = 0;        // the walk's pass (see sync_rewind), for sync_extent_done
  bool first_in_extent = false;  // the chunk starts its extent
  bool last_in_extent = false;   // the chunk ends its extent (or the data area)
  friend bool operator==(const SyncChunk&, const SyncChunk&) = default;
};

struct ActivemapStats {
  std::uint64_t dirty_extents = 0;  // HAST's ndirty: pending writes or sync needed
  std::uint64_t dirty_bytes = 0;    // dirty_extents × extent size (`hastctl list` "dirty")
  std::uint64_t sync_extents = 0;   // extents still to be synced
  std::uint64_t map_updates = 0;    // images reported durable (`activemap updates`)
};

class Activemap {
 public:
  // A map for a data area of `data_size_bytes` (> 0) in extents of `extent_size_bytes` (a
  // power of two), keeping at most `keep_dirty` (> 0) recently written extents marked, on a
  // component with `sector_size_bytes` sectors (a power of two). Every value comes from a
  // metadata block that passed check_metadata and check_fits_provider: asserted.
  Activemap(std::uint64_t data_size_bytes, std::uint32_t extent_size_bytes,
            std::uint32_t keep_dirty, std::uint32_t sector_size_bytes);

  // ---- Geometry ----
  std::uint64_t data_size_bytes() const { return data_size_bytes_; }
  std::uint32_t extent_size_bytes() const { return extent_size_bytes_; }
  std::uint64_t extent_count() const { return extent_count_; }
  // Bytes of the on-disk image (encode_image's size).
  std::uint64_t ondisk_size_bytes() const { return ondisk_size_bytes_; }
  ExtentIndex extent_of(std::uint64_t offset) const;
  // Device bytes of `extent`: [start, start + length), the last one truncated.
  std::uint64_t extent_start(ExtentIndex extent) const;
  std::uint64_t extent_length(ExtentIndex extent) const;

  // ---- Regular writes ----
  // Before a WRITE is issued to either component: counts it pending on every extent it
  // covers and moves those extents to the front of the keep-dirty list. NeedsFlush::yes
  // when an extent became marked, or was marked by an image not yet durable (its write is
  // in flight or failed): the current image must be durable before the data is written.
  [[nodiscard]] NeedsFlush write_start(std::uint64_t offset, std::uint64_t length);
  // After both legs of a write started with the same range finished (whatever the local
  // result). With RemoteAck::yes an extent with no other pending write becomes clean,
  // unless the keep-dirty list still holds it (then the image does not change). With
  // RemoteAck::no (not sent, failed, cut by a disconnect) its extents move to sync.
  [[nodiscard]] NeedsFlush write_complete(std::uint64_t offset, std::uint64_t length,
                                          RemoteAck ack);
  // Marks the extents of a range for sync without a pending write: the peer could not be
  // given a write, a remote flush failed over the range, or the async backlog overflowed.
  [[nodiscard]] NeedsFlush need_sync(std::uint64_t offset, std::uint64_t length);

  // ---- Whole-map operations ----
  // Every extent to sync (full synchronisation).
  [[nodiscard]] NeedsFlush set_all_dirty();
  // Adds the peer's map to sync. `image` holds at least ceil(extent_count / 8) bytes;
  // longer is accepted (FreeBSD sends a map sized from its provider), extra bits ignored.
  // Errc::invalid_argument when shorter. Rewinds the sync walk.
  [[nodiscard]] Result<NeedsFlush> merge(std::span<const std::byte> image);
  // Replaces the state with the image read from disk at start-up: every marked extent
  // (writes in flight, the keep-dirty set, unsynced extents of the previous run) is to be
  // synced; the keep-dirty list starts empty. `image` must be exactly ondisk_size_bytes()
  // (Errc::invalid_argument otherwise); bits past extent_count are ignored. No write may be
  // pending (asserted). The loaded image counts as durable. Rewinds the sync walk.
  Result<void> load_image(std::span<const std::byte> image);
  // Forgets every mark (the secondary, once the primary has its map). No write may be
  // pending (asserted).
  [[nodiscard]] NeedsFlush clear_all();

  // ---- Sync walk (§8.3): extents in sync, ascending, in chunks ----
  // The next chunk to copy: at most `max_bytes` (> 0), never crossing an extent boundary,
  // the last extent truncated to the data size. Chunks of one extent come in order, and the
  // walk moves on when an extent's last chunk was handed out; extents are visited in
  // ascending order from the last rewind. nullopt when no extent at or after the cursor is
  // to sync; marks made behind the cursor are found after sync_rewind(). An extent whose
  // sync bit is cleared while the walk is inside it is abandoned.
  std::optional<SyncChunk> next_sync_chunk(std::uint64_t max_bytes);
  // Starts a new pass at the first extent to sync (after a reconnect, or at the end of a
  // pass when sync_pending()). A partly copied extent is copied again from its start.
  // Within a pass each extent is entered at most once. Rewind only once the pass's copies
  // have completed: their sync_extent_done calls then refer to an old pass and are ignored.
  void sync_rewind();
  // Every chunk of `extent` handed out in pass `pass` (SyncChunk::pass) was copied; the
  // caller may have had several in flight. Clears the extent's sync bit unless it was
  // marked again after this pass entered it, or `pass` is not the current pass (then it
  // stays for the next pass). NeedsFlush::yes when that cleared the extent's image bit.
  [[nodiscard]] NeedsFlush sync_extent_done(ExtentIndex extent, std::uint64_t pass);
  std::uint64_t sync_pass() const { return sync_pass_; }
  bool sync_pending() const { return sync_count_ > 0; }

  // ---- The on-disk image ----
  // image(e) for every extent, LSB-first, zero-padded to ondisk_size_bytes().
  std::vector<std::byte> encode_image() const;
  // The same into `out`, which must be exactly ondisk_size_bytes() (asserted).
  void encode_image_to(std::span<std::byte> out) const;
  // Generation of the current image; increases by one at every change of it.
  std::uint64_t generation() const { return generation_; }
  bool image_changed_since(std::uint64_t generation) const { return generation_ != generation; }
  // The caller made the image of `generation` durable. Out-of-date reports (a generation
  // older than one already reported) are ignored; a generation not reached yet is a bug.
  void map_flushed(std::uint64_t generation);
  std::uint64_t durable_generation() const { return durable_generation_; }

  // ---- Observation ----
  ActivemapStats stats() const;
  std::uint32_t pending_writes(ExtentIndex extent) const;
  bool needs_sync(ExtentIndex extent) const;
  bool in_keep_dirty(ExtentIndex extent) const { return lru_.contains(extent); }
  // Extents that ever left the keep-dirty set (ExtentLru::removals): while it stays the
  // same, an extent in_keep_dirty() found is still in the set.
  std::uint64_t keep_dirty_removals() const { return lru_.removals(); }
  bool in_image(ExtentIndex extent) const;
  // Keep-dirty extents, most recently written first (allocates; tests and diagnostics).
  std::vector<ExtentIndex> keep_dirty_extents() const { return lru_.most_recent_first(); }
  // Checks every invariant with a scan of the whole map (O(extent count)): tests and the
  // simulator's expensive checks call it; a violation is an assertion failure.
  void check_invariants() const;

 private:
  bool dirty(std::uint64_t extent) const;
  bool image_bit(std::uint64_t extent) const;
  void mark_sync(std::uint64_t extent);
  void unmark_sync(std::uint64_t extent);
  // Sets image_'s bit of `extent` to image(e); true when it flipped.
  bool refresh_image(std::uint64_t extent);
  NeedsFlush note_changes(bool changed);
  std::uint64_t first_extent(std::uint64_t offset, std::uint64_t length) const;
  std::uint64_t last_extent(std::uint64_t offset, std::uint64_t length) const;

  std::uint64_t data_size_bytes_;
  std::uint32_t extent_size_bytes_;
  std::uint64_t extent_count_;
  std::uint64_t ondisk_size_bytes_;

  std::vector<std::uint32_t> pending_;  // per extent
  Bitmap sync_;                         // sync(e)
  // Extents marked for sync after the walk last entered them: sync_extent_done keeps them.
  Bitmap marked_in_walk_;
  Bitmap image_;  // image(e), kept in step with the state above
  // Per extent: the generation whose image first had its bit set (0: loaded from disk).
  // The bit protects a write only once that generation is durable.
  std::vector<std::uint64_t> image_set_at_;
  ExtentLru lru_;
  std::uint64_t dirty_count_ = 0;  // extents with dirty(e)
  std::uint64_t sync_count_ = 0;   // extents with sync(e)

  // The walk: the byte offset of the next chunk while inside an extent, else nullopt and
  // the walk resumes at the first sync extent at or after sync_scan_extent_.
  std::optional<std::uint64_t> sync_cursor_;
  std::uint64_t sync_scan_extent_ = 0;
  std::uint64_t sync_pass_ = 1;

  std::uint64_t generation_ = 0;
  std::uint64_t durable_generation_ = 0;
  std::uint64_t map_updates_ = 0;
};

}  // namespace hast::meta
