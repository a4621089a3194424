// SimDisk and SimDiskHandle: fault overlays over the pristine layer, and the fiber-facing
// handle. See sim_disk.h for the model.
//
// Order of fault decisions on a write completion (each a draw only when its probability
// is non-zero, so a fault-free disk draws nothing): transient EIO (and what of the write
// landed anyway), then lost, then misdirected, then latent error creation. A lost or
// misdirected write still updates the pristine layer (what the caller asked for); the
// overlay records what the medium really holds, per sector, until the sector is rewritten.
#include "sim/sim_disk.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "core/assert.h"

namespace hast::sim {
namespace {

// A log-uniform rate in [low, high], or 0 (the fault is off for this seed) half the time.
double swarm_rate(Random& random, double low, double high) {
  HAST_ASSERT(low > 0);
  HAST_ASSERT(low <= high);
  if (!chance(random, 0.5)) return 0;
  return low * std::pow(high / low, unit_interval(random));
}

Duration microseconds(std::uint64_t count) {
  return std::chrono::duration_cast<Duration>(
      std::chrono::microseconds(static_cast<std::int64_t>(count)));
}

// Byte pattern left in a read buffer when the read fails (the contents are unspecified;
// a recognisable pattern makes a caller that uses them anyway easy to spot).
constexpr std::byte read_failure_poison{0xa5};

constexpr std::uint64_t discard_garbage_bytes_max = 1024 * 1024;

}  // namespace

// ---- SimDiskFaults ----

Duration SimDiskFaults::latency_max() const {
  const double base = static_cast<double>(latency_min.count()) +
                      exponential_cap * static_cast<double>(latency_mean.count());
  return Duration(static_cast<std::int64_t>(std::ceil(base * std::max(1.0, slow_multiplier))));
}

bool SimDiskFaults::any() const {
  return read_error_probability > 0 || write_error_probability > 0 || flush_error_probability > 0 ||
         latent_error_probability > 0 || misdirect_probability > 0 || lost_write_probability > 0 ||
         slow_probability > 0;
}

SimDiskFaults SimDiskFaults::swarm(Random& random) {
  SimDiskFaults faults;
  faults.read_error_probability = swarm_rate(random, 1e-4, 1e-2);
  faults.write_error_probability = swarm_rate(random, 1e-4, 1e-2);
  faults.flush_error_probability = swarm_rate(random, 1e-3, 5e-2);
  faults.latent_error_probability = swarm_rate(random, 1e-4, 5e-3);
  faults.misdirect_probability = swarm_rate(random, 1e-5, 1e-3);
  faults.lost_write_probability = swarm_rate(random, 1e-5, 1e-3);
  faults.latency_min = microseconds(uniform(random, 5, 200));
  faults.latency_mean = microseconds(uniform(random, 0, 2000));
  faults.slow_probability = swarm_rate(random, 1e-3, 5e-2);
  faults.slow_multiplier =
      faults.slow_probability > 0 ? static_cast<double>(uniform(random, 10, 1000)) : 1;
  HAST_ASSERT(faults.latency_min.count() > 0);
  HAST_ASSERT(faults.slow_multiplier >= 1);
  return faults;
}

std::string_view sim_disk_fault_kind_name(SimDiskFaultKind kind) {
  switch (kind) {
    case SimDiskFaultKind::read_error:
      return "read_error";
    case SimDiskFaultKind::write_error:
      return "write_error";
    case SimDiskFaultKind::flush_error:
      return "flush_error";
    case SimDiskFaultKind::discard_error:
      return "discard_error";
    case SimDiskFaultKind::latent_created:
      return "latent_created";
    case SimDiskFaultKind::latent_read:
      return "latent_read";
    case SimDiskFaultKind::misdirected:
      return "misdirected";
    case SimDiskFaultKind::lost:
      return "lost";
    case SimDiskFaultKind::slow:
      return "slow";
    case SimDiskFaultKind::power_loss_dropped:
      return "power_loss_dropped";
    case SimDiskFaultKind::power_loss_torn:
      return "power_loss_torn";
    case SimDiskFaultKind::in_flight_dropped:
      return "in_flight_dropped";
    case SimDiskFaultKind::replaced:
      return "replaced";
  }
  HAST_UNREACHABLE();
}

// ---- SimDisk: construction, tracing ----

SimDisk::SimDisk(World& world, std::string name, const SimDiskOptions& options)
    : world_(world),
      name_(std::move(name)),
      tag_(fnv1a(name_)),
      options_(options),
      faults_(options.faults),
      random_(world.stream("disk/" + name_)),
      pristine_(PristineOptions{options.size_bytes, options.sector_size, options.volatile_cache,
                                options.cache_writes_max, options.cache_bytes_max}) {
  HAST_ASSERT(!name_.empty());
  HAST_ASSERT(options.size_bytes > 0);
  HAST_ASSERT(options.size_bytes % options.sector_size == 0);
  world_.trace("disk.create", tag_, options.size_bytes, options.sector_size);
}

DiskProperties SimDisk::properties() const {
  return DiskProperties{options_.sector_size, options_.volatile_cache, options_.discard_zeroes};
}

void SimDisk::trace(std::string_view kind, std::uint64_t a, std::uint64_t b) {
  world_.trace(kind, tag_, a, b);
}

void SimDisk::record(SimDiskFaultKind kind, std::uint64_t offset, std::uint64_t length,
                     std::uint64_t detail) {
  const auto index = static_cast<std::size_t>(kind);
  HAST_ASSERT(index < fault_counts_.size());
  fault_counts_[index]++;
  if (fault_log_.size() < options_.fault_log_max) {
    fault_log_.push_back(SimDiskFaultRecord{world_.now(), kind, offset, length, detail});
  }
  world_.trace("disk.fault", tag_, index, offset);
  HAST_ASSERT(fault_log_.size() <= options_.fault_log_max);
}

std::uint64_t SimDisk::fault_count(SimDiskFaultKind kind) const {
  const auto index = static_cast<std::size_t>(kind);
  HAST_ASSERT(index < fault_counts_.size());
  return fault_counts_[index];
}

void SimDisk::check_range(std::uint64_t offset, std::uint64_t length) const {
  HAST_ASSERT_MSG(offset % options_.sector_size == 0, "disk {}: unaligned offset {}", name_,
                  offset);
  HAST_ASSERT_MSG(length % options_.sector_size == 0, "disk {}: unaligned length {}", name_,
                  length);
  HAST_ASSERT_MSG(offset <= size() && length <= size() - offset,
                  "disk {}: range {}+{} beyond {} bytes", name_, offset, length, size());
}

std::uint64_t SimDisk::sector_count(std::uint64_t length) const {
  HAST_ASSERT(length % options_.sector_size == 0);
  return length / options_.sector_size;
}

void SimDisk::invariants() const {
  HAST_ASSERT(latent_.empty() || *latent_.rbegin() < sector_count(size()));
  HAST_ASSERT(overlay_.empty() || overlay_.rbegin()->first < sector_count(size()));
  HAST_ASSERT(overlay_.empty() || overlay_.begin()->second.size() == options_.sector_size);
}

// ---- SimDisk: submission and completion ----

Duration SimDisk::draw_latency(std::string_view kind) {
  HAST_ASSERT(faults_.latency_min.count() >= 0);
  HAST_ASSERT(faults_.latency_mean.count() >= 0);
  double ns = static_cast<double>(faults_.latency_min.count());
  if (faults_.latency_mean.count() > 0) {
    const double mean = static_cast<double>(faults_.latency_mean.count());
    const double exponential = -std::log1p(-unit_interval(random_)) * mean;
    ns += std::min(exponential, SimDiskFaults::exponential_cap * mean);
  }
  const bool slow = chance(random_, faults_.slow_probability);
  if (slow) ns *= std::max(1.0, faults_.slow_multiplier);
  const Duration latency(static_cast<std::int64_t>(ns));
  if (slow) record(SimDiskFaultKind::slow, 0, 0, static_cast<std::uint64_t>(latency.count()));
  world_.trace("disk.latency", tag_, TraceHash::hash_bytes(kind),
               static_cast<std::uint64_t>(latency.count()));
  return latency;
}

std::uint64_t SimDisk::begin_write(std::uint64_t owner, std::uint64_t offset,
                                   std::span<const std::byte> data, Fua fua) {
  const std::uint64_t op = submit_write(owner, offset, data.size(), fua);
  in_flight_[op].data.assign(data.begin(), data.end());
  return op;
}

std::uint64_t SimDisk::begin_write_borrowed(std::uint64_t owner, std::uint64_t offset,
                                            std::span<const std::byte> data, Fua fua) {
  const std::uint64_t op = submit_write(owner, offset, data.size(), fua);
  in_flight_[op].borrowed = data;
  return op;
}

// The bookkeeping both begin_write forms share: a new in-flight entry without its bytes.
std::uint64_t SimDisk::submit_write(std::uint64_t owner, std::uint64_t offset, std::uint64_t length,
                                    Fua fua) {
  check_range(offset, length);
  HAST_ASSERT(owner > 0);
  const std::uint64_t op = next_op_++;
  InFlight& entry = in_flight_[op];
  entry.owner = owner;
  entry.offset = offset;
  entry.length = length;
  entry.fua = fua;
  trace(fua == Fua::yes ? "disk.submit.write_fua" : "disk.submit.write", offset, length);
  return op;
}

void SimDisk::adopt_write(std::uint64_t op) {
  auto found = in_flight_.find(op);
  if (found == in_flight_.end() || !found->second.data.empty()) return;
  InFlight& entry = found->second;
  entry.data.assign(entry.borrowed.begin(), entry.borrowed.end());
  entry.borrowed = {};
  HAST_ASSERT(entry.data.size() == entry.length);
}

std::uint64_t SimDisk::begin_discard(std::uint64_t owner, std::uint64_t offset,
                                     std::uint64_t length) {
  check_range(offset, length);
  HAST_ASSERT(owner > 0);
  const std::uint64_t op = next_op_++;
  InFlight& entry = in_flight_[op];
  entry.owner = owner;
  entry.discard = true;
  entry.offset = offset;
  entry.length = length;
  trace("disk.submit.discard", offset, length);
  return op;
}

Result<void> SimDisk::complete_write(std::uint64_t op) {
  auto found = in_flight_.find(op);
  HAST_ASSERT_MSG(found != in_flight_.end(), "disk {}: unknown write {}", name_, op);
  const InFlight entry = std::move(found->second);
  in_flight_.erase(found);
  if (entry.discard) return complete_discard(entry);
  stats_.writes++;
  if (entry.fua == Fua::yes) stats_.fua_writes++;
  trace(entry.fua == Fua::yes ? "disk.write_fua" : "disk.write", entry.offset, entry.length);
  if (chance(random_, faults_.write_error_probability)) return fail_write(entry);
  if (chance(random_, faults_.lost_write_probability)) {
    lose_write(entry);
    return ok();
  }
  if (chance(random_, faults_.misdirect_probability)) {
    misdirect_write(entry);
    return ok();
  }
  store(entry, entry.bytes(), nullptr);
  maybe_create_latent(entry);
  invariants();
  return ok();
}

void SimDisk::store(const InFlight& op, std::span<const std::byte> data, const SectorMask* mask) {
  HAST_ASSERT(data.empty() || data.size() == op.length);
  HAST_ASSERT(mask == nullptr || mask->size() == sector_count(op.length));
  pristine_.accept(op.offset, op.length, data, op.fua, mask);
  // The medium under these sectors was rewritten: their overlays and latent errors go.
  if (overlay_.empty() && latent_.empty()) return;
  clear_overlays(op.offset, mask != nullptr ? *mask : SectorMask(sector_count(op.length), true));
}

void SimDisk::clear_overlays(std::uint64_t offset, const SectorMask& sectors) {
  const std::uint64_t first = offset / options_.sector_size;
  const std::uint64_t end = first + sectors.size();
  for (auto it = overlay_.lower_bound(first); it != overlay_.end() && it->first < end;) {
    it = sectors[it->first - first] ? overlay_.erase(it) : std::next(it);
  }
  for (auto it = latent_.lower_bound(first); it != latent_.end() && *it < end;) {
    it = sectors[*it - first] ? latent_.erase(it) : std::next(it);
  }
  HAST_ASSERT(offset % options_.sector_size == 0);
  HAST_ASSERT(end <= sector_count(size()));
}

Result<void> SimDisk::fail_write(const InFlight& op) {
  HAST_ASSERT(!op.discard);
  HAST_ASSERT(!op.bytes().empty() || op.length == 0);
  // An I/O error leaves the request applied whole, in part (some sectors) or not at all.
  const std::uint64_t fate = uniform(random_, 0, 2);
  SectorMask mask(sector_count(op.length), fate == 1);
  if (fate == 2) {
    for (std::size_t i = 0; i < mask.size(); i++)
      mask[i] = chance(random_, 0.5);
  }
  const auto applied = static_cast<std::uint64_t>(std::count(mask.begin(), mask.end(), true));
  record(SimDiskFaultKind::write_error, op.offset, op.length, applied);
  if (applied > 0) store(op, op.bytes(), &mask);
  return fail(Errc::io,
              fmt::format("sim disk {}: write at {}: injected I/O error", name_, op.offset));
}

void SimDisk::capture_stale(std::uint64_t offset, std::uint64_t length) {
  HAST_ASSERT(overlays_on_);
  const std::uint64_t first = offset / options_.sector_size;
  std::vector<std::byte> bytes(options_.sector_size);
  for (std::uint64_t s = first; s < first + sector_count(length); s++) {
    // A sector that already has an overlay keeps it: that is still what the medium holds.
    if (overlay_.contains(s)) continue;
    pristine_.read_current(s * options_.sector_size, bytes);
    overlay_.emplace(s, bytes);
  }
  HAST_ASSERT(overlay_.size() >= sector_count(length) || length == 0);
}

void SimDisk::lose_write(const InFlight& op) {
  HAST_ASSERT(!op.discard);
  HAST_ASSERT(overlays_on_);
  record(SimDiskFaultKind::lost, op.offset, op.length);
  capture_stale(op.offset, op.length);
  pristine_.accept(op.offset, op.length, op.bytes(), op.fua);
}

void SimDisk::misdirect_write(const InFlight& op) {
  HAST_ASSERT(!op.discard);
  const std::uint64_t sectors = sector_count(op.length);
  const std::uint64_t total = sector_count(size());
  if (sectors == 0 || sectors >= total) {
    lose_write(op);  // nowhere else to land
    return;
  }
  const std::uint64_t intended = op.offset / options_.sector_size;
  std::uint64_t target = uniform(random_, 0, total - sectors - 1);
  if (target >= intended) target++;  // any aligned start but the intended one
  record(SimDiskFaultKind::misdirected, op.offset, op.length, target * options_.sector_size);
  capture_stale(op.offset, op.length);
  const std::size_t sector_size = options_.sector_size;
  for (std::uint64_t i = 0; i < sectors; i++) {
    auto bytes = op.bytes().subspan(i * sector_size, sector_size);
    overlay_.insert_or_assign(target + i, std::vector<std::byte>(bytes.begin(), bytes.end()));
    latent_.erase(target + i);
  }
  pristine_.accept(op.offset, op.length, op.bytes(), op.fua);
  HAST_ASSERT(target + sectors <= total);
}

void SimDisk::maybe_create_latent(const InFlight& op) {
  HAST_ASSERT(op.offset % options_.sector_size == 0);
  if (op.length == 0 || !chance(random_, faults_.latent_error_probability)) return;
  const std::uint64_t sector =
      op.offset / options_.sector_size + uniform(random_, 0, sector_count(op.length) - 1);
  latent_.insert(sector);
  record(SimDiskFaultKind::latent_created, sector * options_.sector_size, options_.sector_size);
  HAST_ASSERT(latent_.contains(sector));
}

Result<void> SimDisk::complete_discard(const InFlight& op) {
  HAST_ASSERT(op.discard);
  HAST_ASSERT(op.bytes().empty());
  stats_.discards++;
  trace("disk.discard", op.offset, op.length);
  if (chance(random_, faults_.write_error_probability)) {
    record(SimDiskFaultKind::discard_error, op.offset, op.length);
    return fail(Errc::io,
                fmt::format("sim disk {}: discard at {}: injected I/O error", name_, op.offset));
  }
  if (options_.discard_zeroes) {
    store(op, {}, nullptr);
    return ok();
  }
  // Without discard_zeroes the range keeps its bytes, reads as zeroes or as garbage.
  const std::uint64_t outcome = uniform(random_, 0, 2);
  trace("disk.discard.outcome", op.offset, outcome);
  if (outcome == 0) return ok();
  if (outcome == 1 || op.length > discard_garbage_bytes_max) {
    store(op, {}, nullptr);
    return ok();
  }
  std::vector<std::byte> garbage(op.length);
  fill_random(random_, garbage);
  store(op, garbage, nullptr);
  return ok();
}

Result<void> SimDisk::complete_read(std::uint64_t offset, std::span<std::byte> out) {
  check_range(offset, out.size());
  stats_.reads++;
  trace("disk.read", offset, out.size());
  if (chance(random_, faults_.read_error_probability)) {
    record(SimDiskFaultKind::read_error, offset, out.size());
    return fail(Errc::io,
                fmt::format("sim disk {}: read at {}: injected I/O error", name_, offset));
  }
  if (overlays_on_) {
    const std::uint64_t first = offset / options_.sector_size;
    auto latent = latent_.lower_bound(first);
    if (latent != latent_.end() && *latent < first + sector_count(out.size())) {
      HAST_ASSERT(*latent >= first);
      record(SimDiskFaultKind::latent_read, *latent * options_.sector_size, options_.sector_size);
      return fail(Errc::io, fmt::format("sim disk {}: read at {}: latent sector error at {}", name_,
                                        offset, *latent * options_.sector_size));
    }
  }
  peek_effective(offset, out);
  return ok();
}

std::uint64_t SimDisk::begin_flush() {
  trace("disk.submit.flush", pristine_.watermark(), pristine_.pending_count());
  HAST_ASSERT(options_.volatile_cache || pristine_.pending_count() == 0);
  return pristine_.watermark();
}

Result<void> SimDisk::complete_flush(std::uint64_t watermark) {
  HAST_ASSERT(watermark <= pristine_.watermark());
  stats_.flushes++;
  trace("disk.flush", watermark, pristine_.pending_count());
  if (!options_.volatile_cache) return ok();  // nothing is ever volatile
  if (chance(random_, faults_.flush_error_probability)) {
    record(SimDiskFaultKind::flush_error, 0, 0, watermark);
    return fail(Errc::io, fmt::format("sim disk {}: flush: injected I/O error", name_));
  }
  pristine_.make_durable(watermark);
  HAST_ASSERT(pristine_.cache().empty() || pristine_.cache().front().seq > watermark);
  return ok();
}

std::vector<SimDisk::InFlightWrite> SimDisk::in_flight_writes() const {
  std::vector<InFlightWrite> writes;
  writes.reserve(in_flight_.size());
  for (const auto& [op, entry] : in_flight_)
    writes.push_back(InFlightWrite{entry.offset, entry.length, entry.bytes(), entry.discard});
  HAST_ASSERT(writes.size() == in_flight_.size());
  return writes;
}

void SimDisk::settle_in_flight(std::uint64_t owner, DeathKind kind) {
  HAST_ASSERT(owner > 0 && owner < next_owner_);
  for (auto it = in_flight_.begin(); it != in_flight_.end();) {
    if (it->second.owner != owner) {
      ++it;
      continue;
    }
    if (kind == DeathKind::power_loss) {
      settle_power_cut(it->second);
    } else {
      settle_killed(it->second);
    }
    it = in_flight_.erase(it);
  }
  HAST_ASSERT(std::none_of(in_flight_.begin(), in_flight_.end(),
                           [owner](const auto& entry) { return entry.second.owner == owner; }));
}

// A process kill: the OS had the request, it reaches the device whole or not at all.
void SimDisk::settle_killed(const InFlight& op) {
  if (chance(random_, 0.5)) {
    trace("disk.settle.apply", op.offset, op.length);
    stats_.in_flight_applied++;
    if (!op.discard) store(op, op.bytes(), nullptr);
    if (op.discard && options_.discard_zeroes) store(op, {}, nullptr);
  } else {
    record(SimDiskFaultKind::in_flight_dropped, op.offset, op.length);
  }
}

// A power cut mid-transfer: dropped, whole or torn (each sector old or new), a third of
// the time each. What landed is on the medium, so it is stored durable (as FUA), which
// also keeps an older cached write from landing over it in the power loss that follows.
void SimDisk::settle_power_cut(const InFlight& op) {
  const std::uint64_t fate = uniform(random_, 0, 2);
  SectorMask mask(sector_count(op.length), fate == 1);
  if (fate == 2) {
    for (std::size_t i = 0; i < mask.size(); i++)
      mask[i] = chance(random_, 0.5);
  }
  const auto landed = static_cast<std::uint64_t>(std::count(mask.begin(), mask.end(), true));
  trace("disk.settle.power_cut", op.offset, landed);
  if (landed == 0) {
    record(SimDiskFaultKind::in_flight_dropped, op.offset, op.length);
    return;
  }
  if (landed == mask.size()) {
    stats_.in_flight_applied++;
  } else {
    stats_.in_flight_torn++;
    record(SimDiskFaultKind::power_loss_torn, op.offset, op.length, landed);
  }
  if (op.discard && !options_.discard_zeroes) return;  // the sectors keep their bytes
  InFlight durable{op.owner, op.discard, op.offset, op.length, {}, op.bytes(), Fua::yes};
  store(durable, op.discard ? std::span<const std::byte>() : op.bytes(), &mask);
  HAST_ASSERT(landed <= sector_count(op.length));
}

// ---- SimDisk: power loss and crash states ----

void SimDisk::power_loss() {
  power_loss(random_);
}

void SimDisk::power_loss(Random& random) {
  stats_.power_losses++;
  trace("disk.power_loss", pristine_.pending_count(), pristine_.generation());
  const CrashState state = pristine_.sample_crash_state(random);
  log_power_loss(state);
  pristine_.apply_crash_state(state);
  HAST_ASSERT(pristine_.pending_count() == 0);
  invariants();
}

void SimDisk::log_power_loss(const CrashState& state) {
  const auto& cache = pristine_.cache();
  std::vector<const CrashPiece*> piece_of(cache.size(), nullptr);
  for (const CrashPiece& piece : state.pieces) {
    HAST_ASSERT(piece.index < cache.size());
    piece_of[piece.index] = &piece;
    trace("disk.power_loss.land", cache[piece.index].seq,
          static_cast<std::uint64_t>(std::count(piece.sectors.begin(), piece.sectors.end(), true)));
  }
  for (std::size_t i = 0; i < cache.size(); i++) {
    const PendingWrite& write = cache[i];
    const auto live =
        static_cast<std::uint64_t>(std::count(write.live.begin(), write.live.end(), true));
    if (live == 0) continue;  // superseded by a FUA write: nothing of it could land
    if (piece_of[i] == nullptr) {
      record(SimDiskFaultKind::power_loss_dropped, write.offset, write.length);
      continue;
    }
    const auto& sectors = piece_of[i]->sectors;
    const auto landed =
        static_cast<std::uint64_t>(std::count(sectors.begin(), sectors.end(), true));
    if (landed < live)
      record(SimDiskFaultKind::power_loss_torn, write.offset, write.length, landed);
  }
  HAST_ASSERT(state.generation == pristine_.generation());
}

std::vector<CrashState> SimDisk::crash_states(std::size_t k, Random& random) const {
  return pristine_.crash_states(k, random);
}

void SimDisk::read_crash_state(const CrashState& state, std::uint64_t offset,
                               std::span<std::byte> out) const {
  pristine_.read_crash_state(state, offset, out);
}

SparseImage SimDisk::crash_state_image(const CrashState& state) const {
  return pristine_.crash_state_image(state);
}

// ---- SimDisk: inspection and fault control ----

void SimDisk::peek_current(std::uint64_t offset, std::span<std::byte> out) const {
  pristine_.read_current(offset, out);
}

void SimDisk::peek_stable(std::uint64_t offset, std::span<std::byte> out) const {
  pristine_.read_stable(offset, out);
}

void SimDisk::peek_effective(std::uint64_t offset, std::span<std::byte> out) const {
  check_range(offset, out.size());
  pristine_.read_current(offset, out);
  if (!overlays_on_) return;
  const std::uint64_t first = offset / options_.sector_size;
  const std::uint64_t end = first + sector_count(out.size());
  for (auto it = overlay_.lower_bound(first); it != overlay_.end() && it->first < end; ++it) {
    HAST_ASSERT(it->second.size() == options_.sector_size);
    std::memcpy(out.data() + (it->first - first) * options_.sector_size, it->second.data(),
                options_.sector_size);
  }
}

void SimDisk::set_faults(const SimDiskFaults& faults) {
  HAST_ASSERT(faults.slow_multiplier >= 1 || faults.slow_probability == 0);
  HAST_ASSERT(faults.latency_min.count() >= 0 && faults.latency_mean.count() >= 0);
  faults_ = faults;
  overlays_on_ = true;
  trace("disk.set_faults", faults.any(), 0);
}

void SimDisk::faults_off() {
  SimDiskFaults quiet;
  quiet.latency_min = faults_.latency_min;
  quiet.latency_mean = faults_.latency_mean;
  faults_ = quiet;
  overlays_on_ = false;
  HAST_ASSERT(faults_.latency_max() >= faults_.latency_min);
  trace("disk.faults_off", overlay_.size(), latent_.size());
  HAST_ASSERT(!faults_.any());
}

void SimDisk::clear_latent_errors() {
  trace("disk.clear_latent", latent_.size(), 0);
  latent_.clear();
}

void SimDisk::inject_latent_error(std::uint64_t sector) {
  HAST_ASSERT_MSG(sector < sector_count(size()), "disk {}: no sector {}", name_, sector);
  latent_.insert(sector);
  record(SimDiskFaultKind::latent_created, sector * options_.sector_size, options_.sector_size);
  HAST_ASSERT(latent_.contains(sector));
}

void SimDisk::replace_with_empty() {
  HAST_ASSERT_MSG(in_flight_.empty(), "disk {} replaced with I/O in flight", name_);
  pristine_.clear();
  overlay_.clear();
  latent_.clear();
  record(SimDiskFaultKind::replaced, 0, size());
  HAST_ASSERT(pristine_.pending_count() == 0);
}

// ---- SimDiskHandle ----

SimDiskHandle::SimDiskHandle(World& world, SimNode& node, SimDisk& disk)
    : world_(world),
      node_(node),
      disk_(disk),
      owner_(disk.register_owner()),
      alive_(std::make_shared<bool>(true)) {
  HAST_ASSERT(owner_ > 0);
  HAST_ASSERT(&node.world() == &world);
}

SimDiskHandle::~SimDiskHandle() {
  // The node marks its resources dead before destroying them; if it did not, this is a
  // process death all the same.
  if (!dead_) mark_dead(DeathKind::kill);
  *alive_ = false;
}

void SimDiskHandle::check_request(std::uint64_t offset, std::uint64_t length) const {
  const std::uint32_t sector = disk_.options().sector_size;
  HAST_ASSERT_MSG(offset % sector == 0, "disk {}: unaligned offset {}", disk_.name(), offset);
  HAST_ASSERT_MSG(length % sector == 0, "disk {}: unaligned length {}", disk_.name(), length);
  HAST_ASSERT_MSG(offset <= disk_.size() && length <= disk_.size() - offset,
                  "disk {}: range {}+{} beyond {} bytes", disk_.name(), offset, length,
                  disk_.size());
}

template <typename Completer>
Result<void> SimDiskHandle::await(std::string_view kind,
                                  const std::shared_ptr<Completion>& completion,
                                  Completer complete) {
  HAST_ASSERT(!dead_);
  HAST_ASSERT(node_.running());
  fiber::Scheduler& scheduler = node_.scheduler();
  const Duration latency = disk_.draw_latency(kind);
  fiber::Waker waker = scheduler.prepare_wait();
  world_.at_node(node_.id(), world_.now() + latency, kind,
                 [alive = alive_, completion, waker, complete = std::move(complete)] {
                   // A dead node's requests were settled by mark_dead(); never touch it.
                   if (!*alive) return;
                   completion->result = complete(*completion);
                   completion->done = true;
                   waker.wake();
                 });
  const fiber::WakeReason reason = scheduler.wait(std::nullopt);
  if (reason == fiber::WakeReason::cancelled) {
    completion->abandoned = true;  // the caller's buffers may be gone by the completion
    return fail(Errc::cancelled, fmt::format("sim disk {}: {} cancelled", disk_.name(), kind));
  }
  HAST_ASSERT(reason == fiber::WakeReason::woken);
  HAST_ASSERT(completion->done);
  return completion->result;
}

Result<void> SimDiskHandle::read(std::uint64_t offset, std::span<std::byte> buffer) {
  check_request(offset, buffer.size());
  if (dead_) return fail(Errc::cancelled, "sim disk read on a dead node");
  auto completion = std::make_shared<Completion>();
  completion->read_target = buffer;
  SimDisk* disk = &disk_;
  // While the caller waits, the event reads into `buffer` (no copy); a cancelled caller may
  // be gone by then, so the event reads into scratch: same draws and trace either way.
  Result<void> result = await("disk.read", completion, [disk, offset](Completion& done) {
    if (!done.abandoned) return disk->complete_read(offset, done.read_target);
    std::vector<std::byte> scratch(done.read_target.size());
    return disk->complete_read(offset, scratch);
  });
  if (!result) std::fill(buffer.begin(), buffer.end(), read_failure_poison);
  HAST_ASSERT(completion->done || !result);
  return result;
}

Result<void> SimDiskHandle::write(std::uint64_t offset, std::span<const std::byte> data, Fua fua) {
  check_request(offset, data.size());
  if (dead_) return fail(Errc::cancelled, "sim disk write on a dead node");
  SimDisk* disk = &disk_;
  // The device borrows `data` while this fiber waits for the completion; a cancelled
  // wait returns at once, so the write takes its own copy before the caller moves on.
  const std::uint64_t op = disk_.begin_write_borrowed(owner_, offset, data, fua);
  HAST_ASSERT(disk_.in_flight_count() > 0);
  auto completion = std::make_shared<Completion>();
  Result<void> result = await(fua == Fua::yes ? "disk.write_fua" : "disk.write", completion,
                              [disk, op](Completion&) { return disk->complete_write(op); });
  if (completion->abandoned) disk_.adopt_write(op);
  return result;
}

Result<void> SimDiskHandle::flush() {
  HAST_ASSERT(disk_.size() > 0);
  if (dead_) return fail(Errc::cancelled, "sim disk flush on a dead node");
  SimDisk* disk = &disk_;
  const std::uint64_t watermark = disk_.begin_flush();
  HAST_ASSERT(watermark <= disk_.pristine().watermark());
  return await("disk.flush", std::make_shared<Completion>(),
               [disk, watermark](Completion&) { return disk->complete_flush(watermark); });
}

Result<void> SimDiskHandle::discard(std::uint64_t offset, std::uint64_t length) {
  check_request(offset, length);
  if (dead_) return fail(Errc::cancelled, "sim disk discard on a dead node");
  SimDisk* disk = &disk_;
  const std::uint64_t op = disk_.begin_discard(owner_, offset, length);
  HAST_ASSERT(disk_.in_flight_count() > 0);
  return await("disk.discard", std::make_shared<Completion>(),
               [disk, op](Completion&) { return disk->complete_write(op); });
}

void SimDiskHandle::mark_dead(DeathKind kind) {
  if (dead_) return;
  dead_ = true;
  *alive_ = false;
  world_.trace("disk.handle.dead", owner_, static_cast<std::uint64_t>(kind));
  disk_.settle_in_flight(owner_, kind);
  if (kind == DeathKind::power_loss) disk_.power_loss();
  HAST_ASSERT(!*alive_);
  HAST_ASSERT(kind != DeathKind::power_loss || disk_.pending_write_count() == 0);
}

}  // namespace hast::sim
