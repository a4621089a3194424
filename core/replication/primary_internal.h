// Internal types of the Primary, shared by primary.cc, primary_link.cc and primary_sync.cc.
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <utility>

#include "core/fiber/channel.h"
#include "core/fiber/node_reuse.h"
#include "core/replication/primary.h"

namespace hast::replication {

// A map change whose image write may wait: the bit it clears (or sets on top of a pending
// write's bit) changes nothing that must be durable now.
inline void ignore_needs_flush(meta::NeedsFlush needs) {
  static_cast<void>(needs);
}

// The counters' "changed" answer, when the caller persists by comparing instead.
inline void ignore_needs_persist(bool changed) {
  static_cast<void>(changed);
}

// One request to the secondary and what came back. Owned by the fiber that issued it,
// which keeps it (and the buffers it points to) alive until wait_remote() returned its
// final state: that is after the final reply or after the link gave it up, and never
// while the sender still reads `data` (`sending`); forget() removes it from the link
// before it is destroyed.
struct Primary::RemoteOp {
  explicit RemoteOp(fiber::Scheduler& scheduler) : changed(scheduler) {}
  ~RemoteOp() {
    HAST_ASSERT_MSG(!sending || changed.scheduler().is_shut_down(),
                    "{} request (seq {}) destroyed while the sender reads its data",
                    proto::request_command_name(request.cmd), request.seq);
  }
  RemoteOp(const RemoteOp&) = delete;
  RemoteOp& operator=(const RemoteOp&) = delete;

  proto::Request request;
  // WRITE: what to send, sent in place (copied only when batched behind another request,
  // proto::SendBatch): the client's buffer, or the bytes an
  // async write keeps past its answer (write_range: the client's buffer handed over by the
  // frontend, else a copy).
  std::span<const std::byte> data;
  std::span<std::byte> read_into;   // READ: where the data goes
  bool received = false;            // memsync's early reply came
  // The link's sender is sending this request: `data` is being read by the transport. It
  // wakes `changed` when done; wait_remote() does not return a final state before.
  bool sending = false;
  // The sender took (the first piece of) this request for a send; it wakes `changed` then
  // (Primary::let_remote_leg_lead). Set by submit() to false.
  bool taken = false;
  bool leading = false;  // its writer waits for `taken` (let_remote_leg_lead)
  // A READ or WRITE longer than the peer accepts goes as `pieces` protocol requests of
  // `piece_bytes` (the last one shorter), with seqs request.seq .. request.seq + pieces - 1.
  // It is received once every piece was, and final once every piece's final reply came
  // (failed if any piece failed). Set by submit().
  std::uint64_t piece_bytes = 0;
  std::uint32_t pieces = 1;
  std::uint32_t pieces_received = 0;
  std::uint32_t pieces_left = 0;  // final replies still to come
  bool piece_failed = false;

  // Where piece `seq` starts within the op's range, and its length.
  std::uint64_t piece_at(std::uint64_t seq) const {
    HAST_ASSERT(seq >= request.seq && seq - request.seq < pieces);
    return (seq - request.seq) * piece_bytes;
  }
  std::uint64_t piece_length(std::uint64_t seq) const {
    return std::min(piece_bytes, request.length - piece_at(seq));
  }
  LegState final = LegState::pending;
  Error error{Errc::io};   // when final is failed or unavailable
  std::uint64_t link = 0;  // the link it was queued on (0: none)
  fiber::WaitQueue changed;
};

// A client request's slot of the pool (Primary::requests_), taken by frontend_loop: held
// until the request's fiber ends, or given back earlier by release() (an async write once
// its client was answered: its remote leg then counts in the replication backlog).
class Primary::RequestSlot {
 public:
  explicit RequestSlot(fiber::Semaphore& pool) : pool_(&pool) {}
  ~RequestSlot() { release(); }
  RequestSlot(const RequestSlot&) = delete;
  RequestSlot& operator=(const RequestSlot&) = delete;

  void release() {
    if (pool_ != nullptr) std::exchange(pool_, nullptr)->release();
  }

 private:
  fiber::Semaphore* pool_;
};

// One async remote leg counted in the replication backlog (Primary::async_backlog_): from
// join() until the write's fiber is done with it, however it ends (reply, disconnect,
// cancellation).
class Primary::BacklogEntry {
 public:
  BacklogEntry() = default;
  ~BacklogEntry() {
    if (count_ != nullptr) (*count_)--;
  }
  BacklogEntry(const BacklogEntry&) = delete;
  BacklogEntry& operator=(const BacklogEntry&) = delete;

  void join(std::size_t& count) {
    HAST_ASSERT(count_ == nullptr);
    count_ = &count;
    count++;
    HAST_ASSERT(count <= async_backlog_max);
  }

 private:
  std::size_t* count_ = nullptr;
};

// The request pieces sent on one link whose final reply has not come, and when each was
// sent. The primary's reply timeout (§6.6) runs from the oldest of them: replies to later
// requests do not extend it, so a secondary that answers everything but one request is
// still given up. A memsync `received` reply is not final. A piece counts from the moment
// its send returned; a final reply that comes while the sender is still in that send
// (sending() was called, sent() not yet) ends it all the same.
class AwaitedReplies {
 public:
  // The sender starts sending request piece `seq`, a `command` (never a keepalive or a
  // sync-done message, which get no reply). Each seq is sent once per link.
  void sending(std::uint64_t seq, proto::RequestCommand command) {
    HAST_ASSERT(command != proto::RequestCommand::keepalive);
    bool added = seq_nodes_.insert(by_seq_, seq, Entry{std::nullopt, command});
    HAST_ASSERT_MSG(added, "request seq {} sent twice", seq);
  }
  // The send of `seq` returned at `now` (not before any earlier send's `now`): its final
  // reply is due from then. Nothing when that reply already came.
  void sent(std::uint64_t seq, Instant now) {
    auto found = by_seq_.find(seq);
    if (found == by_seq_.end()) return;
    HAST_ASSERT(!found->second.sent.has_value());
    HAST_ASSERT(by_age_.empty() || by_age_.rbegin()->first <= now);
    found->second.sent = now;
    bool added = age_nodes_.insert(by_age_, std::pair{now, seq});
    HAST_ASSERT(added);
  }
  // The final reply to `seq` came; nothing when `seq` is not awaited (a duplicate or
  // unknown seq: the caller judges those).
  void replied(std::uint64_t seq) {
    auto found = by_seq_.find(seq);
    if (found == by_seq_.end()) return;
    if (found->second.sent) {
      auto erased = age_nodes_.erase(by_age_, std::pair{*found->second.sent, seq});
      HAST_ASSERT(erased == 1);
    }
    seq_nodes_.erase(by_seq_, found);
  }
  // The piece whose send returned first among those awaited, and when; nullopt when none
  // (a piece still being sent does not count yet).
  std::optional<std::pair<Instant, std::uint64_t>> oldest() const {
    if (by_age_.empty()) return std::nullopt;
    return *by_age_.begin();
  }
  // What piece `seq`, awaited, is.
  proto::RequestCommand command(std::uint64_t seq) const {
    auto found = by_seq_.find(seq);
    HAST_ASSERT(found != by_seq_.end());
    return found->second.command;
  }
  std::size_t size() const { return by_seq_.size(); }
  void clear() {
    by_seq_.clear();
    by_age_.clear();
  }

 private:
  struct Entry {
    std::optional<Instant> sent;  // nullopt: its send has not returned
    proto::RequestCommand command;
  };
  std::map<std::uint64_t, Entry> by_seq_;
  std::set<std::pair<Instant, std::uint64_t>> by_age_;  // the sent ones, oldest first
  // Their nodes, reused: one entry of each per request piece.
  fiber::NodeReuse<std::map<std::uint64_t, Entry>> seq_nodes_;
  fiber::NodeReuse<std::set<std::pair<Instant, std::uint64_t>>> age_nodes_;
};

// A message the sender put in its batch: a request piece (seq 0: a keepalive or sync-done
// message, which get no reply) and, for a WRITE piece, its op (marked `sending`).
struct Primary::SentPiece {
  std::uint64_t seq = 0;
  proto::RequestCommand command = proto::RequestCommand::keepalive;
  RemoteOp* op = nullptr;
};

// One connected pair of connections and the fibers serving it.
struct Primary::Link {
  Link(fiber::Scheduler& scheduler, std::uint64_t number_value)
      : number(number_value),
        queue(scheduler, request_count_max),
        fibers(scheduler),
        work(scheduler) {}

  std::uint64_t number;
  std::unique_ptr<Connection> out;  // A: requests to the secondary
  std::unique_ptr<Connection> in;   // B: replies from the secondary
  proto::Extensions peer;
  std::uint8_t version = 1;  // below 2: no memsync (fullsync instead)
  bool up = false;
  std::uint64_t next_seq = 1;
  std::map<std::uint64_t, RemoteOp*> pending;  // queued or sent, by seq
  fiber::NodeReuse<std::map<std::uint64_t, RemoteOp*>> pending_nodes;  // reused nodes
  fiber::Channel<std::uint64_t> queue;         // seqs for the sender, in order
  fiber::TaskGroup fibers;                     // sender and receiver
  AwaitedReplies awaited;                      // sent, final reply not yet received
  fiber::WaitQueue work;                       // wakes the receiver when pending grows
  Instant last_send{};
  // The sender waits for the queue: a request queued now goes out as soon as it runs.
  bool sender_idle = false;
};

}  // namespace hast::replication
