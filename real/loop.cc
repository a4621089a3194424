// Loop devices (see loop.h): attach with LOOP_CONFIGURE or the legacy ioctls, detach with
// LOOP_CLR_FD, find devices by backing file through sysfs.
#include "real/loop.h"

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "real/ring.h"

namespace hast::real {
namespace {

// Another process may take the free device between LOOP_CTL_GET_FREE and the configure.
constexpr int attach_attempts_max = 16;
// A device LOOP_CTL_GET_FREE just created may take a moment to get its node.
constexpr int node_attempts_max = 50;
constexpr auto node_retry_interval = std::chrono::milliseconds(10);

// Owns a descriptor until released.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

std::string device_path(int number) {
  return fmt::format("/dev/loop{}", number);
}

Error os_error(int error, std::string_view what) {
  return errno_error(-error, what);
}

Result<int> open_path(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return fail(os_error(errno, fmt::format("open {}", path)));
  return fd;
}

// Opens /dev/loopN, waiting briefly for a node the kernel is still creating.
Result<int> open_device(int number) {
  std::string path = device_path(number);
  for (int attempt = 1;; attempt++) {
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd >= 0) return fd;
    if (errno != ENOENT || attempt >= node_attempts_max) {
      return fail(os_error(errno, fmt::format("open {}", path)));
    }
    std::this_thread::sleep_for(node_retry_interval);
  }
}

loop_info64 make_info(const std::string& backing_path, const LoopOptions& options,
                      bool with_direct_io) {
  loop_info64 info{};
  if (with_direct_io && options.direct_io) info.lo_flags |= LO_FLAGS_DIRECT_IO;
  info.lo_sizelimit = options.size_limit;
  // Only for display (losetup -l); the kernel binds the descriptor, not the name.
  std::size_t length = std::min<std::size_t>(backing_path.size(), LO_NAME_SIZE - 1);
  std::memcpy(info.lo_file_name, backing_path.data(), length);
  return info;
}

// The pre-5.8 sequence. Returns 0 or -errno; on failure the device is left unbound.
int configure_legacy(int loop_fd, int backing_fd, const std::string& backing_path,
                     const LoopOptions& options) {
  if (::ioctl(loop_fd, LOOP_SET_FD, backing_fd) != 0) return -errno;
  loop_info64 info = make_info(backing_path, options, false);
  int failed = 0;
  if (::ioctl(loop_fd, LOOP_SET_STATUS64, &info) != 0) {
    failed = -errno;
  } else if (::ioctl(loop_fd, LOOP_SET_BLOCK_SIZE, options.block_size) != 0) {
    failed = -errno;
  }
  if (failed != 0) {
    ::ioctl(loop_fd, LOOP_CLR_FD, 0);
    return failed;
  }
  // Best effort, as with LOOP_CONFIGURE: the kernel refuses direct I/O for a backing file
  // that cannot do it, and the device then runs buffered.
  if (options.direct_io) ::ioctl(loop_fd, LOOP_SET_DIRECT_IO, 1UL);
  return 0;
}

// Binds `loop_fd` to `backing_fd`. Returns 0 or -errno (-EBUSY: already bound).
int configure(int loop_fd, int backing_fd, const std::string& backing_path,
              const LoopOptions& options) {
  if (!options.test_legacy_ioctls) {
    loop_config config{};
    config.fd = static_cast<std::uint32_t>(backing_fd);
    config.block_size = options.block_size;
    config.info = make_info(backing_path, options, true);
    if (::ioctl(loop_fd, LOOP_CONFIGURE, &config) == 0) return 0;
    // Kernels before 5.8 do not know the ioctl (ENOTTY, or EINVAL from the loop driver).
    if (errno != ENOTTY && errno != EINVAL) return -errno;
  }
  return configure_legacy(loop_fd, backing_fd, backing_path, options);
}

bool valid_block_size(std::uint32_t size) {
  return size >= 512 && size <= 4096 && (size & (size - 1)) == 0;
}

// The first line of a small sysfs file, or nothing.
std::optional<std::string> read_line(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buffer[4096];
  ssize_t n = ::read(fd, buffer, sizeof buffer);
  ::close(fd);
  if (n < 0) return std::nullopt;
  std::string text(buffer, static_cast<std::size_t>(n));
  if (auto end = text.find('\n'); end != std::string::npos) text.resize(end);
  return text;
}

std::string backing_file_path(int number) {
  return fmt::format("/sys/block/loop{}/loop/backing_file", number);
}

}  // namespace

LoopDevice::LoopDevice(int number, std::string backing_path, std::uint32_t block_size,
                       bool direct_io)
    : number_(number),
      path_(device_path(number)),
      backing_path_(std::move(backing_path)),
      block_size_(block_size),
      direct_io_(direct_io) {}

Result<LoopDevice> LoopDevice::attach(const std::string& backing_path, const LoopOptions& options) {
  if (!valid_block_size(options.block_size)) {
    return fail(Errc::invalid_argument,
                fmt::format("loop block size {} (512, 1024, 2048 or 4096)", options.block_size));
  }
  if (options.size_limit % options.block_size != 0) {
    return fail(Errc::invalid_argument,
                fmt::format("loop size limit {} not a multiple of the block size {}",
                            options.size_limit, options.block_size));
  }
  auto control = open_path("/dev/loop-control", O_RDWR);
  if (!control) return fail(control.error().wrap("no loop device support"));
  Fd control_fd(*control);
  auto backing = open_path(backing_path, O_RDWR);
  if (!backing) return fail(backing.error());
  Fd backing_fd(*backing);
  for (int attempt = 0; attempt < attach_attempts_max; attempt++) {
    int number = ::ioctl(control_fd.get(), LOOP_CTL_GET_FREE);
    if (number < 0) return fail(os_error(errno, "LOOP_CTL_GET_FREE"));
    auto device = open_device(number);
    if (!device) return fail(device.error());
    Fd device_fd(*device);
    int rc = configure(device_fd.get(), backing_fd.get(), backing_path, options);
    if (rc == -EBUSY) continue;  // another process bound it first
    if (rc != 0) {
      return fail(
          errno_error(rc, fmt::format("binding {} to {} ({}-byte blocks)", device_path(number),
                                      backing_path, options.block_size)));
    }
    loop_info64 info{};
    bool direct = ::ioctl(device_fd.get(), LOOP_GET_STATUS64, &info) == 0 &&
                  (info.lo_flags & LO_FLAGS_DIRECT_IO) != 0;
    return LoopDevice(number, backing_path, options.block_size, direct);
  }
  return fail(Errc::busy, fmt::format("no free loop device for {} after {} attempts", backing_path,
                                      attach_attempts_max));
}

Result<void> LoopDevice::detach() {
  if (detached_) return ok();
  // The number may have been detached by someone else and reused since.
  if (bound()) HAST_TRY(detach_loop(number_));
  detached_ = true;
  return ok();
}

bool LoopDevice::bound() const {
  auto backing = read_line(backing_file_path(number_));
  return backing && *backing == backing_path_;
}

std::vector<LoopBacking> loops_backed_by(std::string_view backing_path) {
  std::vector<LoopBacking> found;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/block", error)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("loop", 0) != 0) continue;
    int number = 0;
    auto digits = std::string_view(name).substr(4);
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string_view::npos) {
      continue;
    }
    number = std::stoi(std::string(digits));
    auto backing = read_line(backing_file_path(number));
    if (!backing || *backing != backing_path) continue;
    found.push_back(LoopBacking{number, device_path(number), *backing});
  }
  return found;
}

bool loop_bound(int number) {
  return ::access(backing_file_path(number).c_str(), F_OK) == 0;
}

Result<void> detach_loop(int number) {
  std::string path = device_path(number);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(os_error(errno, fmt::format("open {}", path)));
  int rc = ::ioctl(fd, LOOP_CLR_FD, 0);
  int error = errno;
  ::close(fd);
  if (rc != 0 && error != ENXIO) return fail(os_error(error, fmt::format("detach {}", path)));
  return ok();
}

}  // namespace hast::real
