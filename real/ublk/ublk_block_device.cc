// UblkBlockDevice (see ublk_block_device.h): takeover, start, link, teardown.
#include "real/ublk/ublk_block_device.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "real/fuse/mounts.h"
#include "real/ublk/ublk_device.h"

namespace hast::real::ublk {
namespace {

bool process_alive_by_signal(std::int32_t pid) {
  if (pid <= 0 || pid == ::getpid()) return false;
  return ::kill(pid, 0) == 0 || errno == EPERM;
}

}  // namespace

Result<std::unique_ptr<UblkBlockDevice>> UblkBlockDevice::open_real(
    fiber::Scheduler& scheduler, Ring& ring, Log& log, UblkDeviceOptions options,
    const std::string& control_path) {
  std::string name = options.server.name;
  if (::access(control_path.c_str(), F_OK) != 0 && errno == ENOENT) {
    return fail(Errc::not_found,
                fmt::format("cannot serve {} through ublk: {} does not exist, this kernel has no "
                            "ublk driver (load it with `modprobe ublk_drv`; it needs Linux 6.0 "
                            "or later built with CONFIG_BLK_DEV_UBLK), or use `frontend fuse`",
                            name, control_path));
  }
  auto kernel = RealUblkKernel::open(scheduler, ring, control_path);
  if (!kernel) {
    return fail(kernel.error().wrap(fmt::format("cannot serve {} through ublk", name)));
  }
  auto device = std::make_unique<UblkBlockDevice>(
      scheduler, log, std::shared_ptr<UblkKernel>(std::move(*kernel)), std::move(options));
  auto opened = device->open();
  if (!opened) {
    return fail(opened.error().wrap(fmt::format("cannot serve {} through ublk", name)));
  }
  return device;
}

UblkBlockDevice::UblkBlockDevice(fiber::Scheduler& scheduler, Log& log,
                                 std::shared_ptr<UblkKernel> kernel, UblkDeviceOptions options)
    : scheduler_(scheduler),
      log_(log),
      kernel_(std::move(kernel)),
      options_(std::move(options)),
      linker_(scheduler) {
  HAST_ASSERT(kernel_ != nullptr);
  HAST_ASSERT(!options_.state_path.empty() && options_.state_path.front() == '/');
  HAST_ASSERT(options_.link.empty() || options_.link.front() == '/');
  if (!options_.process_alive) options_.process_alive = process_alive_by_signal;
  if (options_.server.pid == 0) options_.server.pid = ::getpid();
  options_.server.owner_stamp = owner_stamp(options_.server.name);
}

UblkBlockDevice::~UblkBlockDevice() {
  HAST_ASSERT_MSG(closed_ || !opened_ || scheduler_.is_shut_down(),
                  "ublk device of {} destroyed without close()", options_.server.name);
}

std::string UblkBlockDevice::block_path() const {
  HAST_ASSERT(server_ != nullptr && server_->dev_id().has_value());
  return fmt::format("{}{}", options_.block_prefix, *server_->dev_id());
}

Result<void> UblkBlockDevice::open() {
  HAST_ASSERT(!opened_);
  HAST_ASSERT(scheduler_.in_fiber());
  opened_ = true;
  auto taken = take_over();
  if (!taken) {
    closed_ = true;
    return taken;
  }
  server_ = std::make_unique<UblkServer>(scheduler_, *kernel_, log_, options_.server);
  auto started = server_->start();
  if (!started) {
    closed_ = true;
    // A device we added is deleted again; a recovery that failed leaves the file, so
    // the next open() looks at that device again.
    if (server_->device_deleted()) ignore_error(remove_dev_id(options_.state_path), "stale");
    return started;
  }
  if (takeover_ != Takeover::recover) persist();
  auto spawned = linker_.spawn("ublk-link", [this] { link_when_started(); });
  if (!spawned) {
    close();
    return fail(spawned.error());
  }
  return ok();
}

// Step 1 of open(): what the state file names, what the kernel says about it, and the
// decision; acts on it (recover is left to the server).
Result<void> UblkBlockDevice::take_over() {
  const std::string& name = options_.server.name;
  auto persisted = read_dev_id(options_.state_path);
  if (!persisted) {
    log_warning(log_, "[{}] {}; a new ublk device is added.", name, persisted.error().message());
    persisted = std::optional<std::uint32_t>();
  }
  TakeoverFacts facts;
  facts.stamp = options_.server.owner_stamp;
  facts.size = options_.server.size;
  facts.sector_size = options_.server.sector_size;
  std::uint32_t id = persisted->value_or(0);
  if (persisted->has_value()) {
    facts.persisted = true;
    facts.info_result = kernel_->get_dev_info(id, facts.info);
    if (facts.info_result == 0) {
      facts.server_alive = options_.process_alive(facts.info.ublksrv_pid);
    }
    if (recovery_possible(facts)) {
      facts.params.len = sizeof(facts.params);
      facts.params_result = kernel_->get_params(id, facts.params);
    }
  }
  takeover_ = decide_takeover(facts);
  return act_on(takeover_, id, facts);
}

Result<void> UblkBlockDevice::act_on(Takeover takeover, std::uint32_t id,
                                     const TakeoverFacts& facts) {
  const std::string& name = options_.server.name;
  std::string device = fmt::format("{}{}", options_.block_prefix, id);
  switch (takeover) {
    case Takeover::add:
      break;
    case Takeover::recover:
      log_info(log_, "[{}] ublk device {} was left by a previous hastd: recovering it.", name,
               device);
      options_.server.recover_dev_id = id;
      return ok();
    case Takeover::replace:
      log_info(log_,
               "[{}] ublk device {} of a previous hastd cannot be recovered (state {}): "
               "deleting it.",
               name, device, facts.info.state);
      // STOP_DEV first: it fails the I/O a quiesced device still holds.
      if (int stopped = kernel_->stop_dev(id); stopped < 0) {
        log_info(log_, "[{}] ublk STOP_DEV of {}: {}.", name, device, std::strerror(-stopped));
      }
      if (int deleted = kernel_->del_dev(id); deleted < 0) {
        log_warning(log_, "[{}] ublk DEL_DEV of {}: {}.", name, device, std::strerror(-deleted));
      }
      break;
    case Takeover::foreign:
      log_warning(log_, "[{}] ublk device {} named by {} is not ours any more: left alone.", name,
                  device, options_.state_path);
      break;
    case Takeover::refuse:
      if (facts.info_result != 0) {
        return fail(errno_error(
            facts.info_result,
            fmt::format("ublk GET_DEV_INFO of {} (named by {})", device, options_.state_path)));
      }
      return fail(Errc::busy, fmt::format("ublk device {} (named by {}) is served by process {}",
                                          device, options_.state_path, facts.info.ublksrv_pid));
  }
  auto removed = remove_dev_id(options_.state_path);
  if (!removed) log_warning(log_, "[{}] {}.", name, removed.error().message());
  return ok();
}

// Step 2: the id of the device just added, for a restarted hastd.
void UblkBlockDevice::persist() {
  auto written = write_dev_id(options_.state_path, *server_->dev_id());
  if (!written) {
    log_warning(log_, "[{}] {}: a restarted hastd will not recover {}.", options_.server.name,
                written.error().message(), block_path());
  }
}

// Step 3, in a fiber of its own: LINK once the device is live.
void UblkBlockDevice::link_when_started() {
  auto started = server_->wait_started();
  if (started && closed_) started = fail(Errc::cancelled, "ublk device closed while starting");
  if (started && !options_.link.empty()) {
    // /dev/ublkbN may not exist yet (udev): a link to it can be made before.
    started = fuse::create_link(options_.link, block_path());
    if (started) {
      linked_ = true;
      log_info(log_, "[{}] {} -> {}.", options_.server.name, options_.link, block_path());
    } else {
      log_error(log_, "[{}] {}.", options_.server.name, started.error().message());
    }
  }
  link_result_ = started;
}

Result<void> UblkBlockDevice::wait_linked() {
  HAST_ASSERT(server_ != nullptr);
  linker_.join_all();
  HAST_ASSERT(link_result_.has_value());
  return *link_result_;
}

void UblkBlockDevice::close() {
  if (closed_) return;
  closed_ = true;
  if (server_ == nullptr) return;
  const std::string& name = options_.server.name;
  if (linked_) {
    auto removed = fuse::remove_link(options_.link, block_path());
    if (!removed) log_warning(log_, "[{}] {}.", name, removed.error().message());
    linked_ = false;
  }
  server_->close();
  if (!scheduler_.in_fiber() || scheduler_.is_shut_down()) return;
  linker_.join_all();
  if (server_->device_deleted()) {
    auto removed = remove_dev_id(options_.state_path);
    if (!removed) log_warning(log_, "[{}] {}.", name, removed.error().message());
  } else if (server_->dev_id()) {
    log_warning(log_,
                "[{}] ublk device {} was not deleted: {} keeps its id, the next start "
                "deletes it.",
                name, block_path(), options_.state_path);
  }
}

void UblkBlockDevice::test_abandon() {
  HAST_ASSERT(server_ != nullptr);
  closed_ = true;
  server_->test_abandon();
  linker_.join_all();
}

Result<BlockRequest> UblkBlockDevice::next_request() {
  HAST_ASSERT(server_ != nullptr);
  return server_->next_request();
}

void UblkBlockDevice::complete(const BlockRequest& request, Result<void> result) {
  HAST_ASSERT(server_ != nullptr);
  server_->complete(request, std::move(result));
}

}  // namespace hast::real::ublk
