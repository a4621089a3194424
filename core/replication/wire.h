// Small bridges between the replication code and the wire types of core/proto.
#pragma once

#include "core/config/config.h"
#include "core/proto/messages.h"
#include "core/proto/transform.h"
#include "core/replication/decision.h"

namespace hast::replication {

inline proto::SyncSource to_proto(SyncSource source) {
  static_assert(static_cast<int>(SyncSource::primary) ==
                static_cast<int>(proto::SyncSource::primary));
  static_assert(static_cast<int>(SyncSource::secondary) ==
                static_cast<int>(proto::SyncSource::secondary));
  return static_cast<proto::SyncSource>(source);
}

// What this implementation announces in the handshake (DESIGN.md §1.1, §1.2 item 9).
inline proto::Extensions our_extensions() {
  proto::Extensions extensions;
  extensions.batch_flush = true;
  extensions.request_size_max = proto::request_size_accept_max;
  return extensions;
}

}  // namespace hast::replication
