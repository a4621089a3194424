// The file-system side of the FUSE frontend: its mount point, the link to its loop
// device, and what a killed hastd leaves behind (reference/frontends.md §6).
//
// What a kill -9 leaves: the kernel aborts the FUSE connection when the daemon's
// /dev/fuse descriptor closes, so the mount stays as a dead one ("Transport endpoint is
// not connected") and every request on it fails. The loop device stays bound to the dead
// file (real/loop.h says why), and its I/O fails with EIO. The link stays, pointing at
// that loop device. clear_leftovers() removes all three before a new mount is made; a
// loop device a user still holds (a mounted file system) goes when that user closes it.
//
// Threads: these functions make blocking system calls, and some of them make the kernel
// talk to a FUSE mount (our own, when it is alive): call them through run_off_thread().
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace hast::real::fuse {

// The file-system type of our mounts in /proc/mounts ("fuse" with subtype "hast").
inline constexpr std::string_view mount_type = "fuse.hast";

// One line of /proc/self/mountinfo.
struct MountEntry {
  std::string mount_point;  // unescaped
  std::string fs_type;
  std::string source;
  unsigned major = 0;
  unsigned minor = 0;
};

// The mounts stacked on exactly `mount_point`, bottom first (mount order).
std::vector<MountEntry> mounts_at(std::string_view mount_point);

// Parses mountinfo text (exposed for tests). Lines that do not parse are skipped.
std::vector<MountEntry> parse_mountinfo(std::string_view text);

// `path` with its parent directory resolved by realpath() (created first, mode 0755, when
// missing), so it matches what the kernel prints for mounts and loop backing files.
// The last component is not resolved: it may be a dead mount that cannot be looked at.
Result<std::string> canonical_path(const std::string& path);

enum class Unmounted : std::uint8_t {
  not_mounted,  // nothing was mounted there
  unmounted,    // gone, and with it the FUSE connection (the kernel aborts it)
  detached,     // busy (a loop device or a process holds its file): detached lazily; the
                // file system lives on for its users until the FUSE session ends
};

// Unmounts the FUSE file system on `mount_point`: a plain unmount, or a lazy one when it
// is busy. Errors: the unmount failed for another reason (refused without privilege).
Result<Unmounted> unmount_fuse(const std::string& mount_point);

// Makes `link` a symbolic link to `target`, atomically replacing a link that is there;
// missing parent directories are created (mode 0755). Errors: `link` is a directory, or
// the directory cannot be written.
Result<void> create_link(const std::string& link, const std::string& target);

// Removes `link` if it is a symbolic link to `target`: true when removed; false when it is
// absent or points elsewhere (someone replaced it: left alone).
Result<bool> remove_link(const std::string& link, const std::string& target);

// Clears the leftovers of a predecessor, in teardown order: a symbolic link at `link`
// (whatever it points to: the path is ours), loop devices bound to `data_path`, dead
// fuse.hast mounts on `mount_point` (lazily unmounted); then makes sure `mount_point` is
// a directory (mode 0700). Paths are canonical (canonical_path). Returns one sentence
// per thing cleared, for the log. Errors: `link` exists and is not a symbolic link;
// something else than fuse.hast is mounted on `mount_point`; a system call failed.
Result<std::vector<std::string>> clear_leftovers(const std::string& mount_point,
                                                 const std::string& data_path,
                                                 const std::string& link);

}  // namespace hast::real::fuse
