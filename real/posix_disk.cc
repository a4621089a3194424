// PosixDisk: opening a provider and driving it through io_uring (see posix_disk.h).
#include "real/posix_disk.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "core/assert.h"

namespace hast::real {
namespace {

constexpr std::uint32_t file_sector_size = 512;
constexpr std::uint32_t direct_file_sector_size = 4096;
// io_uring lengths are 32 bits; larger transfers are split.
constexpr std::size_t transfer_bytes_max = std::size_t{1} << 30;
// What discard() asks fallocate for, in order of preference (see posix_disk.h).
constexpr int discard_modes[] = {
    FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
    FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
};

Error in_use(const std::string& path) {
  return Error(Errc::busy, fmt::format("provider {} is in use by another process", path));
}

// Owns a descriptor until released, so every early return of open() closes it.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// A sector-aligned heap buffer for direct I/O from misaligned caller buffers.
class BounceBuffer {
 public:
  BounceBuffer(std::size_t size, std::size_t alignment)
      : size_(size),
        data_(static_cast<std::byte*>(std::aligned_alloc(alignment, std::max(size, alignment)))) {
    HAST_ASSERT_MSG(data_ != nullptr, "out of memory for a {}-byte bounce buffer", size);
  }
  ~BounceBuffer() { std::free(data_); }
  BounceBuffer(const BounceBuffer&) = delete;
  BounceBuffer& operator=(const BounceBuffer&) = delete;
  std::span<std::byte> span() { return {data_, size_}; }

 private:
  std::size_t size_;
  std::byte* data_;
};

// Counts an operation in flight for as long as it lives, also when the fiber unwinds.
class InFlight {
 public:
  explicit InFlight(std::uint64_t& count) : count_(count) { count_++; }
  ~InFlight() { count_--; }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  std::uint64_t& count_;
};

bool wants_direct(DirectIo direct, bool block_device) {
  if (direct == DirectIo::all) return true;
  return direct == DirectIo::devices && block_device;
}

// Opens `path`, retrying without O_DIRECT when the file system refuses it. Returns the
// descriptor; `direct` says whether O_DIRECT stuck.
Result<int> open_descriptor(const std::string& path, bool block_device, bool& direct) {
  int flags = O_RDWR | O_CLOEXEC | (block_device ? O_EXCL : 0);
  int fd = ::open(path.c_str(), flags | (direct ? O_DIRECT : 0));
  if (fd < 0 && errno == EINVAL && direct) {
    direct = false;
    fd = ::open(path.c_str(), flags);
  }
  if (fd >= 0) return fd;
  if (errno == EBUSY) return fail(in_use(path));
  return fail(errno_error(-errno, fmt::format("open provider {}", path)));
}

struct Geometry {
  std::uint64_t size = 0;
  std::uint32_t sector_size = 0;
};

// Size and sector size of an open provider.
Result<Geometry> measure(const std::string& path, const struct stat& st, int fd, bool block_device,
                         bool direct) {
  if (!block_device) {
    std::uint32_t sector_size = direct ? direct_file_sector_size : file_sector_size;
    return Geometry{static_cast<std::uint64_t>(st.st_size), sector_size};
  }
  std::uint64_t size = 0;
  if (::ioctl(fd, BLKGETSIZE64, &size) != 0) {
    return fail(errno_error(-errno, fmt::format("BLKGETSIZE64 on provider {}", path)));
  }
  int sector_size = 0;
  if (::ioctl(fd, BLKSSZGET, &sector_size) != 0) {
    return fail(errno_error(-errno, fmt::format("BLKSSZGET on provider {}", path)));
  }
  HAST_ASSERT_MSG(sector_size > 0, "BLKSSZGET on {} returned {}", path, sector_size);
  return Geometry{size, static_cast<std::uint32_t>(sector_size)};
}

Result<void> check_geometry(const std::string& path, const Geometry& geometry) {
  if (geometry.size == 0) {
    return fail(Errc::invalid_argument, fmt::format("provider {} is empty", path));
  }
  if (geometry.size % geometry.sector_size != 0) {
    return fail(Errc::invalid_argument,
                fmt::format("provider {}: size {} is not a multiple of the sector size {}", path,
                            geometry.size, geometry.sector_size));
  }
  return ok();
}

// Checks that the open descriptor is a file or a block device and locks it.
Result<struct stat> check_and_lock(const std::string& path, int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return fail(errno_error(-errno, fmt::format("fstat provider {}", path)));
  }
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    return fail(Errc::invalid_argument,
                fmt::format("provider {} is not a regular file or a block device", path));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return fail(in_use(path));
    return fail(errno_error(-errno, fmt::format("flock provider {}", path)));
  }
  return st;
}

}  // namespace

struct PosixDisk::Opened {
  int fd = -1;
  bool block_device = false;
  bool direct = false;
  Geometry geometry;
};

Result<std::unique_ptr<PosixDisk>> PosixDisk::open(Ring& ring, std::string path,
                                                   PosixDiskOptions options) {
  // stat first: a block device is opened with O_EXCL, which means something else for
  // files. The descriptor's fstat below is what counts if the path changes meanwhile.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return fail(errno_error(-errno, fmt::format("open provider {}", path)));
  }
  Opened opened;
  opened.block_device = S_ISBLK(st.st_mode);
  opened.direct = wants_direct(options.direct, opened.block_device);
  auto fd = open_descriptor(path, opened.block_device, opened.direct);
  if (!fd) return fail(fd.error());
  FdGuard guard(*fd);
  auto locked = check_and_lock(path, guard.get());
  if (!locked) return fail(locked.error());
  if (S_ISBLK(locked->st_mode) != opened.block_device) {
    return fail(Errc::busy, fmt::format("provider {} changed while being opened", path));
  }
  auto geometry = measure(path, *locked, guard.get(), opened.block_device, opened.direct);
  if (!geometry) return fail(geometry.error());
  HAST_TRY(check_geometry(path, *geometry));
  opened.geometry = *geometry;
  opened.fd = guard.release();
  return std::unique_ptr<PosixDisk>(new PosixDisk(ring, std::move(path), options, opened));
}

PosixDisk::PosixDisk(Ring& ring, std::string path, PosixDiskOptions options, const Opened& opened)
    : ring_(ring),
      path_(std::move(path)),
      options_(options),
      fd_(opened.fd),
      block_device_(opened.block_device),
      direct_(opened.direct),
      size_(opened.geometry.size) {
  HAST_ASSERT(fd_ >= 0);
  HAST_ASSERT(size_ % opened.geometry.sector_size == 0);
  properties_.sector_size = opened.geometry.sector_size;
  properties_.volatile_cache = true;
  properties_.discard_zeroes = !block_device_ || options_.block_discard == BlockDiscard::zero;
}

PosixDisk::~PosixDisk() {
  HAST_ASSERT_MSG(in_flight_ == 0, "PosixDisk {} destroyed with {} operations in flight", path_,
                  in_flight_);
  ::close(fd_);
}

void PosixDisk::check_range(std::uint64_t offset, std::uint64_t length) const {
  const std::uint32_t sector = properties_.sector_size;
  HAST_ASSERT_MSG(offset % sector == 0, "{}: offset {} not sector-aligned", path_, offset);
  HAST_ASSERT_MSG(length % sector == 0, "{}: length {} not sector-aligned", path_, length);
  HAST_ASSERT_MSG(offset <= size_, "{}: offset {} past the end {}", path_, offset, size_);
  HAST_ASSERT_MSG(length <= size_ - offset, "{}: {} bytes at {} pass the end {}", path_, length,
                  offset, size_);
}

bool PosixDisk::needs_bounce(const void* data) const {
  return direct_ && reinterpret_cast<std::uintptr_t>(data) % properties_.sector_size != 0;
}

std::string PosixDisk::where(std::string_view operation, std::uint64_t offset) const {
  return fmt::format("{} {} at offset {}", operation, path_, offset);
}

template <typename Prep>
int PosixDisk::submit(Prep&& prep) {
  InFlight counted(in_flight_);
  return ring_.run(std::forward<Prep>(prep));
}

Result<void> PosixDisk::read(std::uint64_t offset, std::span<std::byte> buffer) {
  check_range(offset, buffer.size());
  if (!needs_bounce(buffer.data())) return read_loop(offset, buffer);
  BounceBuffer bounce(buffer.size(), properties_.sector_size);
  HAST_TRY(read_loop(offset, bounce.span()));
  std::memcpy(buffer.data(), bounce.span().data(), buffer.size());
  return ok();
}

Result<void> PosixDisk::read_loop(std::uint64_t offset, std::span<std::byte> buffer) {
  std::size_t done = 0;
  while (done < buffer.size()) {
    std::size_t chunk = std::min(buffer.size() - done, transfer_bytes_max);
    std::byte* at = buffer.data() + done;
    std::uint64_t position = offset + done;
    int fixed = ring_.fixed(at, chunk);
    int res = submit([&](io_uring_sqe* sqe) {
      if (fixed >= 0) {
        fixed_operations_++;
        io_uring_prep_read_fixed(sqe, fd_, at, static_cast<unsigned>(chunk), position, fixed);
      } else {
        io_uring_prep_read(sqe, fd_, at, static_cast<unsigned>(chunk), position);
      }
    });
    if (res == -EINTR) continue;
    if (res < 0) return fail(errno_error(res, where("read", position)));
    if (res == 0) return fail(Errc::io, where("read", position) + ": unexpected end of file");
    done += static_cast<std::size_t>(res);
  }
  return ok();
}

Result<void> PosixDisk::write(std::uint64_t offset, std::span<const std::byte> data, Fua fua) {
  check_range(offset, data.size());
  if (!needs_bounce(data.data())) return write_loop(offset, data, fua);
  BounceBuffer bounce(data.size(), properties_.sector_size);
  std::memcpy(bounce.span().data(), data.data(), data.size());
  return write_loop(offset, bounce.span(), fua);
}

Result<void> PosixDisk::write_loop(std::uint64_t offset, std::span<const std::byte> data, Fua fua) {
  std::size_t done = 0;
  while (done < data.size()) {
    std::size_t chunk = std::min(data.size() - done, transfer_bytes_max);
    const std::byte* at = data.data() + done;
    std::uint64_t position = offset + done;
    int fixed = ring_.fixed(at, chunk);
    int res = submit([&](io_uring_sqe* sqe) {
      if (fixed >= 0) {
        fixed_operations_++;
        io_uring_prep_write_fixed(sqe, fd_, at, static_cast<unsigned>(chunk), position, fixed);
      } else {
        io_uring_prep_write(sqe, fd_, at, static_cast<unsigned>(chunk), position);
      }
      if (fua == Fua::yes) sqe->rw_flags = RWF_DSYNC;
    });
    if (res == -EINTR) continue;
    if (res < 0) return fail(errno_error(res, where("write", position)));
    if (res == 0) return fail(Errc::io, where("write", position) + ": no progress");
    done += static_cast<std::size_t>(res);
  }
  return ok();
}

Result<void> PosixDisk::flush() {
  int res =
      submit([&](io_uring_sqe* sqe) { io_uring_prep_fsync(sqe, fd_, IORING_FSYNC_DATASYNC); });
  if (res < 0) return fail(errno_error(res, fmt::format("flush {}", path_)));
  return ok();
}

Result<void> PosixDisk::discard(std::uint64_t offset, std::uint64_t length) {
  check_range(offset, length);
  if (length == 0) return ok();
  if (block_device_ && options_.block_discard == BlockDiscard::unmap) {
    return discard_ioctl(offset, length);
  }
  return discard_fallocate(offset, length);
}

Result<void> PosixDisk::discard_fallocate(std::uint64_t offset, std::uint64_t length) {
  // Another fiber may learn of an EOPNOTSUPP meanwhile: advance from what this call
  // tried, never past a mode nobody tried.
  for (std::size_t mode = discard_mode_; mode < std::size(discard_modes); mode++) {
    int res = submit([&](io_uring_sqe* sqe) {
      io_uring_prep_fallocate(sqe, fd_, discard_modes[mode], static_cast<off_t>(offset),
                              static_cast<off_t>(length));
    });
    if (res == 0) return ok();
    if (res != -EOPNOTSUPP) return fail(errno_error(res, where("discard", offset)));
    discard_mode_ = std::max(discard_mode_, mode + 1);
  }
  return fail(Errc::unsupported,
              where("discard", offset) + ": neither punching holes nor zeroing is supported");
}

Result<void> PosixDisk::discard_ioctl(std::uint64_t offset, std::uint64_t length) {
  std::uint64_t range[2] = {offset, length};
  if (::ioctl(fd_, BLKDISCARD, range) != 0) {
    return fail(errno_error(-errno, where("discard (BLKDISCARD)", offset)));
  }
  return ok();
}

Result<void> create_file(const std::string& path, std::uint64_t size_bytes) {
  if (size_bytes == 0 || size_bytes % file_sector_size != 0) {
    return fail(Errc::invalid_argument,
                fmt::format("create {}: size {} is not a positive multiple of {}", path, size_bytes,
                            file_sector_size));
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST) {
    return fail(Errc::busy, fmt::format("{} already exists", path));
  }
  if (fd < 0) return fail(errno_error(-errno, fmt::format("create {}", path)));
  FdGuard guard(fd);
  if (::ftruncate(fd, static_cast<off_t>(size_bytes)) != 0) {
    Error error = errno_error(-errno, fmt::format("create {}: set size {}", path, size_bytes));
    ::unlink(path.c_str());
    return fail(error);
  }
  return ok();
}

}  // namespace hast::real
