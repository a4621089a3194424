// The primary: lifecycle and client requests (see primary.h).
#include "core/replication/primary.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/io/byte_buffer.h"
#include "core/replication/primary_internal.h"

namespace hast::replication {
namespace {

// Extents [first, last] covered by a byte range.
std::pair<std::uint64_t, std::uint64_t> extent_span(const meta::Activemap& map,
                                                    std::uint64_t offset, std::uint64_t length) {
  HAST_ASSERT(length > 0);
  return {map.extent_of(offset).value, map.extent_of(offset + length - 1).value};
}

Result<void> io_error(std::string_view what) {
  return fail(Errc::io, std::string(what));
}

// The bytes `data` of the client's write `client`, kept for a remote leg that may outlive
// its answer: the client's own buffer when the frontend hands it over (BlockRequest::owned;
// no copy, and `data` still names the same bytes), else a copy. Never empty.
ByteBuffer keep_for_remote(const BlockRequest& client, std::span<const std::byte> data) {
  HAST_ASSERT(!data.empty());
  ByteBuffer* offered = client.op == BlockOp::write ? client.owned : nullptr;
  if (offered == nullptr) return ByteBuffer::copy_of(data);
  HAST_ASSERT_MSG(offered->data() == data.data() && offered->size() == data.size(),
                  "frontend offered a buffer of {} bytes that is not its WRITE's {} bytes "
                  "at offset {}",
                  offered->size(), data.size(), client.offset);
  ByteBuffer taken = std::move(*offered);
  HAST_ASSERT(offered->empty());
  return taken;
}

// Remote FLUSH batching (remote_flusher_loop): writes wait at most this long for a FLUSH
// that only keeps extents marked anyway, and no more than this many wait at once.
constexpr auto kFlushDeferMax = std::chrono::seconds(1);
constexpr std::size_t kUnflushedMax = 4096;

// Whether every extent the ranges cover is in the keep-dirty set: marked on disk whatever
// a FLUSH says, so flushing them now cleans nothing.
bool all_kept_dirty(const meta::Activemap& map,
                    std::span<const std::pair<std::uint64_t, std::uint64_t>> ranges) {
  for (auto [offset, length] : ranges) {
    auto [first, last] = extent_span(map, offset, length);
    for (std::uint64_t e = first; e <= last; e++)
      if (!map.in_keep_dirty(meta::ExtentIndex{e})) return false;
  }
  return true;
}

}  // namespace

Primary::Primary(ResourceContext& context, LocalComponent& local, BlockFrontend* frontend)
    : context_(context),
      local_(local),
      frontend_(frontend),
      generation_(Counters{local.metadata().local_count, local.metadata().remote_count}),
      locks_(context.io.scheduler),
      requests_(context.io.scheduler, request_count_max),
      handed_(request_count_max),
      group_(context.io.scheduler),
      link_changed_(context.io.scheduler),
      reconnect_now_(context.io.scheduler),
      unflushed_ready_(context.io.scheduler) {}

Primary::~Primary() {
  HAST_ASSERT_MSG(group_.size() == 0 || context_.io.scheduler.is_shut_down(),
                  "primary destroyed while running");
}

bool Primary::connected() const {
  return link_ != nullptr && link_->up;
}

Result<void> Primary::start() {
  HAST_ASSERT(!started_);
  HAST_TRY(local_.load_map());
  started_ = true;
  // Everything marked on disk is dirty until a sync proves otherwise.
  HAST_ASSERT(group_.spawn("primary-connect", [this] { connection_loop(); }).has_value());
  HAST_ASSERT(group_.spawn("primary-sync", [this] { sync_loop(); }).has_value());
  HAST_ASSERT(group_.spawn("primary-flush", [this] { remote_flusher_loop(); }).has_value());
  if (frontend_ != nullptr) {
    HAST_ASSERT(group_.spawn("primary-frontend", [this] { frontend_loop(); }).has_value());
  }
  return ok();
}

void Primary::stop() {
  group_.cancel();
  if (link_ != nullptr) {
    link_down(*link_, Error(Errc::cancelled, "role change"));
    link_->fibers.cancel();
  }
  ignore_error(group_.join(), "a cancelled group always ends");
  if (link_ != nullptr) ignore_error(link_->fibers.join(), "a cancelled group always ends");
  link_.reset();
}

void Primary::frontend_loop() {
  while (true) {
    auto request = frontend_->next_request();
    if (!request) return;
    if (!requests_.acquire()) {
      frontend_->complete(*request, fail(Errc::cancelled, "role change"));
      return;
    }
    BlockRequest* handed = &handed_.take();
    *handed = *request;
    auto spawned = group_.spawn("request", [this, handed] {
      RequestSlot slot(requests_);
      BlockRequest taken = std::move(*handed);
      handed_.give_back(*handed);
      handle(std::move(taken), slot);
    });
    if (!spawned) {
      handed_.give_back(*handed);
      requests_.release();
      frontend_->complete(*request, fail(Errc::cancelled, "role change"));
      return;
    }
  }
}

void Primary::handle(BlockRequest request, RequestSlot& slot) {
  Result<void> result = ok();
  switch (request.op) {
    case BlockOp::read:
      result = handle_read(request);
      break;
    case BlockOp::flush:
      result = handle_flush();
      break;
    case BlockOp::write:
    case BlockOp::write_zeroes:
    case BlockOp::discard:
      result = handle_write(request, context_.config.replication, slot);
      break;
  }
  // The write path answers its client itself, as early as the mode allows.
  if (request.op == BlockOp::read || request.op == BlockOp::flush) {
    frontend_->complete(request, result);
  }
}

bool Primary::stale_range(std::uint64_t offset, std::uint64_t length) const {
  auto [first, last] = extent_span(local_.map(), offset, length);
  for (std::uint64_t e = first; e <= last; e++) {
    if (meta::is_stale(local_.metadata(), meta::ExtentIndex{e})) return true;
  }
  return false;
}

// True when some extent of the range may be listed stale in the block the disk holds
// instead of metadata() (one being written, or one whose write failed and may have landed).
bool Primary::stale_maybe_on_disk(std::uint64_t offset, std::uint64_t length) const {
  auto [first, last] = extent_span(local_.map(), offset, length);
  return local_.unsettled_block_matches([first = first, last = last](const meta::Metadata& block) {
    for (std::uint64_t e = first; e <= last; e++) {
      if (meta::is_stale(block, meta::ExtentIndex{e})) return true;
    }
    return false;
  });
}

// Whether a local write that succeeded makes the write good on this node. Not on an extent
// stale here: the secondary's copy is the authoritative one (the rest of the extent is
// still old here, and resync copies it from the secondary), so only the remote leg
// decides. Judged against the metadata the disk holds, not only memory: when a stale mark
// of the range is being written, or a write of one failed (it may have landed), this waits
// until the disk is known to hold metadata() and judges that; if it cannot know, the local
// leg does not count. May suspend.
bool Primary::local_leg_counts(std::uint64_t offset, std::uint64_t length) {
  if (stale_maybe_on_disk(offset, length) && !local_.settle_metadata()) return false;
  return !stale_range(offset, length);
}

bool Primary::extents_clean(std::uint64_t offset, std::uint64_t length) const {
  const meta::Activemap& map = local_.map();
  auto [first, last] = extent_span(map, offset, length);
  for (std::uint64_t e = first; e <= last; e++) {
    meta::ExtentIndex extent{e};
    if (map.needs_sync(extent) || map.pending_writes(extent) > 0) return false;
    if (meta::is_stale(local_.metadata(), extent)) return false;
  }
  return true;
}

// True when the local copy of some extent of the range is older than the secondary's.
bool Primary::reads_go_remote(std::uint64_t offset, std::uint64_t length) const {
  const meta::Activemap& map = local_.map();
  auto [first, last] = extent_span(map, offset, length);
  for (std::uint64_t e = first; e <= last; e++) {
    meta::ExtentIndex extent{e};
    if (meta::is_stale(local_.metadata(), extent)) return true;
    if (sync_source_ == SyncSource::secondary && map.needs_sync(extent)) return true;
  }
  return false;
}

// A read is served per extent: a range may cover an extent whose good copy is here and
// one whose good copy is on the secondary (stale here, or behind while syncing from it),
// and neither node alone holds the whole range.
Result<void> Primary::handle_read(const BlockRequest& request) {
  stats_.reads++;
  const meta::Activemap& map = local_.map();
  std::uint64_t end = request.offset + request.length;
  std::uint64_t at = request.offset;
  while (at < end) {
    std::uint64_t extent_end = map.extent_start(map.extent_of(at)) + map.extent_size_bytes();
    std::uint64_t piece = std::min(end, extent_end) - at;
    auto part = request.data.subspan(at - request.offset, piece);
    HAST_TRY(read_piece(at, part));
    at += piece;
  }
  return ok();
}

// One extent's part of a read: locally, or from the secondary when its copy is the good
// one, or when the local read failed and the secondary is known to hold the same bytes.
Result<void> Primary::read_piece(std::uint64_t offset, std::span<std::byte> buffer) {
  if (!reads_go_remote(offset, buffer.size())) {
    auto local = local_.read(offset, buffer);
    if (local) return ok();
    stats_.read_errors++;
    log_error(context_.io.log, "[{}] Local request failed ({}), trying remote node. READ({}, {}).",
              context_.config.name, local.error().message(), offset, buffer.size());
    // Only a secondary known to hold the same bytes may answer instead (O9).
    bool clean = extents_clean(offset, buffer.size()) ||
                 context_.mutated(Mutation::read_fallback_when_stale);
    if (!clean) return local;
  }
  RemoteOp op(context_.io.scheduler);
  op.request.cmd = proto::RequestCommand::read;
  op.request.offset = offset;
  op.request.length = buffer.size();
  op.read_into = buffer;
  if (!submit(op, true)) return fail(Errc::disconnected, "READ: the secondary is not connected");
  stats_.remote_reads++;
  if (wait_remote(op, true) == LegState::ok) return ok();
  return fail(op.error);
}

Result<void> Primary::raise_generation() {
  if (context_.mutated(Mutation::skip_generation_raise)) return ok();  // mutation
  ignore_needs_persist(generation_.on_unreplicated_write());
  return persist_counters();
}

// Writes the counters when memory and disk differ. Checking the difference, not the
// tracker's "changed" answer, means a failed metadata write is retried by the next caller
// instead of leaving the disk behind for good.
Result<void> Primary::persist_counters() {
  return local_.update_metadata([this](meta::Metadata& updated) {
    const Counters& counters = generation_.counters();
    if (updated.local_count == counters.local && updated.remote_count == counters.remote) {
      return false;
    }
    updated.local_count = counters.local;
    updated.remote_count = counters.remote;
    updated.prev_role = meta::Role::primary;
    return true;
  });
}

// Records that the secondary's copy of the range's extents is the good one (defect 3). Not
// when another write in such an extent is in flight or the secondary lacks something of it
// (it is dirty): then neither node would hold the whole extent, and the write fails instead.
// Returns once the record is durable on disk, even when memory already lists the extents
// (update_metadata writes again after a failed write, which may have landed without them);
// the caller acknowledges only after that, and fails the write when this fails.
Result<void> Primary::mark_stale(std::uint64_t offset, std::uint64_t length) {
  meta::Metadata updated = local_.metadata();
  const meta::Activemap& map = local_.map();
  auto [first, last] = extent_span(map, offset, length);
  for (std::uint64_t e = first; e <= last; e++) {
    meta::ExtentIndex extent{e};
    if (meta::is_stale(updated, extent)) continue;
    if (map.needs_sync(extent) || map.pending_writes(extent) > 1) {
      return fail(Errc::io, "local write failed on an extent the secondary does not hold whole");
    }
  }
  bool full = false;
  HAST_TRY(local_.update_metadata([&, first = first, last = last](meta::Metadata& marked) {
    meta::Metadata before = marked;
    for (std::uint64_t e = first; e <= last; e++) {
      if (meta::add_stale(marked, meta::ExtentIndex{e}) != meta::StaleAdd::full) continue;
      full = true;
      marked = before;
      return false;
    }
    return marked != before;
  }));
  if (full) return fail(Errc::no_space, "stale extent list full");
  return ok();
}

Result<void> Primary::handle_write(const BlockRequest& request, config::ReplicationMode mode,
                                   RequestSlot& slot) {
  if (request.op == BlockOp::discard) {
    stats_.deletes++;
    return write_range(request.offset, {}, false, true, Fua::no, mode, &request, &slot);
  }
  stats_.writes++;
  if (request.op == BlockOp::write) {
    return write_range(request.offset, request.data, false, false, request.fua, mode, &request,
                       &slot);
  }
  // WRITE_ZEROES: zero WRITEs no larger than a request may be (hole compression makes
  // them tiny on the wire), each waiting for both legs; the client hears once, at the end.
  std::uint64_t chunk = request_size_limit();
  if (request.length <= chunk) {
    std::vector<std::byte> zeroes(request.length);
    return write_range(request.offset, zeroes, true, false, request.fua, mode, &request, &slot);
  }
  std::vector<std::byte> zeroes(chunk);
  Result<void> result = ok();
  for (std::uint64_t done = 0; done < request.length && result; done += chunk) {
    std::uint64_t n = std::min(chunk, request.length - done);
    result = write_range(request.offset + done, std::span(zeroes).first(n), true, false,
                         request.fua, config::ReplicationMode::fullsync, nullptr, nullptr);
  }
  frontend_->complete(request, result);
  return result;
}

std::uint64_t Primary::request_size_limit() const {
  if (link_ == nullptr || !link_->up) return proto::request_size_send_default;
  return proto::request_size_send_max(link_->peer);
}

// One replicated write (or DELETE) of a range; answers `client` when the mode says so.
// `slot` (may be null): the client's request slot, given back once an async write's client
// was answered (defect 10, write_ack.h): what is left, the remote leg, is bounded by the
// replication backlog instead. With the resource in async, the range lock is released as
// soon as the local leg succeeded (range_lock.h): the remote leg is queued in order by then.
Result<void> Primary::write_range(std::uint64_t offset, std::span<const std::byte> data,
                                  bool zeroes, bool discard, Fua fua, config::ReplicationMode mode,
                                  const BlockRequest* client, RequestSlot* slot) {
  std::uint64_t length = discard ? client->length : data.size();
  auto answer = [&](Result<void> result) {
    if (client != nullptr) frontend_->complete(*client, std::move(result));
  };
  auto guard = locks_.lock(LockKind::regular, offset, length);
  if (!guard) {
    answer(fail(guard.error()));
    return fail(guard.error());
  }
  meta::Activemap& map = local_.map();
  if (map.write_start(offset, length) == meta::NeedsFlush::yes) {
    auto persisted = local_.persist_map(map.generation());
    if (!persisted) {
      ignore_needs_flush(map.write_complete(offset, length, meta::RemoteAck::no));
      answer(fail(persisted.error()));
      return fail(persisted.error());
    }
  }
  // FUA and DELETE wait for both legs, like fullsync (§7.3); a version 1 peer has no
  // memsync. `mode` was read from the configuration when the request arrived (handle()),
  // so a reload changes the mode of new requests only.
  if (discard || fua == Fua::yes) mode = config::ReplicationMode::fullsync;
  if (mode == config::ReplicationMode::memsync && link_ != nullptr && link_->up &&
      link_->version < 2) {
    mode = config::ReplicationMode::fullsync;
  }
  auto [first, last] = extent_span(map, offset, length);
  bool stale_room =
      local_.metadata().stale_extents.size() + (last - first + 1) <= meta::stale_extents_max;
  config::ReplicationMode ack_mode = mode;
  if ((mode == config::ReplicationMode::fullsync &&
       context_.mutated(Mutation::fullsync_ack_before_remote)) ||
      (mode == config::ReplicationMode::memsync &&
       context_.mutated(Mutation::memsync_ack_before_received))) {
    ack_mode = config::ReplicationMode::async;  // the bug: answer at local completion
  }
  WriteAck ack(ack_mode, stale_room);
  bool async = ack_mode == config::ReplicationMode::async;
  // The client's buffer is valid only until it is answered, which async may do before
  // the remote leg is even sent: the remote leg then keeps the bytes itself (declared
  // before `op`, so they outlive it). The local leg ends before any answer, so it writes
  // from `data`, which still names the same bytes when the buffer was handed over.
  ByteBuffer kept;
  if (async && client != nullptr && !data.empty()) kept = keep_for_remote(*client, data);
  RemoteOp op(context_.io.scheduler);
  op.request.cmd = discard ? proto::RequestCommand::discard : proto::RequestCommand::write;
  op.request.offset = offset;
  op.request.length = length;
  op.request.memsync = ack_mode == config::ReplicationMode::memsync;
  op.data = kept.empty() ? data : std::span<const std::byte>(kept.span());
  // Queue the remote leg before the local one, so both run at once; in fullsync it leads.
  bool remote_leads = ack_mode == config::ReplicationMode::fullsync &&
                      context_.config.replication == config::ReplicationMode::fullsync &&
                      sender_idle();
  BacklogEntry backlog;
  if (!queue_remote_leg(op, async, backlog)) {
    ack.remote_done(LegState::unavailable);
  } else if (remote_leads) {
    let_remote_leg_lead(op);
  }
  Result<void> local = discard  ? local_.discard(offset, length)
                       : zeroes ? local_.write_zeroes(offset, length, fua)
                                : local_.write(offset, data, fua);
  ack.local_done(local.has_value() && local_leg_counts(offset, length));
  if (!local) {
    discard ? stats_.delete_errors++ : stats_.write_errors++;
    log_error(context_.io.log, "[{}] Local request failed ({}): {}({}, {}).", context_.config.name,
              local.error().message(), discard ? "DELETE" : "WRITE", offset, length);
  }
  bool noted_received = false;
  Result<void> answered = ok();
  auto try_answer = [&] {
    auto verdict = ack.take_ack();
    if (!verdict) return;
    Result<void> result = *verdict ? ok() : io_error("write failed on both nodes");
    if (result && ack.local() == LegState::failed) result = mark_stale(offset, length);
    if (result && ack.acknowledges_unreplicated()) result = raise_generation();
    answered = result;
    answer(std::move(result));
  };
  try_answer();
  let_go_after_local(ack, async, *guard, slot);
  while (!ack.finished()) {
    LegState state = wait_remote(op, !op.request.memsync || noted_received);
    if (op.received && !noted_received) {
      noted_received = true;
      ack.remote_received();
    }
    if (state != LegState::pending) ack.remote_done(state);
    try_answer();
  }
  finish_write(ack, offset, length);
  return answered;
}

// After the local leg of a write and its first chance to answer: in async (defect 10) the
// remote leg left must hold up no client. The range lock goes once the local leg succeeded
// (with the resource in async): nothing of the write touches the local disk any more and
// its remote leg is queued (or over), so a later overlapping write may run now and still
// reach both disks after it (range_lock.h). The client's request slot goes once an async
// write's client was answered (`async_ack`): the backlog entry bounds the rest.
void Primary::let_go_after_local(const WriteAck& ack, bool async_ack, RangeLockGuard& guard,
                                 RequestSlot* slot) {
  if (context_.mutated(Mutation::async_holds_slot_and_lock)) return;  // mutation
  if (ack.local() == LegState::ok &&
      context_.config.replication == config::ReplicationMode::async) {
    guard.release();
  }
  if (async_ack && ack.acked() && slot != nullptr) slot->release();
}

// Queues `op`, the remote leg of a write, for the secondary; `async_ack`: the client is
// answered without it. fullsync and memsync wait for room in the link's queue. async never
// waits for the peer (defect 10): a leg answered without goes only into the replication
// backlog (`entry`) if that has room, and no leg of a resource in async (FUA, DELETE and
// write-zeroes ones too, which it answers like fullsync) waits for room in the link's
// queue, which it holds its range lock over. Otherwise the send is dropped. False when the
// leg was not queued (link down, or dropped): it is unavailable, and the extents go to
// sync when the write ends (the resync sends them while still connected). Never suspends
// in async.
bool Primary::queue_remote_leg(RemoteOp& op, bool async_ack, BacklogEntry& entry) {
  bool never_wait = async_ack || context_.config.replication == config::ReplicationMode::async;
  if (!never_wait) return submit(op, true);
  bool room = !async_ack || async_backlog_ < async_backlog_max;
  if (room && submit(op, false)) {
    if (async_ack) entry.join(async_backlog_);
    return true;
  }
  if (connected()) stats_.async_dropped++;
  return false;
}

bool Primary::sender_idle() const {
  return link_ != nullptr && link_->up && link_->sender_idle && link_->queue.size() == 0;
}

// A fullsync answer waits for the secondary's final reply, which comes a network hop, the
// secondary's wake-up and write, and a reply hop after the send: the longer leg, so it
// starts first. Measured (4 KiB QD1 writes, loopback pair, builds alternating in one run):
// with the local write submitted first the secondary's write began 80-100 us after the
// primary's; with the send first p50 311 -> 289 us (busypoll 200: 245 -> 229), CPU per
// write -7 %. async, answered on the local leg, lost 18 us; memsync (the local leg and the
// early reply) was even. Only for a resource in fullsync: a FUA or DELETE of the other
// modes keeps their order (and the simulator's runs of those modes theirs). Called
// when the sender was idle, so it sends this request as soon as it runs, and at most its
// non-blocking send comes before the local write (a send that must wait for room suspends
// the sender, and this goes on); with the sender busy (more requests in flight) the local
// write goes at once, as waiting for the batch would hold it up.
void Primary::let_remote_leg_lead(RemoteOp& op) {
  op.leading = true;
  while (!op.taken && op.final == LegState::pending) {
    if (op.changed.wait(std::nullopt) != fiber::WakeReason::woken) break;  // cancelled
  }
  op.leading = false;
}

// After both legs: settle the extents and the generation counter.
void Primary::finish_write(WriteAck& ack, std::uint64_t offset, std::uint64_t length) {
  HAST_ASSERT(ack.finished());
  HAST_ASSERT(ack.acked());
  WriteVerdict verdict = ack.verdict();
  meta::Activemap& map = local_.map();
  if (verdict.fate == ExtentFate::clean || context_.mutated(Mutation::no_dirty_on_remote_failure)) {
    // Clean only once a remote FLUSH covers it (defect 9): the flusher completes it.
    unflushed_.emplace_back(offset, length);
    unflushed_ready_.set();
  } else if (map.write_complete(offset, length, meta::RemoteAck::no) == meta::NeedsFlush::yes) {
    ignore_error(local_.persist_map(map.generation()), "a set bit was already on disk");
  }
  if (verdict.success && ack.remote() != LegState::ok) {
    ignore_error(raise_generation(), "logged by the metadata writer; retried next write");
  }
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> Primary::take_unflushed() {
  auto covered = std::move(unflushed_);
  unflushed_.clear();
  unflushed_kept_ = 0;
  return covered;
}

// all_kept_dirty(map, unflushed_), without checking again the writes it found kept before:
// an extent in the keep-dirty set stays there until the set loses some extent, and
// unflushed_ only grows at its end between takes. The flusher asks at every wake-up (each
// write's, at most every millisecond) while up to kUnflushedMax writes wait; a rescan of
// all of them was a measurable part of a busy primary's time.
bool Primary::unflushed_all_kept() {
  const meta::Activemap& map = local_.map();
  // Every clear of unflushed_ resets the count with it (take_unflushed, the link's loss).
  HAST_ASSERT(unflushed_kept_ <= unflushed_.size());
  if (map.keep_dirty_removals() != unflushed_removals_) {
    unflushed_kept_ = 0;
    unflushed_removals_ = map.keep_dirty_removals();
  }
  std::span<const std::pair<std::uint64_t, std::uint64_t>> all = unflushed_;
  while (unflushed_kept_ < all.size()) {
    if (!all_kept_dirty(map, all.subspan(unflushed_kept_, 1))) return false;
    unflushed_kept_++;
  }
  HAST_ASSERT(unflushed_kept_ == unflushed_.size());
  return true;
}

// Settles writes the secondary acknowledged once the FLUSH `op` that covers them ended. An
// extent may become clean only when both copies are durable: the remote FLUSH succeeded
// (or a cacheless peer refused it) and so did the local one, else a power loss of either
// node could leave the copies different under a clean bit. Anything else sends them to
// sync.
void Primary::settle_flushed(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& covered,
                             RemoteOp& op, bool sent, bool local_ok) {
  LegState remote = sent ? wait_remote(op, true) : LegState::unavailable;
  bool remote_ok =
      local_ok && (remote == LegState::ok ||
                   (remote == LegState::failed && op.error.code() == Errc::unsupported) ||
                   context_.mutated(Mutation::drop_remote_flush));
  meta::Activemap& map = local_.map();
  bool flush_map = false;
  for (auto [offset, length] : covered) {
    auto ack = remote_ok ? meta::RemoteAck::yes : meta::RemoteAck::no;
    flush_map = map.write_complete(offset, length, ack) == meta::NeedsFlush::yes || flush_map;
  }
  if (flush_map) ignore_error(local_.persist_map(map.generation()), "clears may be lazy");
}

Result<void> Primary::handle_flush() {
  stats_.flushes++;
  // The remote FLUSH covers every write whose final reply came before it.
  auto covered = take_unflushed();
  RemoteOp op(context_.io.scheduler);
  op.request.cmd = proto::RequestCommand::flush;
  bool sent = submit(op, true);
  auto local = local_.flush();
  if (!local) stats_.flush_errors++;
  settle_flushed(covered, op, sent, local.has_value());
  // A FLUSH succeeds only when the local flush did (defect 4).
  return local;
}

// Writes the secondary acknowledged become clean only under a remote FLUSH (defect 9);
// the flusher sends one for what gathered within 1 ms of the first. A batch whose writes
// all lie in keep-dirty extents waits (up to kFlushDeferMax, or kUnflushedMax writes)
// until one that could become clean joins it: flushing those writes would leave their
// extents marked on disk all the same, and on the same disk as the client's writes each
// FLUSH costs them latency. Until then they count as pending on their extents; a client
// FLUSH or a disconnect settles them as any other.
void Primary::remote_flusher_loop() {
  bool waiting = false;  // a batch of kept extents is waiting, since `since`
  Instant since{};
  while (true) {
    Deadline until;
    if (waiting) until = since + kFlushDeferMax;
    auto woken = unflushed_ready_.wait(until);
    if (!woken && woken.error().code() != Errc::timed_out) return;
    unflushed_ready_.reset();
    // Let a few more writes join the batch.
    if (woken && !context_.io.scheduler.sleep_for(std::chrono::milliseconds(1))) return;
    Instant now = context_.io.clock.now();
    bool due = !woken || (waiting && now >= since + kFlushDeferMax) ||
               unflushed_.size() >= kUnflushedMax || !unflushed_all_kept();
    if (unflushed_.empty() || !due) {
      if (!waiting) since = now;
      waiting = !unflushed_.empty();
      continue;
    }
    waiting = false;
    auto covered = take_unflushed();
    RemoteOp op(context_.io.scheduler);
    op.request.cmd = proto::RequestCommand::flush;
    bool sent = !context_.mutated(Mutation::drop_remote_flush) && submit(op, true);
    bool local_ok = local_.flush().has_value();
    settle_flushed(covered, op, sent, local_ok);
  }
}

}  // namespace hast::replication
