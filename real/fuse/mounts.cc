// Mount points, links and leftovers (see mounts.h).
#include "real/fuse/mounts.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "real/loop.h"
#include "real/ring.h"

namespace hast::real::fuse {
namespace {

// Mounts stacked on one mount point that clear_leftovers() takes down at most.
constexpr int stacked_mounts_max = 16;
// How long a detached stale loop device gets to go (a prober such as udev may hold it
// for a moment).
constexpr int loop_release_checks = 20;
constexpr auto loop_release_interval = std::chrono::milliseconds(10);

Error os_error(int error, std::string_view what) {
  return errno_error(-error, what);
}

std::string read_all(const char* path) {
  std::string text;
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return text;
  char buffer[8192];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return text;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(std::string_view field) {
  auto octal = [](char c) { return c >= '0' && c <= '7'; };
  std::string out;
  for (std::size_t i = 0; i < field.size(); i++) {
    bool escaped = field[i] == '\\' && i + 3 < field.size() && octal(field[i + 1]) &&
                   octal(field[i + 2]) && octal(field[i + 3]);
    if (!escaped) {
      out.push_back(field[i]);
      continue;
    }
    out.push_back(static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                                    (field[i + 3] - '0')));
    i += 3;
  }
  return out;
}

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  while (start < line.size()) {
    std::size_t end = line.find(' ', start);
    if (end == std::string_view::npos) end = line.size();
    if (end > start) fields.push_back(line.substr(start, end - start));
    start = end + 1;
  }
  return fields;
}

// "36 35 98:0 /root /mount/point rw,noatime [optional...] - fstype source options".
std::optional<MountEntry> parse_line(std::string_view line) {
  auto fields = split_fields(line);
  if (fields.size() < 7) return std::nullopt;
  std::size_t dash = 6;
  while (dash < fields.size() && fields[dash] != "-")
    dash++;
  if (dash + 2 >= fields.size()) return std::nullopt;
  MountEntry entry;
  entry.mount_point = unescape(fields[4]);
  entry.fs_type = std::string(fields[dash + 1]);
  entry.source = unescape(fields[dash + 2]);
  std::string device(fields[2]);
  if (std::sscanf(device.c_str(), "%u:%u", &entry.major, &entry.minor) != 2) return std::nullopt;
  return entry;
}

// Detaches one stale loop device and says what became of it.
std::string detach_stale_loop(const LoopBacking& loop) {
  auto detached = detach_loop(loop.number);
  if (!detached) {
    return fmt::format("cannot detach stale loop device {} (bound to {}): {}", loop.device,
                       loop.backing_file, detached.error().message());
  }
  for (int check = 0; check < loop_release_checks && loop_bound(loop.number); check++)
    std::this_thread::sleep_for(loop_release_interval);
  if (!loop_bound(loop.number)) {
    return fmt::format("detached stale loop device {} (bound to {})", loop.device,
                       loop.backing_file);
  }
  return fmt::format(
      "stale loop device {} is still in use (a mounted file system?): it detaches when "
      "its last user closes it, and its I/O fails with EIO until then",
      loop.device);
}

// Removes a symbolic link left at `link`; anything else there is not ours to remove.
Result<void> clear_link(const std::string& link, std::vector<std::string>& notes) {
  struct stat st {};
  if (::lstat(link.c_str(), &st) != 0) {
    if (errno == ENOENT) return ok();
    return fail(os_error(errno, fmt::format("lstat {}", link)));
  }
  if (!S_ISLNK(st.st_mode)) {
    return fail(Errc::busy, fmt::format("{} exists and is not a symbolic link; remove it or "
                                        "name another link in `frontend fuse`",
                                        link));
  }
  std::error_code error;
  auto target = std::filesystem::read_symlink(link, error);
  if (::unlink(link.c_str()) != 0 && errno != ENOENT) {
    return fail(os_error(errno, fmt::format("unlink {}", link)));
  }
  notes.push_back(fmt::format("removed stale link {} -> {}", link, target.string()));
  return ok();
}

// Lazily unmounts the dead fuse.hast mounts stacked on `mount_point`.
Result<void> clear_mounts(const std::string& mount_point, std::vector<std::string>& notes) {
  for (int round = 0; round < stacked_mounts_max; round++) {
    auto entries = mounts_at(mount_point);
    if (entries.empty()) return ok();
    const MountEntry& top = entries.back();
    if (top.fs_type != mount_type) {
      return fail(Errc::busy, fmt::format("a {} file system ({}) is mounted on {}: not ours",
                                          top.fs_type, top.source, mount_point));
    }
    if (::umount2(mount_point.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0) {
      return fail(os_error(errno, fmt::format("unmount {}", mount_point)));
    }
    notes.push_back(fmt::format("unmounted the stale FUSE mount on {}", mount_point));
  }
  return fail(Errc::busy,
              fmt::format("more than {} mounts on {}", stacked_mounts_max, mount_point));
}

Result<void> ensure_directory(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail(os_error(errno, fmt::format("mkdir {}", path)));
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return fail(os_error(errno, fmt::format("stat {}", path)));
  if (!S_ISDIR(st.st_mode)) {
    return fail(Errc::busy, fmt::format("{} exists and is not a directory", path));
  }
  return ok();
}

}  // namespace

std::vector<MountEntry> parse_mountinfo(std::string_view text) {
  std::vector<MountEntry> entries;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    if (auto entry = parse_line(text.substr(start, end - start))) entries.push_back(*entry);
    start = end + 1;
  }
  return entries;
}

std::vector<MountEntry> mounts_at(std::string_view mount_point) {
  std::vector<MountEntry> found;
  for (MountEntry& entry : parse_mountinfo(read_all("/proc/self/mountinfo"))) {
    if (entry.mount_point == mount_point) found.push_back(std::move(entry));
  }
  return found;
}

Result<std::string> canonical_path(const std::string& path) {
  std::filesystem::path full(path);
  if (!full.is_absolute() || !full.has_filename()) {
    return fail(Errc::invalid_argument, fmt::format("{} is not an absolute file path", path));
  }
  std::error_code error;
  std::filesystem::create_directories(full.parent_path(), error);
  if (error) {
    return fail(Errc::io,
                fmt::format("mkdir {}: {}", full.parent_path().string(), error.message()));
  }
  char resolved[PATH_MAX];
  if (::realpath(full.parent_path().c_str(), resolved) == nullptr) {
    return fail(os_error(errno, fmt::format("realpath {}", full.parent_path().string())));
  }
  return (std::filesystem::path(resolved) / full.filename()).string();
}

Result<Unmounted> unmount_fuse(const std::string& mount_point) {
  if (::umount2(mount_point.c_str(), UMOUNT_NOFOLLOW) == 0) return Unmounted::unmounted;
  if (errno == EINVAL || errno == ENOENT) return Unmounted::not_mounted;
  if (errno != EBUSY) return fail(os_error(errno, fmt::format("unmount {}", mount_point)));
  if (::umount2(mount_point.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0) {
    return fail(os_error(errno, fmt::format("lazy unmount {}", mount_point)));
  }
  return Unmounted::detached;
}

Result<void> create_link(const std::string& link, const std::string& target) {
  std::filesystem::path path(link);
  std::error_code error;
  std::filesystem::create_directories(path.parent_path(), error);
  if (error) {
    return fail(Errc::io,
                fmt::format("mkdir {}: {}", path.parent_path().string(), error.message()));
  }
  // A new link under a temporary name, renamed over the old one: the link never
  // disappears and never points anywhere half-made.
  std::string temporary = link + ".hast-new";
  ::unlink(temporary.c_str());
  if (::symlink(target.c_str(), temporary.c_str()) != 0) {
    return fail(os_error(errno, fmt::format("symlink {} -> {}", temporary, target)));
  }
  if (::rename(temporary.c_str(), link.c_str()) != 0) {
    int rename_error = errno;
    ::unlink(temporary.c_str());
    return fail(os_error(rename_error, fmt::format("rename {} to {}", temporary, link)));
  }
  return ok();
}

Result<bool> remove_link(const std::string& link, const std::string& target) {
  std::error_code error;
  if (!std::filesystem::is_symlink(std::filesystem::symlink_status(link, error))) return false;
  auto points_to = std::filesystem::read_symlink(link, error);
  if (error || points_to.string() != target) return false;
  if (::unlink(link.c_str()) != 0) {
    if (errno == ENOENT) return false;
    return fail(os_error(errno, fmt::format("unlink {}", link)));
  }
  return true;
}

Result<std::vector<std::string>> clear_leftovers(const std::string& mount_point,
                                                 const std::string& data_path,
                                                 const std::string& link) {
  std::vector<std::string> notes;
  HAST_TRY(clear_link(link, notes));
  for (const LoopBacking& loop : loops_backed_by(data_path))
    notes.push_back(detach_stale_loop(loop));
  HAST_TRY(clear_mounts(mount_point, notes));
  HAST_TRY(ensure_directory(mount_point));
  return notes;
}

}  // namespace hast::real::fuse
