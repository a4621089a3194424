// The FUSE block device (see fuse_device.h): the open and close sequences.
//
// Method: every step that makes the kernel talk to our mount (attach, detach, unmount,
// even lstat of a dead mount point) runs in a job on a helper thread through
// run_off_thread(); the job owns copies of the paths and of the LoopDevice, so a job that
// outlives this object (the scheduler shut down under it) touches nothing freed.
// Jobs do not log: they return sentences, logged here on the scheduler's thread.
#include "real/fuse/fuse_device.h"

#include <chrono>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "real/fuse/mounts.h"
#include "real/fuse/off_thread.h"

namespace hast::real::fuse {
namespace {

// How long a detached loop device gets to go before the teardown says it is still in use
// (a prober may hold it for a moment).
constexpr int unbind_checks = 20;
constexpr auto unbind_interval = std::chrono::milliseconds(10);

// Steps 1-3 of the teardown (fuse_device.h), on a helper thread: what did not go as
// planned, one sentence each. Never stops half-way.
std::vector<std::string> teardown(const std::string& link, const std::string& mount_point,
                                  std::optional<LoopDevice> loop) {
  std::vector<std::string> notes;
  if (loop) {
    auto removed = remove_link(link, loop->path());
    if (!removed) {
      notes.push_back(fmt::format("cannot remove {}: {}", link, removed.error().message()));
    } else if (!*removed) {
      notes.push_back(fmt::format("{} no longer points at {}: left alone", link, loop->path()));
    }
    if (auto detached = loop->detach(); !detached) {
      notes.push_back(detached.error().message());
    } else {
      for (int check = 0; check < unbind_checks && loop->bound(); check++)
        std::this_thread::sleep_for(unbind_interval);
      if (loop->bound()) {
        notes.push_back(fmt::format(
            "{} is still in use (a mounted file system?): it detaches when its last user "
            "closes it, and its I/O fails with EIO from now on",
            loop->path()));
      }
    }
  }
  if (mount_point.empty()) return notes;
  auto unmounted = unmount_fuse(mount_point);
  if (!unmounted) {
    notes.push_back(unmounted.error().message());
  } else if (*unmounted == Unmounted::detached) {
    notes.push_back(fmt::format("{} was still in use: unmounted lazily", mount_point));
  }
  return notes;
}

struct Prepared {
  std::string mount_point;
  std::vector<std::string> notes;
};

// Step 1 of open(), on a helper thread.
Result<Prepared> prepare(const FuseDeviceOptions& options) {
  auto mount_point = canonical_path(options.mount_point);
  if (!mount_point) return fail(mount_point.error());
  auto notes = clear_leftovers(*mount_point, *mount_point + "/data", options.link);
  if (!notes) return fail(notes.error());
  return Prepared{std::move(*mount_point), std::move(*notes)};
}

// Step 3 of open(), on a helper thread: the loop device and the link to it.
Result<LoopDevice> attach_and_link(const std::string& data_path, const std::string& link,
                                   const LoopOptions& loop_options) {
  auto loop = LoopDevice::attach(data_path, loop_options);
  if (!loop) return fail(loop.error());
  if (auto linked = create_link(link, loop->path()); !linked) {
    ignore_error(loop->detach(), "the link's error is the one to report");
    return fail(linked.error());
  }
  return loop;
}

}  // namespace

FuseBlockDevice::FuseBlockDevice(fiber::Scheduler& scheduler, Ring& ring, Log& log,
                                 FuseDeviceOptions options)
    : scheduler_(scheduler), ring_(ring), log_(log), options_(std::move(options)) {
  HAST_ASSERT(!options_.name.empty());
  HAST_ASSERT(!options_.mount_point.empty() && options_.mount_point.front() == '/');
  HAST_ASSERT(!options_.link.empty() && options_.link.front() == '/');
}

FuseBlockDevice::~FuseBlockDevice() {
  HAST_ASSERT_MSG(closed_ || !opened_ || scheduler_.is_shut_down(),
                  "FUSE device destroyed while serving: close() it from a fiber first");
  if (!closed_ && opened_) {
    closed_ = true;
    close_outside_fiber();
  }
}

Result<std::uint32_t> FuseBlockDevice::choose_block_size() const {
  std::uint32_t sector = std::max<std::uint32_t>(512, options_.sector_size);
  if (sector > 4096) {
    return fail(Errc::unsupported,
                fmt::format("provider sectors of {} bytes: loop devices stop at 4096", sector));
  }
  std::uint32_t wanted = options_.block_size;
  bool power_of_two = wanted != 0 && (wanted & (wanted - 1)) == 0;
  if (power_of_two && wanted >= sector && wanted <= 4096 && options_.size >= wanted) {
    return wanted;
  }
  return sector;
}

Result<void> FuseBlockDevice::open() {
  HAST_ASSERT(!opened_);
  HAST_ASSERT(!closed_);
  HAST_ASSERT(scheduler_.in_fiber());
  opened_ = true;
  auto block_size = choose_block_size();
  if (!block_size) {
    closed_ = true;
    return fail(block_size.error());
  }
  block_size_ = *block_size;
  auto prepared = run_off_thread<Prepared>(scheduler_, ring_, "fuse-prepare",
                                           [options = options_] { return prepare(options); });
  if (!prepared) {
    closed_ = true;
    return fail(prepared.error());
  }
  for (const std::string& note : prepared->notes)
    log_warning(log_, "[{}] Leftover of an earlier hastd: {}.", options_.name, note);
  mount_point_ = prepared->mount_point;
  Result<void> opened = start_server(mount_point_);
  if (opened) opened = attach();
  if (!opened) {
    close();
    return fail(opened.error());
  }
  log_info(log_, "[{}] Serving {} on {} ({} bytes in {}-byte blocks, FUSE file {}, direct I/O {}).",
           options_.name, options_.link, loop_path_, device_size(), block_size_,
           server_->data_path(), loop_->direct_io() ? "on" : "off");
  if (device_size() != options_.size) {
    log_info(log_, "[{}] The last {} bytes of the data area are not exposed (not a whole block).",
             options_.name, options_.size - device_size());
  }
  if (options_.direct_io && !loop_->direct_io()) {
    log_warning(log_, "[{}] The kernel refused direct I/O on {}: it caches the data twice.",
                options_.name, loop_path_);
  }
  return ok();
}

Result<void> FuseBlockDevice::start_server(const std::string& mount_point) {
  FuseServerOptions server_options;
  server_options.mount_point = mount_point;
  server_options.name = options_.name;
  server_options.size = options_.size;
  server_options.sector_size = std::max<std::uint32_t>(512, options_.sector_size);
  server_ = std::make_unique<FuseServer>(scheduler_, ring_, log_, std::move(server_options));
  return server_->start();
}

Result<void> FuseBlockDevice::attach() {
  LoopOptions loop_options;
  loop_options.block_size = block_size_;
  loop_options.direct_io = options_.direct_io;
  loop_options.size_limit = device_size();
  auto attached = run_off_thread<LoopDevice>(
      scheduler_, ring_, "fuse-attach",
      [data_path = server_->data_path(), link = options_.link, loop_options] {
        return attach_and_link(data_path, link, loop_options);
      });
  if (!attached) return fail(attached.error());
  loop_ = *attached;
  loop_path_ = loop_->path();
  return ok();
}

void FuseBlockDevice::close() {
  if (closed_) return;
  closed_ = true;
  if (!scheduler_.in_fiber() || scheduler_.is_shut_down()) {
    close_outside_fiber();
    return;
  }
  close_in_fiber();
}

void FuseBlockDevice::close_in_fiber() {
  // Steps 1-3 while the session still serves: detaching and unmounting make the kernel
  // send requests (the loop device's last flushes reach the core, which still runs).
  if (server_ != nullptr) server_->expect_disconnect();
  auto notes = run_off_thread<std::vector<std::string>>(
      scheduler_, ring_, "fuse-teardown",
      [link = options_.link, mount_point = mount_point_, loop = loop_]()
          -> Result<std::vector<std::string>> { return teardown(link, mount_point, loop); });
  if (!notes) {
    log_error(log_, "[{}] FUSE teardown: {}.", options_.name, notes.error().message());
  } else {
    for (const std::string& note : *notes)
      log_warning(log_, "[{}] FUSE teardown: {}.", options_.name, note);
  }
  loop_.reset();
  // Step 4: whatever is still unanswered gets EIO, and the connection ends.
  if (server_ != nullptr) server_->close();
  log_info(log_, "[{}] FUSE frontend closed.", options_.name);
}

// Nothing serves FUSE any more: end the session first (the connection aborts, so no
// kernel call below waits for a reply), then the rest on this thread.
void FuseBlockDevice::close_outside_fiber() {
  if (server_ != nullptr) server_->close();
  for (const std::string& note : teardown(options_.link, mount_point_, loop_))
    log_warning(log_, "[{}] FUSE teardown: {}.", options_.name, note);
  loop_.reset();
}

void FuseBlockDevice::test_abandon() {
  closed_ = true;
  if (server_ != nullptr) server_->close();
  loop_.reset();
}

Result<BlockRequest> FuseBlockDevice::next_request() {
  HAST_ASSERT(server_ != nullptr);
  return server_->next_request();
}

void FuseBlockDevice::complete(const BlockRequest& request, Result<void> result) {
  HAST_ASSERT(server_ != nullptr);
  server_->complete(request, std::move(result));
}

}  // namespace hast::real::fuse
