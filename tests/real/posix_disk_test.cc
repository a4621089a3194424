// PosixDisk on real files (and, when the machine lets us attach one, a loop device):
// the Disk contract through io_uring, concurrency between fibers, durability calls,
// discard, geometry, locking and the errors that name the provider.
#include <fcntl.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "real/clock.h"
#include "real/posix_disk.h"
#include "real/ring.h"
#include "tests/support/real_loop.h"

namespace hast::real {
namespace {

using Loop = test::RealLoop;

struct TempDir {
  std::string path;
  TempDir() {
    char pattern[] = "/tmp/hast-disk-test-XXXXXX";
    REQUIRE(mkdtemp(pattern) != nullptr);
    path = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string file(const std::string& name) const { return path + "/" + name; }
};

std::vector<std::byte> pattern(std::size_t size, unsigned seed) {
  std::vector<std::byte> bytes(size);
  for (std::size_t i = 0; i < size; i++)
    bytes[i] = std::byte((i * 31 + seed * 7 + 1) & 0xff);
  return bytes;
}

// The file's bytes, read without the disk.
std::vector<std::byte> file_bytes(const std::string& path, std::uint64_t offset, std::size_t size) {
  std::vector<std::byte> bytes(size);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(::pread(fd, bytes.data(), size, static_cast<off_t>(offset)) ==
          static_cast<ssize_t>(size));
  ::close(fd);
  return bytes;
}

std::unique_ptr<PosixDisk> open_ok(Ring& ring, const std::string& path,
                                   PosixDiskOptions options = {}) {
  auto disk = PosixDisk::open(ring, path, options);
  INFO((disk ? std::string() : disk.error().message()));
  REQUIRE(disk);
  return std::move(*disk);
}

constexpr std::uint64_t mib = 1024 * 1024;

TEST_CASE("PosixDisk: a file's geometry and properties", "[real][disk]") {
  Loop loop;
  TempDir dir;
  REQUIRE(create_file(dir.file("p"), 4 * mib));
  auto disk = open_ok(loop.ring, dir.file("p"));
  CHECK(disk->size() == 4 * mib);
  CHECK(disk->properties().sector_size == 512);
  CHECK(disk->properties().volatile_cache);
  CHECK(disk->properties().discard_zeroes);
  CHECK_FALSE(disk->is_block_device());
  CHECK_FALSE(disk->direct_io());
  CHECK(disk->path() == dir.file("p"));
}

TEST_CASE("PosixDisk: writes from several fibers at once read back", "[real][disk]") {
  Loop loop;
  TempDir dir;
  REQUIRE(create_file(dir.file("p"), 4 * mib));
  auto disk = open_ok(loop.ring, dir.file("p"));
  constexpr std::size_t chunk = 64 * 1024;
  constexpr unsigned fibers = 16;
  int verified = 0;
  loop.run([&] {
    for (unsigned i = 0; i < fibers; i++) {
      REQUIRE(loop.scheduler.spawn("writer", [&, i] {
        auto data = pattern(chunk, i);
        CHECK(disk->write(i * chunk * 3, data, Fua::no));
        std::vector<std::byte> back(chunk);
        CHECK(disk->read(i * chunk * 3, back));
        if (back == data) verified++;
      }));
    }
  });
  CHECK(verified == static_cast<int>(fibers));
  for (unsigned i = 0; i < fibers; i++) {
    CHECK(file_bytes(dir.file("p"), i * chunk * 3, chunk) == pattern(chunk, i));
  }
}

TEST_CASE("PosixDisk: a FUA write and a flush succeed", "[real][disk]") {
  Loop loop;
  TempDir dir;
  REQUIRE(create_file(dir.file("p"), mib));
  auto disk = open_ok(loop.ring, dir.file("p"));
  auto data = pattern(8192, 3);
  loop.run([&] {
    CHECK(disk->write(4096, data, Fua::yes));
    CHECK(disk->write(0, pattern(512, 4), Fua::no));
    CHECK(disk->flush());
  });
  CHECK(file_bytes(dir.file("p"), 4096, 8192) == data);
  CHECK(file_bytes(dir.file("p"), 0, 512) == pattern(512, 4));
}

TEST_CASE("PosixDisk: a discarded range reads back as zeroes", "[real][disk]") {
  Loop loop;
  TempDir dir;
  REQUIRE(create_file(dir.file("p"), mib));
  auto disk = open_ok(loop.ring, dir.file("p"));
  auto data = pattern(64 * 1024, 5);
  std::vector<std::byte> back(data.size());
  loop.run([&] {
    REQUIRE(disk->write(0, data, Fua::no));
    CHECK(disk->discard(8192, 16384));
    CHECK(disk->discard(0, 0));
    CHECK(disk->read(0, back));
  });
  auto expected = data;
  std::fill(expected.begin() + 8192, expected.begin() + 8192 + 16384, std::byte{0});
  CHECK(back == expected);
}

TEST_CASE("PosixDisk: a file shortened behind its back gives an I/O error", "[real][disk]") {
  Loop loop;
  TempDir dir;
  REQUIRE(create_file(dir.file("p"), mib));
  auto disk = open_ok(loop.ring, dir.file("p"));
  REQUIRE(::truncate(dir.file("p").c_str(), mib / 2) == 0);
  std::vector<std::byte> buffer(4096);
  std::optional<Error> error;
  loop.run([&] {
    auto read = disk->read(mib - 4096, buffer);
    if (!read) error = read.error();
  });
  REQUIRE(error);
  CHECK(error->code() == Errc::io);
  CHECK_THAT(error->message(), Catch::Contains(dir.file("p")));
  CHECK_THAT(error->message(), Catch::Contains("end of file"));
}

TEST_CASE("PosixDisk: a second open of the same provider is refused", "[real][disk]") {
  Loop loop;
  TempDir dir;
  REQUIRE(create_file(dir.file("p"), mib));
  auto first = open_ok(loop.ring, dir.file("p"));
  auto second = PosixDisk::open(loop.ring, dir.file("p"));
  REQUIRE_FALSE(second);
  CHECK(second.error().code() == Errc::busy);
  CHECK(second.error().message() ==
        "provider " + dir.file("p") + " is in use by another process: busy");
  first.reset();
  CHECK(PosixDisk::open(loop.ring, dir.file("p")));
}

TEST_CASE("PosixDisk: a missing provider is not_found and named", "[real][disk]") {
  Loop loop;
  TempDir dir;
  auto disk = PosixDisk::open(loop.ring, dir.file("missing"));
  REQUIRE_FALSE(disk);
  CHECK(disk.error().code() == Errc::not_found);
  CHECK_THAT(disk.error().message(), Catch::Contains("open provider " + dir.file("missing")));
}

TEST_CASE("PosixDisk: bad geometry and kinds are refused", "[real][disk]") {
  Loop loop;
  TempDir dir;
  SECTION("a size not a multiple of the sector size") {
    REQUIRE(create_file(dir.file("p"), mib));
    REQUIRE(::truncate(dir.file("p").c_str(), mib + 100) == 0);
    auto disk = PosixDisk::open(loop.ring, dir.file("p"));
    REQUIRE_FALSE(disk);
    CHECK(disk.error().code() == Errc::invalid_argument);
    CHECK_THAT(disk.error().message(), Catch::Contains(dir.file("p")));
    CHECK_THAT(disk.error().message(), Catch::Contains("not a multiple of the sector size"));
  }
  SECTION("an empty file") {
    std::FILE* f = std::fopen(dir.file("empty").c_str(), "w");
    REQUIRE(f != nullptr);
    std::fclose(f);
    auto disk = PosixDisk::open(loop.ring, dir.file("empty"));
    REQUIRE_FALSE(disk);
    CHECK(disk.error().code() == Errc::invalid_argument);
    CHECK_THAT(disk.error().message(), Catch::Contains("is empty"));
  }
  SECTION("a directory") {
    auto disk = PosixDisk::open(loop.ring, dir.path);
    REQUIRE_FALSE(disk);
    CHECK_THAT(disk.error().message(), Catch::Contains(dir.path));
  }
}

TEST_CASE("PosixDisk: create_file refuses an existing file and bad sizes", "[real][disk]") {
  TempDir dir;
  REQUIRE(create_file(dir.file("p"), 512));
  auto again = create_file(dir.file("p"), 512);
  REQUIRE_FALSE(again);
  CHECK(again.error().code() == Errc::busy);
  CHECK(create_file(dir.file("q"), 0).error().code() == Errc::invalid_argument);
  CHECK(create_file(dir.file("q"), 1000).error().code() == Errc::invalid_argument);
  CHECK_FALSE(std::filesystem::exists(dir.file("q")));
}

TEST_CASE("PosixDisk: direct I/O on a file, aligned and bounced buffers", "[real][disk]") {
  Loop loop;
  TempDir dir;
  REQUIRE(create_file(dir.file("p"), mib));
  auto disk = open_ok(loop.ring, dir.file("p"), {DirectIo::all, BlockDiscard::zero});
  // A file system without O_DIRECT (tmpfs on old kernels) falls back to buffered I/O.
  CHECK(disk->properties().sector_size == (disk->direct_io() ? 4096u : 512u));
  auto data = pattern(16384, 9);
  // One byte into a larger buffer: misaligned for direct I/O, so both calls bounce.
  std::vector<std::byte> misaligned(16384 + 1);
  std::copy(data.begin(), data.end(), misaligned.begin() + 1);
  std::vector<std::byte> back(16384 + 1);
  loop.run([&] {
    CHECK(disk->write(8192, std::span(misaligned).subspan(1), Fua::yes));
    CHECK(disk->read(8192, std::span(back).subspan(1)));
    CHECK(disk->discard(8192, 4096));
  });
  CHECK(std::vector<std::byte>(back.begin() + 1, back.end()) == data);
  auto after = file_bytes(dir.file("p"), 8192, 8192);
  CHECK(std::all_of(after.begin(), after.begin() + 4096,
                    [](std::byte b) { return b == std::byte{0}; }));
  CHECK(std::equal(after.begin() + 4096, after.end(), data.begin() + 4096));
}

// A loop device over a file in `dir`, detached at the end; empty when the machine does
// not let us attach one (not root, no loop driver).
struct LoopDevice {
  std::string device;
  explicit LoopDevice(const std::string& backing) {
    std::string command = "losetup -f --show " + backing + " 2>/dev/null";
    std::FILE* out = ::popen(command.c_str(), "r");
    if (out == nullptr) return;
    char line[256] = {};
    if (std::fgets(line, sizeof line, out) != nullptr) device = line;
    ::pclose(out);
    while (!device.empty() && device.back() == '\n')
      device.pop_back();
  }
  ~LoopDevice() {
    if (device.empty()) return;
    std::string command = "losetup -d " + device;
    CHECK(std::system(command.c_str()) == 0);
  }
};

TEST_CASE("PosixDisk: a block device (loop), exclusive, discard modes", "[real][disk][loop]") {
  TempDir dir;
  REQUIRE(create_file(dir.file("backing"), 4 * mib));
  LoopDevice loop_device(dir.file("backing"));
  if (loop_device.device.empty()) {
    WARN("no loop device available: block-device test skipped");
    return;
  }
  Loop loop;
  auto disk = open_ok(loop.ring, loop_device.device);
  CHECK(disk->is_block_device());
  CHECK(disk->direct_io());
  CHECK(disk->size() == 4 * mib);
  CHECK(disk->properties().sector_size >= 512);
  CHECK(disk->properties().discard_zeroes);
  auto second = PosixDisk::open(loop.ring, loop_device.device);
  REQUIRE_FALSE(second);
  CHECK(second.error().code() == Errc::busy);
  auto data = pattern(65536, 11);
  std::vector<std::byte> back(data.size());
  loop.run([&] {
    CHECK(disk->write(mib, data, Fua::yes));
    CHECK(disk->discard(mib + 4096, 8192));
    CHECK(disk->flush());
    CHECK(disk->read(mib, back));
  });
  auto expected = data;
  std::fill(expected.begin() + 4096, expected.begin() + 4096 + 8192, std::byte{0});
  CHECK(back == expected);
  disk.reset();
  auto unmap = open_ok(loop.ring, loop_device.device, {DirectIo::off, BlockDiscard::unmap});
  CHECK_FALSE(unmap->properties().discard_zeroes);
  CHECK_FALSE(unmap->direct_io());
  loop.run([&] { CHECK(unmap->discard(0, 65536)); });
}

}  // namespace
}  // namespace hast::real
