// BlockFrontend: the upper layer, where block requests from users come in.
//
// Model: a frontend (the simulator's workload, NBD, FUSE, ublk) turns its clients'
// operations into BlockRequests; the replication core takes them with next_request(),
// executes them and hands each back with complete(). Semantics per operation:
// - read: fill `data` (length bytes at offset);
// - write: store `data`; with Fua::yes the write is durable locally and on the
//   secondary (remote WRITE + remote FLUSH) before completion;
// - flush: make every write completed before it durable;
// - discard: the range reads as zeroes afterwards on both nodes;
// - write_zeroes: like a write of `length` zero bytes (sent as hole-compressed WRITEs).
// Errors reach the client as the frontend's error code (negative errno only at the C
// boundary of the real frontends).
//
// Buffers: a request's bytes belong to the frontend and are valid until complete(). A
// frontend may instead hand a WRITE's buffer over (BlockRequest::owned), so that the core
// keeps the bytes past complete() (an async remote leg, sent after the client was
// answered) without copying them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/io/byte_buffer.h"
#include "core/io/disk.h"
#include "core/result.h"

namespace hast {

enum class BlockOp : std::uint8_t { read, write, flush, discard, write_zeroes };

struct BlockRequest {
  std::uint64_t id = 0;  // unique among the frontend's requests in flight
  BlockOp op = BlockOp::read;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  Fua fua = Fua::no;
  // read: the buffer to fill; write: the bytes to store; empty otherwise. Owned by the
  // frontend and valid until complete() is called for this request.
  std::span<std::byte> data;
  // WRITE only, optional: the buffer `data` lives in, offered to the core. nullptr: not
  // offered (the core copies what it must keep past complete()). A frontend sets it only
  // when all of these hold:
  // - `data` is the whole of *owned: the same first byte and the same size;
  // - the frontend does not read, write or free those bytes after complete(), and reuses
  //   no storage of *owned for another request: it allocates a fresh buffer for the next
  //   one (a frontend that pools buffers gets this one back only if the core left it);
  // - the ByteBuffer object itself stays valid until complete() (not after: the core
  //   never touches `owned` once it called complete()).
  // The core may move the buffer out of *owned, at most once and before complete(); the
  // frontend then finds *owned empty. The moved bytes stay where they were, so `data`
  // still names them, now in the core's keeping. The core may also leave *owned alone.
  ByteBuffer* owned = nullptr;
};

class BlockFrontend {
 public:
  virtual ~BlockFrontend() = default;

  // Suspends until the next request arrives. Errc::cancelled when the frontend is
  // closed (role change, shutdown): the caller stops taking requests.
  virtual Result<BlockRequest> next_request() = 0;

  // Completes `request` with `result`. Called exactly once per request, from a fiber;
  // does not suspend. After a role change every request in flight is completed with an
  // error, never with a false success.
  virtual void complete(const BlockRequest& request, Result<void> result) = 0;
};

}  // namespace hast
