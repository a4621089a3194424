// O3, activemap coverage (see activemap_oracle.h).
#include "sim/activemap_oracle.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "core/meta/layout.h"

namespace hast::sim {
namespace {

constexpr NodeId kOther[] = {1, 0};

bool same_layout(const meta::Metadata& a, const meta::Metadata& b) {
  return a.data_size_bytes == b.data_size_bytes && a.extent_size_bytes == b.extent_size_bytes &&
         a.local_offset_bytes == b.local_offset_bytes;
}

std::string_view death_name(DeathKind kind) {
  return kind == DeathKind::kill ? "kill" : "power loss";
}

}  // namespace

ActivemapOracle::ActivemapOracle(SimCluster& cluster, ActivemapOracleOptions options)
    : cluster_(cluster), options_(options) {
  HAST_ASSERT(options_.period.count() > 0);
  HAST_ASSERT(options_.violations_max > 0);
  cluster_.world().add_observer(*this);
}

ActivemapOracle::~ActivemapOracle() {
  cluster_.world().remove_observer(*this);
}

void ActivemapOracle::after_step() {
  Instant now = cluster_.world().now();
  if (now < next_check_) return;
  next_check_ = now + options_.period;
  checkpoint("periodic");
}

void ActivemapOracle::before_death(NodeId node, DeathKind kind) {
  checkpoint(fmt::format("just before the {} of {}", death_name(kind), cluster_.node(node).name()));
}

void ActivemapOracle::after_death(NodeId node, DeathKind kind) {
  checkpoint(fmt::format("just after the {} of {}", death_name(kind), cluster_.node(node).name()));
}

// The metadata and the map as the disk's stable view holds them; nullopt when the block
// does not decode (a blank disk before `hastctl create`).
std::optional<ActivemapOracle::View> ActivemapOracle::read_view(NodeId id) const {
  const SimDisk& disk = cluster_.disk(id);
  const SparseImage& stable = disk.pristine().stable();
  std::vector<std::byte> block(meta::metadata_size);
  stable.read(0, block);
  auto area = meta::decode_area(block, cluster_.node(id).name());  // as the node reads it
  if (!area) return std::nullopt;
  View view{&disk, std::move(area->metadata), std::nullopt};
  std::uint64_t extents =
      meta::extent_count_for(view.metadata.data_size_bytes, view.metadata.extent_size_bytes);
  std::vector<std::byte> image(meta::map_bitmap_bytes(extents));
  if (meta::metadata_size + image.size() > view.metadata.local_offset_bytes) return std::nullopt;
  stable.read(meta::metadata_size, image);
  view.map.emplace(extents);
  view.map->load(image);
  return view;
}

// Both views when the check applies to them (paired, one layout), with U.
std::optional<ActivemapOracle::Pair> ActivemapOracle::read_pair() const {
  auto first = read_view(0);
  auto second = read_view(1);
  if (!first || !second) return std::nullopt;
  const meta::Metadata& a = first->metadata;
  const meta::Metadata& b = second->metadata;
  if (a.resuid == 0 || a.resuid != b.resuid || !same_layout(a, b)) return std::nullopt;
  Pair pair{{std::move(*first), std::move(*second)}, {}, 0};
  pair.extent_count = pair.views[0].map->size();
  pair.marked.resize(pair.extent_count);
  for (std::uint64_t e = 0; e < pair.extent_count; e++) {
    pair.marked[e] = pair.views[0].map->test(e) || pair.views[1].map->test(e);
  }
  return pair;
}

void ActivemapOracle::checkpoint(std::string_view why) {
  checkpoints_++;
  if (suspended_) return;
  auto pair = read_pair();
  if (!pair) return;
  applied_++;
  reported_.resize(pair->extent_count, false);
  check_unstable(*pair, 0, why);
  check_unstable(*pair, 1, why);
  check_stable(*pair, why);
}

// True when every extent that [disk_offset, disk_offset + length) of disk `id` touches in
// the data area is in U (nothing there to check).
bool ActivemapOracle::covered(const Pair& pair, NodeId id, std::uint64_t disk_offset,
                              std::uint64_t length) const {
  const meta::Metadata& layout = pair.views[id].metadata;
  std::uint64_t data_end = layout.local_offset_bytes + layout.data_size_bytes;
  std::uint64_t from = std::max(disk_offset, layout.local_offset_bytes);
  std::uint64_t to = std::min(disk_offset + length, data_end);
  if (from >= to) return true;
  std::uint64_t first = (from - layout.local_offset_bytes) / layout.extent_size_bytes;
  std::uint64_t last = (to - 1 - layout.local_offset_bytes) / layout.extent_size_bytes;
  for (std::uint64_t extent = first; extent <= last; extent++) {
    if (!pair.marked[extent] && !reported_[extent]) return false;
  }
  return true;
}

// The writes disk `id` may still land (cached or in flight) must agree with the other
// disk's stable bytes wherever U leaves their extent out.
void ActivemapOracle::check_unstable(const Pair& pair, NodeId id, std::string_view why) {
  const SimDisk& disk = *pair.views[id].disk;
  std::uint32_t sector = disk.options().sector_size;
  for (const PendingWrite& write : disk.pristine().cache()) {
    if (covered(pair, id, write.offset, write.length)) continue;
    std::vector<std::byte> bytes(sector);
    for (std::size_t i = 0; i < write.live.size(); i++) {
      if (!write.live[i]) continue;
      write.read(i * sector, bytes);  // zeroes for a zeroing write
      check_range(pair, id, write.offset + i * sector, bytes,
                  Source{Source::Kind::cached, write.seq}, why);
    }
  }
  for (const SimDisk::InFlightWrite& write : disk.in_flight_writes()) {
    if (covered(pair, id, write.offset, write.length)) continue;
    std::vector<std::byte> zeroes;
    if (write.discard) zeroes.resize(write.length);
    std::span<const std::byte> data =
        write.discard ? std::span<const std::byte>(zeroes) : write.data;
    Source source{write.discard ? Source::Kind::discard_in_flight : Source::Kind::in_flight, 0};
    for (std::uint64_t at = 0; at < write.length; at += sector) {
      check_range(pair, id, write.offset + at, data.subspan(at, sector), source, why);
    }
  }
}

std::string ActivemapOracle::Source::text() const {
  switch (kind) {
    case Kind::cached:
      return fmt::format("has in its device cache (device write #{})", seq);
    case Kind::in_flight:
      return "has in flight a write";
    case Kind::discard_in_flight:
      return "has a discard in flight";
  }
  HAST_UNREACHABLE();
}

// One sector `data` that disk `id` may land at `disk_offset`.
void ActivemapOracle::check_range(const Pair& pair, NodeId id, std::uint64_t disk_offset,
                                  std::span<const std::byte> data, const Source& source,
                                  std::string_view why) {
  const meta::Metadata& layout = pair.views[id].metadata;
  if (disk_offset < layout.local_offset_bytes) return;  // metadata and map: not data
  std::uint64_t data_offset = disk_offset - layout.local_offset_bytes;
  if (data_offset >= layout.data_size_bytes) return;
  std::uint64_t extent = data_offset / layout.extent_size_bytes;
  if (pair.marked[extent] || reported_[extent]) return;
  NodeId other = kOther[id];
  std::vector<std::byte> there(data.size());
  pair.views[other].disk->pristine().stable().read(layout.local_offset_bytes + data_offset, there);
  if (std::equal(data.begin(), data.end(), there.begin())) return;
  report(pair, extent, data_offset / sector_bytes,
         fmt::format("{} {}: {}, where {}'s stable copy holds {}", cluster_.node(id).name(),
                     source.text(), describe_value(data), cluster_.node(other).name(),
                     describe_value(there)),
         why);
}

// The stable data of every extent outside U is byte-identical on both disks. Compared a
// chunk (SparseImage::chunk_bytes) at a time, and only where either image changed since
// the last comparison found the piece equal.
void ActivemapOracle::check_stable(const Pair& pair, std::string_view why) {
  const meta::Metadata& layout = pair.views[0].metadata;
  for (std::uint64_t extent = 0; extent < pair.extent_count; extent++) {
    if (pair.marked[extent]) continue;
    std::uint64_t start = layout.local_offset_bytes + extent * layout.extent_size_bytes;
    std::uint64_t end = layout.local_offset_bytes +
                        std::min(layout.data_size_bytes, (extent + 1) * layout.extent_size_bytes);
    for (std::uint64_t at = start; at < end && !reported_[extent];) {
      std::uint64_t next =
          std::min(end, (at / SparseImage::chunk_bytes + 1) * SparseImage::chunk_bytes);
      check_piece(pair, extent, at, next - at, why);
      at = next;
    }
  }
}

// Disk bytes [at, at + length) of `extent`, within one chunk.
void ActivemapOracle::check_piece(const Pair& pair, std::uint64_t extent, std::uint64_t at,
                                  std::uint64_t length, std::string_view why) {
  const SparseImage& first = pair.views[0].disk->pristine().stable();
  const SparseImage& second = pair.views[1].disk->pristine().stable();
  std::uint64_t chunk = at / SparseImage::chunk_bytes;
  HAST_ASSERT((at + length - 1) / SparseImage::chunk_bytes == chunk);
  std::pair stamps{first.chunk_stamp(chunk), second.chunk_stamp(chunk)};
  auto& known = verified_[at];  // pieces never overlap: their start names them
  if (known == stamps) return;  // (0, 0): never written on either disk, zeroes on both
  auto differ = first.first_difference(second, at, length);
  if (!differ) {
    known = stamps;
    return;
  }
  std::uint64_t at_sector = *differ / sector_bytes * sector_bytes;
  std::vector<std::byte> left(sector_bytes), right(sector_bytes);
  first.read(at_sector, left);
  second.read(at_sector, right);
  std::uint64_t sector = (at_sector - pair.views[0].metadata.local_offset_bytes) / sector_bytes;
  report(pair, extent, sector,
         fmt::format("the stable copies differ: {} holds {}, {} holds {}", cluster_.node(0).name(),
                     describe_value(left), cluster_.node(1).name(), describe_value(right)),
         why);
}

void ActivemapOracle::report(const Pair& pair, std::uint64_t extent, std::uint64_t sector,
                             std::string detail, std::string_view why) {
  reported_[extent] = true;
  if (violations_.size() >= options_.violations_max) {
    suppressed_++;
    return;
  }
  auto marks = [&](NodeId id) {
    return fmt::format("{} marks {} extents", cluster_.node(id).name(),
                       pair.views[id].map->count());
  };
  violations_.push_back(Violation{
      "O3", fmt::format("extent {} is marked in neither persisted activemap ({}, {}), yet at "
                        "sector {} {}; checkpoint {} at {}; history of the sector: {}",
                        extent, marks(0), marks(1), sector, detail, why,
                        format_instant(cluster_.world().now()),
                        cluster_.truth().describe_sector(sector))});
}

// What the first 512 bytes of `bytes` hold: "write 40 (its sector 3)", "zero", "garbage".
std::string ActivemapOracle::describe_value(std::span<const std::byte> bytes) {
  HAST_ASSERT(bytes.size() >= sector_bytes);
  return GroundTruth::describe_value(decode_sector(bytes.first(sector_bytes)));
}

}  // namespace hast::sim
