// Message framing and fiber-level send/receive (reference/hast-spec.md §6.1).
#include "core/proto/frame.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <string>

#include <fmt/format.h>

namespace hast::proto {
namespace {

// Discarded payloads are read through a buffer of this size.
constexpr std::size_t discard_chunk_size = 64 * 1024;

std::string peer_of(const Connection& connection) {
  return connection.peer_address().to_string();
}

// Asserts the preconditions shared by encode_frame and send_message.
void check_frame(std::uint8_t version, const Nv& nv, std::span<const std::byte> payload) {
  HAST_ASSERT_MSG(version <= protocol_version_max, "sending header version {}", version);
  HAST_ASSERT_MSG(!nv.empty(), "sending an empty nv (FreeBSD's receiver aborts on it)");
  HAST_ASSERT(nv.encoded_size() <= std::numeric_limits<std::uint32_t>::max());
  auto announced = announced_payload_size(nv);
  HAST_ASSERT_MSG(announced.has_value(), "nv field 'size' is not uint32");
  HAST_ASSERT_MSG(*announced == payload.size(), "nv announces {} payload bytes, {} given",
                  *announced, payload.size());
}

// Appends header and nv of a message to `out`.
void append_head(std::vector<std::byte>& out, std::uint8_t version, const Nv& nv) {
  auto nv_size = static_cast<std::uint32_t>(nv.encoded_size());
  auto header = encode_header(FrameHeader{version, nv_size});
  std::size_t start = out.size();
  out.insert(out.end(), header.begin(), header.end());
  nv.encode_to(out);
  HAST_ASSERT(out.size() == start + frame_header_size + nv_size);
}

// Header and nv of a message, without the payload.
std::vector<std::byte> encode_head(std::uint8_t version, const Nv& nv) {
  std::vector<std::byte> out;
  out.reserve(frame_header_size + nv.encoded_size());
  append_head(out, version, nv);
  return out;
}

// Reads and drops `size` payload bytes so the stream keeps its framing.
Result<void> discard_payload(Connection& connection, std::uint32_t size, Deadline deadline) {
  std::vector<std::byte> scratch(std::min<std::size_t>(size, discard_chunk_size));
  std::size_t left = size;
  while (left > 0) {
    std::size_t chunk = std::min(left, scratch.size());
    HAST_TRY(connection.recv_exact(std::span(scratch).first(chunk), deadline));
    left -= chunk;
  }
  HAST_ASSERT(left == 0);
  return ok();
}

// Reads the payload an nv announces into `message`, or discards it (see RecvLimits).
Result<void> recv_payload(Connection& connection, const RecvLimits& limits, Deadline deadline,
                          Message& message) {
  auto size = announced_payload_size(message.nv);
  if (!size) return fail(size.error());
  if (*size > limits.payload_discard_max) {
    return fail(Errc::invalid_argument, fmt::format("payload of {} bytes over the limit of {}",
                                                    *size, limits.payload_discard_max));
  }
  if (*size > limits.payload_max) {
    auto discarded = discard_payload(connection, *size, deadline);
    if (!discarded) return fail(discarded.error().wrap("discarding an oversized payload"));
    message.payload_discarded = true;
    return ok();
  }
  if (*size == 0) return ok();
  message.payload.reset(*size);  // not zero-filled: recv_exact fills all of it
  auto received = connection.recv_exact(message.payload, deadline);
  if (!received) return fail(received.error().wrap(fmt::format("payload of {} bytes", *size)));
  return ok();
}

}  // namespace

std::array<std::byte, frame_header_size> encode_header(const FrameHeader& header) {
  HAST_ASSERT(header.version <= protocol_version_max);
  static_assert(std::endian::native == std::endian::little, "the header size is little-endian");
  std::array<std::byte, frame_header_size> out{};
  out[0] = std::byte{header.version};
  std::memcpy(out.data() + 1, &header.nv_size, sizeof(header.nv_size));
  return out;
}

Result<FrameHeader> decode_header(std::span<const std::byte> bytes, std::uint32_t nv_size_max) {
  HAST_ASSERT(bytes.size() == frame_header_size);
  FrameHeader header;
  header.version = std::to_integer<std::uint8_t>(bytes[0]);
  std::memcpy(&header.nv_size, bytes.data() + 1, sizeof(header.nv_size));
  if (header.version > protocol_version_max) {
    return fail(Errc::unsupported,
                fmt::format("protocol version {} not supported", header.version));
  }
  if (header.nv_size == 0) return fail(Errc::corruption, "message header: nv of 0 bytes");
  if (header.nv_size > nv_size_max) {
    return fail(Errc::corruption, fmt::format("message header: nv of {} bytes over the limit "
                                              "of {}",
                                              header.nv_size, nv_size_max));
  }
  return header;
}

std::vector<std::byte> encode_frame(std::uint8_t version, const Nv& nv,
                                    std::span<const std::byte> payload) {
  check_frame(version, nv, payload);
  auto out = encode_head(version, nv);
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

Result<void> send_message(Connection& connection, std::uint8_t version, const Nv& nv,
                          std::span<const std::byte> payload, Deadline deadline) {
  check_frame(version, nv, payload);
  auto head = encode_head(version, nv);
  // One gathered send: the payload is not copied behind the header.
  auto sent = connection.send_gather(head, payload, deadline);
  if (!sent) return fail(sent.error().wrap("sending message to " + peer_of(connection)));
  return ok();
}

bool SendBatch::has_room() const {
  if (count_ == 0) return true;
  return count_ < messages_max && last_payload_.size() <= copy_payload_bytes_max &&
         buffer_.size() + last_payload_.size() < buffer_bytes_max;
}

void SendBatch::add(std::uint8_t version, const Nv& nv, std::span<const std::byte> payload) {
  HAST_ASSERT_MSG(has_room(), "message {} of a batch of {} buffered bytes has no room", count_ + 1,
                  buffer_.size());
  check_frame(version, nv, payload);
  buffer_.insert(buffer_.end(), last_payload_.begin(), last_payload_.end());
  append_head(buffer_, version, nv);
  last_payload_ = payload;
  count_++;
}

Result<void> SendBatch::send(Connection& connection, Deadline deadline) {
  HAST_ASSERT(count_ > 0);
  auto sent = connection.send_gather(buffer_, last_payload_, deadline);
  buffer_.clear();
  last_payload_ = {};
  count_ = 0;
  if (!sent) return fail(sent.error().wrap("sending message to " + peer_of(connection)));
  return ok();
}

Result<Message> recv_message(Connection& connection, const RecvLimits& limits, Deadline deadline) {
  HAST_ASSERT(limits.payload_max <= limits.payload_discard_max);
  auto where = [&connection] { return "receiving message from " + peer_of(connection); };
  std::array<std::byte, frame_header_size> header_bytes{};
  auto received = connection.recv_exact(header_bytes, deadline);
  if (!received) return fail(received.error().wrap(where() + ": header"));
  auto header = decode_header(header_bytes, limits.nv_size_max);
  if (!header) return fail(header.error().wrap(where()));

  std::vector<std::byte> nv_bytes(header->nv_size);
  received = connection.recv_exact(nv_bytes, deadline);
  if (!received) {
    return fail(received.error().wrap(fmt::format("{}: nv of {} bytes", where(), header->nv_size)));
  }
  auto nv = Nv::decode(nv_bytes);
  if (!nv) return fail(nv.error().wrap(where()));

  Message message;
  message.version = header->version;
  message.nv = std::move(*nv);
  auto payload = recv_payload(connection, limits, deadline, message);
  if (!payload) return fail(payload.error().wrap(where()));
  return message;
}

Result<std::uint32_t> announced_payload_size(const Nv& nv) {
  const Nv::Element* element = nv.find("size");
  if (element == nullptr) return std::uint32_t{0};
  auto size = nv.get_uint32("size");
  if (!size) {
    return fail(Errc::corruption,
                fmt::format("field 'size' is {}, not uint32", nv_type_name(element->type)));
  }
  return *size;
}

}  // namespace hast::proto
