// Fuzz target: the replication protocol's decoders (reference/hast-spec.md §6.1, §6.3–6.5).
//
// The first byte selects what the rest is fed to:
//   0  decode_header over the next 5 bytes
//   1  HelloRequest::from_nv and hello_token       2  HelloReply::from_nv
//   3  Refusal::from_nv                             4  IdentityRequest::from_nv
//   5  AcceptReply::from_nv                         6  Request::from_nv + validate_request
//   7  Reply::from_nv
//   8  the receive pipeline: [uint16 LE nv size][nv][payload], limit 64 KiB
//   9  recv_message over the rest as a byte stream, until it fails
// (1..7 decode the rest with Nv::decode first.)
//
// Oracles, beyond "never crashes or asserts": a decoded message re-encodes to an equal
// one; header and pipeline results respect their limits; recv_message never returns more
// payload than allowed and its errors carry a context.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "core/assert.h"
#include "core/io/byte_buffer.h"
#include "core/proto/frame.h"
#include "core/proto/messages.h"
#include "core/proto/nv.h"
#include "core/proto/transform.h"

namespace {

using namespace hast::proto;
using Bytes = std::span<const std::byte>;

constexpr std::size_t pipeline_limit = 64 * 1024;

template <typename T>
void check_message(const Nv& nv) {
  auto decoded = T::from_nv(nv);
  if (!decoded) {
    HAST_ASSERT(!decoded.error().context().empty());
    return;
  }
  auto again = T::from_nv(decoded->to_nv());
  HAST_ASSERT(again.has_value());
  HAST_ASSERT(*again == *decoded);
}

void check_request(const Nv& nv) {
  auto request = Request::from_nv(nv);
  if (!request) return;
  for (std::uint32_t sector : {512u, 4096u}) {
    auto valid = validate_request(*request, sector, 1ull << 40, request_size_accept_max);
    HAST_ASSERT(valid || valid.error().code() == hast::Errc::invalid_argument);
  }
  if (request->seq != 0 || request->cmd == RequestCommand::keepalive) check_message<Request>(nv);
}

void check_header(Bytes rest) {
  if (rest.size() < frame_header_size) return;
  auto header = decode_header(rest.first(frame_header_size), nv_size_max_default);
  if (!header) return;
  HAST_ASSERT(header->version <= protocol_version_max);
  HAST_ASSERT(header->nv_size > 0 && header->nv_size <= nv_size_max_default);
  auto bytes = encode_header(*header);
  HAST_ASSERT(std::memcmp(bytes.data(), rest.data(), frame_header_size) == 0);
}

void check_pipeline(Bytes rest) {
  if (rest.size() < 2) return;
  std::size_t nv_size =
      std::to_integer<std::size_t>(rest[0]) | std::to_integer<std::size_t>(rest[1]) << 8;
  rest = rest.subspan(2);
  if (nv_size > rest.size()) return;
  auto nv = Nv::decode(rest.first(nv_size));
  if (!nv) return;
  auto payload = rest.subspan(nv_size);
  auto data = decode_payload(*nv, hast::ByteBuffer::copy_of(payload), pipeline_limit);
  if (data) HAST_ASSERT(data->size() <= pipeline_limit);
}

// A connection that delivers a fixed byte stream, then reports the peer gone.
class StreamConnection final : public hast::Connection {
 public:
  explicit StreamConnection(Bytes bytes) : bytes_(bytes) {}
  hast::Result<void> send(std::span<const std::byte>, hast::Deadline) override {
    return hast::ok();
  }
  hast::Result<void> recv_exact(std::span<std::byte> buffer, hast::Deadline) override {
    if (bytes_.size() - at_ < buffer.size()) return hast::fail(hast::Errc::disconnected);
    if (!buffer.empty()) std::memcpy(buffer.data(), bytes_.data() + at_, buffer.size());
    at_ += buffer.size();
    return hast::ok();
  }
  void close() override {}
  hast::Address peer_address() const override { return {}; }
  hast::Address local_address() const override { return {}; }

 private:
  Bytes bytes_;
  std::size_t at_ = 0;
};

void check_stream(Bytes rest) {
  StreamConnection connection(rest);
  RecvLimits limits{.nv_size_max = 4096, .payload_max = 256, .payload_discard_max = 1024};
  for (int i = 0; i < 64; i++) {
    auto message = recv_message(connection, limits, std::nullopt);
    if (!message) {
      HAST_ASSERT(!message.error().context().empty());
      return;
    }
    HAST_ASSERT(message->version <= protocol_version_max);
    HAST_ASSERT(message->payload.size() <= limits.payload_max);
    HAST_ASSERT(!message->payload_discarded || message->payload.empty());
  }
}

void check_nv_message(std::uint8_t selector, Bytes rest) {
  auto nv = Nv::decode(rest);
  if (!nv) return;
  switch (selector) {
    case 1: {
      check_message<HelloRequest>(*nv);
      auto token = hello_token(*nv);
      if (token && *token) HAST_ASSERT((*token)->size() == token_size);
      return;
    }
    case 2:
      return check_message<HelloReply>(*nv);
    case 3:
      return check_message<Refusal>(*nv);
    case 4:
      return check_message<IdentityRequest>(*nv);
    case 5:
      return check_message<AcceptReply>(*nv);
    case 6:
      return check_request(*nv);
    default:
      return check_message<Reply>(*nv);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  auto rest = std::as_bytes(std::span(data + 1, size - 1));
  std::uint8_t selector = data[0] % 10;
  if (selector == 0) {
    check_header(rest);
  } else if (selector == 8) {
    check_pipeline(rest);
  } else if (selector == 9) {
    check_stream(rest);
  } else {
    check_nv_message(selector, rest);
  }
  return 0;
}
