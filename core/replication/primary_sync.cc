// Synchronisation (reference/hast-spec.md §8.3): while connected, copy every extent the
// activemap marks for sync, in chunks of at most one request, several chunks in flight,
// at most `syncrate` bytes per second, and mark an extent clean only once all its chunks
// are durable on both nodes. Copied extents are finished in batches (one local flush, one
// remote FLUSH and one map write for all of them) while the next chunks are copied.
// Direction per extent: from the secondary when the handshake said the primary is out of
// date or the extent is stale on the primary (a local write failed there, defect 3); from
// the primary otherwise. A disconnect interrupts the pass; the next one restarts at the
// first unsynced extent (progress is kept per extent: what a finished batch cleaned stays
// clean; copied extents not finished yet, at most one batch, are copied again).
#include <fmt/format.h>

#include "core/io/byte_buffer.h"
#include "core/replication/primary_internal.h"

namespace hast::replication {
namespace {

// Chunks being copied at once (each holds a request-sized buffer).
constexpr std::size_t kChunksInFlightMax = 8;
// Copied extents finished together (wait_batch): one local flush, one remote FLUSH and
// one map write per batch. An interruption copies at most this much again.
constexpr std::uint64_t kBatchBytes = 32 << 20;
constexpr auto kBatchDelayMax = std::chrono::milliseconds(100);

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

// The bookkeeping of one walk (copy_marked's frame), shared by its chunk fibers.
struct Primary::SyncWalk {
  SyncWalk(fiber::Scheduler& scheduler, std::size_t slots_max)
      : chunks(scheduler), slots(scheduler, slots_max), chunk_done(scheduler) {}

  // Per extent in flight: chunks not yet done, whether one failed, and whether its last
  // chunk was handed out. Chunks complete in any order; the extent is copied once
  // whichever completes last sees the last one handed out.
  struct ExtentProgress {
    int outstanding = 0;
    bool failed = false;
    bool last_handed_out = false;
  };
  fiber::TaskGroup chunks;  // the chunk fibers, one of which may be finishing batches
  fiber::Semaphore slots;   // chunks being copied
  std::map<std::uint64_t, ExtentProgress> progress;
  // Extents whose every chunk was copied, each named by its last chunk (extent and
  // pass), waiting to be made durable and cleaned by the finishing fiber.
  std::vector<meta::SyncChunk> copied;
  std::uint64_t copied_bytes = 0;  // the extents' bytes in `copied`
  bool finishing = false;          // a chunk fiber is finishing batches (copy_chunk)
  fiber::WaitQueue chunk_done;     // a chunk was copied or failed (wait_batch)
};

// One walk over the marked extents with up to kChunksInFlightMax chunks being copied.
// Extents are finished in batches (finish_extents) while later chunks are copied. Every
// chunk fiber is joined before returning: they use the walk, a local.
Result<void> Primary::copy_marked(Link& link) {
  meta::Activemap& map = local_.map();
  Instant started = context_.io.clock.now();
  SyncWalk walk(context_.io.scheduler, kChunksInFlightMax);
  Result<void> outcome = ok();
  int rewinds = 0;
  while (link.up && outcome) {
    outcome = wait_backlog_drained(link);
    if (!outcome || !link.up) break;
    auto chunk = map.next_sync_chunk(request_size_limit());
    if (!chunk) {
      if (walk.chunks.size() > 0) {
        outcome = walk.chunks.join();  // copies and finishes in flight may leave marks
      } else if (map.sync_pending() && rewinds++ < 2) {
        map.sync_rewind();  // marks made behind the cursor
      } else {
        break;
      }
      continue;
    }
    outcome = walk.slots.acquire();
    if (!outcome) break;
    SyncWalk::ExtentProgress& entered = walk.progress[chunk->extent.value];
    entered.outstanding++;
    entered.last_handed_out = entered.last_handed_out || chunk->last_in_extent;
    auto spawned =
        walk.chunks.spawn("sync-chunk", [this, &walk, chunk = *chunk] { copy_chunk(walk, chunk); });
    if (!spawned) {
      walk.slots.release();
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
  walk.chunks.cancel_and_join();
  return outcome;
}

// A chunk fiber: copies `chunk` holding one of the walk's slots. The fiber completing an
// extent queues it for finishing and gives its slot back first, so the next chunks are
// copied while it finishes; it finishes batches itself unless another fiber already does.
void Primary::copy_chunk(SyncWalk& walk, const meta::SyncChunk& chunk) {
  {
    fiber::Permit permit(walk.slots);
    auto copied = sync_chunk(chunk.offset, chunk.length);
    if (copied) sync_.synced_bytes += chunk.length;
    // wait_batch looks at the slots when it runs: after this block gave the permit back
    // (nothing below suspends).
    walk.chunk_done.wake_all();
    SyncWalk::ExtentProgress& done = walk.progress[chunk.extent.value];
    done.failed = done.failed || !copied;
    if (--done.outstanding > 0 || !done.last_handed_out) return;
    bool all_copied = !done.failed;
    walk.progress.erase(chunk.extent.value);
    if (!all_copied) return;  // left marked: the next pass copies it again
    walk.copied.push_back(chunk);
    walk.copied_bytes += local_.map().extent_length(chunk.extent);
  }
  if (walk.finishing) return;  // that fiber takes this extent in its next batch
  walk.finishing = true;
  // No suspension between the emptiness check and the reset below: an extent queued after
  // the last batch was taken finds `finishing` false and starts the next one.
  while (!walk.copied.empty()) {
    if (!wait_batch(walk)) break;  // cancelled: the extents stay marked
    std::vector<meta::SyncChunk> batch = std::move(walk.copied);
    walk.copied.clear();
    walk.copied_bytes = 0;
    ignore_error(finish_extents(batch), "left marked: retried next pass");
  }
  walk.finishing = false;
}

// Lets copied extents gather into one batch, so that one flush on each node and one map
// write serve many extents: returns once kBatchBytes are copied, or nothing is being
// copied (the walk reached its end, its chunks failed or syncrate paused it), or
// kBatchDelayMax after it was called. Errors: cancelled.
Result<void> Primary::wait_batch(SyncWalk& walk) {
  Deadline deadline = context_.deadline(kBatchDelayMax);
  while (walk.copied_bytes < kBatchBytes && walk.slots.in_use() > 0) {
    fiber::WakeReason reason = walk.chunk_done.wait(deadline);
    if (reason == fiber::WakeReason::timed_out) break;
    if (reason != fiber::WakeReason::woken) return fiber::wake_result(reason, "sync batch");
  }
  return ok();
}

// Copies one chunk in the extent's direction, under the sync range lock.
Result<void> Primary::sync_chunk(std::uint64_t offset, std::uint64_t length) {
  auto guard = locks_.lock(LockKind::sync, offset, length);
  if (!guard) return fail(guard.error());
  ByteBuffer buffer(length);  // aligned for the local disk, filled by the read below
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

// Every chunk of each extent of `batch` was copied (in either direction): make them
// durable on both nodes with one FLUSH each side, concurrently (the source may hold the
// data only in a volatile cache too), then clean them with one map write. Nothing is
// cleaned unless both flushes succeeded: the extents stay marked and a later pass copies
// them again.
Result<void> Primary::finish_extents(const std::vector<meta::SyncChunk>& batch) {
  RemoteOp op(context_.io.scheduler);
  op.request.cmd = proto::RequestCommand::flush;
  bool sent = submit(op, true);
  Result<void> local = local_.flush();
  LegState flushed = sent ? wait_remote(op, true) : LegState::unavailable;
  HAST_TRY(local);
  bool remote_ok = flushed == LegState::ok ||
                   (flushed == LegState::failed && op.error.code() == Errc::unsupported);
  if (!remote_ok) return fail(op.error);
  meta::Activemap& map = local_.map();
  bool persist = false;
  for (const meta::SyncChunk& extent : batch) {
    persist = map.sync_extent_done(extent.extent, extent.pass) == meta::NeedsFlush::yes || persist;
  }
  if (persist) HAST_TRY(local_.persist_map(map.generation()));
  return forget_stale_synced(batch);
}

// Extents of `batch` stale here (defect 3) that are clean now: the copy the walk made is
// this node's good one. One that is still marked (a write landed after the walk entered
// it) or written to keeps the secondary's copy authoritative until a later pass.
Result<void> Primary::forget_stale_synced(const std::vector<meta::SyncChunk>& batch) {
  const meta::Activemap& map = local_.map();
  auto repaired = [&map](const meta::Metadata& metadata, meta::ExtentIndex extent) {
    return meta::is_stale(metadata, extent) && !map.needs_sync(extent) &&
           map.pending_writes(extent) == 0;
  };
  bool any = false;
  for (const meta::SyncChunk& chunk : batch)
    any = any || repaired(local_.metadata(), chunk.extent);
  if (!any) return ok();
  return local_.update_metadata([&batch, &repaired](meta::Metadata& updated) {
    bool changed = false;
    for (const meta::SyncChunk& chunk : batch) {
      if (repaired(updated, chunk.extent))
        changed = meta::remove_stale(updated, chunk.extent) || changed;
    }
    return changed;
  });
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
