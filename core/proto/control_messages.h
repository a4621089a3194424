// Typed messages of the control protocol between hastctl and hastd (reference/hast-spec.md
// §6.7, §3.3–3.5): the request and the set-role and status replies. Same framing as the
// replication protocol; replies are sent with header version 2.
//
// Model: as in core/proto/messages.h, structs with to_nv/from_nv; to_nv adds fields in
// FreeBSD's order, indexed fields as `<name><i>` (resource0, role0, resource1, ...).
// Top-level `error` is an EHAST_* code or, when the daemon could not reach a worker, an
// errno value (FreeBSD numbers, see wire_errno).
//
// Deviation: FreeBSD's daemon answers a request that matches no resource with an empty nv,
// which FreeBSD's own receiver aborts on. Our replies are never empty: a reply with no
// resources carries a top-level `error` of 0 (hastctl reads 0 as "no error").
//
// Extensions (DESIGN.md §1.1: extra fields FreeBSD ignores, since it looks fields up by
// name; extra values FreeBSD answers with EHAST_UNIMPLEMENTED):
//   request  `force` uint8 = 1     set_role only, present only when set: `role primary`
//                                  proceeds on an inconsistent component (DESIGN.md §1.2
//                                  item 8). FreeBSD's daemon has no such refusal.
//   request  `cmd` = 100 (stop)    the daemon sets every resource to init and exits. Sent
//                                  with `resource0 = "all"` (checked like any command), so
//                                  FreeBSD's hastd answers EHAST_UNIMPLEMENTED. Its reply
//                                  is a set-role reply with no resources: top-level error 0.
//   set-role `error<i>` = 101, 102 see ehast_inconsistent and ehast_role_failed.
//   status   `inconsistent<i>` uint8 = 1, present only when set (after the worker fields).
//   status   `sync_running<i>` uint8, `sync_done<i>` uint64, `sync_total<i>` uint64 and,
//            while running and when known, `sync_eta<i>` uint64 (seconds): the primary's
//            synchronisation progress (SyncStatus), after `inconsistent<i>`.
//   status   `metacopy<i>` string "first" or "second", present while the local component
//            is open: the copy of the metadata area it was read from (core/meta/metadata.h;
//            "second": a metadata write was interrupted), between the two above.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/proto/messages.h"
#include "core/proto/nv.h"
#include "core/result.h"

namespace hast::proto {

// 1 and 2 are FreeBSD's; stop is ours (see the file comment).
enum class ControlCommand : std::uint8_t { set_role = 1, status = 2, stop = 100 };

// Error codes of control replies (FreeBSD's EHAST_*), per resource and top-level.
inline constexpr std::int16_t ehast_ok = 0;
inline constexpr std::int16_t ehast_noentry = 1;  // no such resource
inline constexpr std::int16_t ehast_invalid = 2;  // malformed request
inline constexpr std::int16_t ehast_nomemory = 3;
inline constexpr std::int16_t ehast_unimplemented = 4;  // unknown command
// Ours, per resource in set-role replies (hastctl exits with the value):
// `role primary` refused: the component is inconsistent (a sync to it did not complete);
// the request may be repeated with `force`.
inline constexpr std::int16_t ehast_inconsistent = 101;
// The new role could not start (e.g. the local component could not be opened); the
// resource is now in role init.
inline constexpr std::int16_t ehast_role_failed = 102;

// hastctl → hastd: {cmd, [role], resource0..N}. `resource0 = "all"` means every
// configured resource.
struct ControlRequest {
  ControlCommand cmd = ControlCommand::status;
  std::optional<Role> role;  // set_role only: init, primary or secondary
  std::vector<std::string> resources;
  bool force = false;  // set_role only: the `force` extension

  // Asserts a role (init, primary or secondary) exactly for set_role, `force` only for
  // set_role, and at least one resource.
  Nv to_nv() const;
  // Fails in FreeBSD's order of checks, and the error kind says how the daemon answers:
  //   Errc::corruption        missing (or 0) `cmd`: close without a reply;
  //   Errc::invalid_argument  set_role with a missing or invalid `role`, or no
  //                           `resource0`: top-level error EHAST_INVALID;
  //   Errc::unsupported       unknown `cmd`: EHAST_UNIMPLEMENTED.
  // A mistyped `role` or `resource<i>` counts as missing (FreeBSD's lookups return 0/NULL);
  // `force` is read only for set_role, as a uint8 that is non-zero (anything else: unset).
  static Result<ControlRequest> from_nv(const Nv& nv);
  friend bool operator==(const ControlRequest&, const ControlRequest&) = default;
};

// The top-level error the daemon sends for a ControlRequest::from_nv failure, or nullopt
// when it closes the connection without a reply.
std::optional<std::int16_t> control_reply_error(const Error& error);

// One index of a set-role reply: `resource<i>`, then `error<i>` or `role<i>`.
struct SetRoleResult {
  std::string resource;
  std::int16_t error = 0;             // non-zero: `error<i>` (1 = no such resource)
  std::optional<Role> previous_role;  // `role<i>`: the role before the change, when error is 0

  friend bool operator==(const SetRoleResult&, const SetRoleResult&) = default;
};

struct SetRoleReply {
  std::vector<SetRoleResult> resources;
  std::int16_t error = 0;  // top-level

  // Asserts that each result has exactly one of error and previous_role.
  Nv to_nv() const;
  static Result<SetRoleReply> from_nv(const Nv& nv);
  friend bool operator==(const SetRoleReply&, const SetRoleReply&) = default;
};

// What a running worker reports (every field uint64 unless noted); a secondary worker
// reports recv/done queues as 0.
struct WorkerStatus {
  std::string status;  // "complete" or "degraded"
  std::uint64_t dirty = 0;
  std::uint32_t extentsize = 0;
  std::uint32_t keepdirty = 0;
  std::uint64_t stat_read = 0;
  std::uint64_t stat_write = 0;
  std::uint64_t stat_delete = 0;
  std::uint64_t stat_flush = 0;
  std::uint64_t stat_activemap_update = 0;
  std::uint64_t stat_read_error = 0;
  std::uint64_t stat_write_error = 0;
  std::uint64_t stat_delete_error = 0;
  std::uint64_t stat_flush_error = 0;
  std::uint64_t idle_queue_size = 0;
  std::uint64_t local_queue_size = 0;
  std::uint64_t send_queue_size = 0;
  std::uint64_t recv_queue_size = 0;
  std::uint64_t done_queue_size = 0;

  friend bool operator==(const WorkerStatus&, const WorkerStatus&) = default;
};

// Extension: the primary's synchronisation progress (see the file comment).
struct SyncStatus {
  bool running = false;     // `sync_running<i>`
  std::uint64_t done = 0;   // `sync_done<i>`: bytes copied in the current or last sync
  std::uint64_t total = 0;  // `sync_total<i>`: bytes to copy when that sync started
  std::optional<std::uint64_t> eta_seconds{};  // `sync_eta<i>`: running and rate known

  friend bool operator==(const SyncStatus&, const SyncStatus&) = default;
};

// One index of a status reply, fields in wire order.
struct ResourceStatus {
  std::string resource;
  // Non-zero (1 = no such resource): `error<i>` follows the name and nothing else does;
  // every other field below is then unused and left at its default.
  std::int16_t error = 0;
  std::string provname;
  std::string localpath;
  std::string remoteaddr;
  std::optional<std::string> sourceaddr;  // only when configured
  std::string replication;                // the parent's configured mode, e.g. "memsync"
  std::string checksum;                   // e.g. "crc32"
  std::string compression;                // e.g. "hole"
  Role role = Role::init;
  std::int32_t workerpid = 0;  // 0 = none
  // Present when a worker answered: `status<i>` onwards.
  std::optional<WorkerStatus> worker;
  // Extensions, never sent by FreeBSD.
  bool inconsistent = false;         // `inconsistent<i>`
  std::optional<std::string> metadata_copy{};  // `metacopy<i>`
  std::optional<SyncStatus> sync{};  // present when `sync_total<i>` is

  friend bool operator==(const ResourceStatus&, const ResourceStatus&) = default;
};

struct StatusReply {
  std::vector<ResourceStatus> resources;
  std::int16_t error = 0;  // top-level

  // Asserts that an errored index has every other field at its default.
  Nv to_nv() const;
  static Result<StatusReply> from_nv(const Nv& nv);
  friend bool operator==(const StatusReply&, const StatusReply&) = default;
};

}  // namespace hast::proto
