// Fuzz target: the control protocol's decoders (reference/hast-spec.md §6.7).
//
// The first byte selects the decoder (0 ControlRequest, 1 SetRoleReply, 2 StatusReply);
// the rest goes through Nv::decode first.
//
// Oracles, beyond "never crashes or asserts": a decoded message re-encodes to an equal
// one and never to an empty nv; a rejected request maps to a reply error or to "close
// without reply" consistently with its error kind.
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/assert.h"
#include "core/proto/control_messages.h"
#include "core/proto/nv.h"

namespace {

using namespace hast::proto;

template <typename T>
void check_message(const Nv& nv) {
  auto decoded = T::from_nv(nv);
  if (!decoded) {
    HAST_ASSERT(decoded.error().code() == hast::Errc::corruption);
    return;
  }
  Nv encoded = decoded->to_nv();
  HAST_ASSERT(!encoded.empty());
  auto again = T::from_nv(encoded);
  HAST_ASSERT(again.has_value());
  HAST_ASSERT(*again == *decoded);
}

void check_request(const Nv& nv) {
  auto request = ControlRequest::from_nv(nv);
  if (!request) {
    auto reply_error = control_reply_error(request.error());
    HAST_ASSERT(reply_error.has_value() == (request.error().code() != hast::Errc::corruption));
    return;
  }
  HAST_ASSERT(!request->resources.empty());
  auto again = ControlRequest::from_nv(request->to_nv());
  HAST_ASSERT(again.has_value());
  HAST_ASSERT(*again == *request);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  auto nv = Nv::decode(std::as_bytes(std::span(data + 1, size - 1)));
  if (!nv) return 0;
  switch (data[0] % 3) {
    case 0:
      check_request(*nv);
      break;
    case 1:
      check_message<SetRoleReply>(*nv);
      break;
    default:
      check_message<StatusReply>(*nv);
      break;
  }
  return 0;
}
