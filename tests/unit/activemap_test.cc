// Activemap (reference/hast-spec.md §5, §8.3, DESIGN.md §1.2 items 2 and 11): HAST's
// keep-dirty behaviour step by step, the defect-2 fix, the sync walk, the on-disk image,
// coalesced flushes, and a model-based property over random operation sequences that
// checks the O3 core: with every requested flush done, every extent with a write in flight
// or written without the secondary's acknowledgement since its last sync is set on disk.
#include <algorithm>
#include <deque>
#include <vector>

#include <catch2/catch.hpp>

#include "core/meta/activemap.h"
#include "tests/support/property.h"

using hast::Errc;
using hast::meta::Activemap;
using hast::meta::ExtentIndex;
using hast::meta::NeedsFlush;
using hast::meta::RemoteAck;
using hast::meta::SyncChunk;

namespace {

constexpr std::uint32_t kib = 1024;

bool bit(const std::vector<std::byte>& image, std::uint64_t extent) {
  return (std::to_integer<unsigned>(image[extent / 8]) >> (extent % 8)) & 1;
}

std::vector<std::uint64_t> set_bits(const Activemap& map) {
  std::vector<std::uint64_t> bits;
  auto image = map.encode_image();
  for (std::uint64_t e = 0; e < map.extent_count(); e++) {
    if (bit(image, e)) bits.push_back(e);
  }
  return bits;
}

// Walks the whole sync set, marking each extent done after its last chunk.
std::vector<SyncChunk> walk_all(Activemap& map, std::uint64_t max_bytes) {
  std::vector<SyncChunk> chunks;
  while (auto chunk = map.next_sync_chunk(max_bytes)) {
    chunks.push_back(*chunk);
    if (chunk->last_in_extent &&
        map.sync_extent_done(chunk->extent, chunk->pass) == NeedsFlush::yes) {
      map.map_flushed(map.generation());
    }
  }
  return chunks;
}

}  // namespace

TEST_CASE("Activemap: geometry is sized from the data area", "[unit][meta]") {
  Activemap map(10'737'413'120, 2 * kib * kib, 64, 512);
  CHECK(map.extent_count() == 5120);
  CHECK(map.ondisk_size_bytes() == 1024);
  CHECK(map.encode_image().size() == 1024);
  CHECK(map.extent_of(0) == ExtentIndex{0});
  CHECK(map.extent_of(2 * kib * kib) == ExtentIndex{1});
  // The last extent is cut short by the data size.
  CHECK(map.extent_length(ExtentIndex{5119}) == 10'737'413'120 - 5119ull * 2 * kib * kib);
  CHECK(map.extent_length(ExtentIndex{5118}) == 2 * kib * kib);
  CHECK(map.stats().dirty_extents == 0);
  CHECK_FALSE(map.sync_pending());
  CHECK(map.generation() == 0);
}

TEST_CASE("Activemap: keep-dirty saves map updates as in HAST", "[unit][meta]") {
  Activemap map(64 * 4 * kib, 4 * kib, 2, 512);  // 64 extents, keep 2 marked
  // The first write to an extent marks it: flush before writing data.
  CHECK(map.write_start(0, 512) == NeedsFlush::yes);
  CHECK(map.generation() == 1);
  map.map_flushed(1);
  // A second write to the same extent changes nothing on disk (the mark is durable).
  CHECK(map.write_start(1024, 512) == NeedsFlush::no);
  CHECK(map.pending_writes(ExtentIndex{0}) == 2);
  CHECK(map.write_complete(0, 512, RemoteAck::yes) == NeedsFlush::no);
  // The last completion leaves it in the keep-dirty list: still marked, no update.
  CHECK(map.write_complete(1024, 512, RemoteAck::yes) == NeedsFlush::no);
  CHECK(set_bits(map) == std::vector<std::uint64_t>{0});
  CHECK(map.stats().dirty_extents == 0);
  CHECK(map.write_start(4 * kib, 100) == NeedsFlush::yes);  // extent 1
  CHECK(map.write_complete(4 * kib, 100, RemoteAck::yes) == NeedsFlush::no);
  // A third extent evicts the least recently written (0), whose bit goes away with the same
  // update that sets the new one.
  CHECK(map.write_start(8 * kib, 100) == NeedsFlush::yes);
  map.map_flushed(map.generation());
  CHECK(set_bits(map) == std::vector<std::uint64_t>{1, 2});
  CHECK(map.keep_dirty_extents() == std::vector<ExtentIndex>{ExtentIndex{2}, ExtentIndex{1}});
  // Touching 1 again moves it to the front: then 3 evicts 2, which is still pending.
  CHECK(map.write_start(4 * kib, 100) == NeedsFlush::no);
  CHECK(map.write_start(12 * kib, 100) == NeedsFlush::yes);
  CHECK(set_bits(map) == std::vector<std::uint64_t>{1, 2, 3});
  // 2 is out of the list: its completion clears it and needs an update.
  CHECK(map.write_complete(8 * kib, 100, RemoteAck::yes) == NeedsFlush::yes);
  CHECK(set_bits(map) == std::vector<std::uint64_t>{1, 3});
  map.check_invariants();
}

TEST_CASE("Activemap: a write spanning extents marks each of them", "[unit][meta]") {
  Activemap map(16 * 4 * kib, 4 * kib, 64, 512);
  CHECK(map.write_start(4 * kib - 512, 8 * kib + 1024) == NeedsFlush::yes);  // extents 0..3
  CHECK(set_bits(map) == std::vector<std::uint64_t>{0, 1, 2, 3});
  CHECK(map.stats().dirty_extents == 4);
  CHECK(map.stats().dirty_bytes == 16 * kib);
  // With keep_dirty 2, a 4-extent write keeps all 4 marked while pending.
  Activemap small(16 * 4 * kib, 4 * kib, 2, 512);
  CHECK(small.write_start(0, 16 * kib) == NeedsFlush::yes);
  CHECK(set_bits(small) == std::vector<std::uint64_t>{0, 1, 2, 3});
  CHECK(small.write_complete(0, 16 * kib, RemoteAck::yes) == NeedsFlush::yes);
  CHECK(set_bits(small) == std::vector<std::uint64_t>{2, 3});
  small.check_invariants();
}

TEST_CASE("Activemap: a write the secondary did not acknowledge stays dirty (defect 2)",
          "[unit][meta]") {
  Activemap map(8 * 4 * kib, 4 * kib, 1, 512);
  CHECK(map.write_start(0, 4 * kib) == NeedsFlush::yes);
  // The remote leg was cut by a disconnect: no map change needed, the bit is already set.
  CHECK(map.write_complete(0, 4 * kib, RemoteAck::no) == NeedsFlush::no);
  CHECK(map.needs_sync(ExtentIndex{0}));
  CHECK(map.stats().dirty_extents == 1);
  CHECK(map.stats().sync_extents == 1);
  // Evicting it from the keep-dirty list does not clear it either.
  CHECK(map.write_start(4 * kib, 512) == NeedsFlush::yes);
  CHECK(map.write_complete(4 * kib, 512, RemoteAck::yes) == NeedsFlush::no);
  CHECK(map.write_start(8 * kib, 512) == NeedsFlush::yes);
  CHECK(map.write_complete(8 * kib, 512, RemoteAck::yes) == NeedsFlush::no);
  CHECK(set_bits(map) == std::vector<std::uint64_t>{0, 2});
  // Only the sync clears it.
  auto chunks = walk_all(map, 4 * kib);
  REQUIRE(chunks.size() == 1);
  CHECK(chunks[0] == SyncChunk{0, 4 * kib, ExtentIndex{0}, chunks[0].pass, true, true});
  CHECK(set_bits(map) == std::vector<std::uint64_t>{2});
  CHECK_FALSE(map.sync_pending());
  map.check_invariants();
}

TEST_CASE("Activemap: need_sync marks a range without a pending write", "[unit][meta]") {
  Activemap map(8 * 4 * kib, 4 * kib, 64, 512);
  CHECK(map.need_sync(5 * kib, 4 * kib) == NeedsFlush::yes);  // extents 1 and 2
  map.map_flushed(map.generation());
  CHECK(map.need_sync(5 * kib, 100) == NeedsFlush::no);
  CHECK(set_bits(map) == std::vector<std::uint64_t>{1, 2});
  // A write to a sync extent does not need an update either, and stays after completion.
  CHECK(map.write_start(4 * kib, 512) == NeedsFlush::no);
  CHECK(map.write_complete(4 * kib, 512, RemoteAck::yes) == NeedsFlush::no);
  CHECK(map.needs_sync(ExtentIndex{1}));
  CHECK(map.stats().dirty_extents == 2);
}

TEST_CASE("Activemap: the sync walk chunks extents and truncates the last one", "[unit][meta]") {
  // 5 extents of 8 KiB, the last one 3 KiB long.
  Activemap map(4 * 8 * kib + 3 * kib, 8 * kib, 64, 512);
  REQUIRE(map.extent_count() == 5);
  CHECK(map.need_sync(8 * kib, 1) == NeedsFlush::yes);
  CHECK(map.need_sync(4 * 8 * kib, 1) == NeedsFlush::yes);
  auto chunks = walk_all(map, 3 * kib);
  auto pass = map.sync_pass();
  std::vector<SyncChunk> expected = {
      {8 * kib, 3 * kib, ExtentIndex{1}, pass, true, false},
      {11 * kib, 3 * kib, ExtentIndex{1}, pass, false, false},
      {14 * kib, 2 * kib, ExtentIndex{1}, pass, false, true},
      {32 * kib, 3 * kib, ExtentIndex{4}, pass, true, true},
  };
  CHECK(chunks == expected);
  CHECK_FALSE(map.sync_pending());
  CHECK_FALSE(map.next_sync_chunk(3 * kib).has_value());
  CHECK(map.stats().dirty_extents == 0);
}

TEST_CASE("Activemap: an interrupted walk resumes at the start of the extent", "[unit][meta]") {
  Activemap map(4 * 8 * kib, 8 * kib, 64, 512);
  CHECK(map.set_all_dirty() == NeedsFlush::yes);
  CHECK(map.stats().dirty_bytes == 32 * kib);
  auto first = walk_all(map, 8 * kib);
  REQUIRE(first.size() == 4);
  CHECK_FALSE(map.sync_pending());
  CHECK(map.need_sync(0, 1) == NeedsFlush::yes);
  CHECK(map.need_sync(16 * kib, 1) == NeedsFlush::yes);
  map.sync_rewind();
  auto a = map.next_sync_chunk(4 * kib);
  REQUIRE(a.has_value());
  CHECK(a->offset == 0);
  // A disconnect: the partly copied extent 0 is copied again from its start.
  map.sync_rewind();
  auto b = map.next_sync_chunk(4 * kib);
  REQUIRE(b.has_value());
  CHECK(b->offset == 0);
  CHECK(b->first_in_extent);
  auto c = map.next_sync_chunk(4 * kib);
  REQUIRE(c.has_value());
  CHECK(c->offset == 4 * kib);
  CHECK(c->last_in_extent);
  // The copy of the first pass completing late does not count; this pass's does.
  CHECK(a->pass != c->pass);
  CHECK(map.sync_extent_done(ExtentIndex{0}, a->pass) == NeedsFlush::no);
  CHECK(map.needs_sync(ExtentIndex{0}));
  CHECK(map.sync_extent_done(ExtentIndex{0}, c->pass) == NeedsFlush::yes);
  auto d = map.next_sync_chunk(8 * kib);
  REQUIRE(d.has_value());
  CHECK(d->extent == ExtentIndex{2});
}

TEST_CASE("Activemap: a mark made after the walk entered an extent survives its sync",
          "[unit][meta]") {
  Activemap map(4 * 8 * kib, 8 * kib, 64, 512);
  CHECK(map.need_sync(0, 1) == NeedsFlush::yes);
  map.map_flushed(map.generation());
  auto chunk = map.next_sync_chunk(4 * kib);
  REQUIRE(chunk.has_value());
  // A write lands in the part already copied and the secondary does not acknowledge it.
  CHECK(map.write_start(0, 512) == NeedsFlush::no);
  CHECK(map.write_complete(0, 512, RemoteAck::no) == NeedsFlush::no);
  auto last = map.next_sync_chunk(4 * kib);
  REQUIRE(last.has_value());
  REQUIRE(last->last_in_extent);
  CHECK(map.sync_extent_done(ExtentIndex{0}, last->pass) == NeedsFlush::no);
  CHECK(map.needs_sync(ExtentIndex{0}));
  CHECK_FALSE(map.next_sync_chunk(4 * kib).has_value());
  // The next pass copies it again and then clears it. Marked and not yet entered by the
  // new pass, it is not cleared by a premature done either.
  map.sync_rewind();
  CHECK(map.sync_extent_done(ExtentIndex{0}, map.sync_pass()) == NeedsFlush::no);
  auto chunks = walk_all(map, 8 * kib);
  REQUIRE(chunks.size() == 1);
  CHECK(set_bits(map) == std::vector<std::uint64_t>{0});  // still in the keep-dirty list
  CHECK_FALSE(map.sync_pending());
}

TEST_CASE("Activemap: the image is LSB-first, padded, and loads back", "[unit][meta]") {
  Activemap map(100 * 512, 512, 64, 512);  // 100 extents, a 512-byte image
  REQUIRE(map.ondisk_size_bytes() == 512);
  CHECK(map.need_sync(0, 1) == NeedsFlush::yes);
  CHECK(map.need_sync(9 * 512, 1) == NeedsFlush::yes);
  CHECK(map.need_sync(99 * 512, 1) == NeedsFlush::yes);
  auto image = map.encode_image();
  CHECK(image[0] == std::byte{0x01});
  CHECK(image[1] == std::byte{0x02});
  CHECK(image[12] == std::byte{0x08});  // extent 99 = byte 12, bit 3
  CHECK(std::count(image.begin(), image.end(), std::byte{0}) == 512 - 3);

  Activemap restarted(100 * 512, 512, 64, 512);
  // Bits past the last extent (the tail of byte 12 and the padding) are ignored.
  auto noisy = image;
  noisy[12] |= std::byte{0xf0};
  noisy[300] = std::byte{0xff};
  REQUIRE(restarted.load_image(noisy));
  CHECK(restarted.encode_image() == image);
  CHECK(restarted.stats().sync_extents == 3);
  CHECK(restarted.durable_generation() == restarted.generation());
  CHECK_FALSE(restarted.image_changed_since(restarted.durable_generation()));
  auto wrong = restarted.load_image(std::span(image).first(511));
  REQUIRE_FALSE(wrong.has_value());
  CHECK(wrong.error().code() == Errc::invalid_argument);
  // The first sync chunk is the first marked extent.
  auto chunk = restarted.next_sync_chunk(512);
  REQUIRE(chunk.has_value());
  CHECK(chunk->extent == ExtentIndex{0});
  restarted.check_invariants();
}

TEST_CASE("Activemap: merging the peer's map and clearing", "[unit][meta]") {
  Activemap map(100 * 512, 512, 64, 512);
  std::vector<std::byte> peer(13, std::byte{0});  // ceil(100 / 8): the least accepted
  peer[2] = std::byte{0x81};                      // extents 16 and 23
  peer[12] = std::byte{0xf0};                     // past extent 99: ignored
  auto merged = map.merge(peer);
  REQUIRE(merged.has_value());
  CHECK(*merged == NeedsFlush::yes);
  CHECK(set_bits(map) == std::vector<std::uint64_t>{16, 23});
  CHECK(*map.merge(peer) == NeedsFlush::no);
  // A FreeBSD secondary may send a longer map: the extra bytes are ignored.
  std::vector<std::byte> longer(4096, std::byte{0xff});
  CHECK(*map.merge(longer) == NeedsFlush::yes);
  CHECK(map.stats().sync_extents == 100);
  auto short_map = map.merge(std::span(peer).first(12));
  REQUIRE_FALSE(short_map.has_value());
  CHECK(short_map.error().code() == Errc::invalid_argument);
  CHECK(map.clear_all() == NeedsFlush::yes);
  CHECK(set_bits(map).empty());
  CHECK(map.clear_all() == NeedsFlush::no);
  CHECK(map.stats().dirty_extents == 0);
  map.check_invariants();
}

TEST_CASE("Activemap: one durable update serves every write waiting on it", "[unit][meta]") {
  Activemap map(16 * 4 * kib, 4 * kib, 64, 512);
  CHECK(map.write_start(0, 512) == NeedsFlush::yes);
  auto first_needs = map.generation();
  CHECK(map.write_start(4 * kib, 512) == NeedsFlush::yes);
  auto second_needs = map.generation();
  CHECK(second_needs == first_needs + 1);
  // The flusher writes the current image once: both writers are covered.
  CHECK(map.image_changed_since(map.durable_generation()));
  auto flushed = map.generation();
  auto image = map.encode_image();
  map.map_flushed(flushed);
  CHECK(map.durable_generation() >= first_needs);
  CHECK(map.durable_generation() >= second_needs);
  CHECK(bit(image, 0));
  CHECK(bit(image, 1));
  CHECK_FALSE(map.image_changed_since(map.durable_generation()));
  CHECK(map.stats().map_updates == 1);
  // A late report of an older image changes nothing.
  map.map_flushed(first_needs);
  CHECK(map.durable_generation() == flushed);
  CHECK(map.stats().map_updates == 1);
}

// Swarm seed 368 (async): a write found its extent's bit already set by an image whose
// write was still in flight (later it failed), went ahead without waiting, and after a
// kill the extent was clean on disk: the sync skipped it and the copies differed.
TEST_CASE("Activemap: a bit set by an image that is not durable yet still needs a flush",
          "[unit][meta]") {
  Activemap map(16 * 4 * kib, 4 * kib, 64, 512);
  CHECK(map.write_start(0, 512) == NeedsFlush::yes);
  auto marked = map.generation();
  // A second write to the same extent before that image is durable must wait for it.
  CHECK(map.write_start(512, 512) == NeedsFlush::yes);
  CHECK(map.generation() == marked);  // nothing new to write: the same image covers it
  map.map_flushed(marked);
  CHECK(map.write_start(1024, 512) == NeedsFlush::no);
  // An image loaded from disk is durable: its bits protect writes at once.
  Activemap loaded(16 * 4 * kib, 4 * kib, 64, 512);
  REQUIRE(loaded.load_image(map.encode_image()));
  CHECK(loaded.write_start(0, 512) == NeedsFlush::no);
}

// ---- Model-based property ----

namespace {

// The specification, written independently of the implementation: per-extent pending
// writes, "owed" marks (must be synced), an LRU list, and the sync walk's cursor.
struct Model {
  std::uint64_t data_size;
  std::uint64_t extent_size;
  std::uint64_t extents;
  std::size_t keep;
  std::vector<std::uint32_t> pending;
  std::vector<bool> owed;
  std::vector<bool> marked_since_entry;  // owed again after the walk last entered it
  std::deque<std::uint64_t> lru;         // front = most recent
  std::uint64_t scan_from = 0;
  std::optional<std::uint64_t> cursor;
  // The implementation's number for the current pass, once a chunk of it was seen.
  std::optional<std::uint64_t> pass;
  std::uint64_t last_pass = 0;

  Model(std::uint64_t size, std::uint64_t extent, std::size_t keep_dirty)
      : data_size(size),
        extent_size(extent),
        extents((size + extent - 1) / extent),
        keep(keep_dirty),
        pending(extents),
        owed(extents),
        marked_since_entry(extents) {}

  bool in_lru(std::uint64_t e) const { return std::find(lru.begin(), lru.end(), e) != lru.end(); }
  bool image(std::uint64_t e) const { return pending[e] > 0 || owed[e] || in_lru(e); }
  std::uint64_t dirty_count() const {
    std::uint64_t n = 0;
    for (std::uint64_t e = 0; e < extents; e++)
      n += (pending[e] > 0 || owed[e]) ? 1 : 0;
    return n;
  }
  void touch(std::uint64_t e) {
    auto at = std::find(lru.begin(), lru.end(), e);
    if (at != lru.end()) lru.erase(at);
    lru.push_front(e);
    if (lru.size() > keep) lru.pop_back();
  }
  void mark(std::uint64_t e) {
    owed[e] = true;
    marked_since_entry[e] = true;
  }
  void rewind() {
    scan_from = 0;
    cursor.reset();
    if (pass) last_pass = *pass;
    pass.reset();
  }
  std::uint64_t first(std::uint64_t offset) const { return offset / extent_size; }
  std::uint64_t last(std::uint64_t offset, std::uint64_t length) const {
    return (offset + length - 1) / extent_size;
  }
};

struct Write {
  std::uint64_t offset;
  std::uint64_t length;
};

class Harness {
 public:
  Harness(std::uint64_t size, std::uint32_t extent, std::uint32_t keep)
      : map_(size, extent, keep, 512), model_(size, extent, keep), disk_(map_.encode_image()) {}

  void step(std::uint8_t kind, std::uint32_t a, std::uint32_t b);
  void check() const;

 private:
  Write range(std::uint32_t a, std::uint32_t b) const {
    std::uint64_t offset = a % model_.data_size;
    std::uint64_t room = std::min(model_.data_size - offset, 3 * model_.extent_size);
    return {offset, 1 + b % room};
  }
  // Runs `op` on the map, compares its answer with the image change and does the flush
  // asked for.
  template <typename Op>
  void apply(Op op);
  void write_start(std::uint32_t a, std::uint32_t b);
  void write_complete(std::uint32_t a, std::uint32_t b);
  void need_sync(std::uint32_t a, std::uint32_t b);
  void sync_step(std::uint32_t a, std::uint32_t b);
  void sync_done(std::uint32_t a);
  void whole_map(std::uint32_t a, std::uint32_t b);
  void crash();
  // A new pass: copies handed out so far belong to an old one.
  void rewind() {
    model_.rewind();
    for (auto& walked : walked_)
      walked.current = false;
  }

  Activemap map_;
  Model model_;
  std::vector<std::byte> disk_;  // the image as last flushed
  std::vector<Write> in_flight_;
  struct Walked {
    std::uint64_t extent;
    std::uint64_t pass;
    bool current;  // handed out in the model's current pass
  };
  std::vector<Walked> walked_;  // extents whose last chunk was handed out
};

template <typename Op>
void Harness::apply(Op op) {
  auto before = map_.encode_image();
  auto generation = map_.generation();
  NeedsFlush answer = op();
  auto now = map_.encode_image();
  RC_ASSERT((answer == NeedsFlush::yes) == (now != before));
  RC_ASSERT(map_.generation() == generation + (answer == NeedsFlush::yes ? 1 : 0));
  if (answer == NeedsFlush::yes) {
    disk_ = now;
    map_.map_flushed(map_.generation());
  }
}

void Harness::write_start(std::uint32_t a, std::uint32_t b) {
  Write w = range(a, b);
  apply([&] { return map_.write_start(w.offset, w.length); });
  for (auto e = model_.first(w.offset); e <= model_.last(w.offset, w.length); e++)
    model_.pending[e]++;
  for (auto e = model_.first(w.offset); e <= model_.last(w.offset, w.length); e++)
    model_.touch(e);
  in_flight_.push_back(w);
}

void Harness::write_complete(std::uint32_t a, std::uint32_t b) {
  if (in_flight_.empty()) return write_start(a, b);
  auto index = a % in_flight_.size();
  Write w = in_flight_[index];
  in_flight_.erase(in_flight_.begin() + static_cast<std::ptrdiff_t>(index));
  auto ack = b % 3 == 0 ? RemoteAck::no : RemoteAck::yes;
  apply([&] { return map_.write_complete(w.offset, w.length, ack); });
  for (auto e = model_.first(w.offset); e <= model_.last(w.offset, w.length); e++) {
    model_.pending[e]--;
    if (ack == RemoteAck::no) model_.mark(e);
  }
}

void Harness::need_sync(std::uint32_t a, std::uint32_t b) {
  Write w = range(a, b);
  apply([&] { return map_.need_sync(w.offset, w.length); });
  for (auto e = model_.first(w.offset); e <= model_.last(w.offset, w.length); e++)
    model_.mark(e);
}

// One chunk of the walk, checked against the model's cursor.
void Harness::sync_step(std::uint32_t a, std::uint32_t b) {
  std::uint64_t max_bytes = 1 + a % (2 * model_.extent_size);
  auto chunk = map_.next_sync_chunk(max_bytes);
  if (!model_.cursor) {
    std::optional<std::uint64_t> next;
    for (auto e = model_.scan_from; e < model_.extents && !next; e++) {
      if (model_.owed[e]) next = e;
    }
    RC_ASSERT(chunk.has_value() == next.has_value());
    if (!chunk) {
      // The pass is over: later marks wait for a rewind.
      model_.scan_from = model_.extents;
      if (b % 2 == 0) {
        map_.sync_rewind();
        rewind();
      }
      return;
    }
    RC_ASSERT(chunk->extent.value == *next);
    RC_ASSERT(chunk->first_in_extent);
    RC_ASSERT(chunk->offset == *next * model_.extent_size);
    model_.marked_since_entry[*next] = false;
  } else {
    RC_ASSERT(chunk.has_value());
    RC_ASSERT(!chunk->first_in_extent);
    RC_ASSERT(chunk->offset == *model_.cursor);
  }
  // Every chunk of a pass carries the same number, larger than the earlier passes'.
  if (!model_.pass) model_.pass = chunk->pass;
  RC_ASSERT(chunk->pass == *model_.pass);
  RC_ASSERT(chunk->pass > model_.last_pass);
  auto e = chunk->extent.value;
  std::uint64_t end = std::min((e + 1) * model_.extent_size, model_.data_size);
  RC_ASSERT(chunk->length == std::min(max_bytes, end - chunk->offset));
  RC_ASSERT(chunk->last_in_extent == (chunk->offset + chunk->length == end));
  model_.cursor = chunk->offset + chunk->length;
  if (chunk->last_in_extent) {
    model_.cursor.reset();
    model_.scan_from = e + 1;
    walked_.push_back({e, chunk->pass, true});
  }
}

void Harness::sync_done(std::uint32_t a) {
  if (walked_.empty()) {
    map_.sync_rewind();
    rewind();
    return;
  }
  auto index = a % walked_.size();
  auto done = walked_[index];
  auto e = done.extent;
  walked_.erase(walked_.begin() + static_cast<std::ptrdiff_t>(index));
  apply([&] { return map_.sync_extent_done(ExtentIndex{e}, done.pass); });
  // Only a copy made in the current pass, with no mark since it entered, clears the mark.
  if (done.current && model_.owed[e] && !model_.marked_since_entry[e]) model_.owed[e] = false;
}

void Harness::whole_map(std::uint32_t a, std::uint32_t b) {
  if (a % 4 == 0) {
    apply([&] { return map_.set_all_dirty(); });
    for (std::uint64_t e = 0; e < model_.extents; e++)
      model_.mark(e);
    return;
  }
  // A sparse peer map from the two seeds.
  std::vector<std::byte> peer(map_.ondisk_size_bytes(), std::byte{0});
  std::uint64_t e1 = a % model_.extents;
  std::uint64_t e2 = b % model_.extents;
  peer[e1 / 8] |= std::byte{static_cast<unsigned char>(1u << (e1 % 8))};
  peer[e2 / 8] |= std::byte{static_cast<unsigned char>(1u << (e2 % 8))};
  apply([&] {
    auto merged = map_.merge(peer);
    RC_ASSERT(merged.has_value());
    return *merged;
  });
  model_.mark(e1);
  model_.mark(e2);
  rewind();
}

// The node dies and restarts: the new map knows only what the disk holds.
void Harness::crash() {
  Activemap fresh(model_.data_size, static_cast<std::uint32_t>(model_.extent_size),
                  static_cast<std::uint32_t>(model_.keep), 512);
  RC_ASSERT(fresh.load_image(disk_).has_value());
  for (std::uint64_t e = 0; e < model_.extents; e++) {
    // The O3 core across a crash: nothing in flight or owed is forgotten.
    if (model_.pending[e] > 0 || model_.owed[e]) RC_ASSERT(fresh.needs_sync(ExtentIndex{e}));
    model_.pending[e] = 0;
    model_.owed[e] = fresh.needs_sync(ExtentIndex{e});
    model_.marked_since_entry[e] = model_.owed[e];
  }
  model_.lru.clear();
  rewind();
  model_.last_pass = 0;  // pass numbers belong to one map instance
  in_flight_.clear();
  walked_.clear();
  map_ = std::move(fresh);
  RC_ASSERT(map_.encode_image() == disk_);
}

void Harness::step(std::uint8_t kind, std::uint32_t a, std::uint32_t b) {
  switch (kind % 16) {
    case 0:
    case 1:
    case 2:
      return write_start(a, b);
    case 3:
    case 4:
    case 5:
      return write_complete(a, b);
    case 6:
      return need_sync(a, b);
    case 7:
    case 8:
    case 9:
    case 10:
      return sync_step(a, b);
    case 11:
    case 12:
      return sync_done(a);
    case 13:
      return whole_map(a, b);
    case 14:
      return crash();
    default:
      return write_complete(a, b);
  }
}

void Harness::check() const {
  map_.check_invariants();
  auto image = map_.encode_image();
  RC_ASSERT(!map_.image_changed_since(map_.durable_generation()));
  RC_ASSERT(image == disk_);
  std::uint64_t sync_count = 0;
  for (std::uint64_t e = 0; e < model_.extents; e++) {
    ExtentIndex extent{e};
    RC_ASSERT(bit(image, e) == model_.image(e));
    RC_ASSERT(map_.pending_writes(extent) == model_.pending[e]);
    RC_ASSERT(map_.needs_sync(extent) == model_.owed[e]);
    // O3: in flight or owed means set in the durable image.
    if (model_.pending[e] > 0 || model_.owed[e]) RC_ASSERT(bit(disk_, e));
    sync_count += model_.owed[e] ? 1 : 0;
  }
  std::vector<ExtentIndex> lru;
  for (auto e : model_.lru)
    lru.push_back(ExtentIndex{e});
  RC_ASSERT(map_.keep_dirty_extents() == lru);
  RC_ASSERT(lru.size() <= model_.keep);
  auto stats = map_.stats();
  RC_ASSERT(stats.dirty_extents == model_.dirty_count());
  RC_ASSERT(stats.dirty_bytes == model_.dirty_count() * model_.extent_size);
  RC_ASSERT(stats.sync_extents == sync_count);
  // Bits past the last extent are zero.
  for (std::uint64_t bit_index = model_.extents; bit_index < image.size() * 8; bit_index++)
    RC_ASSERT(!bit(image, bit_index));
}

}  // namespace

TEST_CASE("Activemap: random operation sequences agree with the model (O3 core)", "[unit][meta]") {
  hast::test::property("activemap model", [] {
    std::uint32_t extent = *rc::gen::element(512u, 1024u, 4096u);
    std::uint64_t extents = *rc::gen::inRange<std::uint64_t>(1, 80);
    std::uint64_t tail = 512 * *rc::gen::inRange<std::uint64_t>(1, extent / 512 + 1);
    std::uint64_t data_size = (extents - 1) * extent + tail;
    std::uint32_t keep = *rc::gen::inRange<std::uint32_t>(1, 9);
    auto steps =
        *rc::gen::container<std::vector<std::tuple<std::uint8_t, std::uint32_t, std::uint32_t>>>(
            rc::gen::tuple(rc::gen::arbitrary<std::uint8_t>(), rc::gen::arbitrary<std::uint32_t>(),
                           rc::gen::arbitrary<std::uint32_t>()));
    Harness harness(data_size, extent, keep);
    for (const auto& [kind, a, b] : steps) {
      harness.step(kind, a, b);
      harness.check();
    }
  });
}

TEST_CASE("Activemap: arbitrary images load without crashing", "[unit][meta]") {
  hast::test::property("activemap load_image", [](std::vector<std::uint8_t> bytes) {
    std::uint64_t extents = *rc::gen::inRange<std::uint64_t>(1, 5000);
    Activemap map(extents * 512, 512, 64, 512);
    bytes.resize(*rc::gen::element(bytes.size(), std::size_t{map.ondisk_size_bytes()}));
    auto loaded = map.load_image(std::as_bytes(std::span(bytes)));
    if (bytes.size() != map.ondisk_size_bytes()) {
      RC_ASSERT(!loaded.has_value());
      return;
    }
    RC_ASSERT(loaded.has_value());
    map.check_invariants();
    // Every loaded bit below the extent count is to be synced; nothing else.
    for (std::uint64_t e = 0; e < extents; e++) {
      bool set = e / 8 < bytes.size() && ((bytes[e / 8] >> (e % 8)) & 1);
      RC_ASSERT(map.needs_sync(ExtentIndex{e}) == set);
    }
  });
}

TEST_CASE("ExtentLru: removals counts every extent that left the list", "[unit][meta]") {
  hast::meta::ExtentLru lru(16, 2);
  CHECK(lru.removals() == 0);
  static_cast<void>(lru.touch(ExtentIndex{1}));
  static_cast<void>(lru.touch(ExtentIndex{2}));
  static_cast<void>(lru.touch(ExtentIndex{1}));  // moves to the front: nothing leaves
  CHECK(lru.removals() == 0);
  auto touch = lru.touch(ExtentIndex{3});  // evicts 2
  REQUIRE(touch.evicted.has_value());
  CHECK(touch.evicted->value == 2);
  CHECK(lru.removals() == 1);
  lru.clear();  // 1 and 3 leave
  CHECK(lru.removals() == 3);
  CHECK(!lru.contains(ExtentIndex{1}));
}
