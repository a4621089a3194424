// HookRunner: runs the `exec` hook of a resource for each event it reports
// (reference/hast-spec.md §10, DESIGN.md §7).
//
// Model: on_event() starts `<exec> <event> <resource> [<oldrole> <newrole>]` (argv[0] is
// the path; roles are spelled init, primary, secondary as hastctl prints them; the event
// is role, connect, disconnect, syncstart, syncdone, syncintr or split-brain) with
// posix_spawn(3): no shell, no PATH search, so the path must be absolute. The child gets
// the daemon's environment, an empty signal mask, every signal at its default action,
// descriptors 0-2 on /dev/null (HookOutput::null, the daemon) or inherited
// (HookOutput::inherit, foreground mode, as HAST does) and no other descriptor (every
// descriptor from 3 up is closed in the child, on top of hastd's close-on-exec rule).
//
// The caller is never blocked on the hook: on_event() returns once the child has been
// created (glibc's posix_spawn suspends the calling thread only until the exec, well
// under a millisecond). Children are collected by reap(), which the daemon calls on
// SIGCHLD and periodically; it waits for our own children by pid (never waitpid(-1)), so
// SIGCHLD must not be ignored (SIG_IGN reaps them behind our back: they are then reported
// as vanished).
//
// Log messages, in HAST's words (cmd is the path and its arguments, so every message
// names the event and the resource):
//   error   "Hook exited ungracefully (pid=P, exitcode=N, cmd=[...])."
//   error   "Hook was killed (pid=P, signal=N, cmd=[...])."
//   error   "Unable to execute hook (cmd=[...]): <reason>." (spawn failure, bad path)
//   warning "Hook process disappeared (pid=P, cmd=[...])."
//   warning "Hook is running for N seconds (pid=P, cmd=[...])." every report interval
//   debug   "Executing hook (pid=P, cmd=[...])." and "Hook finished (...)."
//
// Threads: every method may be called from any thread (a mutex guards the state); the
// Log must accept writes from those threads. Destruction does not wait for children.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/config/config.h"
#include "core/io/log.h"
#include "core/replication/events.h"

namespace hast::real {

// Where a hook's stdin, stdout and stderr go.
enum class HookOutput : std::uint8_t {
  null,     // /dev/null: the daemon (hastd without -F)
  inherit,  // hastd's own descriptors 0-2: foreground mode (-F)
};

struct HookOptions {
  HookOutput output = HookOutput::null;
  // A hook still running is reported this often (HAST: every 60 s).
  std::chrono::milliseconds report_interval{std::chrono::seconds(60)};
};

// Resource name → absolute path of its hook. A resource absent from the map, or mapped to
// an empty path, has no hook.
using ExecPaths = std::map<std::string, std::string, std::less<>>;

// The `exec` setting of every resource of `config` that has one.
ExecPaths exec_paths(const config::NodeConfig& config);

// argv[1..] of the hook for `record`: {event, resource} or, for role events,
// {"role", resource, oldrole, newrole}.
std::vector<std::string> hook_arguments(const replication::EventRecord& record);

class HookRunner final : public replication::EventSink {
 public:
  HookRunner(Log& log, ExecPaths paths, HookOptions options = {});
  ~HookRunner() override = default;
  HookRunner(const HookRunner&) = delete;
  HookRunner& operator=(const HookRunner&) = delete;

  // Starts the resource's hook for the event, if it has one. Never fails visibly: a
  // spawn failure is logged.
  void on_event(const replication::EventRecord& record) override;

  // Replaces the hooks (configuration reload). Hooks already running are not affected.
  void set_exec_paths(ExecPaths paths);

  // Collects every finished hook without blocking and logs how it ended; reports hooks
  // running longer than the report interval.
  void reap();

  // Hooks started and not yet collected by reap().
  std::size_t running() const;

 private:
  using SteadyTime = std::chrono::steady_clock::time_point;

  struct Child {
    pid_t pid = 0;
    std::string command;  // for messages: "path arg1 arg2 ..."
    SteadyTime started;
    SteadyTime reported;  // last "is running" report, or the start
  };

  // True when the child is done (collected or vanished), after logging how it ended.
  bool collect(const Child& child);
  void report_long_running(Child& child, SteadyTime now);

  Log& log_;
  HookOptions options_;
  mutable std::mutex mutex_;
  ExecPaths paths_;              // guarded by mutex_
  std::vector<Child> children_;  // guarded by mutex_
};

}  // namespace hast::real
