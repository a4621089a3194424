// The status model: what a node's resource looks like on the control protocol.
//
// Model: HastNode reports a replication::ResourceStatus (what the core knows); hastctl
// receives a proto::ResourceStatus (the wire's fields, reference/hast-spec.md §6.7). This
// file is the one place that maps the first onto the second, so `status`, `list` and
// `--json` show the same thing whatever prints them. Pure: the caller passes the time.
//
// The mapping, where the core and FreeBSD differ:
// - FreeBSD has a worker process per active resource; we have none. A "worker" exists
//   when the core's status is not "-" (a primary, or a secondary whose primary is
//   connected), exactly when FreeBSD's would answer; `workerpid` is always 0.
// - Queues: FreeBSD's five queues become `idle` = request slots free on a primary
//   (replication::request_count_max minus the requests in flight); the others are 0.
// - Sync progress, the inconsistent flag and the metadata copy the local component was read
//   from travel as the protocol's extensions.
#pragma once

#include <cstdint>
#include <optional>

#include "core/config/config.h"
#include "core/io/clock.h"
#include "core/proto/control_messages.h"
#include "core/replication/node.h"

namespace hast::control {

// The wire status of one resource. `config` is the resource's configuration (for the
// checksum and compression names, which the core's status does not carry); its name must
// equal status.name (asserted). `now` is the node's clock, for the sync ETA.
proto::ResourceStatus wire_status(const replication::ResourceStatus& status,
                                  const config::ResourceConfig& config, Instant now);

// Seconds until a running sync completes, extrapolated from its average rate so far;
// nullopt when not running, when nothing is copied yet or no time has passed.
std::optional<std::uint64_t> sync_eta_seconds(const replication::SyncProgress& sync, Instant now);

// The status reply entry of a name no resource has (`error<i>` = EHAST_NOENTRY).
proto::ResourceStatus unknown_resource_status(std::string_view name);

}  // namespace hast::control
