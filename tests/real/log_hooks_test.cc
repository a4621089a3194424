// The daemon's logs (line format, threshold, one line per message) and its hooks (HAST's
// argument order, reaping, failure messages, what the child inherits).
//
// Method: hooks are small shell scripts in a temporary directory that append their
// arguments to a file; each event is fired and reaped before the next, so the file's
// lines come in firing order.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "real/hooks.h"
#include "real/log.h"

namespace hast::real {
namespace {

using replication::EventRecord;
using replication::HookEvent;

struct TempDir {
  std::string path;
  TempDir() {
    char pattern[] = "/tmp/hast-hooks-test-XXXXXX";
    REQUIRE(mkdtemp(pattern) != nullptr);
    path = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string file(const std::string& name) const { return path + "/" + name; }
};

struct Pipe {
  int fds[2]{-1, -1};
  Pipe() { REQUIRE(::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0); }
  ~Pipe() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  std::string drain() const {
    std::string out;
    char buffer[4096];
    ssize_t n;
    while ((n = ::read(fds[0], buffer, sizeof buffer)) > 0)
      out.append(buffer, n);
    return out;
  }
};

// Keeps every message, from any thread.
class RecordingLog final : public Log {
 public:
  void write(LogLevel level, std::string_view message) override {
    std::lock_guard lock(mutex_);
    lines_.push_back(std::string(log_level_name(level)) + " " + std::string(message));
  }
  std::string text() const {
    std::lock_guard lock(mutex_);
    std::string all;
    for (const std::string& line : lines_)
      all += line + "\n";
    return all;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Writes an executable shell script.
std::string script(const TempDir& dir, const std::string& name, const std::string& body) {
  std::string path = dir.file(name);
  std::ofstream(path) << "#!/bin/sh\n" << body;
  REQUIRE(::chmod(path.c_str(), 0755) == 0);
  return path;
}

// Reaps until no hook runs; false after about five seconds.
bool reap_all(HookRunner& hooks) {
  for (int i = 0; i < 500; i++) {
    hooks.reap();
    if (hooks.running() == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

EventRecord event(std::string resource, HookEvent kind) {
  return EventRecord{std::move(resource), kind, meta::Role::init, meta::Role::init};
}

TEST_CASE("Log: a line has time, level, tag and one line of text", "[real][log]") {
  // 2024-05-01T14:03:07.123Z; the date and hour depend on the local time zone.
  std::string line = format_log_line(1714572187123, LogLevel::warning, "res0", "a\nb");
  std::regex shape(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:07\.123[+-]\d\d:\d\d warning \[res0\] a\?b\n)");
  CHECK(std::regex_match(line, shape));
  std::string untagged = format_log_line(1714572187005, LogLevel::info, "", "x");
  CHECK(std::regex_match(untagged, std::regex(R"(\S+\.005\S* info x\n)")));
}

TEST_CASE("StderrLog: writes whole lines above its threshold", "[real][log]") {
  Pipe pipe;
  StderrLog log("r0", LogLevel::info, pipe.fds[1]);
  log_debug(log, "hidden {}", 1);
  log_info(log, "shown {}", 2);
  log_error(log, "error {}", 3);
  std::string out = pipe.drain();
  CHECK(out.find("hidden") == std::string::npos);
  CHECK(out.find(" info [r0] shown 2\n") != std::string::npos);
  CHECK(out.find(" error [r0] error 3\n") != std::string::npos);
  log.set_threshold(LogLevel::debug);
  CHECK(log.threshold() == LogLevel::debug);
  log_debug(log, "now {}", 4);
  CHECK(pipe.drain().find(" debug [r0] now 4\n") != std::string::npos);
}

TEST_CASE("SyslogLog: threshold", "[real][log]") {
  SyslogLog log("r0", LogLevel::warning);
  CHECK(log.threshold() == LogLevel::warning);
  log_debug(log, "dropped before syslog");
  log.set_threshold(LogLevel::error);
  CHECK(log.threshold() == LogLevel::error);
}

TEST_CASE("Hooks: arguments follow HAST's order", "[real][hooks]") {
  EventRecord role{"res0", HookEvent::role, meta::Role::secondary, meta::Role::primary};
  CHECK(hook_arguments(role) == std::vector<std::string>{"role", "res0", "secondary", "primary"});
  CHECK(hook_arguments(event("res0", HookEvent::split_brain)) ==
        std::vector<std::string>{"split-brain", "res0"});
  config::NodeConfig node;
  node.resources.resize(2);
  node.resources[0].name = "a";
  node.resources[0].exec_path = "/bin/a";
  node.resources[1].name = "b";
  CHECK(exec_paths(node) == ExecPaths{{"a", "/bin/a"}});
}

TEST_CASE("Hooks: events run the resource's hook with its arguments", "[real][hooks]") {
  TempDir dir;
  std::string out = dir.file("out");
  std::string hook = script(dir, "hook",
                            "printf '%s' \"$0\" >> " + out + "\n" +
                                "for a in \"$@\"; do printf ' [%s]' \"$a\"; done >> " + out +
                                "\necho >> " + out + "\n");
  RecordingLog log;
  HookRunner hooks(log, ExecPaths{{"res0", hook}});
  hooks.on_event(EventRecord{"res0", HookEvent::role, meta::Role::init, meta::Role::primary});
  REQUIRE(reap_all(hooks));
  hooks.on_event(event("res0", HookEvent::connect));
  REQUIRE(reap_all(hooks));
  hooks.on_event(event("res0", HookEvent::split_brain));
  REQUIRE(reap_all(hooks));
  hooks.on_event(event("res0", HookEvent::syncdone));
  hooks.on_event(event("other", HookEvent::connect));  // no hook configured
  REQUIRE(reap_all(hooks));
  CHECK(read_file(out) == hook + " [role] [res0] [init] [primary]\n" +  //
                              hook + " [connect] [res0]\n" +            //
                              hook + " [split-brain] [res0]\n" +        //
                              hook + " [syncdone] [res0]\n");
  CHECK(log.text().find("error") == std::string::npos);
}

TEST_CASE("Hooks: failures are logged with the command", "[real][hooks]") {
  TempDir dir;
  RecordingLog log;
  std::string exits = script(dir, "exits", "exit 3\n");
  std::string killed = script(dir, "killed", "kill -9 $$\n");
  HookRunner hooks(
      log,
      ExecPaths{
          {"r1", exits}, {"r2", killed}, {"r3", dir.file("missing")}, {"r4", "relative/hook"}});
  hooks.on_event(event("r1", HookEvent::connect));
  hooks.on_event(event("r2", HookEvent::disconnect));
  hooks.on_event(event("r3", HookEvent::syncstart));
  hooks.on_event(event("r4", HookEvent::syncintr));
  CHECK(hooks.running() == 2);
  REQUIRE(reap_all(hooks));
  std::string text = log.text();
  CHECK_THAT(text, Catch::Contains("error Hook exited ungracefully (pid=") &&
                       Catch::Contains("exitcode=3, cmd=[" + exits + " connect r1])."));
  CHECK_THAT(text, Catch::Contains("error Hook was killed (pid=") &&
                       Catch::Contains("signal=9, cmd=[" + killed + " disconnect r2])."));
  CHECK_THAT(text, Catch::Contains("error Unable to execute hook (cmd=[" + dir.file("missing") +
                                   " syncstart r3]): No such file or directory."));
  CHECK_THAT(text, Catch::Contains("Unable to execute hook (cmd=[relative/hook syncintr r4])"));
}

TEST_CASE("Hooks: the child gets /dev/null and no stray descriptor", "[real][hooks]") {
  TempDir dir;
  int stray = ::open("/dev/null", O_RDONLY);  // deliberately not close-on-exec
  REQUIRE(stray > 2);
  std::string out = dir.file("out");
  std::string hook =
      script(dir, "hook",
             "readlink /proc/$$/fd/0 >> " + out + "\n" + "readlink /proc/$$/fd/2 >> " + out + "\n" +
                 "[ -e /proc/$$/fd/" + std::to_string(stray) + " ] && echo leaked >> " + out +
                 "\necho done >> " + out + "\n");
  RecordingLog log;
  HookRunner hooks(log, ExecPaths{{"res0", hook}});
  hooks.on_event(event("res0", HookEvent::connect));
  REQUIRE(reap_all(hooks));
  ::close(stray);
  CHECK(read_file(out) == "/dev/null\n/dev/null\ndone\n");
}

TEST_CASE("Hooks: a long-running hook is reported, reloads change the path", "[real][hooks]") {
  TempDir dir;
  RecordingLog log;
  std::string slow = script(dir, "slow", "sleep 0.3\n");
  HookRunner hooks(log, ExecPaths{{"res0", slow}},
                   HookOptions{HookOutput::null, std::chrono::milliseconds(50)});
  hooks.on_event(event("res0", HookEvent::connect));
  REQUIRE(reap_all(hooks));
  CHECK_THAT(log.text(), Catch::Contains("warning Hook is running for ") &&
                             Catch::Contains("cmd=[" + slow + " connect res0])."));
  hooks.set_exec_paths({});
  hooks.on_event(event("res0", HookEvent::connect));
  CHECK(hooks.running() == 0);
}

}  // namespace
}  // namespace hast::real
