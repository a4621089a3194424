// Synchronisation (reference/hast-spec.md §8.3): while connected, copy every extent the
// activemap marks for sync, in chunks of at most one request, several chunks in flight,
// at most `syncrate` bytes per second, and mark an extent clean only once all its chunks
// are durable on the target. Direction per extent: from the secondary when the handshake
// said the primary is out of date or the extent is stale on the primary (a local write
// failed there, defect 3); from the primary otherwise. A disconnect interrupts the pass;
// the next one restarts at the first unsynced extent (progress is kept per extent).
#include <fmt/format.h>

#include "core/replication/primary_internal.h"

namespace hast::replication {
namespace {

constexpr std::size_t kChunksInFlightMax = 4;

std::string humanize(std::uint64_t bytes) {
  static constexpr const char* units[] = {"B", "KB", "MB", "GB", "TB", "PB"};
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(units)) {
    value /= 1024;
    unit++;
  }
  if (unit == 0) return fmt::format("{}B", bytes);
  return value < 10 ? fmt::format("{:.1f}{}", value, units[unit])
                    : fmt::format("{:.0f}{}", value, units[unit]);
}

}  // namespace

void Primary::sync_loop() {
  while (true) {
    while (!connected()) {
      link_changed_.reset();
      if (connected()) break;
      if (!link_changed_.wait()) return;
    }
    std::uint64_t number = link_->number;
    auto passed = sync_pass(*link_);
    if (context_.io.scheduler.current_cancelled()) return;
    if (!passed) {
      log_warning(context_.io.log, "[{}] Synchronization failed: {}", context_.config.name,
                  passed.error().message());
    }
    // Look again shortly for extents that writes the secondary did not acknowledge have
    // marked since, or sooner when the link changes.
    do {
      link_changed_.reset();
      auto waited = link_changed_.wait(context_.deadline(std::chrono::milliseconds(100)));
      if (!waited && waited.error().code() == Errc::cancelled) return;
    } while (connected() && link_->number == number && !local_.map().sync_pending());
  }
}

// async (defect 10): while the replication backlog is more than half full the link is not
// keeping up with the clients' writes. A sync chunk sent now would only lengthen the queue
// and hold, until the peer answers, a range the clients write to (§8.3): wait until it
// drains, or the link goes down. Errors: cancelled.
Result<void> Primary::wait_backlog_drained(const Link& link) {
  while (link.up && async_backlog_ > async_backlog_max / 2) {
    HAST_TRY(context_.io.scheduler.sleep_for(std::chrono::milliseconds(10)));
  }
  return ok();
}

Result<void> Primary::sync_pass(Link& link) {
  meta::Activemap& map = local_.map();
  map.sync_rewind();
  if (!map.sync_pending()) return sync_complete();
  HAST_TRY(wait_backlog_drained(link));
  if (!link.up) return ok();
  sync_ = SyncProgress{true, sync_source_, 0, map.stats().sync_extents * map.extent_size_bytes(),
                       context_.io.clock.now()};
  log_info(context_.io.log, "[{}] Synchronization started. {} to go.", context_.config.name,
           humanize(sync_.total_bytes));
  context_.report(HookEvent::syncstart);
  Result<void> outcome = copy_marked(link);
  sync_.running = false;
  if (!outcome || !link.up || map.sync_pending()) {
    log_info(context_.io.log, "[{}] Synchronization interrupted. {} synchronized so far.",
             context_.config.name, humanize(sync_.synced_bytes));
    context_.report(HookEvent::syncintr);
    return outcome;
  }
  stats_.synced_bytes += sync_.synced_bytes;
  log_info(context_.io.log, "[{}] Synchronization complete. {} synchronized.", context_.config.name,
           humanize(sync_.synced_bytes));
  context_.report(HookEvent::syncdone);
  return sync_complete();
}

// One walk over the marked extents with up to kChunksInFlightMax chunks in flight. Every
// chunk fiber is joined before returning: they use this frame's locals.
Result<void> Primary::copy_marked(Link& link) {
  meta::Activemap& map = local_.map();
  Instant started = context_.io.clock.now();
  fiber::TaskGroup chunks(context_.io.scheduler);
  fiber::Semaphore slots(context_.io.scheduler, kChunksInFlightMax);
  // Per extent in flight: chunks not yet done, whether one failed, and whether its last
  // chunk was handed out. Chunks complete in any order; the extent is finished by whichever
  // completes last once the last one was handed out.
  struct ExtentProgress {
    int outstanding = 0;
    bool failed = false;
    bool last_handed_out = false;
  };
  std::map<std::uint64_t, ExtentProgress> progress;
  Result<void> outcome = ok();
  int rewinds = 0;
  while (link.up && outcome) {
    outcome = wait_backlog_drained(link);
    if (!outcome || !link.up) break;
    auto chunk = map.next_sync_chunk(request_size_limit());
    if (!chunk) {
      if (chunks.size() > 0) {
        outcome = chunks.join();  // the extents in flight may leave marks behind
      } else if (map.sync_pending() && rewinds++ < 2) {
        map.sync_rewind();  // marks made behind the cursor
      } else {
        break;
      }
      continue;
    }
    outcome = slots.acquire();
    if (!outcome) break;
    std::uint64_t extent = chunk->extent.value;
    ExtentProgress& started_chunk = progress[extent];
    started_chunk.outstanding++;
    started_chunk.last_handed_out = started_chunk.last_handed_out || chunk->last_in_extent;
    auto spawned = chunks.spawn("sync-chunk", [this, &slots, &progress, chunk, extent] {
      fiber::Permit permit(slots);
      auto copied = sync_chunk(chunk->offset, chunk->length);
      if (copied) sync_.synced_bytes += chunk->length;
      ExtentProgress& done = progress[extent];
      done.failed = done.failed || !copied;
      if (--done.outstanding > 0 || !done.last_handed_out) return;
      bool ok = !done.failed;
      progress.erase(extent);
      if (ok) ignore_error(finish_extent(chunk->extent, chunk->pass), "retried next pass");
    });
    if (!spawned) {
      slots.release();
      outcome = fail(spawned.error());
      break;
    }
    if (context_.config.syncrate_bytes_per_second > 0) {
      double seconds = static_cast<double>(sync_.synced_bytes) /
                       static_cast<double>(context_.config.syncrate_bytes_per_second);
      auto due =
          started + std::chrono::duration_cast<Duration>(std::chrono::duration<double>(seconds));
      outcome = context_.io.scheduler.sleep_until(due);
    }
  }
  chunks.cancel_and_join();
  return outcome;
}

// Copies one chunk in the extent's direction, under the sync range lock.
Result<void> Primary::sync_chunk(std::uint64_t offset, std::uint64_t length) {
  auto guard = locks_.lock(LockKind::sync, offset, length);
  if (!guard) return fail(guard.error());
  std::vector<std::byte> buffer(length);
  meta::ExtentIndex extent = local_.map().extent_of(offset);
  bool from_secondary =
      sync_source_ == SyncSource::secondary || meta::is_stale(local_.metadata(), extent);
  if (context_.mutated(Mutation::sync_wrong_direction)) from_secondary = !from_secondary;
  RemoteOp op(context_.io.scheduler);
  op.request.offset = offset;
  op.request.length = length;
  if (from_secondary) {
    op.request.cmd = proto::RequestCommand::read;
    op.read_into = buffer;
    if (!submit(op, true) || wait_remote(op, true) != LegState::ok) return fail(op.error);
    return local_.write(offset, buffer, Fua::no);
  }
  HAST_TRY(local_.read(offset, buffer));
  op.request.cmd = proto::RequestCommand::write;
  op.data = buffer;
  if (!submit(op, true) || wait_remote(op, true) != LegState::ok) return fail(op.error);
  return ok();
}

// Every chunk of `extent` was copied: make it durable on both nodes (the source may hold
// it only in a volatile cache too), then clean.
Result<void> Primary::finish_extent(meta::ExtentIndex extent, std::uint64_t pass) {
  HAST_TRY(local_.flush());
  {
    RemoteOp op(context_.io.scheduler);
    op.request.cmd = proto::RequestCommand::flush;
    LegState flushed = submit(op, true) ? wait_remote(op, true) : LegState::unavailable;
    bool ok = flushed == LegState::ok ||
              (flushed == LegState::failed && op.error.code() == Errc::unsupported);
    if (!ok) return fail(op.error);
  }
  meta::Activemap& map = local_.map();
  if (map.sync_extent_done(extent, pass) == meta::NeedsFlush::yes) {
    HAST_TRY(local_.persist_map(map.generation()));
  }
  // Still marked (a write landed after the walk entered it): the secondary's copy stays
  // the authoritative one until a later pass copies the extent again.
  if (meta::is_stale(local_.metadata(), extent) && !map.needs_sync(extent) &&
      map.pending_writes(extent) == 0) {
    HAST_TRY(local_.update_metadata(
        [extent](meta::Metadata& updated) { return meta::remove_stale(updated, extent); }));
  }
  return ok();
}

// Nothing is left to copy while connected: the nodes mirror each other's counters now, and
// whichever node was the target is consistent again (defect 8).
Result<void> Primary::sync_complete() {
  if (!connected()) return ok();
  stats_.syncs_completed++;
  sync_source_ = SyncSource::undef;
  if (link_->peer.batch_flush) ignore_error(link_->queue.push(0), "a lost link resyncs");
  if (local_.metadata().inconsistent) {
    HAST_TRY(local_.update_metadata([](meta::Metadata& cleared) {
      bool changed = cleared.inconsistent;
      cleared.inconsistent = false;
      return changed;
    }));
  }
  ignore_needs_persist(generation_.on_sync_complete(secondary_counters_));
  return persist_counters();
}

}  // namespace hast::replication
