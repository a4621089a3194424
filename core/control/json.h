// JSON output of `hastctl status --json` and `hastctl list --json` (DESIGN.md §7).
//
// Model: hand-written, no dependency. Both commands print the same document: every field
// of the status reply under the control protocol's names (reference/hast-spec.md §6.7),
// in wire order, plus our extensions:
//
//   {
//     "resources": [
//       {
//         "resource": "shared",
//         "provname": "shared", "localpath": ..., "remoteaddr": ..., ["sourceaddr": ...,]
//         "replication": ..., "checksum": ..., "compression": ..., "role": "primary",
//         "workerpid": 0,
//         ["status": "complete", "dirty": 0, "extentsize": 2097152, "keepdirty": 64,
//          "stat_read": 0, ... "done_queue_size": 0,]          (when a worker answered)
//         "inconsistent": false,
//         ["metadata_copy": "first",]                 (while the local component is open)
//         ["sync": {"running": true, "done": 1, "total": 2[, "eta_seconds": 3]}]
//       },
//       {"resource": "other", "error": 1}                      (an unknown resource)
//     ]
//     [, "error": 70]                                           (a top-level error)
//   }
//
// printed with two-space indentation, one member per line, and a final newline. Fields
// absent from the reply are absent from the document. Strings are escaped per RFC 8259:
// '"', '\\' and control characters are escaped (\n, \t, ... or \u00XX), and bytes that are
// not valid UTF-8 become U+FFFD, so the output is always valid UTF-8 JSON.
#pragma once

#include <string>
#include <string_view>

#include "core/proto/control_messages.h"

namespace hast::control {

// `text` as a JSON string literal, quotes included.
std::string json_string(std::string_view text);

// The document described above.
std::string format_status_json(const proto::StatusReply& reply);

}  // namespace hast::control
