// Fuzz target: the control protocol's decoders (reference/hast-spec.md §6.7) and hastctl's
// formatters over whatever they accept.
//
// The first byte selects the decoder (0 ControlRequest, 1 SetRoleReply, 2 StatusReply);
// the rest goes through Nv::decode first.
//
// Oracles, beyond "never crashes or asserts": a decoded message re-encodes to an equal
// one and never to an empty nv; a rejected request maps to a reply error or to "close
// without reply" consistently with its error kind; a decoded reply formats (status, list,
// JSON, role warnings) without asserting, and its JSON holds no raw control character
// other than the newlines between members.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "core/assert.h"
#include "core/control/format.h"
#include "core/control/json.h"
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
  HAST_ASSERT(!request->force || request->cmd == ControlCommand::set_role);
  auto again = ControlRequest::from_nv(request->to_nv());
  HAST_ASSERT(again.has_value());
  HAST_ASSERT(*again == *request);
}

void check_json(const std::string& json) {
  HAST_ASSERT(!json.empty());
  HAST_ASSERT(json.back() == '\n');
  for (char c : json) {
    HAST_ASSERT(static_cast<unsigned char>(c) >= 0x20 || c == '\n');
  }
}

void check_set_role_output(const Nv& nv) {
  auto reply = SetRoleReply::from_nv(nv);
  if (!reply) return;
  std::string warnings = hast::control::format_set_role_warnings(*reply);
  int code = hast::control::reply_exit_code(*reply);
  HAST_ASSERT((code == 0) == (reply->error == 0 && warnings.empty()));
  if (reply->error != 0) HAST_ASSERT(!hast::control::format_reply_error(reply->error).empty());
}

void check_status_output(const Nv& nv) {
  auto reply = StatusReply::from_nv(nv);
  if (!reply) return;
  std::string table = hast::control::format_status(*reply);
  HAST_ASSERT(table.empty() == reply->resources.empty());
  std::string list = hast::control::format_list(*reply);
  HAST_ASSERT(list.empty() == reply->resources.empty());
  check_json(hast::control::format_status_json(*reply));
  bool any_error = reply->error != 0;
  for (const ResourceStatus& status : reply->resources)
    any_error = any_error || status.error != 0;
  HAST_ASSERT((hast::control::reply_exit_code(*reply) != 0) == any_error);
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
      check_set_role_output(*nv);
      break;
    default:
      check_message<StatusReply>(*nv);
      check_status_output(*nv);
      break;
  }
  return 0;
}
