// hastctl's output: the texts of `status`, `list` and `dump` exactly as FreeBSD's hastctl
// prints them (reference/hast-spec.md §3.4–§3.6), its diagnostics, and its exit codes
// (§3.7). JSON output is in core/control/json.h.
//
// Model: pure functions from a decoded reply (or a metadata block) to text; the caller
// writes the text to stdout or stderr unchanged. Every line ends with '\n'.
//
// Layouts (printf notation of FreeBSD's hastctl.c; %N is humanize_number below):
//   status  "Name\tStatus\t Role\t\tComponents\n", printed only when the reply names at
//           least one resource, then per resource "%s\t%-9s%-15s%s\t%s\n" (name, status or
//           "-" without a worker, role, localpath, remoteaddr), or "%s\tERR%d\n".
//   list    per resource "%s:\n" then "  role: …", "  provname: …", "  localpath: …",
//           "  extentsize: %u (%NB)", "  keepdirty: %u", "  remoteaddr: …",
//           ["  sourceaddr: …"], "  replication: …", ["  status: …"], ["  workerpid: %d"],
//           "  dirty: %ju (%NB)", "  statistics:", "    reads: …", "    writes: …",
//           "    deletes: …", "    flushes: …", "    activemap updates: …",
//           "    local errors: read: …, write: …, delete: …, flush: …",
//           "    queues: local: …, send: …, recv: …, done: …, idle: …";
//           or "%s:\n  error: %d\n". Worker fields absent from the reply print as 0.
//   dump    "resource: %s", "    datasize: %ju (%NB)", "    extentsize: %d (%NB)",
//           "    keepdirty: %d", "    localoff: %ju", "    resuid: %ju",
//           "    localcnt: %ju", "    remotecnt: %ju", "    prevrole: %s".
//
// Extensions print only when they carry something, so output for a FreeBSD daemon, a
// block FreeBSD wrote, or a resource in a normal state is byte-identical to FreeBSD's:
//   list    after "  dirty:": "  inconsistent: yes" when set; "  metadata: read from the
//           second copy" when the local component was opened from the metadata area's
//           second copy (a metadata write was interrupted); while a sync runs,
//           "  sync: <pct>% (<done>B of <total>B)[, eta: <duration>]" (humanized sizes).
//   dump    after "    prevrole:": "    inconsistent: yes" when set, and
//           "    stale: <e>, <e>, ..." (extent indexes) when the stale list is not empty.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/meta/metadata.h"
#include "core/proto/control_messages.h"

namespace hast::control {

// sysexits(3) values hastctl and hastd exit with (§3.7).
inline constexpr int exit_ok = 0;
inline constexpr int exit_usage = 64;        // EX_USAGE
inline constexpr int exit_data_error = 65;   // EX_DATAERR: unknown resource, bad geometry
inline constexpr int exit_no_input = 66;     // EX_NOINPUT: provider cannot be opened
inline constexpr int exit_unavailable = 69;  // EX_UNAVAILABLE: request not sent/answered
inline constexpr int exit_software = 70;     // EX_SOFTWARE: top-level error in a reply
inline constexpr int exit_os_error = 71;     // EX_OSERR: control connection not set up
inline constexpr int exit_os_file = 72;      // EX_OSFILE: config cannot be opened
inline constexpr int exit_io_error = 74;     // EX_IOERR: metadata I/O (dump: not 255, §1.2)
inline constexpr int exit_temp_fail = 75;    // EX_TEMPFAIL
inline constexpr int exit_config = 78;       // EX_CONFIG: config syntax or validation

// FreeBSD's humanize_number(buf, 5, value, "", HN_AUTOSCALE, HN_DECIMAL | HN_NOSPACE):
// 1024-based, at most 4 characters, one decimal below 10 of a unit, no "B" (the caller
// appends it). 0 → "0", 1000 → "1.0K", 2097152 → "2.0M", 10737413120 → "10G".
std::string humanize_number(std::uint64_t value);

// "12s", "3m05s", "1h02m03s", "2d03h04m05s": an ETA.
std::string format_duration(std::uint64_t seconds);

// `hastctl status` stdout for a reply without a top-level error.
std::string format_status(const proto::StatusReply& reply);
// `hastctl list` stdout for a reply without a top-level error.
std::string format_list(const proto::StatusReply& reply);
// `hastctl dump` stdout for one resource's block.
std::string format_dump(const meta::Metadata& metadata);

// stderr of `hastctl role` for a reply without a top-level error: per failed resource
// "[WARNING] [<name>] Received error <N> from hastd.\n"; for our codes (101, 102) the
// reason follows in parentheses before the period. Empty when every resource succeeded.
std::string format_set_role_warnings(const proto::SetRoleReply& reply);
// stderr for a reply with a top-level error: "[ERROR] Error <N> received from hastd.\n".
std::string format_reply_error(std::int16_t error);
// stderr for any other failure: "[ERROR] <message>\n".
std::string format_error(std::string_view message);

// Exit status of `role`, `status`, `list` and `stop` once a reply arrived: 70 with a
// top-level error, else the first non-zero per-resource error, else 0.
int reply_exit_code(const proto::SetRoleReply& reply);
int reply_exit_code(const proto::StatusReply& reply);

}  // namespace hast::control
