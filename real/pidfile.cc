#include "real/pidfile.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include <fmt/format.h>

namespace hast::real {
namespace {

std::string holder_pid(int fd) {
  char text[32] = {};
  ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
  if (n <= 0) return "unknown";
  std::string pid(text, static_cast<std::size_t>(n));
  while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' '))
    pid.pop_back();
  return pid.empty() ? "unknown" : pid;
}

}  // namespace

Result<Pidfile> Pidfile::open(std::string path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return fail(Errc::io, fmt::format("cannot open pidfile {}: {}", path, std::strerror(errno)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int error = errno;
    std::string pid = holder_pid(fd);
    ::close(fd);
    if (error == EWOULDBLOCK) {
      return fail(Errc::busy, fmt::format("Another hastd is already running, pidfile: {}, pid: {}.",
                                          path, pid));
    }
    return fail(Errc::io, fmt::format("cannot lock pidfile {}: {}", path, std::strerror(error)));
  }
  return Pidfile(std::move(path), fd);
}

Pidfile::Pidfile(Pidfile&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}

Pidfile& Pidfile::operator=(Pidfile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

Pidfile::~Pidfile() {
  if (fd_ >= 0) ::close(fd_);
}

Result<void> Pidfile::write(pid_t pid) {
  std::string text = fmt::format("{}\n", pid);
  if (::ftruncate(fd_, 0) != 0 ||
      ::pwrite(fd_, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    return fail(Errc::io, fmt::format("cannot write pidfile {}: {}", path_, std::strerror(errno)));
  }
  return ok();
}

void Pidfile::remove() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());
  ::close(fd_);
  fd_ = -1;
}

}  // namespace hast::real
