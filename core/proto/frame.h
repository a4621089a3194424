// Message framing: the 5-byte header, the nv blob and the optional payload of every HAST
// message (reference/hast-spec.md §6.1), and fiber-level send and receive over a
// Connection.
//
// Wire form of one message:
//   uint8   version    protocol version of the sender's view (we never send above 2)
//   uint32  nv_size    little-endian; bytes of the nv blob, never 0 from us
//   byte    nv[nv_size]
//   byte    payload[n] present only when the nv holds `size` (uint32) = n
//
// Model: the header is packed (no padding between the fields, the nv or the payload). A
// receiver accepts any version up to its own (2) and rejects a greater one. FreeBSD aborts
// the receiving process on an nv size of 0; we return an error instead. A payload larger
// than the caller accepts but within a discard bound is read and thrown away, so the
// stream keeps its framing and the caller can answer the request with EINVAL (DESIGN.md
// §1.1); beyond the bound the stream is given up. Every failure of a receive leaves the
// connection at an unknown position: the caller closes it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/io/byte_buffer.h"
#include "core/io/network.h"
#include "core/proto/nv.h"
#include "core/result.h"

namespace hast::proto {

// The highest protocol version we speak, and the highest header version we ever send.
inline constexpr std::uint8_t protocol_version_max = 2;
// The header version a freshly started primary worker uses before any negotiation (§6.1).
inline constexpr std::uint8_t protocol_version_initial = 1;
inline constexpr std::size_t frame_header_size = 5;

// Request sizes (DESIGN.md §1.1): we send at most request_size_send_default per request
// and per sync chunk unless the peer announced more, and accept up to
// request_size_accept_max.
inline constexpr std::uint32_t request_size_send_default = 128 * 1024;
inline constexpr std::uint32_t request_size_accept_max = 1024 * 1024;
// Largest payload read and discarded (rather than failing the stream) when it exceeds
// what the receiver accepts.
inline constexpr std::uint32_t payload_discard_max_default = request_size_accept_max + 64 * 1024;
// Largest nv blob accepted by default: a status reply for hundreds of resources fits.
inline constexpr std::uint32_t nv_size_max_default = 1024 * 1024;

struct FrameHeader {
  std::uint8_t version = 0;
  std::uint32_t nv_size = 0;

  friend bool operator==(const FrameHeader&, const FrameHeader&) = default;
};

// What a receiver is willing to read.
struct RecvLimits {
  // Largest nv blob; a bigger one fails the receive (Errc::corruption).
  std::uint32_t nv_size_max = nv_size_max_default;
  // Largest payload returned to the caller.
  std::uint32_t payload_max = request_size_accept_max;
  // Payloads in (payload_max, payload_discard_max] are read and discarded; bigger ones
  // fail the receive (Errc::invalid_argument). Must be >= payload_max.
  std::uint32_t payload_discard_max = payload_discard_max_default;
};

struct Message {
  std::uint8_t version = 0;  // the header version (0..2)
  Nv nv;
  // The payload exactly as received (compressed and checksummed by the sender's
  // pipeline, see core/proto/transform.h), in a buffer aligned for direct I/O, so an
  // uncompressed WRITE payload can go to the disk as it is. Empty when the nv has no
  // `size` or when the payload was discarded.
  ByteBuffer payload;
  // True when the nv announced a payload over RecvLimits::payload_max that was read and
  // thrown away: the caller must reject the message (EINVAL) and may keep the connection.
  bool payload_discarded = false;
};

// The 5 header bytes. Asserts version <= protocol_version_max.
std::array<std::byte, frame_header_size> encode_header(const FrameHeader& header);

// Parses the 5 header bytes (`bytes` must hold exactly frame_header_size bytes; asserted).
// Errors: a version above protocol_version_max → Errc::unsupported ("protocol version N not
// supported"); an nv size of 0 or above `nv_size_max` → Errc::corruption.
Result<FrameHeader> decode_header(std::span<const std::byte> bytes, std::uint32_t nv_size_max);

// The whole message: header, encoded nv, payload. Asserts that version <=
// protocol_version_max, that the nv is not empty and that the payload size equals the nv's
// `size` field (0 when absent). Pure: used by send_message and by tests.
std::vector<std::byte> encode_frame(std::uint8_t version, const Nv& nv,
                                    std::span<const std::byte> payload);

// Sends one message: header and nv, then the payload (if any), in one
// Connection::send_gather (FreeBSD makes two sends; the bytes are the same). Same
// preconditions as encode_frame (asserted). Suspends the fiber; fails with the
// Connection's errors (timed_out, disconnected, cancelled), their context naming the peer.
// On failure an unknown prefix of the message has been sent: close the connection.
// `payload` must stay valid until the call returns.
Result<void> send_message(Connection& connection, std::uint8_t version, const Nv& nv,
                          std::span<const std::byte> payload, Deadline deadline);

// Several messages sent as one stream of bytes: the same bytes as one send_message each,
// in order, in one Connection::send_gather (one sendmsg, one segment on loopback) instead
// of one per message. Every message but the last is copied into the batch's buffer, its
// payload included; the last one's payload goes out in place as the gathered body, so a
// large payload is never copied: it may only end a batch (see has_room). A batch of one
// message makes exactly send_message's call. Reusable: send() empties it and keeps the
// buffer's storage.
class SendBatch {
 public:
  // Payloads up to this size may be copied behind another message; a larger one ends a
  // batch. Bounds on what one batch holds: messages, and bytes copied into the buffer.
  static constexpr std::size_t copy_payload_bytes_max = 64 * 1024;
  static constexpr std::size_t messages_max = 64;
  static constexpr std::size_t buffer_bytes_max = 256 * 1024;

  bool empty() const { return count_ == 0; }
  std::size_t size() const { return count_; }
  // Whether another message may join: the batch is empty, or it is under its bounds and
  // its last payload is small enough to be copied.
  bool has_room() const;
  // Adds a message (send_message's preconditions, asserted; has_room() asserted). Copies
  // the previous message's payload into the buffer; `payload` itself must stay valid and
  // unchanged until send() returned.
  void add(std::uint8_t version, const Nv& nv, std::span<const std::byte> payload);
  // Sends every message added, in order, and empties the batch (on failure too).
  // Asserts it is not empty. Errors and the unknown prefix on failure: as send_message.
  Result<void> send(Connection& connection, Deadline deadline);

 private:
  std::vector<std::byte> buffer_;  // every message but the last whole, then the last's head
  std::span<const std::byte> last_payload_;
  std::size_t count_ = 0;
};

// Receives one message. Suspends the fiber. Errors (context names the peer and the part):
//   - the Connection's errors while reading any part;
//   - the header errors of decode_header (with limits.nv_size_max);
//   - an nv that fails Nv::decode, or a `size` field that is not uint32 (corruption);
//   - a payload over limits.payload_discard_max (invalid_argument).
// A payload over limits.payload_max but within payload_discard_max is consumed and the
// message returned with payload_discarded set. Asserts payload_max <= payload_discard_max.
Result<Message> recv_message(Connection& connection, const RecvLimits& limits, Deadline deadline);

// The payload size an nv announces: its `size` field, 0 when absent. Errc::corruption when
// a `size` field exists with another type (the framing would be unknown).
Result<std::uint32_t> announced_payload_size(const Nv& nv);

}  // namespace hast::proto
