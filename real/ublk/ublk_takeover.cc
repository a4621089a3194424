// The takeover decision and the state file (see ublk_takeover.h).
#include "real/ublk/ublk_takeover.h"

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <charconv>
#include <cstdio>

#include <fmt/format.h>

#include "real/ring.h"

namespace hast::real::ublk {

std::string_view takeover_name(Takeover takeover) {
  switch (takeover) {
    case Takeover::add:
      return "add";
    case Takeover::recover:
      return "recover";
    case Takeover::replace:
      return "replace";
    case Takeover::foreign:
      return "foreign";
    case Takeover::refuse:
      return "refuse";
  }
  HAST_UNREACHABLE();
}

bool recovery_possible(const TakeoverFacts& facts) {
  if (!facts.persisted || facts.info_result != 0) return false;
  const ublksrv_ctrl_dev_info& info = facts.info;
  if (info.ublksrv_flags != facts.stamp) return false;
  if ((info.flags & flag_user_recovery) == 0) return false;
  return info.state == state_quiesced || info.state == state_fail_io;
}

Takeover decide_takeover(const TakeoverFacts& facts) {
  HAST_ASSERT(facts.stamp != 0);
  if (!facts.persisted) return Takeover::add;
  if (facts.info_result == -ENOENT || facts.info_result == -ENODEV) return Takeover::add;
  if (facts.info_result != 0) return Takeover::refuse;
  const ublksrv_ctrl_dev_info& info = facts.info;
  if (info.ublksrv_flags != facts.stamp) return Takeover::foreign;
  if (info.state == state_live && facts.server_alive) return Takeover::refuse;
  if (!recovery_possible(facts)) return Takeover::replace;
  // Same geometry, or the file systems on it would see another device.
  if (facts.params_result != 0) return Takeover::replace;
  const ublk_param_basic& basic = facts.params.basic;
  auto shift = static_cast<std::uint8_t>(std::countr_zero(facts.sector_size));
  if (basic.dev_sectors != facts.size >> sector_shift) return Takeover::replace;
  if (basic.logical_bs_shift != shift) return Takeover::replace;
  return Takeover::recover;
}

std::uint64_t owner_stamp(std::string_view resource) {
  // FNV-1a over "hast" and the name: stable across builds and processes.
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  auto mix = [&hash](std::string_view text) {
    for (char c : text) {
      hash ^= static_cast<unsigned char>(c);
      hash *= 0x100000001b3ULL;
    }
  };
  mix("hast");
  mix(resource);
  return hash == 0 ? 1 : hash;
}

Result<std::optional<std::uint32_t>> read_dev_id(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::uint32_t>();
    return fail(errno_error(-errno, "opening " + path));
  }
  char text[32] = {};
  ssize_t got = ::read(fd, text, sizeof text - 1);
  int error = errno;
  ::close(fd);
  if (got < 0) return fail(errno_error(-error, "reading " + path));
  std::string_view view(text, static_cast<std::size_t>(got));
  while (!view.empty() && (view.back() == '\n' || view.back() == ' '))
    view.remove_suffix(1);
  std::uint32_t id = 0;
  auto [end, ec] = std::from_chars(view.data(), view.data() + view.size(), id);
  if (view.empty() || ec != std::errc() || end != view.data() + view.size()) {
    return fail(Errc::corruption,
                fmt::format("{} does not hold a ublk device id: \"{}\"", path, view));
  }
  return std::optional<std::uint32_t>(id);
}

Result<void> write_dev_id(const std::string& path, std::uint32_t dev_id) {
  std::string temporary = path + ".new";
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fail(errno_error(-errno, "creating " + temporary));
  std::string text = fmt::format("{}\n", dev_id);
  ssize_t wrote = ::write(fd, text.data(), text.size());
  int error = errno;
  ::close(fd);
  if (wrote != static_cast<ssize_t>(text.size())) {
    ::unlink(temporary.c_str());
    return fail(errno_error(wrote < 0 ? -error : -EIO, "writing " + temporary));
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    error = errno;
    ::unlink(temporary.c_str());
    return fail(errno_error(-error, "renaming " + temporary + " to " + path));
  }
  return ok();
}

Result<void> remove_dev_id(const std::string& path) {
  if (::unlink(path.c_str()) == 0 || errno == ENOENT) return ok();
  return fail(errno_error(-errno, "removing " + path));
}

}  // namespace hast::real::ublk
