#include "real/daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "core/control/server.h"
#include "core/fiber/event.h"
#include "core/proto/frame.h"
#include "core/replication/node.h"
#include "real/clock.h"
#include "real/hooks.h"
#include "real/host.h"
#include "real/log.h"
#include "real/net.h"
#include "real/pidfile.h"
#include "real/resource_thread.h"
#include "real/resources.h"
#include "real/ring.h"

namespace hast::real {
namespace {

constexpr int ex_ok = 0;
constexpr int ex_oserr = 71;
constexpr int ex_tempfail = 75;
constexpr int ex_config = 78;
constexpr std::size_t kStackBytes = 1024 * 1024;  // liblzf keeps ~512 KiB on the stack
constexpr Duration kReportInterval = std::chrono::seconds(5);
constexpr Duration kListenRetry = std::chrono::seconds(3);

// Blocks the signals hastd handles (they are read from a signalfd by a fiber instead).
int block_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int signal : {SIGHUP, SIGINT, SIGTERM, SIGCHLD})
    sigaddset(&set, signal);
  HAST_ASSERT(sigprocmask(SIG_BLOCK, &set, nullptr) == 0);
  ::signal(SIGPIPE, SIG_IGN);  // a closed peer is an error return, never a signal
  return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

std::unique_ptr<Log> make_log(const DaemonOptions& options) {
  LogLevel threshold = options.debug > 0 ? LogLevel::debug : LogLevel::info;
  if (options.foreground) return std::make_unique<StderrLog>(std::string(), threshold);
  return std::make_unique<SyslogLog>(std::string(), threshold);
}

// Everything that lives while hastd serves, in construction order.
class Daemon {
 public:
  Daemon(const DaemonOptions& options, std::string config_path, config::NodeConfig config, Log& log)
      : options_(options),
        config_path_(std::move(config_path)),
        log_(log),
        main_(log_, kStackBytes),
        hooks_(log_, exec_paths(config), hook_options(options)),
        host_(main_.scheduler, main_.ring, log_, kStackBytes, runtime_directory(config.control)),
        node_(main_.io, config, hooks_, host_, timing(options)),
        control_(main_.scheduler, log_, node_, [this] { stop_requested_.set(); }),
        stop_requested_(main_.scheduler),
        control_address_(config.control) {}

  // Opens the listen and control sockets (before daemonising, so errors reach the
  // terminal). Errors name the address.
  Result<void> open_sockets();
  // The pidfile in use (possibly not open) and its path; a reload may replace it.
  void adopt_pidfile(Pidfile pidfile, std::string path);
  // Serves until stopped; returns the exit code.
  int serve(int signal_fd);
  // Instead of serve() when start-up fails after open_sockets(): the fibers it spawned
  // never run (they are unwound), so the daemon can be destroyed.
  void abandon() { main_.scheduler.shutdown(); }
  // The pidfile in use when serve() returned, for removal at exit.
  Pidfile release_pidfile() { return std::move(pidfile_); }

 private:
  static HookOptions hook_options(const DaemonOptions& options) {
    HookOptions hook;
    hook.output = options.foreground ? HookOutput::inherit : HookOutput::null;
    return hook;
  }
  static replication::Timing timing(const DaemonOptions& options) {
    replication::Timing timing;
    if (options.keepalive) timing.keepalive = *options.keepalive;
    if (options.reconnect) timing.reconnect = *options.reconnect;
    return timing;
  }
  void main_fiber();
  void signal_fiber(int signal_fd);
  void reaper_fiber();
  void reload();
  Result<void> apply(const config::NodeConfig& next);
  Result<std::unique_ptr<Listener>> open_new_control(const config::NodeConfig& next);
  void switch_control(const config::NodeConfig& next, std::unique_ptr<Listener> listener);
  void switch_pidfile(const std::string& path);

  const DaemonOptions& options_;
  std::string config_path_;
  Log& log_;
  ThreadIo main_;  // the main thread's clock, scheduler, ring, network and NodeIo
  HookRunner hooks_;
  ThreadHost host_;
  replication::HastNode node_;
  control::ControlServer control_;
  fiber::Event stop_requested_;
  config::ConfiguredAddress control_address_;
  std::unique_ptr<Listener> control_listener_;
  Pidfile pidfile_;
  std::string pidfile_path_;
  int exit_code_ = ex_ok;
};

void Daemon::adopt_pidfile(Pidfile pidfile, std::string path) {
  pidfile_ = std::move(pidfile);
  pidfile_path_ = std::move(path);
}

Result<void> Daemon::open_sockets() {
  // A hastd killed just before still holds its sockets for a moment (RealNetwork).
  main_.network.set_listen_retry(kListenRetry);
  auto started = node_.start();
  auto listener = started ? main_.network.listen(control_address_.address)
                          : Result<std::unique_ptr<Listener>>(fail(started.error()));
  main_.network.set_listen_retry(Duration::zero());
  if (!started) return fail(started.error());
  if (!listener) {
    return fail(listener.error().wrap(
        fmt::format("Unable to listen on control address {}", control_address_.text)));
  }
  control_listener_ = std::move(*listener);
  return ok();
}

int Daemon::serve(int signal_fd) {
  // The resource threads start here, after daemon() forked (a fork keeps one thread).
  if (auto launched = host_.launch(); !launched) {
    log_error(log_, "{}", launched.error().message());
    abandon();
    return ex_oserr;
  }
  HAST_ASSERT(main_.scheduler.spawn("hastd-main", [this] { main_fiber(); }).has_value());
  HAST_ASSERT(
      main_.scheduler.spawn("hastd-signals", [this, signal_fd] { signal_fiber(signal_fd); })
          .has_value());
  HAST_ASSERT(main_.scheduler.spawn("hastd-reaper", [this] { reaper_fiber(); }).has_value());
  main_.scheduler.run(main_.ring);
  main_.ring.drain();
  main_.scheduler.shutdown();
  return exit_code_;
}

// Starts the control server, waits for a stop request, then stops everything in order:
// the control socket, every resource (to init: frontends closed, providers closed), and
// the helper fibers.
void Daemon::main_fiber() {
  auto started = control_.start(std::move(control_listener_));
  if (!started) {
    log_error(log_, "Unable to serve the control socket: {}", started.error().message());
    exit_code_ = ex_oserr;
  } else {
    ignore_error(stop_requested_.wait(), "stopping either way");
  }
  log_info(log_, "Exiting: every resource to init.");
  control_.stop();
  node_.stop();
  hooks_.reap();
  main_.scheduler.stop();
}

void Daemon::signal_fiber(int signal_fd) {
  while (true) {
    signalfd_siginfo info{};
    int n = main_.ring.run(
        [&](io_uring_sqe* sqe) { io_uring_prep_read(sqe, signal_fd, &info, sizeof info, 0); });
    if (n == -ECANCELED || main_.scheduler.current_cancelled()) return;
    if (n != static_cast<int>(sizeof info)) continue;
    switch (info.ssi_signo) {
      case SIGTERM:
      case SIGINT:
        log_info(log_, "Termination signal received, exiting.");
        stop_requested_.set();
        break;
      case SIGHUP:
        reload();
        break;
      case SIGCHLD:
        hooks_.reap();
        break;
      default:
        break;
    }
  }
}

// Hooks that run too long are reported (HAST's REPORT_INTERVAL), children reaped.
void Daemon::reaper_fiber() {
  while (main_.scheduler.sleep_for(kReportInterval))
    hooks_.reap();
}

// SIGHUP (§1.5): re-read the file and apply it; on any failure the old configuration
// stays in force.
void Daemon::reload() {
  log_info(log_, "Reloading configuration...");
  auto loaded = load_node_config(config_path_, host_identity(options_.node));
  if (!loaded) log_error(log_, "{}", loaded.error().message());
  if (!loaded || !apply(*loaded)) {
    log_warning(log_, "Configuration not reloaded.");
    return;
  }
  log_info(log_, "Configuration reloaded successfully.");
}

// HAST's order: the new control socket first (the one step that may fail before any
// change), then listeners and resources (HastNode::reload), then the switches that
// cannot fail: control socket, hooks, pidfile.
Result<void> Daemon::apply(const config::NodeConfig& next) {
  auto control = open_new_control(next);
  if (!control) return fail(control.error());
  // While resources change, a removed resource still runs its hook for its last role
  // change; the others already use their new `exec`.
  ExecPaths running = exec_paths(node_.config());
  ExecPaths during = exec_paths(next);
  during.insert(running.begin(), running.end());
  hooks_.set_exec_paths(during);
  auto reloaded = node_.reload(next);
  if (!reloaded) {
    hooks_.set_exec_paths(running);
    if (*control != nullptr) (*control)->close();
    log_error(log_, "{}", reloaded.error().message());
    return fail(reloaded.error());
  }
  hooks_.set_exec_paths(exec_paths(next));
  host_.tune(next.resources);
  if (*control != nullptr) switch_control(next, std::move(*control));
  if (!options_.foreground && !options_.pidfile && next.pidfile != pidfile_path_) {
    switch_pidfile(next.pidfile);
  }
  return ok();
}

// A listener on the new control address, or null when the address did not change.
Result<std::unique_ptr<Listener>> Daemon::open_new_control(const config::NodeConfig& next) {
  if (next.control.address == control_address_.address) return std::unique_ptr<Listener>();
  auto listener = main_.network.listen(next.control.address);
  if (!listener) {
    log_error(log_, "Unable to listen on control address {}: {}", next.control.text,
              listener.error().message());
    return fail(listener.error());
  }
  return std::move(*listener);
}

void Daemon::switch_control(const config::NodeConfig& next, std::unique_ptr<Listener> listener) {
  log_info(log_, "Control socket changed from {} to {}.", control_address_.text, next.control.text);
  control_address_ = next.control;
  auto replaced = control_.replace_listener(std::move(listener));
  if (!replaced) log_warning(log_, "Control socket not switched: {}", replaced.error().message());
}

// Like HAST: the new file is locked and written (failures only warn); the old one goes.
void Daemon::switch_pidfile(const std::string& path) {
  auto opened = Pidfile::open(path);
  if (!opened) {
    log_warning(log_, "{}", opened.error().context());
    return;
  }
  if (auto written = opened->write(::getpid()); !written) {
    log_warning(log_, "{}", written.error().context());
  }
  log_info(log_, "Pidfile changed from {} to {}.", pidfile_path_, path);
  pidfile_.remove();
  pidfile_ = std::move(*opened);
  pidfile_path_ = path;
}

// realpath() of the configuration file, before daemonising (§1.1).
Result<std::string> absolute_path(const std::string& path) {
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr) {
    return fail(Errc::not_found, fmt::format("Unable to find configuration file {}: {}", path,
                                             std::strerror(errno)));
  }
  return std::string(resolved);
}

// Like daemon(0, 0) (a new session, "/" as working directory, standard streams on
// /dev/null), except that the parent exits only when the child calls announce_ready()
// with the returned descriptor, after writing the pidfile: a service manager that reads
// the pidfile when the start command returns (systemd's Type=forking) finds it. Returns
// in the child only; the parent exits 0 once told, 1 if the child died first.
Result<int> detach() {
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) return fail(Errc::io, std::strerror(errno));
  pid_t child = ::fork();
  if (child < 0) return fail(Errc::io, std::strerror(errno));
  if (child > 0) {
    ::close(ready[1]);
    char byte = 0;
    ssize_t n;
    do {
      n = ::read(ready[0], &byte, 1);
    } while (n < 0 && errno == EINTR);
    ::_exit(n == 1 ? 0 : 1);
  }
  ::close(ready[0]);
  ::setsid();
  if (::chdir("/") != 0) return fail(Errc::io, std::strerror(errno));
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) return fail(Errc::io, std::strerror(errno));
  for (int stream : {0, 1, 2})
    ::dup2(null, stream);
  if (null > 2) ::close(null);
  return ready[1];
}

void announce_ready(int ready_fd) {
  char byte = 1;
  [[maybe_unused]] ssize_t n = ::write(ready_fd, &byte, 1);
  ::close(ready_fd);
}

}  // namespace

int run_hastd(const DaemonOptions& options) {
  auto path = absolute_path(options.config_path);
  if (!path) {
    fmt::print(stderr, "hastd: {}\n", path.error().context());
    return ex_config;
  }
  auto config = load_node_config(*path, host_identity(options.node));
  if (!config) {
    fmt::print(stderr, "hastd: {}\n", config.error().context());
    return config_exit_code(config.error());
  }
  std::unique_ptr<Log> log = make_log(options);
  std::string pidfile_path = options.pidfile.value_or(config->pidfile);
  auto pidfile = Pidfile::open(pidfile_path);
  if (!pidfile && pidfile.error().code() == Errc::busy) {
    log_error(*log, "{}", pidfile.error().context());
    if (!options.foreground) fmt::print(stderr, "hastd: {}\n", pidfile.error().context());
    return ex_tempfail;
  }
  if (!pidfile) log_warning(*log, "{}", pidfile.error().context());
  int signal_fd = block_signals();
  HAST_ASSERT_MSG(signal_fd >= 0, "signalfd: {}", std::strerror(errno));
  auto daemon = std::make_unique<Daemon>(options, *path, std::move(*config), *log);
  if (auto opened = daemon->open_sockets(); !opened) {
    log_error(*log, "{}", opened.error().message());
    if (!options.foreground) fmt::print(stderr, "hastd: {}\n", opened.error().message());
    daemon->abandon();
    return ex_oserr;
  }
  int ready_fd = -1;
  if (!options.foreground) {
    auto detached = detach();
    if (!detached) {
      log_error(*log, "Unable to daemonize: {}", detached.error().context());
      daemon->abandon();
      return ex_oserr;
    }
    ready_fd = *detached;
  }
  if (pidfile && (!options.foreground || options.pidfile)) {
    if (auto written = pidfile->write(::getpid()); !written) {
      log_warning(*log, "{}", written.error().context());
    }
  }
  if (ready_fd >= 0) announce_ready(ready_fd);
  daemon->adopt_pidfile(pidfile ? std::move(*pidfile) : Pidfile(), pidfile_path);
  log_info(*log, "Started successfully, running protocol version {}.", proto::protocol_version_max);
  int code = daemon->serve(signal_fd);
  Pidfile last = daemon->release_pidfile();
  daemon.reset();
  ::close(signal_fd);
  last.remove();
  return code;
}

}  // namespace hast::real
