// Pidfile: hastd's single-instance lock (reference/hast-spec.md §1.2), like FreeBSD's
// pidfile(3): the file is opened (mode 0600) and locked before daemonising, the pid is
// written after, and the file is removed at a clean exit.
#pragma once

#include <sys/types.h>

#include <string>

#include "core/result.h"

namespace hast::real {

class Pidfile {
 public:
  // Opens and locks `path`. Errc::busy when another process holds it: the context is
  // "Another hastd is already running, pidfile: PATH, pid: N."; other errors name the path.
  static Result<Pidfile> open(std::string path);
  Pidfile() = default;
  Pidfile(Pidfile&& other) noexcept;
  Pidfile& operator=(Pidfile&& other) noexcept;
  ~Pidfile();

  // Replaces the contents by `pid` and a newline.
  Result<void> write(pid_t pid);
  // Removes the file and releases the lock (at a clean exit).
  void remove();
  bool is_open() const { return fd_ >= 0; }

 private:
  Pidfile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_ = -1;
};

}  // namespace hast::real
