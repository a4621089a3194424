// Activemap state transitions (reference/hast-spec.md §5), with HAST defect 2 fixed.
//
// The image is kept as a bitmap (image_) next to the state it is derived from. Every
// operation changes the state of the extents it touches, then refreshes their image bits,
// which says whether a bit flipped. No operation flips one extent's bit twice (a write
// counts itself pending on all its extents before any keep-dirty eviction, so an evicted
// extent of the same write stays marked; ranges hold distinct extents), so "some bit
// flipped" is exactly "the image changed".
#include "core/meta/activemap.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/assert.h"

namespace hast::meta {

Activemap::Activemap(std::uint64_t data_size_bytes, std::uint32_t extent_size_bytes,
                     std::uint32_t keep_dirty, std::uint32_t sector_size_bytes)
    : data_size_bytes_(data_size_bytes),
      extent_size_bytes_(extent_size_bytes),
      extent_count_(extent_count_for(data_size_bytes, extent_size_bytes)),
      ondisk_size_bytes_(map_ondisk_bytes(data_size_bytes, extent_size_bytes, sector_size_bytes)),
      pending_(extent_count_, 0),
      sync_(extent_count_),
      marked_in_walk_(extent_count_),
      image_(extent_count_),
      image_set_at_(extent_count_, 0),
      lru_(extent_count_, keep_dirty) {
  HAST_ASSERT(is_power_of_two(extent_size_bytes));
  HAST_ASSERT(extent_count_ <= extent_count_max);
  HAST_ASSERT(ondisk_size_bytes_ * 8 >= extent_count_);
}

// ---- Helpers ----

ExtentIndex Activemap::extent_of(std::uint64_t offset) const {
  HAST_ASSERT(offset < data_size_bytes_);
  std::uint64_t extent = offset / extent_size_bytes_;
  HAST_ASSERT(extent < extent_count_);
  return ExtentIndex{extent};
}

std::uint64_t Activemap::extent_start(ExtentIndex extent) const {
  HAST_ASSERT(extent.value < extent_count_);
  std::uint64_t start = extent.value * extent_size_bytes_;
  HAST_ASSERT(start < data_size_bytes_);
  return start;
}

std::uint64_t Activemap::extent_length(ExtentIndex extent) const {
  std::uint64_t start = extent_start(extent);
  std::uint64_t length = std::min<std::uint64_t>(extent_size_bytes_, data_size_bytes_ - start);
  HAST_ASSERT(length > 0);
  return length;
}

std::uint64_t Activemap::first_extent(std::uint64_t offset, std::uint64_t length) const {
  HAST_ASSERT_MSG(length > 0, "empty range at {}", offset);
  HAST_ASSERT_MSG(offset <= data_size_bytes_ && length <= data_size_bytes_ - offset,
                  "range {}+{} outside the data area of {} bytes", offset, length,
                  data_size_bytes_);
  return extent_of(offset).value;
}

std::uint64_t Activemap::last_extent(std::uint64_t offset, std::uint64_t length) const {
  HAST_ASSERT(length > 0);
  return extent_of(offset + length - 1).value;
}

bool Activemap::dirty(std::uint64_t extent) const {
  return pending_[extent] > 0 || sync_.test(extent);
}

bool Activemap::image_bit(std::uint64_t extent) const {
  return dirty(extent) || lru_.contains(ExtentIndex{extent});
}

bool Activemap::in_image(ExtentIndex extent) const {
  HAST_ASSERT(extent.value < extent_count_);
  return image_.test(extent.value);
}

std::uint32_t Activemap::pending_writes(ExtentIndex extent) const {
  HAST_ASSERT(extent.value < extent_count_);
  return pending_[extent.value];
}

bool Activemap::needs_sync(ExtentIndex extent) const {
  HAST_ASSERT(extent.value < extent_count_);
  return sync_.test(extent.value);
}

// Sets sync(e), keeping the counts; remembers a mark made inside the extent being walked.
void Activemap::mark_sync(std::uint64_t extent) {
  bool was_dirty = dirty(extent);
  if (!sync_.test(extent)) {
    sync_.set(extent);
    sync_count_++;
  }
  marked_in_walk_.set(extent);
  if (!was_dirty) dirty_count_++;
  HAST_ASSERT(dirty(extent));
  HAST_ASSERT(sync_count_ <= extent_count_);
}

void Activemap::unmark_sync(std::uint64_t extent) {
  HAST_ASSERT(sync_.test(extent));
  HAST_ASSERT(sync_count_ > 0);
  sync_.clear(extent);
  marked_in_walk_.clear(extent);
  sync_count_--;
  if (!dirty(extent)) dirty_count_--;
}

bool Activemap::refresh_image(std::uint64_t extent) {
  bool bit = image_bit(extent);
  if (image_.test(extent) == bit) return false;
  if (bit) {
    image_.set(extent);
    image_set_at_[extent] = generation_ + 1;  // the generation note_changes() makes next
  } else {
    // The two facts the O3 oracle rests on: never unmark a pending or unsynced extent.
    HAST_ASSERT(pending_[extent] == 0);
    HAST_ASSERT(!sync_.test(extent));
    image_.clear(extent);
  }
  return true;
}

NeedsFlush Activemap::note_changes(bool changed) {
  if (!changed) return NeedsFlush::no;
  generation_++;
  HAST_ASSERT(generation_ > durable_generation_);
  return NeedsFlush::yes;
}

// ---- Regular writes ----

NeedsFlush Activemap::write_start(std::uint64_t offset, std::uint64_t length) {
  std::uint64_t first = first_extent(offset, length);
  std::uint64_t last = last_extent(offset, length);
  bool changed = false;
  // A bit already set by an image that is not durable yet (its write is in flight or
  // failed) protects nothing: this write must wait for that image too.
  bool undurable = false;
  // Count the write pending on all its extents first, so that the keep-dirty evictions
  // below never unmark one of them (a write wider than keep_dirty evicts its own extents).
  for (std::uint64_t extent = first; extent <= last; extent++) {
    HAST_ASSERT_MSG(pending_[extent] < 0xffffffffu, "pending writes overflow on {}", extent);
    if (pending_[extent]++ == 0 && !sync_.test(extent)) dirty_count_++;
    changed = refresh_image(extent) || changed;
    undurable = undurable || image_set_at_[extent] > durable_generation_;
  }
  for (std::uint64_t extent = first; extent <= last; extent++) {
    auto touch = lru_.touch(ExtentIndex{extent});
    // An evicted extent leaves the image unless it is dirty.
    if (touch.evicted) changed = refresh_image(touch.evicted->value) || changed;
    HAST_ASSERT(image_.test(extent));
  }
  HAST_ASSERT(dirty_count_ <= extent_count_);
  if (note_changes(changed) == NeedsFlush::yes || undurable) return NeedsFlush::yes;
  return NeedsFlush::no;
}

NeedsFlush Activemap::write_complete(std::uint64_t offset, std::uint64_t length, RemoteAck ack) {
  std::uint64_t first = first_extent(offset, length);
  std::uint64_t last = last_extent(offset, length);
  bool changed = false;
  for (std::uint64_t extent = first; extent <= last; extent++) {
    HAST_ASSERT_MSG(pending_[extent] > 0, "write completed on extent {} with none pending", extent);
    HAST_ASSERT(image_bit(extent));
    // Sync first, so the extent never looks clean between the two steps.
    if (ack == RemoteAck::no) mark_sync(extent);
    pending_[extent]--;
    if (!dirty(extent)) dirty_count_--;
    changed = refresh_image(extent) || changed;
  }
  HAST_ASSERT(dirty_count_ <= extent_count_);
  return note_changes(changed);
}

NeedsFlush Activemap::need_sync(std::uint64_t offset, std::uint64_t length) {
  std::uint64_t first = first_extent(offset, length);
  std::uint64_t last = last_extent(offset, length);
  bool changed = false;
  for (std::uint64_t extent = first; extent <= last; extent++) {
    mark_sync(extent);
    changed = refresh_image(extent) || changed;
  }
  HAST_ASSERT(sync_count_ > 0);
  return note_changes(changed);
}

// ---- Whole-map operations ----

NeedsFlush Activemap::set_all_dirty() {
  bool changed = false;
  for (std::uint64_t extent = 0; extent < extent_count_; extent++) {
    mark_sync(extent);
    changed = refresh_image(extent) || changed;
  }
  HAST_ASSERT(sync_count_ == extent_count_);
  HAST_ASSERT(dirty_count_ == extent_count_);
  return note_changes(changed);
}

Result<NeedsFlush> Activemap::merge(std::span<const std::byte> image) {
  std::uint64_t needed = (extent_count_ + 7) / 8;
  if (image.size() < needed) {
    return fail(Errc::invalid_argument,
                fmt::format("peer activemap of {} bytes, {} needed for {} extents", image.size(),
                            needed, extent_count_));
  }
  bool changed = false;
  for (std::uint64_t extent = 0; extent < extent_count_; extent++) {
    if (((std::to_integer<unsigned>(image[extent / 8]) >> (extent % 8)) & 1) == 0) continue;
    mark_sync(extent);
    changed = refresh_image(extent) || changed;
  }
  sync_rewind();
  HAST_ASSERT(sync_count_ <= extent_count_);
  HAST_ASSERT(dirty_count_ >= sync_count_);
  return note_changes(changed);
}

Result<void> Activemap::load_image(std::span<const std::byte> image) {
  if (image.size() != ondisk_size_bytes_) {
    return fail(Errc::invalid_argument, fmt::format("activemap image of {} bytes, expected {}",
                                                    image.size(), ondisk_size_bytes_));
  }
  for (std::uint64_t extent = 0; extent < extent_count_; extent++)
    HAST_ASSERT_MSG(pending_[extent] == 0, "load_image with a write pending on {}", extent);
  sync_.load(image);
  sync_count_ = sync_.count();
  dirty_count_ = sync_count_;
  marked_in_walk_ = sync_;
  lru_.clear();
  sync_rewind();
  // With no write pending and an empty keep-dirty list the image is the sync set. The
  // image just read is what the disk holds: durable.
  if (!(image_ == sync_)) generation_++;
  image_ = sync_;
  durable_generation_ = generation_;
  std::fill(image_set_at_.begin(), image_set_at_.end(), 0);
  HAST_ASSERT(dirty_count_ <= extent_count_);
  return ok();
}

NeedsFlush Activemap::clear_all() {
  for (std::uint64_t extent = 0; extent < extent_count_; extent++)
    HAST_ASSERT_MSG(pending_[extent] == 0, "clear_all with a write pending on {}", extent);
  bool changed = image_.any();
  image_.clear_all();
  sync_.clear_all();
  marked_in_walk_.clear_all();
  lru_.clear();
  sync_count_ = 0;
  dirty_count_ = 0;
  sync_rewind();
  HAST_ASSERT(!sync_pending());
  return note_changes(changed);
}

// ---- Sync walk ----

std::optional<SyncChunk> Activemap::next_sync_chunk(std::uint64_t max_bytes) {
  HAST_ASSERT(max_bytes > 0);
  // Abandon an extent whose sync bit went away while the walk was inside it.
  if (sync_cursor_ && !sync_.test(*sync_cursor_ / extent_size_bytes_)) {
    sync_scan_extent_ = *sync_cursor_ / extent_size_bytes_ + 1;
    sync_cursor_.reset();
  }
  SyncChunk chunk;
  if (!sync_cursor_) {
    auto next = sync_.find_next(sync_scan_extent_);
    if (!next) {
      sync_scan_extent_ = extent_count_;
      return std::nullopt;
    }
    // Entering the extent: the copy starts now, so earlier marks are covered by it.
    marked_in_walk_.clear(*next);
    sync_cursor_ = extent_start(ExtentIndex{*next});
    chunk.first_in_extent = true;
  }
  chunk.pass = sync_pass_;
  chunk.offset = *sync_cursor_;
  chunk.extent = extent_of(chunk.offset);
  std::uint64_t end = extent_start(chunk.extent) + extent_length(chunk.extent);
  chunk.length = std::min(max_bytes, end - chunk.offset);
  chunk.last_in_extent = chunk.offset + chunk.length == end;
  if (chunk.last_in_extent) {
    sync_cursor_.reset();
    sync_scan_extent_ = chunk.extent.value + 1;
  } else {
    sync_cursor_ = chunk.offset + chunk.length;
  }
  HAST_ASSERT(chunk.length > 0);
  HAST_ASSERT(chunk.offset + chunk.length <= data_size_bytes_);
  return chunk;
}

void Activemap::sync_rewind() {
  sync_cursor_.reset();
  sync_scan_extent_ = 0;
  sync_pass_++;
  HAST_ASSERT(sync_pass_ > 0);
}

NeedsFlush Activemap::sync_extent_done(ExtentIndex extent, std::uint64_t pass) {
  HAST_ASSERT(extent.value < extent_count_);
  HAST_ASSERT_MSG(pass <= sync_pass_, "sync pass {} not started yet", pass);
  std::uint64_t e = extent.value;
  // Nothing to do when the bit went away (clear_all), for a copy of an earlier pass (a
  // mark may have come between it and this pass's entry), or when the extent was marked
  // after this pass entered it (every mark sets marked_in_walk_, entering clears it): that
  // mark may cover bytes the copy missed, so the extent waits for the next pass.
  if (pass != sync_pass_) return NeedsFlush::no;
  if (!sync_.test(e) || marked_in_walk_.test(e)) return NeedsFlush::no;
  unmark_sync(e);
  HAST_ASSERT(!sync_.test(e));
  HAST_ASSERT(!marked_in_walk_.test(e));
  return note_changes(refresh_image(e));
}

// ---- Image ----

void Activemap::encode_image_to(std::span<std::byte> out) const {
  HAST_ASSERT(out.size() == ondisk_size_bytes_);
  HAST_ASSERT(ondisk_size_bytes_ >= image_.byte_size());
  image_.store(out);
}

std::vector<std::byte> Activemap::encode_image() const {
  std::vector<std::byte> image(ondisk_size_bytes_);
  encode_image_to(image);
  return image;
}

void Activemap::map_flushed(std::uint64_t generation) {
  HAST_ASSERT_MSG(generation <= generation_, "map_flushed({}) beyond generation {}", generation,
                  generation_);
  if (generation <= durable_generation_) return;
  durable_generation_ = generation;
  map_updates_++;
  HAST_ASSERT(durable_generation_ <= generation_);
}

// ---- Observation ----

ActivemapStats Activemap::stats() const {
  ActivemapStats stats;
  stats.dirty_extents = dirty_count_;
  stats.dirty_bytes = dirty_count_ * extent_size_bytes_;
  stats.sync_extents = sync_count_;
  stats.map_updates = map_updates_;
  HAST_ASSERT(sync_count_ <= dirty_count_);
  return stats;
}

void Activemap::check_invariants() const {
  std::uint64_t dirty_seen = 0;
  std::uint64_t sync_seen = 0;
  for (std::uint64_t extent = 0; extent < extent_count_; extent++) {
    dirty_seen += dirty(extent) ? 1 : 0;
    sync_seen += sync_.test(extent) ? 1 : 0;
    HAST_ASSERT_MSG(image_.test(extent) == image_bit(extent), "image bit {} stale", extent);
    if (pending_[extent] > 0 || sync_.test(extent)) HAST_ASSERT(image_.test(extent));
    if (marked_in_walk_.test(extent)) HAST_ASSERT(sync_.test(extent));
  }
  HAST_ASSERT(dirty_seen == dirty_count_);
  HAST_ASSERT(sync_seen == sync_count_);
  HAST_ASSERT(lru_.size() <= lru_.capacity());
  HAST_ASSERT(durable_generation_ <= generation_);
  if (sync_cursor_) HAST_ASSERT(*sync_cursor_ < data_size_bytes_);
}

}  // namespace hast::meta
