// Primary: the primary's side of one resource (reference/hast-spec.md §6.3, §6.6, §7, §8,
// §9, with the fixes of DESIGN.md §1.2).
//
// Fibers (all in one TaskGroup, so a role change cancels and joins them together):
// - the frontend loop takes client requests, each in its own fiber, at most
//   request_count_max unanswered at once (back-pressure: each holds a request slot until
//   its client is answered, or longer, see write_range); an async write's remote leg, left
//   after the answer, waits in the replication backlog instead (async_backlog_max);
// - the connection loop connects and runs the handshake, then runs the link (a sender
//   with keepalives by time since the last send, a receiver matching replies by seq) until
//   it fails, then waits the reconnect interval and tries again;
// - the sync loop copies dirty extents while connected (primary_sync.cc);
// - the remote flusher sends one FLUSH for a batch of completed remote writes before their
//   extents may become clean (defect 9).
//
// A WRITE takes its range lock, marks its extents (the map is durable before the data is
// written), queues the remote leg, writes locally, and is answered per mode by WriteAck.
// In async the rest of it, the remote leg, holds up no client: it gives back its range lock
// and request slot and waits in the bounded replication backlog (write_ack.h, defect 10).
// An extent becomes clean only when the secondary acknowledged the write *and* a remote
// FLUSH covering it succeeded. A write the secondary did not acknowledge moves its extents
// to sync (defect 2). The first acknowledgement without the secondary's final ok raises
// the generation counter, durably, first (defect 1).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "core/fiber/event.h"
#include "core/fiber/semaphore.h"
#include "core/fiber/spare_objects.h"
#include "core/fiber/task_group.h"
#include "core/io/frontend.h"
#include "core/proto/frame.h"
#include "core/proto/messages.h"
#include "core/proto/transform.h"
#include "core/replication/context.h"
#include "core/replication/decision.h"
#include "core/replication/local_component.h"
#include "core/replication/range_lock.h"
#include "core/replication/write_ack.h"

namespace hast::replication {

inline constexpr std::size_t request_count_max = 256;
// async (defect 10): remote legs of writes whose clients were answered, still queued or
// waiting for the secondary's reply. A write finding it full drops its send; its extents
// stay dirty and the resync sends them, while still connected.
inline constexpr std::size_t async_backlog_max = request_count_max;

// Counters for `hastctl list` and the simulator's coverage report.
struct PrimaryStats {
  std::uint64_t reads = 0;
  std::uint64_t writes = 0;
  std::uint64_t deletes = 0;
  std::uint64_t flushes = 0;
  std::uint64_t read_errors = 0;
  std::uint64_t write_errors = 0;
  std::uint64_t delete_errors = 0;
  std::uint64_t flush_errors = 0;
  std::uint64_t remote_reads = 0;  // reads served by the secondary
  std::uint64_t connects = 0;
  std::uint64_t disconnects = 0;
  std::uint64_t syncs_completed = 0;
  std::uint64_t synced_bytes = 0;
  // async: remote sends dropped because the replication backlog was full (defect 10);
  // their extents stayed dirty for the resync.
  std::uint64_t async_dropped = 0;
};

struct SyncProgress {
  bool running = false;
  SyncSource source = SyncSource::undef;
  std::uint64_t synced_bytes = 0;  // in the current or last sync
  std::uint64_t total_bytes = 0;   // dirty bytes when the current sync started
  Instant started{};               // when the current or last sync started (for the ETA)
};

class Primary {
 public:
  // `frontend` may be null (no client). Every reference must outlive the Primary.
  Primary(ResourceContext& context, LocalComponent& local, BlockFrontend* frontend);
  ~Primary();
  Primary(const Primary&) = delete;
  Primary& operator=(const Primary&) = delete;

  // Loads the activemap and starts the fibers. Errors: the map could not be read.
  Result<void> start();
  // Cancels every fiber (requests in flight fail), closes the connections, waits.
  void stop();

  // Configuration reload (HastNode::reload). The resource's configuration is about to
  // get a new remote or source address: takes the link down (remote legs in flight become
  // unavailable and their extents go to sync) and fails a handshake in progress, which
  // used the old address. Never suspends.
  void drop_link(std::string_view why);
  // The resource's configuration was replaced in place; what reads it per request, per
  // deadline or per sync chunk uses the new values from now on, and every handshake reads
  // the replication mode afresh (a reload's mode survives reconnects, unlike HAST's).
  // `readdressed`: connect to the new remote now instead of after the reconnect interval
  // (with `remote none`, stay disconnected until a reload names a remote). Never suspends.
  void config_changed(bool readdressed);

  bool connected() const;
  const PrimaryStats& stats() const { return stats_; }
  const SyncProgress& sync_progress() const { return sync_; }
  const Counters& counters() const { return generation_.counters(); }
  std::size_t requests_in_flight() const { return requests_.in_use(); }
  std::size_t async_backlog() const { return async_backlog_; }

 private:
  struct RemoteOp;
  struct Link;
  struct SentPiece;
  class RequestSlot;
  class BacklogEntry;

  // ---- Client requests (primary.cc) ----
  void frontend_loop();
  void handle(BlockRequest request, RequestSlot& slot);
  Result<void> handle_read(const BlockRequest& request);
  Result<void> read_piece(std::uint64_t offset, std::span<std::byte> buffer);
  Result<void> handle_write(const BlockRequest& request, config::ReplicationMode mode,
                            RequestSlot& slot);
  Result<void> handle_flush();
  Result<void> write_range(std::uint64_t offset, std::span<const std::byte> data, bool zeroes,
                           bool discard, Fua fua, config::ReplicationMode mode,
                           const BlockRequest* client, RequestSlot* slot);
  bool queue_remote_leg(RemoteOp& op, bool async_ack, BacklogEntry& entry);
  // Whether the link's sender waits for work with nothing queued (Link::sender_idle).
  bool sender_idle() const;
  // Waits until the sender took `op` (queued) for a send, or its remote leg ended.
  void let_remote_leg_lead(RemoteOp& op);
  void let_go_after_local(const WriteAck& ack, bool async_ack, RangeLockGuard& guard,
                          RequestSlot* slot);
  void finish_write(WriteAck& ack, std::uint64_t offset, std::uint64_t length);
  std::uint64_t request_size_limit() const;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> take_unflushed();
  bool unflushed_all_kept();
  void settle_flushed(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& covered,
                      RemoteOp& op, bool sent, bool local_ok);
  Result<void> raise_generation();
  Result<void> persist_counters();
  Result<void> forget_stale_extents();
  Result<void> mark_stale(std::uint64_t offset, std::uint64_t length);
  bool extents_clean(std::uint64_t offset, std::uint64_t length) const;
  bool stale_range(std::uint64_t offset, std::uint64_t length) const;
  bool stale_maybe_on_disk(std::uint64_t offset, std::uint64_t length) const;
  bool local_leg_counts(std::uint64_t offset, std::uint64_t length);
  bool reads_go_remote(std::uint64_t offset, std::uint64_t length) const;

  // ---- The link (primary_link.cc) ----
  void connection_loop();
  bool wait_reconnect(Deadline deadline);
  Result<void> handshake(Link& link);
  void run_link(Link& link);
  void sender_loop(Link& link);
  void add_piece(Link& link, std::uint64_t seq, proto::SendBatch& batch,
                 std::vector<SentPiece>& pieces, std::vector<proto::EncodedPayload>& payloads);
  void receiver_loop(Link& link);
  void piece_replied(RemoteOp& op, std::uint64_t seq, const proto::Reply& reply,
                     proto::Message& message);
  void link_down(Link& link, const Error& why);
  // Queues `op` for the secondary; false when it cannot go (link down, or the async
  // backlog is full): the remote leg is then unavailable.
  bool submit(RemoteOp& op, bool may_wait);
  void forget(RemoteOp& op);
  LegState wait_remote(RemoteOp& op, bool until_final);
  void remote_flusher_loop();

  // ---- Synchronisation (primary_sync.cc) ----
  void sync_loop();
  Result<void> wait_backlog_drained(const Link& link);
  Result<void> sync_pass(Link& link);
  struct SyncWalk;
  Result<void> copy_marked(Link& link);
  void copy_chunk(SyncWalk& walk, const meta::SyncChunk& chunk);
  Result<void> wait_batch(SyncWalk& walk);
  Result<void> sync_chunk(std::uint64_t offset, std::uint64_t length);
  Result<void> finish_extents(const std::vector<meta::SyncChunk>& batch);
  Result<void> forget_stale_synced(const std::vector<meta::SyncChunk>& batch);
  Result<void> sync_complete();

  ResourceContext& context_;
  LocalComponent& local_;
  BlockFrontend* frontend_;
  GenerationTracker generation_;
  RangeLocks locks_;
  fiber::Semaphore requests_;
  // Client requests on their way to their fiber (frontend_loop): the fiber's body is two
  // pointers (no allocation). At most one per slot.
  fiber::SpareObjects<BlockRequest> handed_;
  fiber::TaskGroup group_;
  fiber::Event link_changed_;
  fiber::Event reconnect_now_;      // a reload changed the remote: connect without waiting
  std::uint64_t config_epoch_ = 0;  // bumped when the remote address changes
  std::unique_ptr<Link> link_;
  std::size_t async_backlog_ = 0;  // of async_backlog_max (BacklogEntry)
  std::uint64_t link_number_ = 0;
  std::uint8_t version_ = 1;  // the header version before the first negotiation (§6.1)
  bool split_brain_reported_ = false;
  SyncSource sync_source_ = SyncSource::undef;
  Counters secondary_counters_;
  // Remote writes acknowledged but not yet covered by a remote FLUSH (defect 9).
  std::vector<std::pair<std::uint64_t, std::uint64_t>> unflushed_;
  // The first unflushed_kept_ writes of unflushed_ lie in keep-dirty extents, as checked
  // when the map's keep_dirty_removals() was unflushed_removals_ (unflushed_all_kept()).
  std::size_t unflushed_kept_ = 0;
  std::uint64_t unflushed_removals_ = 0;
  fiber::Event unflushed_ready_;
  PrimaryStats stats_;
  SyncProgress sync_;
  bool started_ = false;
};

}  // namespace hast::replication
