// Set-up shared by the FUSE and loop tests (tests/real/fuse_*_test.cc): whether this
// machine can run them, a temporary directory cleared of whatever a test left mounted or
// attached under it, and a ring with a log.
#pragma once

#include <sys/mount.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <fmt/format.h>

#include "core/result.h"
#include "real/log.h"
#include "real/loop.h"
#include "tests/support/real_loop.h"

namespace hast::test {

// True when the FUSE tests can run here (root, /dev/fuse and, with `need_loop`,
// /dev/loop-control); otherwise says why (a visible SKIP) and returns false.
inline bool fuse_tests_can_run(bool need_loop) {
  if (::geteuid() != 0) {
    WARN("SKIP: FUSE and loop tests need root");
    return false;
  }
  if (::access("/dev/fuse", R_OK | W_OK) != 0) {
    WARN("SKIP: no /dev/fuse");
    return false;
  }
  if (need_loop && ::access("/dev/loop-control", R_OK) != 0) {
    WARN("SKIP: no /dev/loop-control");
    return false;
  }
  return true;
}

// A temporary directory /tmp/<prefix>.XXXXXX. At the end, loop devices backed by the
// FUSE file served under it are detached, the mounts the tests make under it (r.fuse,
// mnt) lazily unmounted, and the tree removed.
struct FuseTempDir {
  explicit FuseTempDir(const char* prefix) {
    std::string pattern = fmt::format("/tmp/{}.XXXXXX", prefix);
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~FuseTempDir() {
    for (const real::LoopBacking& loop : real::loops_backed_by(path + "/r.fuse/data"))
      ignore_error(real::detach_loop(loop.number), "test cleanup");
    ::umount2((path + "/r.fuse").c_str(), MNT_DETACH);
    ::umount2((path + "/mnt").c_str(), MNT_DETACH);
    std::error_code error;
    std::filesystem::remove_all(path, error);
  }
  FuseTempDir(const FuseTempDir&) = delete;
  FuseTempDir& operator=(const FuseTempDir&) = delete;
  std::string path;
};

// A scheduler on the test's thread with its ring and a log for the code under test.
struct FuseLoop : RealLoop {
  FuseLoop() : RealLoop(256) {}
  real::StderrLog log{"fuse-test", LogLevel::info};
};

}  // namespace hast::test
