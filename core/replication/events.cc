// Hook event names.
#include "core/replication/events.h"

namespace hast::replication {

std::string_view hook_event_name(HookEvent event) {
  switch (event) {
    case HookEvent::role:
      return "role";
    case HookEvent::connect:
      return "connect";
    case HookEvent::disconnect:
      return "disconnect";
    case HookEvent::syncstart:
      return "syncstart";
    case HookEvent::syncdone:
      return "syncdone";
    case HookEvent::syncintr:
      return "syncintr";
    case HookEvent::split_brain:
      return "split-brain";
  }
  HAST_UNREACHABLE();
}

}  // namespace hast::replication
