// HookRunner: posix_spawn and waitpid for HAST's hooks (see hooks.h).
#include "real/hooks.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/assert.h"
#include "core/meta/role.h"

extern char** environ;

namespace hast::real {
namespace {

// posix_spawn_file_actions_t with its destroy, set up for HookOutput. The setup calls
// fail only on a bad argument or out of memory, where aborting is the handling.
class FileActions {
 public:
  explicit FileActions(HookOutput output) {
    HAST_ASSERT(posix_spawn_file_actions_init(&actions_) == 0);
    if (output == HookOutput::null) {
      add_open(STDIN_FILENO, O_RDONLY);
      add_open(STDOUT_FILENO, O_WRONLY);
      add_open(STDERR_FILENO, O_WRONLY);
    }
    // Everything above stdio is close-on-exec already; closing it here as well keeps a
    // descriptor someone forgot to mark out of the hook.
    HAST_ASSERT(posix_spawn_file_actions_addclosefrom_np(&actions_, STDERR_FILENO + 1) == 0);
  }
  ~FileActions() { posix_spawn_file_actions_destroy(&actions_); }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
  const posix_spawn_file_actions_t* get() const { return &actions_; }

 private:
  void add_open(int fd, int flags) {
    HAST_ASSERT(posix_spawn_file_actions_addopen(&actions_, fd, "/dev/null", flags, 0) == 0);
  }

  posix_spawn_file_actions_t actions_;
};

// posix_spawnattr_t: empty signal mask, every signal at its default action (an ignored
// signal would otherwise stay ignored across exec).
class SpawnAttributes {
 public:
  SpawnAttributes() {
    HAST_ASSERT(posix_spawnattr_init(&attr_) == 0);
    sigset_t none;
    sigset_t all;
    sigemptyset(&none);
    sigfillset(&all);
    HAST_ASSERT(posix_spawnattr_setsigmask(&attr_, &none) == 0);
    HAST_ASSERT(posix_spawnattr_setsigdefault(&attr_, &all) == 0);
    HAST_ASSERT(posix_spawnattr_setflags(&attr_, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF) ==
                0);
  }
  ~SpawnAttributes() { posix_spawnattr_destroy(&attr_); }
  SpawnAttributes(const SpawnAttributes&) = delete;
  SpawnAttributes& operator=(const SpawnAttributes&) = delete;
  const posix_spawnattr_t* get() const { return &attr_; }

 private:
  posix_spawnattr_t attr_;
};

// Starts `path` with `arguments` as argv[1..]. Returns the pid or the spawn error.
Result<pid_t> spawn(const std::string& path, const std::vector<std::string>& arguments,
                    HookOutput output) {
  FileActions actions(output);
  SpawnAttributes attributes;
  std::vector<char*> argv;
  argv.reserve(arguments.size() + 2);
  argv.push_back(const_cast<char*>(path.c_str()));
  for (const std::string& argument : arguments)
    argv.push_back(const_cast<char*>(argument.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, path.c_str(), actions.get(), attributes.get(), argv.data(), environ);
  if (rc != 0) return fail(Errc::io, std::strerror(rc));
  HAST_ASSERT(pid > 0);
  return pid;
}

std::string command_line(const std::string& path, const std::vector<std::string>& arguments) {
  return fmt::format("{} {}", path, fmt::join(arguments, " "));
}

}  // namespace

ExecPaths exec_paths(const config::NodeConfig& config) {
  ExecPaths paths;
  for (const config::ResourceConfig& resource : config.resources) {
    if (!resource.exec_path.empty()) paths.emplace(resource.name, resource.exec_path);
  }
  return paths;
}

std::vector<std::string> hook_arguments(const replication::EventRecord& record) {
  std::vector<std::string> arguments{std::string(replication::hook_event_name(record.event)),
                                     record.resource};
  if (record.event == replication::HookEvent::role) {
    arguments.emplace_back(meta::role_name(record.old_role));
    arguments.emplace_back(meta::role_name(record.new_role));
  }
  return arguments;
}

HookRunner::HookRunner(Log& log, ExecPaths paths, HookOptions options)
    : log_(log), options_(options), paths_(std::move(paths)) {
  HAST_ASSERT(options_.report_interval.count() >= 0);
}

void HookRunner::set_exec_paths(ExecPaths paths) {
  std::lock_guard lock(mutex_);
  paths_ = std::move(paths);
}

void HookRunner::on_event(const replication::EventRecord& record) {
  std::string path;
  {
    std::lock_guard lock(mutex_);
    auto found = paths_.find(record.resource);
    if (found == paths_.end() || found->second.empty()) return;
    path = found->second;
  }
  std::vector<std::string> arguments = hook_arguments(record);
  std::string command = command_line(path, arguments);
  if (path.front() != '/') {
    log_error(log_, "Unable to execute hook (cmd=[{}]): the path is not absolute.", command);
    return;
  }
  auto pid = spawn(path, arguments, options_.output);
  if (!pid) {
    log_error(log_, "Unable to execute hook (cmd=[{}]): {}.", command, pid.error().context());
    return;
  }
  log_debug(log_, "Executing hook (pid={}, cmd=[{}]).", *pid, command);
  SteadyTime now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  children_.push_back(Child{*pid, std::move(command), now, now});
}

void HookRunner::reap() {
  std::lock_guard lock(mutex_);
  SteadyTime now = std::chrono::steady_clock::now();
  std::size_t kept = 0;
  for (Child& child : children_) {
    if (collect(child)) continue;
    report_long_running(child, now);
    if (&children_[kept] != &child) children_[kept] = std::move(child);
    kept++;
  }
  children_.resize(kept);
}

bool HookRunner::collect(const Child& child) {
  int status = 0;
  pid_t rc;
  do {
    rc = waitpid(child.pid, &status, WNOHANG);
  } while (rc < 0 && errno == EINTR);
  if (rc == 0) return false;
  if (rc < 0) {
    log_warning(log_, "Hook process disappeared (pid={}, cmd=[{}]).", child.pid, child.command);
  } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    log_debug(log_, "Hook finished (pid={}, cmd=[{}]).", child.pid, child.command);
  } else if (WIFEXITED(status)) {
    log_error(log_, "Hook exited ungracefully (pid={}, exitcode={}, cmd=[{}]).", child.pid,
              WEXITSTATUS(status), child.command);
  } else if (WIFSIGNALED(status)) {
    log_error(log_, "Hook was killed (pid={}, signal={}, cmd=[{}]).", child.pid, WTERMSIG(status),
              child.command);
  } else {
    return false;  // stopped or continued: still ours to collect later
  }
  return true;
}

void HookRunner::report_long_running(Child& child, SteadyTime now) {
  if (now - child.reported < options_.report_interval) return;
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(now - child.started);
  log_warning(log_, "Hook is running for {} seconds (pid={}, cmd=[{}]).", seconds.count(),
              child.pid, child.command);
  child.reported = now;
}

std::size_t HookRunner::running() const {
  std::lock_guard lock(mutex_);
  return children_.size();
}

}  // namespace hast::real
