// Internal types of the Primary, shared by primary.cc, primary_link.cc and primary_sync.cc.
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <utility>

#include "core/fiber/channel.h"
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
  std::span<const std::byte> data;  // WRITE: what to send (sent in place, not copied)
  std::span<std::byte> read_into;   // READ: where the data goes
  bool received = false;            // memsync's early reply came
  // The link's sender is sending this request: `data` is being read by the transport. It
  // wakes `changed` when done; wait_remote() does not return a final state before.
  bool sending = false;
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
  fiber::Channel<std::uint64_t> queue;         // seqs for the sender, in order
  fiber::TaskGroup fibers;                     // sender and receiver
  fiber::WaitQueue work;                       // wakes the receiver when pending grows
  Instant last_send{};
};

}  // namespace hast::replication
