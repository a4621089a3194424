// The FUSE frontend with its loop device, against an in-memory core: the link serves
// direct reads and writes, flushes and discards with 4096-byte logical blocks; close()
// removes link, loop device and mount; a restart after a simulated kill -9 clears the dead
// mount, the stale link and a loop device still held by a user, and serves again. Also
// the loop device alone, through LOOP_CONFIGURE and through the pre-5.8 ioctls.
//
// Needs root, /dev/fuse and loop devices; without them each test prints "SKIP: ..." and
// passes.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "real/clock.h"
#include "real/fuse/fuse_device.h"
#include "real/fuse/mounts.h"
#include "real/fuse/off_thread.h"
#include "real/log.h"
#include "real/loop.h"
#include "real/ring.h"
#include "tests/support/fuse_fixtures.h"

namespace hast::real::fuse {
namespace {

using namespace std::chrono_literals;
using Loop = test::FuseLoop;

constexpr std::uint64_t disk_bytes = 16 << 20;

// The core, in memory: each part is applied to `bytes` and completed at once.
struct MemoryCore {
  void serve(BlockFrontend& frontend) {
    while (true) {
      auto request = frontend.next_request();
      if (!request) return;
      ops.push_back(request->op);
      auto range = std::span(bytes).subspan(request->offset, request->length);
      if (request->op == BlockOp::read)
        std::copy(range.begin(), range.end(), request->data.begin());
      if (request->op == BlockOp::write)
        std::copy(request->data.begin(), request->data.end(), range.begin());
      if (request->op == BlockOp::discard || request->op == BlockOp::write_zeroes) {
        std::fill(range.begin(), range.end(), std::byte{0});
      }
      frontend.complete(*request, ok());
    }
  }
  std::size_t count(BlockOp op) const { return std::count(ops.begin(), ops.end(), op); }

  std::vector<std::byte> bytes = std::vector<std::byte>(disk_bytes);
  std::vector<BlockOp> ops;
};

struct Buffer {
  explicit Buffer(std::size_t size_bytes)
      : size(size_bytes), data(static_cast<std::byte*>(std::aligned_alloc(4096, size_bytes))) {
    for (std::size_t i = 0; i < size; i++)
      data[i] = std::byte(static_cast<std::uint8_t>(i * 13 + 1));
  }
  ~Buffer() { std::free(data); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  std::size_t size;
  std::byte* data;
};

FuseDeviceOptions device_options(const std::string& dir) {
  FuseDeviceOptions options;
  // Not `= "r"`: inlined here, GCC 12 misreads that as an overlapping copy (-Wrestrict).
  options.name.assign(1, 'r');
  options.mount_point = fmt::format("{}/r.fuse", dir);
  options.link = fmt::format("{}/dev/hast/r", dir);
  // Like HAST's data size, not a whole number of 4 KiB blocks: the device leaves the tail.
  options.size = disk_bytes - 512;
  return options;
}

template <typename T>
T off_thread(Loop& loop, std::function<T()> work) {
  auto result = run_off_thread<T>(loop.scheduler, loop.ring, "client",
                                  [work = std::move(work)]() -> Result<T> { return work(); });
  REQUIRE(result);
  return *result;
}

// What a client of the link saw.
struct ClientView {
  int open_error = 0;
  int logical_block = 0;
  std::uint64_t size = 0;
  bool written_back = false;
  bool discarded_zero = false;
  int errors = 0;
};

ClientView use_device(const std::string& link, const Buffer& data) {
  ClientView view;
  int fd = ::open(link.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
  if (fd < 0) {
    view.open_error = errno;
    return view;
  }
  ::ioctl(fd, BLKSSZGET, &view.logical_block);
  ::ioctl(fd, BLKGETSIZE64, &view.size);
  Buffer back(std::max<std::size_t>(data.size, 16384));
  if (::pwrite(fd, data.data, data.size, 1 << 20) != static_cast<ssize_t>(data.size)) view.errors++;
  if (::fsync(fd) != 0) view.errors++;
  view.written_back =
      ::pread(fd, back.data, back.size, 1 << 20) == static_cast<ssize_t>(back.size) &&
      std::memcmp(back.data, data.data, data.size) == 0;
  std::uint64_t range[2] = {1 << 20, 16384};
  if (::ioctl(fd, BLKDISCARD, range) != 0) view.errors++;
  view.discarded_zero =
      ::pread(fd, back.data, 16384, 1 << 20) == 16384 &&
      std::all_of(back.data, back.data + 16384, [](std::byte b) { return b == std::byte{0}; });
  ::close(fd);
  return view;
}

TEST_CASE("FuseBlockDevice: the link serves the data; close removes link, loop and mount",
          "[real][fuse]") {
  if (!test::fuse_tests_can_run(true)) return;
  test::FuseTempDir dir{"hast-fuse-dev-test"};
  Loop loop;
  MemoryCore core;
  FuseBlockDevice device(loop.scheduler, loop.ring, loop.log, device_options(dir.path));
  Buffer data(65536);
  ClientView view;
  int number = -1;
  REQUIRE(loop.scheduler.spawn("test", [&] {
    auto opened = device.open();
    REQUIRE(opened);
    REQUIRE(loop.scheduler.spawn("core", [&] { core.serve(device); }));
    number = std::stoi(device.loop_path().substr(std::strlen("/dev/loop")));
    view = off_thread<ClientView>(loop, [&] { return use_device(device.options().link, data); });
    device.close();
  }));
  loop.run();
  CHECK(view.open_error == 0);
  CHECK(view.logical_block == 4096);
  CHECK(view.size == disk_bytes - 4096);
  CHECK(view.errors == 0);
  CHECK(view.written_back);
  CHECK(view.discarded_zero);
  CHECK(
      std::equal(data.data + 16384, data.data + data.size, core.bytes.begin() + (1 << 20) + 16384));
  CHECK(core.count(BlockOp::flush) >= 1);
  CHECK(core.count(BlockOp::discard) + core.count(BlockOp::write_zeroes) >= 1);
  // Nothing left: link, loop device, mount.
  CHECK_FALSE(std::filesystem::exists(std::filesystem::symlink_status(device.options().link)));
  CHECK(loops_backed_by(device.mount_point() + "/data").empty());
  CHECK_FALSE(loop_bound(number));
  CHECK(mounts_at(device.mount_point()).empty());
}

TEST_CASE("FuseBlockDevice: a restart clears what a killed predecessor left and serves again",
          "[real][fuse]") {
  if (!test::fuse_tests_can_run(true)) return;
  test::FuseTempDir dir{"hast-fuse-dev-test"};
  Loop loop;
  MemoryCore core_before, core_after;
  FuseBlockDevice before(loop.scheduler, loop.ring, loop.log, device_options(dir.path));
  FuseBlockDevice after(loop.scheduler, loop.ring, loop.log, device_options(dir.path));
  Buffer data(4096);
  int holder = -1;
  int held_read_error = 0;
  bool dead_mount = false, stale_link = false, old_loop_bound_meanwhile = false;
  bool old_loop_gone = false;
  ClientView view;
  std::string old_loop;
  REQUIRE(loop.scheduler.spawn("test", [&] {
    REQUIRE(before.open());
    REQUIRE(loop.scheduler.spawn("core-before", [&] { core_before.serve(before); }));
    old_loop = before.loop_path();
    // A user holds the device open (as a mounted file system would) when hastd dies.
    holder = off_thread<int>(
        loop, [&] { return ::open(old_loop.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC); });
    REQUIRE(holder >= 0);
    before.test_abandon();
    dead_mount = !mounts_at(before.mount_point()).empty();
    stale_link =
        std::filesystem::is_symlink(std::filesystem::symlink_status(before.options().link));
    REQUIRE(after.open());
    REQUIRE(loop.scheduler.spawn("core-after", [&] { core_after.serve(after); }));
    old_loop_bound_meanwhile = loop_bound(std::stoi(old_loop.substr(9)));
    view = off_thread<ClientView>(loop, [&] { return use_device(after.options().link, data); });
    held_read_error = off_thread<int>(loop, [&] {
      Buffer block(4096);
      return ::pread(holder, block.data, 4096, 0) < 0 ? errno : 0;
    });
    old_loop_gone = off_thread<bool>(loop, [&] {
      ::close(holder);  // the last user goes: the detach asked for at the restart happens
      for (int i = 0; i < 100 && loop_bound(std::stoi(old_loop.substr(9))); i++)
        std::this_thread::sleep_for(10ms);
      return !loop_bound(std::stoi(old_loop.substr(9)));
    });
    after.close();
  }));
  loop.run();
  CHECK(dead_mount);
  CHECK(stale_link);
  CHECK(after.loop_path() != old_loop);
  CHECK(view.open_error == 0);
  CHECK(view.errors == 0);
  CHECK(view.written_back);
  CHECK(old_loop_bound_meanwhile);  // held: it stays until its user lets go
  CHECK(held_read_error == EIO);
  CHECK(old_loop_gone);
  CHECK(mounts_at(after.mount_point()).empty());
  CHECK_FALSE(std::filesystem::exists(std::filesystem::symlink_status(after.options().link)));
}

TEST_CASE("FuseBlockDevice: closed while a user holds the device, its I/O fails with EIO",
          "[real][fuse]") {
  if (!test::fuse_tests_can_run(true)) return;
  test::FuseTempDir dir{"hast-fuse-dev-test"};
  Loop loop;
  MemoryCore core;
  FuseBlockDevice device(loop.scheduler, loop.ring, loop.log, device_options(dir.path));
  int holder = -1;
  int read_before = -1, read_after = -1;
  bool bound_while_held = false, gone_after = false;
  std::string loop_path;
  REQUIRE(loop.scheduler.spawn("test", [&] {
    REQUIRE(device.open());
    REQUIRE(loop.scheduler.spawn("core", [&] { core.serve(device); }));
    loop_path = device.loop_path();
    auto read_block = [&] {
      Buffer block(4096);
      return ::pread(holder, block.data, 4096, 0) == 4096 ? 0 : errno;
    };
    holder = off_thread<int>(
        loop, [&] { return ::open(loop_path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC); });
    REQUIRE(holder >= 0);
    read_before = off_thread<int>(loop, read_block);
    device.close();  // a role change under a user: lazy unmount, deferred detach
    bound_while_held = loop_bound(std::stoi(loop_path.substr(9)));
    read_after = off_thread<int>(loop, read_block);
    gone_after = off_thread<bool>(loop, [&] {
      ::close(holder);
      for (int i = 0; i < 100 && loop_bound(std::stoi(loop_path.substr(9))); i++)
        std::this_thread::sleep_for(10ms);
      return !loop_bound(std::stoi(loop_path.substr(9)));
    });
  }));
  loop.run();
  CHECK(read_before == 0);
  CHECK(bound_while_held);
  CHECK(read_after == EIO);
  CHECK(gone_after);
  CHECK(mounts_at(device.mount_point()).empty());
  CHECK_FALSE(std::filesystem::exists(std::filesystem::symlink_status(device.options().link)));
}

TEST_CASE("LoopDevice: LOOP_CONFIGURE and the legacy ioctls attach and detach a file",
          "[real][fuse]") {
  if (!test::fuse_tests_can_run(true)) return;
  test::FuseTempDir dir{"hast-fuse-dev-test"};
  std::string file = dir.path + "/backing.img";
  {
    int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, 8 << 20) == 0);
    ::close(fd);
  }
  auto canonical = canonical_path(file);
  REQUIRE(canonical);
  for (bool legacy : {false, true}) {
    LoopOptions options;
    options.block_size = 4096;
    options.test_legacy_ioctls = legacy;
    options.size_limit = 4 << 20;
    auto loop = LoopDevice::attach(file, options);
    REQUIRE(loop);
    int number = loop->number();
    auto found = loops_backed_by(*canonical);
    CHECK(std::any_of(found.begin(), found.end(),
                      [&](const LoopBacking& backing) { return backing.number == number; }));
    int fd = ::open(loop->path().c_str(), O_RDONLY | O_CLOEXEC);
    int logical = 0;
    std::uint64_t size = 0;
    CHECK(::ioctl(fd, BLKSSZGET, &logical) == 0);
    CHECK(::ioctl(fd, BLKGETSIZE64, &size) == 0);
    ::close(fd);
    CHECK(logical == 4096);
    CHECK(size == (4 << 20));
    CHECK(loop->detach());
    CHECK_FALSE(loop_bound(number));
  }
  LoopOptions bad;
  bad.block_size = 3000;
  CHECK(LoopDevice::attach(file, bad).error().code() == Errc::invalid_argument);
}

}  // namespace
}  // namespace hast::real::fuse
