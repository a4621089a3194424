// Internal types of the Primary, shared by primary.cc, primary_link.cc and primary_sync.cc.
#pragma once

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
// which keeps it (and the buffers it points to) alive until the final reply or until the
// link gives it up; forget() removes it from the link before it is destroyed.
struct Primary::RemoteOp {
  explicit RemoteOp(fiber::Scheduler& scheduler) : changed(scheduler) {}

  proto::Request request;
  std::span<const std::byte> data;  // WRITE: what to send
  std::span<std::byte> read_into;   // READ: where the data goes
  bool received = false;            // memsync's early reply came
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
