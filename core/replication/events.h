// Events: what a resource reports for HAST's hooks (reference/hast-spec.md §10).
//
// Model: the replication code reports events through an EventSink; the daemon runs the
// configured `exec` hook with HAST's arguments, the simulator records them for the
// oracles and the coverage counters. Reporting never suspends and never fails.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/meta/role.h"

namespace hast::replication {

enum class HookEvent : std::uint8_t {
  role,         // `role <res> <oldrole> <newrole>`: after every effective role change
  connect,      // `connect <res>`: after each successful handshake
  disconnect,   // `disconnect <res>`: a connection was lost
  syncstart,    // `syncstart <res>`: a sync with dirty extents begins
  syncdone,     // `syncdone <res>`: a sync that copied bytes completed
  syncintr,     // `syncintr <res>`: a running sync was interrupted
  split_brain,  // `split-brain <res>`: detected (once per episode, defect 11)
};

// The hook's first argument: "role", "connect", ..., "split-brain".
std::string_view hook_event_name(HookEvent event);

struct EventRecord {
  std::string resource;
  HookEvent event = HookEvent::connect;
  meta::Role old_role = meta::Role::init;  // role events only
  meta::Role new_role = meta::Role::init;  // role events only
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void on_event(const EventRecord& record) = 0;
};

}  // namespace hast::replication
