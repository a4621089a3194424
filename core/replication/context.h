// ResourceContext: what the primary and secondary code of one resource share — the node's
// I/O, the resource's configuration, where events go, and the protocol's timing.
//
// `config` and `timing` may change under a running primary (a configuration reload,
// HastNode::reload): `config` always refers to the same object, which the reload assigns
// between two suspensions. Read a field when it is needed; a value that must stay the same
// across a suspension (a request's replication mode, a handshake's addresses) is copied.
#pragma once

#include <chrono>

#include "core/config/config.h"
#include "core/io/node_io.h"
#include "core/replication/events.h"
#include "core/replication/mutation.h"

namespace hast::replication {

// Protocol timing (reference/hast-spec.md §6.6). `timeout` comes from hast.conf; the
// keepalive and reconnect intervals are HAST's fixed 10 s, shortened only by test knobs.
struct Timing {
  Duration timeout = std::chrono::seconds(20);
  Duration keepalive = std::chrono::seconds(10);
  Duration reconnect = std::chrono::seconds(10);

  static Timing from_config(const config::ResourceConfig& config) {
    Timing timing;
    timing.timeout = std::chrono::seconds(config.timeout_seconds);
    return timing;
  }
};

struct ResourceContext {
  NodeIo& io;
  const config::ResourceConfig& config;
  EventSink& events;
  Timing timing;
  // Simulator only: a deliberately wrong behaviour to switch on (mutation.h).
  Mutation mutation = Mutation::none;

  bool mutated(Mutation which) const { return mutation == which; }

  void report(HookEvent event) const { events.on_event(EventRecord{config.name, event}); }
  Deadline deadline(Duration from_now) const { return deadline_after(io.clock, from_now); }
};

}  // namespace hast::replication
