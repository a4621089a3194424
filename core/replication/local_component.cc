// The local component: metadata, activemap image and data area on one Disk.
#include "core/replication/local_component.h"

#include <algorithm>

#include <fmt/format.h>

namespace hast::replication {
namespace {

constexpr std::uint64_t kMapOffset = meta::metadata_size;
constexpr std::uint64_t kZeroChunkBytes = 1 << 20;

Result<std::vector<std::byte>> read_at(Disk& disk, std::uint64_t offset, std::uint64_t length) {
  std::vector<std::byte> bytes(length);
  HAST_TRY(disk.read(offset, bytes));
  return bytes;
}

}  // namespace

Result<meta::Metadata> create_local(Disk& disk, std::string_view resource,
                                    const CreateOptions& options) {
  std::uint64_t media = options.media_size_bytes == 0 ? disk.size() : options.media_size_bytes;
  if (media > disk.size()) {
    return fail(
        Errc::invalid_argument,
        fmt::format("media size {} is larger than the provider ({} bytes)", media, disk.size()));
  }
  auto layout =
      meta::compute_layout(media, options.extent_size_bytes, disk.properties().sector_size);
  if (!layout) return fail(layout.error());
  if (options.keep_dirty == 0) return fail(Errc::invalid_argument, "keepdirty must be > 0");
  meta::Metadata metadata =
      meta::created_metadata(std::string(resource), *layout, options.keep_dirty);
  // One write of both copies: a create torn by a power loss is simply run again.
  auto area = meta::encode_area(metadata, 1);
  HAST_TRY(disk.write(0, area, Fua::yes));
  std::vector<std::byte> zeroes(layout->map_size_bytes);
  HAST_TRY(disk.write(kMapOffset, zeroes, Fua::yes));
  return metadata;
}

Result<meta::MetadataArea> read_metadata_area(Disk& disk, std::string_view provider,
                                              std::string_view resource) {
  auto bytes = read_at(disk, 0, meta::metadata_size);
  if (!bytes) {
    return fail(bytes.error().wrap(fmt::format("Unable to read metadata from {}", provider)));
  }
  auto area = meta::decode_area(*bytes, provider);
  if (!area) return fail(area.error());
  HAST_TRY(meta::check_resource(area->metadata, provider, resource));
  HAST_TRY(meta::check_fits_provider(area->metadata, provider, disk.size(),
                                     disk.properties().sector_size));
  return area;
}

Result<meta::Metadata> read_metadata(Disk& disk, std::string_view provider,
                                     std::string_view resource) {
  auto area = read_metadata_area(disk, provider, resource);
  if (!area) return fail(area.error());
  return std::move(area->metadata);
}

Result<std::unique_ptr<LocalComponent>> LocalComponent::open(Disk& disk,
                                                             fiber::Scheduler& scheduler,
                                                             std::string_view provider,
                                                             std::string_view resource,
                                                             bool metaflush) {
  auto area = read_metadata_area(disk, provider, resource);
  if (!area) return fail(area.error());
  std::unique_ptr<LocalComponent> local(
      new LocalComponent(disk, scheduler, std::string(provider), area->metadata, metaflush));
  local->generation_ = area->generation;
  local->opened_copy_ = area->copy;
  local->opened_note_ = std::move(area->note);
  if (!local->opened_note_.empty()) {
    // A copy is torn or older (a metadata write was interrupted): write both again, so
    // FreeBSD's view (the first copy) is current and the copies agree.
    ignore_error(local->write_metadata(area->metadata),
                 "a failed write leaves failed_ set: the next update writes both copies");
  }
  return local;
}

LocalComponent::LocalComponent(Disk& disk, fiber::Scheduler& scheduler, std::string provider,
                               meta::Metadata metadata, bool metaflush)
    : disk_(disk),
      provider_(std::move(provider)),
      metadata_(std::move(metadata)),
      map_(metadata_.data_size_bytes, metadata_.extent_size_bytes, metadata_.keep_dirty,
           disk.properties().sector_size),
      map_buffer_(map_.ondisk_size_bytes(), std::byte{0}),
      metaflush_(metaflush),
      map_written_(scheduler),
      metadata_lock_(scheduler, 1) {
  HAST_ASSERT(metadata_.local_offset_bytes >= kMapOffset + map_.ondisk_size_bytes());
  HAST_ASSERT(metadata_.local_offset_bytes + metadata_.data_size_bytes <= disk.size());
}

Result<void> LocalComponent::update_metadata(const std::function<bool(meta::Metadata&)>& change) {
  HAST_TRY(metadata_lock_.acquire());
  fiber::Permit held(metadata_lock_);
  meta::Metadata updated = metadata_;
  // Memory may already hold the change while the disk does not: after a failed write,
  // which may have landed, the block is written again whatever `change` says.
  if (!change(updated) && !failed_.has_value()) return ok();
  return write_metadata(updated);
}

Result<void> LocalComponent::write_metadata(const meta::Metadata& updated) {
  HAST_ASSERT(meta::check_metadata(updated).has_value());
  HAST_ASSERT(updated.data_size_bytes == metadata_.data_size_bytes);
  HAST_ASSERT_MSG(writing_ == nullptr, "metadata writes overlap");
  // A failed write may have landed its second copy: its generation is never reused.
  generation_++;
  auto area = meta::encode_area(updated, generation_);
  // Always FUA, whatever metaflush says: the two copies protect each other only when the
  // second is durable before the first is touched, and metadata writes are rare (role,
  // connection and synchronisation changes), unlike the activemap's.
  Fua fua = mutation_ == Mutation::skip_metadata_flush ? Fua::no : Fua::yes;
  writing_ = &updated;
  auto written = write_area(area, fua);
  writing_ = nullptr;
  if (!written) {
    failed_ = updated;
    return fail(written.error().wrap(fmt::format("Unable to write metadata to {}", provider_)));
  }
  failed_.reset();
  metadata_ = updated;
  return ok();
}

Result<void> LocalComponent::write_area(std::span<const std::byte> area, Fua fua) {
  HAST_ASSERT(area.size() == meta::metadata_size);
  constexpr std::uint64_t copy = meta::metadata_copy_offset;
  // One sector holds both copies: the write is atomic and cannot tear.
  if (sector_size() > copy) return disk_.write(0, area, fua);
  HAST_ASSERT(copy % sector_size() == 0);
  // The second copy is whole (durable, with FUA) before the first is touched: a power loss
  // during either write leaves the other copy whole.
  HAST_TRY(disk_.write(copy, area.subspan(copy), fua));
  return disk_.write(0, area.first(copy), fua);
}

bool LocalComponent::unsettled_block_matches(
    const std::function<bool(const meta::Metadata&)>& test) const {
  return (writing_ != nullptr && test(*writing_)) || (failed_.has_value() && test(*failed_));
}

Result<void> LocalComponent::settle_metadata() {
  return update_metadata([](meta::Metadata&) { return false; });
}

void LocalComponent::check_range(std::uint64_t offset, std::uint64_t length) const {
  HAST_ASSERT_MSG(offset + length >= offset && offset + length <= data_size(),
                  "range {}+{} outside the data area of {} bytes", offset, length, data_size());
  HAST_ASSERT(offset % sector_size() == 0 && length % sector_size() == 0);
}

Result<void> LocalComponent::read(std::uint64_t offset, std::span<std::byte> buffer) {
  check_range(offset, buffer.size());
  return disk_.read(metadata_.local_offset_bytes + offset, buffer);
}

Result<void> LocalComponent::write(std::uint64_t offset, std::span<const std::byte> data, Fua fua) {
  check_range(offset, data.size());
  return disk_.write(metadata_.local_offset_bytes + offset, data, fua);
}

Result<void> LocalComponent::flush() {
  if (!disk_.properties().volatile_cache) return ok();
  return disk_.flush();
}

Result<void> LocalComponent::discard(std::uint64_t offset, std::uint64_t length) {
  check_range(offset, length);
  if (!disk_.properties().discard_zeroes) return write_zeroes(offset, length, Fua::no);
  return disk_.discard(metadata_.local_offset_bytes + offset, length);
}

Result<void> LocalComponent::write_zeroes(std::uint64_t offset, std::uint64_t length, Fua fua) {
  check_range(offset, length);
  std::vector<std::byte> zeroes(std::min(length, kZeroChunkBytes));
  for (std::uint64_t done = 0; done < length;) {
    std::uint64_t n = std::min<std::uint64_t>(zeroes.size(), length - done);
    HAST_TRY(write(offset + done, std::span(zeroes).first(n), fua));
    done += n;
  }
  return ok();
}

Result<void> LocalComponent::load_map() {
  auto image = read_at(disk_, kMapOffset, map_.ondisk_size_bytes());
  if (!image)
    return fail(image.error().wrap(fmt::format("Unable to read activemap from {}", provider_)));
  return map_.load_image(*image);
}

Result<void> LocalComponent::persist_map(std::uint64_t generation) {
  HAST_ASSERT(generation <= map_.generation());
  while (map_.durable_generation() < generation) {
    if (map_writing_) {
      // Another fiber is writing an image; once it is done, either it covered this
      // generation or this fiber writes the next image, which covers everything since.
      auto reason = map_written_.wait(std::nullopt);
      if (reason != fiber::WakeReason::woken) return fiber::wake_result(reason, "map write");
      continue;
    }
    if (mutation_ == Mutation::skip_activemap_flush) {
      map_.map_flushed(map_.generation());  // the bug: claim durability, write nothing
      continue;
    }
    map_writing_ = true;
    std::uint64_t writing = map_.generation();
    map_.encode_image_to(map_buffer_);
    auto written = disk_.write(kMapOffset, map_buffer_, durable());
    map_writing_ = false;
    if (written) map_.map_flushed(writing);
    map_written_.wake_all();
    if (!written) {
      return fail(written.error().wrap(fmt::format("Unable to flush activemap to {}", provider_)));
    }
  }
  return ok();
}

Result<void> LocalComponent::clear_map_on_disk() {
  std::vector<std::byte> zeroes(map_.ondisk_size_bytes());
  HAST_TRY(disk_.write(kMapOffset, zeroes, durable()));
  return ok();
}

Result<std::vector<std::byte>> LocalComponent::read_map_image() {
  return read_at(disk_, kMapOffset, map_.ondisk_size_bytes());
}

}  // namespace hast::replication
