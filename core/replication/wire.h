// Small bridges between the replication code and the wire types of core/proto.
#pragma once

#include "core/config/config.h"
#include "core/proto/messages.h"
#include "core/proto/transform.h"
#include "core/replication/decision.h"

namespace hast::replication {

// What this implementation announces in the handshake (DESIGN.md §1.1, §1.2 item 9).
inline proto::Extensions our_extensions() {
  proto::Extensions extensions;
  extensions.batch_flush = true;
  extensions.request_size_max = proto::request_size_accept_max;
  return extensions;
}

}  // namespace hast::replication
