// The FUSE server against an in-memory core: a real mount in a temporary directory, the
// data file read and written with pread/pwrite from helper threads while the scheduler
// serves, fsync and O_DSYNC, fallocate punch-hole and zero-range, what is refused, and a
// teardown with requests in flight that answers them with EIO. Also the pieces that need
// no mount: run_off_thread and the mountinfo parser.
//
// Needs root and /dev/fuse; without them each mount test prints "SKIP: ..." and passes.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "real/clock.h"
#include "real/fuse/fuse_server.h"
#include "real/fuse/mounts.h"
#include "real/fuse/off_thread.h"
#include "real/log.h"
#include "real/ring.h"
#include "tests/support/fuse_fixtures.h"

namespace hast::real::fuse {
namespace {

using namespace std::chrono_literals;
using Loop = test::FuseLoop;

constexpr std::uint64_t disk_bytes = 8 << 20;

// The core, in memory: each part is applied to `bytes` and completed at once, or, with
// `hold`, kept in `held` for the test to complete.
struct MemoryCore {
  explicit MemoryCore(std::uint64_t size) : bytes(size) {}

  void serve(BlockFrontend& frontend) {
    while (true) {
      auto request = frontend.next_request();
      if (!request) return;
      seen.push_back(*request);
      if (hold) {
        held.push_back(*request);
        continue;
      }
      apply(*request);
      frontend.complete(*request, ok());
    }
  }

  void apply(const BlockRequest& request) {
    auto range = std::span(bytes).subspan(request.offset, request.length);
    switch (request.op) {
      case BlockOp::read:
        std::copy(range.begin(), range.end(), request.data.begin());
        break;
      case BlockOp::write:
        std::copy(request.data.begin(), request.data.end(), range.begin());
        break;
      case BlockOp::discard:
      case BlockOp::write_zeroes:
        std::fill(range.begin(), range.end(), std::byte{0});
        break;
      case BlockOp::flush:
        break;
    }
  }

  std::size_t count(BlockOp op, Fua fua = Fua::no) const {
    return std::count_if(seen.begin(), seen.end(), [&](const BlockRequest& request) {
      return request.op == op && (fua == Fua::no || request.fua == Fua::yes);
    });
  }

  std::vector<std::byte> bytes;
  std::vector<BlockRequest> seen;
  std::vector<BlockRequest> held;
  bool hold = false;
};

// Page-aligned memory, so a 1 MiB direct write is one FUSE request.
struct Buffer {
  explicit Buffer(std::size_t size_bytes)
      : size(size_bytes), data(static_cast<std::byte*>(std::aligned_alloc(4096, size_bytes))) {}
  ~Buffer() { std::free(data); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  std::span<std::byte> span() const { return {data, size}; }
  void fill(std::uint8_t seed) {
    for (std::size_t i = 0; i < size; i++)
      data[i] = std::byte(static_cast<std::uint8_t>(seed + i * 7));
  }
  std::size_t size;
  std::byte* data;
};

struct Fixture {
  Fixture() : core(disk_bytes) {
    std::filesystem::create_directory(dir.path + "/mnt");
    FuseServerOptions options;
    options.mount_point = dir.path + "/mnt";
    options.name = "test";
    options.size = disk_bytes;
    server = std::make_unique<FuseServer>(loop.scheduler, loop.ring, loop.log, options);
  }

  // Runs `body` in a fiber with the server started and the core serving, then unmounts
  // and closes the server.
  void run(const std::function<void()>& body) {
    REQUIRE(loop.scheduler.spawn("test", [&] {
      auto started = server->start();
      REQUIRE(started);
      REQUIRE(loop.scheduler.spawn("core", [&] { core.serve(*server); }));
      body();
      teardown();
    }));
    loop.run();
  }

  void teardown() {
    server->expect_disconnect();
    auto unmounted = run_off_thread<Unmounted>(
        loop.scheduler, loop.ring, "unmount",
        [mnt = server->options().mount_point] { return unmount_fuse(mnt); });
    CHECK(unmounted);
    server->close();
  }

  // Runs `work` on a helper thread (it may block on the mount) and returns its result.
  template <typename T>
  T off_thread(std::function<T()> work) {
    auto result = run_off_thread<T>(loop.scheduler, loop.ring, "client",
                                    [work = std::move(work)]() -> Result<T> { return work(); });
    REQUIRE(result);
    return *result;
  }

  test::FuseTempDir dir{"hast-fuse-test"};
  Loop loop;
  MemoryCore core;
  std::unique_ptr<FuseServer> server;
};

// errno of a failed call, 0 for success.
int call(ssize_t rc) {
  return rc < 0 ? errno : 0;
}

TEST_CASE("FuseServer: the data file reads and writes through the core", "[real][fuse]") {
  if (!test::fuse_tests_can_run(false)) return;
  Fixture f;
  Buffer big(1 << 20), small(4096), back(1 << 20);
  big.fill(1);
  small.fill(2);
  struct Seen {
    off_t size = 0;
    bool big_back = false;
    bool unaligned_back = false;
    std::vector<std::string> names;
  };
  Seen seen;
  f.run([&] {
    seen = f.off_thread<Seen>([&, path = f.server->data_path()] {
      Seen out;
      int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0) return out;
      struct stat st {};
      ::fstat(fd, &st);
      out.size = st.st_size;
      bool written = ::pwrite(fd, big.data, big.size, 0) == static_cast<ssize_t>(big.size) &&
                     ::pwrite(fd, small.data, small.size, 3 << 20) == 4096;
      out.big_back = written && ::pread(fd, back.data, back.size, 0) == (1 << 20) &&
                     std::memcmp(back.data, big.data, back.size) == 0;
      char bytes[100];
      out.unaligned_back = ::pread(fd, bytes, sizeof bytes, (3 << 20) + 10) == 100 &&
                           std::memcmp(bytes, small.data + 10, sizeof bytes) == 0;
      ::close(fd);
      for (const auto& entry :
           std::filesystem::directory_iterator(std::filesystem::path(path).parent_path()))
        out.names.push_back(entry.path().filename().string());
      return out;
    });
  });
  CHECK(seen.size == static_cast<off_t>(disk_bytes));
  CHECK(seen.big_back);
  CHECK(seen.unaligned_back);
  CHECK(seen.names == std::vector<std::string>{"data"});
  CHECK(std::equal(big.data, big.data + big.size, f.core.bytes.begin()));
  CHECK(std::equal(small.data, small.data + small.size, f.core.bytes.begin() + (3 << 20)));
  // Parts never exceed the replication request size; the 1 MiB write was cut.
  std::uint64_t longest = 0;
  for (const BlockRequest& part : f.core.seen)
    longest = std::max(longest, part.length);
  CHECK(longest == proto::request_size_send_default);
  CHECK(f.core.count(BlockOp::write) >= 9);
  CHECK(f.server->parts_outstanding() == 0);
}

TEST_CASE("FuseServer: fsync is a flush, O_DSYNC writes carry FUA", "[real][fuse]") {
  if (!test::fuse_tests_can_run(false)) return;
  Fixture f;
  Buffer block(4096);
  block.fill(3);
  std::vector<int> errors;
  f.run([&] {
    errors = f.off_thread<std::vector<int>>([&, path = f.server->data_path()] {
      std::vector<int> out;
      int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
      int sync_fd = ::open(path.c_str(), O_RDWR | O_DSYNC | O_CLOEXEC);
      out.push_back(call(::fsync(fd)));  // nothing written yet: answered at once
      out.push_back(call(::pwrite(fd, block.data, 4096, 0)));
      out.push_back(call(::fsync(fd)));
      out.push_back(call(::fdatasync(fd)));
      out.push_back(call(::pwrite(sync_fd, block.data, 4096, 8192)));
      iovec vec{block.data, 4096};
      out.push_back(call(::pwritev2(fd, &vec, 1, 16384, RWF_DSYNC)));
      ::close(sync_fd);
      ::close(fd);
      return out;
    });
  });
  CHECK(errors == std::vector<int>(6, 0));
  CHECK(f.server->stats().flushes_at_once == 1);
  CHECK(f.core.count(BlockOp::flush) >= 2);
  CHECK(f.core.count(BlockOp::write, Fua::yes) == 2);
  CHECK(f.server->stats().fua_writes == 2);
}

TEST_CASE("FuseServer: fallocate punches holes and zeroes ranges through the core",
          "[real][fuse]") {
  if (!test::fuse_tests_can_run(false)) return;
  Fixture f;
  Buffer data(65536), back(65536);
  data.fill(4);
  std::vector<int> errors;
  f.run([&] {
    errors = f.off_thread<std::vector<int>>([&, path = f.server->data_path()] {
      std::vector<int> out;
      int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
      out.push_back(call(::pwrite(fd, data.data, data.size, 0)));
      out.push_back(call(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192)));
      out.push_back(call(::fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 32768, 4096)));
      out.push_back(call(::fallocate(fd, 0, 0, 4096)));  // allocated already
      out.push_back(call(::fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, 4096)));
      out.push_back(call(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 512)));
      out.push_back(call(::fallocate(fd, 0, 0, disk_bytes + 4096)));  // cannot grow
      out.push_back(call(::pread(fd, back.data, back.size, 0)));
      ::close(fd);
      return out;
    });
  });
  CHECK(errors == std::vector<int>{0, 0, 0, 0, EOPNOTSUPP, EINVAL, EFBIG, 0});
  std::vector<std::byte> expected(data.data, data.data + data.size);
  std::fill(expected.begin() + 4096, expected.begin() + 12288, std::byte{0});
  std::fill(expected.begin() + 32768, expected.begin() + 36864, std::byte{0});
  CHECK(std::equal(expected.begin(), expected.end(), back.data));
  CHECK(std::equal(expected.begin(), expected.end(), f.core.bytes.begin()));
  CHECK(f.core.count(BlockOp::discard) == 1);
  CHECK(f.core.count(BlockOp::write_zeroes) == 1);
}

TEST_CASE("FuseServer: unaligned writes, growth, truncation and writes past the end are refused",
          "[real][fuse]") {
  if (!test::fuse_tests_can_run(false)) return;
  Fixture f;
  Buffer block(8192);
  std::vector<int> errors;
  f.run([&] {
    errors = f.off_thread<std::vector<int>>([&, path = f.server->data_path()] {
      std::vector<int> out;
      int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
      out.push_back(call(::pwrite(fd, block.data, 100, 0)));
      out.push_back(call(::pwrite(fd, block.data, 4096, 10)));
      out.push_back(call(::pwrite(fd, block.data, 4096, disk_bytes)));
      out.push_back(call(::ftruncate(fd, 4096)));
      out.push_back(call(::open(path.c_str(), O_RDWR | O_TRUNC | O_CLOEXEC)));
      // A write crossing the end is cut short, like a block device's.
      out.push_back(static_cast<int>(::pwrite(fd, block.data, 8192, disk_bytes - 4096)));
      ::close(fd);
      return out;
    });
  });
  CHECK(errors == std::vector<int>{EINVAL, EINVAL, ENOSPC, EPERM, EPERM, 4096});
  CHECK(f.server->stats().rejected >= 3);
}

TEST_CASE("FuseServer: a teardown answers requests in flight with EIO, never success",
          "[real][fuse]") {
  if (!test::fuse_tests_can_run(false)) return;
  Fixture f;
  f.core.hold = true;
  Buffer read_buffer(4096), write_buffer(4096);
  write_buffer.fill(5);
  Result<int> read_error = 0, write_error = 0;
  REQUIRE(f.loop.scheduler.spawn("test", [&] {
    REQUIRE(f.server->start());
    REQUIRE(f.loop.scheduler.spawn("core", [&] { f.core.serve(*f.server); }));
    std::string path = f.server->data_path();
    fiber::TaskGroup clients(f.loop.scheduler);
    REQUIRE(clients.spawn("reader", [&] {
      read_error = run_off_thread<int>(f.loop.scheduler, f.loop.ring, "pread", [&, path] {
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        int error = call(::pread(fd, read_buffer.data, 4096, 0));
        ::close(fd);
        return Result<int>(error);
      });
    }));
    REQUIRE(clients.spawn("writer", [&] {
      write_error = run_off_thread<int>(f.loop.scheduler, f.loop.ring, "pwrite", [&, path] {
        int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
        int error = call(::pwrite(fd, write_buffer.data, 4096, 8192));
        ::close(fd);
        return Result<int>(error);
      });
    }));
    for (int i = 0; i < 500 && f.core.held.size() < 2; i++)
      REQUIRE(f.loop.scheduler.sleep_for(10ms));
    REQUIRE(f.core.held.size() == 2);
    f.teardown();  // busy (files open): unmounted lazily, then the session ends
    REQUIRE(clients.join());
    // The core completes what it held after the end: the results are dropped.
    for (const BlockRequest& part : f.core.held)
      f.server->complete(part, ok());
  }));
  f.loop.run();
  REQUIRE(read_error);
  REQUIRE(write_error);
  CHECK(*read_error == EIO);
  CHECK(*write_error == EIO);
  CHECK(f.server->stats().failed_at_close == 2);
  CHECK(f.server->parts_outstanding() == 0);
  CHECK(mounts_at(f.server->options().mount_point).empty());
}

TEST_CASE("run_off_thread: the result comes back even when the waiting fiber is cancelled",
          "[real][fuse]") {
  Loop loop;
  Result<int> result = 0;
  auto waiter = loop.scheduler.spawn("waiter", [&] {
    result = run_off_thread<int>(loop.scheduler, loop.ring, "slow", [] {
      std::this_thread::sleep_for(50ms);
      return Result<int>(42);
    });
  });
  REQUIRE(waiter);
  REQUIRE(loop.scheduler.spawn("canceller", [&] {
    REQUIRE(loop.scheduler.sleep_for(5ms));
    loop.scheduler.cancel(*waiter);
  }));
  loop.run();
  REQUIRE(result);
  CHECK(*result == 42);
}

TEST_CASE("parse_mountinfo: fields, optional tags and escaped mount points", "[real][fuse]") {
  std::string text =
      "36 35 98:0 / /mnt/with\\040space rw,noatime master:1 - ext4 /dev/sda1 rw\n"
      "40 36 0:52 / /run/hast/r.fuse rw,nosuid - fuse.hast hast:r rw,user_id=0\n"
      "garbage\n";
  auto entries = parse_mountinfo(text);
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].mount_point == "/mnt/with space");
  CHECK(entries[0].fs_type == "ext4");
  CHECK(entries[0].major == 98);
  CHECK(entries[1].fs_type == mount_type);
  CHECK(entries[1].source == "hast:r");
  CHECK(entries[1].minor == 52);
}

}  // namespace
}  // namespace hast::real::fuse
