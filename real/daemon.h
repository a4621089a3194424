// hastd: the production daemon (DESIGN.md §7, reference/hast-spec.md §1.1–§1.2).
//
// Start-up order: read and resolve the configuration (errors exit 78 naming the file and
// line), lock the pidfile (another hastd: exit 75), open the listen sockets and the control
// socket (exit 71 when one cannot be opened), daemonise unless foreground, write the pid,
// start the resource threads and serve. Every resource starts in role `init`.
//
// Threads (DESIGN.md §7): each resource runs on its own thread ("hastd:<resource>") with
// its own scheduler, io_uring and stack pool (real/resource_thread.h): its role logic,
// provider, peer connections and frontend. The main thread runs the control socket, the
// listeners and admission (an admitted connection moves to its resource's ring), signals,
// reloads and the reaping of hooks (a resource's thread starts its own hooks through the
// thread-safe HookRunner); its fibers wait for a resource's answer without blocking the main
// scheduler. The threads start after daemonising (a fork keeps one thread) and are
// joined when their resource is removed or hastd stops (after every resource went to
// init, frontends first).
//
// Signals: SIGTERM and SIGINT stop the daemon cleanly (every resource to init, then exit
// 0), as does `hastctl stop`; SIGCHLD reaps hooks; SIGHUP reloads the configuration
// (reference/hast-spec.md §1.5): the file is read again (an error logs "Configuration not
// reloaded." and changes nothing), a new control address is opened before anything else
// changes and replaces the old one at the end, HastNode::reload applies the listen
// addresses and the resources, the hooks follow the new `exec` settings, and a new
// pidfile path is taken (only when daemonised without -P: the new file is locked and
// written, the old one removed). The outcome is logged: "Configuration reloaded
// successfully." or "Configuration not reloaded.".
#pragma once

#include <optional>
#include <string>

#include "core/io/clock.h"

namespace hast::real {

struct DaemonOptions {
  std::string config_path = "/etc/hast.conf";
  std::optional<std::string> pidfile;  // -P: beats the configuration's
  std::optional<std::string> node;     // --node: the name matched against `on` sections
  bool foreground = false;             // -F: stay attached, log to stderr
  int debug = 0;                       // -d (repeatable): debug messages
  // Test-only knobs (--test-keepalive-ms, --test-reconnect-ms): let the real tests run in
  // seconds. Not for production: HAST's values are 10 s.
  std::optional<Duration> keepalive;
  std::optional<Duration> reconnect;
};

// Runs hastd; returns the process exit code (sysexits.h values).
int run_hastd(const DaemonOptions& options);

}  // namespace hast::real
