// SparseImage and ContentHasher (see sparse_image.h).
#include "sim/sparse_image.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "core/assert.h"
#include "sim/stamp_body.h"

namespace hast::sim {
namespace {

static_assert(SparseImage::chunk_bytes == BytePool::buffer_bytes,
              "the raw units of a chunk are kept in a pooled buffer");
static_assert(SparseImage::chunk_bytes % unit_bytes == 0);

std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

bool all_zero(std::span<const std::byte> bytes) {
  for (std::size_t at = 0; at < bytes.size(); at += unit_bytes) {
    if (!stamp_body::all_zero(bytes.data() + at)) return false;
  }
  return true;
}

// Calls fn(position, within, count) for each piece of [offset, offset + length) that lies
// in one chunk: `within` is the piece's offset in its chunk, `count` its length.
template <typename Fn>
void for_each_piece(std::uint64_t offset, std::uint64_t length, Fn&& fn) {
  for (std::uint64_t done = 0; done < length;) {
    const std::uint64_t position = offset + done;
    const std::uint64_t within = position % SparseImage::chunk_bytes;
    const std::uint64_t count =
        std::min<std::uint64_t>(SparseImage::chunk_bytes - within, length - done);
    fn(position, within, count);
    done += count;
  }
}

}  // namespace

SparseImage::SparseImage(std::uint64_t size_bytes) : size_(size_bytes) {
  HAST_ASSERT(size_bytes > 0);
  HAST_ASSERT(size_bytes % unit_bytes == 0);
}

SparseImage::SparseImage(const SparseImage& other)
    : size_(other.size_),
      chunk_count_(other.chunk_count_),
      stamp_clock_(other.stamp_clock_),
      floor_(other.floor_) {
  pages_.reserve(other.pages_.size());
  for (const auto& page : other.pages_)
    pages_.push_back(page ? std::make_unique<Page>(*page) : nullptr);
}

SparseImage& SparseImage::operator=(const SparseImage& other) {
  if (this != &other) *this = SparseImage(other);
  return *this;
}

SparseImage::Chunk& SparseImage::entry(std::uint64_t index) {
  HAST_ASSERT(index * chunk_bytes < size_);
  const std::uint64_t page = index / page_chunks;
  if (page >= pages_.size()) pages_.resize(page + 1);
  if (!pages_[page]) pages_[page] = std::make_unique<Page>();
  return (*pages_[page])[index % page_chunks];
}

SparseImage::Chunk& SparseImage::written(std::uint64_t index) {
  Chunk& chunk = entry(index);
  if (!chunk.present) {
    chunk.present = true;
    chunk_count_++;
  }
  touch(chunk);
  return chunk;
}

void SparseImage::set_unit(Chunk& chunk, std::size_t u, const UnitHead& head,
                           const std::byte* bytes) {
  HAST_ASSERT(u < chunk_units);
  const bool was_raw = !chunk.heads[u].compact();
  if (head.compact()) {
    chunk.heads[u] = head;
    if (was_raw && --chunk.raw_units == 0) {
      BytePool::give(std::move(chunk.raw));
      chunk.raw.clear();
    }
    return;
  }
  HAST_ASSERT(bytes != nullptr);
  if (chunk.raw.empty()) chunk.raw = BytePool::blank();
  std::memcpy(chunk.raw.data() + u * unit_bytes, bytes, unit_bytes);
  chunk.heads[u] = UnitHead{0, 0, UnitHead::Kind::raw};
  if (!was_raw) chunk.raw_units++;
  HAST_ASSERT(chunk.raw_units <= chunk_units);
}

void SparseImage::get_unit(const Chunk* chunk, std::size_t u, std::byte* out) {
  HAST_ASSERT(u < chunk_units);
  const UnitHead head = chunk == nullptr ? UnitHead{} : chunk->heads[u];
  if (head.compact()) {
    expand_unit(head, std::span(out, unit_bytes));
  } else {
    HAST_ASSERT(chunk->raw.size() == chunk_bytes);
    std::memcpy(out, chunk->raw.data() + u * unit_bytes, unit_bytes);
  }
}

void SparseImage::release(Chunk& chunk) {
  if (!chunk.raw.empty()) {
    BytePool::give(std::move(chunk.raw));
    chunk.raw.clear();
  }
  chunk.heads.fill(UnitHead{});
  chunk.raw_units = 0;
  if (chunk.present) {
    chunk.present = false;
    chunk_count_--;
  }
}

template <typename Fn>
void SparseImage::for_each_chunk(Fn&& fn) const {
  for (std::uint64_t page = 0; page < pages_.size(); page++) {
    if (!pages_[page]) continue;
    for (std::uint64_t k = 0; k < page_chunks; k++) {
      const Chunk& chunk = (*pages_[page])[k];
      if (chunk.present) fn(page * page_chunks + k, chunk);
    }
  }
}

void SparseImage::read(std::uint64_t offset, std::span<std::byte> out) const {
  HAST_ASSERT(offset <= size_);
  HAST_ASSERT(out.size() <= size_ - offset);
  for_each_piece(offset, out.size(), [&](std::uint64_t position, std::uint64_t within,
                                         std::uint64_t count) {
    std::byte* piece = out.data() + (position - offset);
    const Chunk* chunk = find(position / chunk_bytes);
    if (chunk == nullptr || !chunk->present) {
      std::memset(piece, 0, count);
      return;
    }
    // Unit by unit; a unit only partly asked for is expanded aside first.
    for (std::uint64_t at = within; at < within + count;) {
      const std::uint64_t in_unit = at % unit_bytes;
      const std::uint64_t part = std::min<std::uint64_t>(unit_bytes - in_unit, within + count - at);
      std::byte* target = piece + (at - within);
      if (part == unit_bytes) {
        get_unit(chunk, at / unit_bytes, target);
      } else {
        std::array<std::byte, unit_bytes> unit;
        get_unit(chunk, at / unit_bytes, unit.data());
        std::memcpy(target, unit.data() + in_unit, part);
      }
      at += part;
    }
  });
}

void SparseImage::write(std::uint64_t offset, std::span<const std::byte> data) {
  HAST_ASSERT_MSG(offset % unit_bytes == 0 && data.size() % unit_bytes == 0,
                  "image write {}+{} is not in whole units", offset, data.size());
  HAST_ASSERT(offset <= size_ && data.size() <= size_ - offset);
  for_each_piece(offset, data.size(), [&](std::uint64_t position, std::uint64_t within,
                                          std::uint64_t count) {
    Chunk& chunk = written(position / chunk_bytes);
    for (std::uint64_t at = 0; at < count; at += unit_bytes) {
      const std::byte* bytes = data.data() + (position - offset) + at;
      set_unit(chunk, (within + at) / unit_bytes, encode_unit(std::span(bytes, unit_bytes)), bytes);
    }
  });
}

void SparseImage::write_units(std::uint64_t offset, const UnitRun& run, std::size_t first,
                              std::size_t count) {
  HAST_ASSERT(offset % unit_bytes == 0);
  HAST_ASSERT(first <= run.size() && count <= run.size() - first);
  HAST_ASSERT(offset <= size_ && count * unit_bytes <= size_ - offset);
  for (std::size_t i = 0; i < count;) {
    const std::uint64_t position = offset + i * unit_bytes;
    const std::size_t u0 = (position % chunk_bytes) / unit_bytes;
    const std::size_t n = std::min(chunk_units - u0, count - i);
    Chunk& chunk = written(position / chunk_bytes);
    if (chunk.raw_units == 0 && run.raw_count() == 0) {
      // Compact over compact (the common case): the heads are the whole story.
      std::copy_n(&run.head(first + i), n, chunk.heads.begin() + static_cast<std::ptrdiff_t>(u0));
    } else {
      for (std::size_t k = 0; k < n; k++) {
        const UnitHead& head = run.head(first + i + k);
        set_unit(chunk, u0 + k, head, head.compact() ? nullptr : run.raw(head).data());
      }
    }
    i += n;
  }
}

void SparseImage::zero(std::uint64_t offset, std::uint64_t length) {
  HAST_ASSERT_MSG(offset % unit_bytes == 0 && length % unit_bytes == 0,
                  "image zero {}+{} is not in whole units", offset, length);
  HAST_ASSERT(offset <= size_ && length <= size_ - offset);
  if (length == 0) return;
  const std::uint64_t end = offset + length;
  // Only present chunks need work; absent pages are skipped whole, which keeps a 1 GiB
  // discard cheap.
  for (std::uint64_t index = offset / chunk_bytes; index * chunk_bytes < end;) {
    const std::uint64_t page = index / page_chunks;
    if (page >= pages_.size()) break;
    if (!pages_[page]) {
      index = (page + 1) * page_chunks;
      continue;
    }
    Chunk& chunk = (*pages_[page])[index % page_chunks];
    if (chunk.present) {
      const std::uint64_t chunk_start = index * chunk_bytes;
      const std::uint64_t from = std::max(offset, chunk_start);
      const std::uint64_t to = std::min(end, chunk_start + chunk_bytes);
      touch(chunk);
      if (from == chunk_start && to == chunk_start + chunk_bytes) {
        release(chunk);
      } else {
        for (std::uint64_t at = from; at < to; at += unit_bytes)
          set_unit(chunk, (at - chunk_start) / unit_bytes, UnitHead{}, nullptr);
      }
    }
    index++;
  }
}

void SparseImage::clear() {
  pages_.clear();
  chunk_count_ = 0;
  floor_ = ++stamp_clock_;
}

std::uint64_t SparseImage::raw_unit_count() const {
  std::uint64_t count = 0;
  for_each_chunk([&](std::uint64_t, const Chunk& chunk) { count += chunk.raw_units; });
  return count;
}

std::uint64_t SparseImage::chunk_stamp(std::uint64_t index) const {
  HAST_ASSERT(index * chunk_bytes < size_);
  const Chunk* chunk = find(index);
  return chunk == nullptr ? floor_ : std::max(floor_, chunk->stamp);
}

std::optional<std::uint64_t> SparseImage::first_difference(const SparseImage& other,
                                                           std::uint64_t offset,
                                                           std::uint64_t length) const {
  HAST_ASSERT(other.size_ == size_);
  HAST_ASSERT(offset <= size_ && length <= size_ - offset);
  std::optional<std::uint64_t> found;
  for_each_piece(offset, length, [&](std::uint64_t position, std::uint64_t within,
                                     std::uint64_t count) {
    if (found) return;
    const Chunk* mine = find(position / chunk_bytes);
    const Chunk* theirs = other.find(position / chunk_bytes);
    // Equal compact heads are equal bytes; anything else is compared as bytes.
    for (std::uint64_t at = within; at < within + count && mine != theirs;) {
      const std::size_t u = at / unit_bytes;
      const std::uint64_t in_unit = at % unit_bytes;
      const std::uint64_t part = std::min<std::uint64_t>(unit_bytes - in_unit, within + count - at);
      const UnitHead a = mine == nullptr ? UnitHead{} : mine->heads[u];
      const UnitHead b = theirs == nullptr ? UnitHead{} : theirs->heads[u];
      if (!(a.compact() && a == b)) {
        std::array<std::byte, unit_bytes> left;
        std::array<std::byte, unit_bytes> right;
        get_unit(mine, u, left.data());
        get_unit(theirs, u, right.data());
        const auto* l = left.data() + in_unit;
        const auto differ = std::mismatch(l, l + part, right.data() + in_unit).first;
        if (differ != l + part) {
          found = position - within + u * unit_bytes +
                  static_cast<std::uint64_t>(differ - left.data());
          return;
        }
      }
      at += part;
    }
  });
  return found;
}

std::vector<std::uint64_t> SparseImage::chunk_indices() const {
  std::vector<std::uint64_t> indices;
  indices.reserve(chunk_count_);
  for_each_chunk([&](std::uint64_t index, const Chunk&) { indices.push_back(index); });
  HAST_ASSERT(indices.size() == chunk_count_);
  HAST_ASSERT(std::is_sorted(indices.begin(), indices.end()));
  return indices;
}

std::uint64_t SparseImage::content_hash() const {
  ContentHasher hasher;
  std::vector<std::byte> bytes(chunk_bytes);
  for_each_chunk([&](std::uint64_t index, const Chunk& chunk) {
    for (std::size_t u = 0; u < chunk_units; u++)
      get_unit(&chunk, u, bytes.data() + u * unit_bytes);
    hasher.add_chunk(index, bytes);
  });
  return hasher.value();
}

void ContentHasher::add_chunk(std::uint64_t index, std::span<const std::byte> bytes) {
  HAST_ASSERT(bytes.size() == SparseImage::chunk_bytes);
  HAST_ASSERT(bytes.size() % 8 == 0);
  if (all_zero(bytes)) return;
  std::uint64_t state = mix64(state_ ^ index);
  for (std::size_t i = 0; i < bytes.size(); i += 8) {
    std::uint64_t word = 0;
    std::memcpy(&word, bytes.data() + i, 8);
    state = (state ^ word) * 0x100000001b3ULL;
    state ^= state >> 29;
  }
  state_ = mix64(state + index);
}

}  // namespace hast::sim
