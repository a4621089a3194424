// RealUblkKernel (see ublk_device.h): the ublk driver's commands through io_uring.
#include "real/ublk/ublk_device.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <utility>

#include <fmt/format.h>

#include "real/fuse/off_thread.h"

namespace hast::real::ublk {
namespace {

// The SQE's command area, past its fixed fields (a zero-length array in the UAPI).
std::byte* command_area(io_uring_sqe* sqe) {
  return reinterpret_cast<std::byte*>(sqe) + offsetof(io_uring_sqe, cmd);
}

constexpr unsigned control_ring_entries = 4;
// The kernel's internal ENOTSUPP, which old drivers return for unknown commands.
constexpr int enotsupp = 524;
constexpr int char_open_attempts = 20;
constexpr Duration char_open_retry = std::chrono::milliseconds(50);

std::size_t page_round_up(std::size_t bytes) {
  auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

}  // namespace

void prepare_control_sqe(io_uring_sqe* sqe, int fd, std::uint32_t op, const ublksrv_ctrl_cmd& cmd) {
  // Zero all 128 bytes: the command area runs past the first 64.
  std::memset(static_cast<void*>(sqe), 0, 2 * sizeof(io_uring_sqe));
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = fd;
  sqe->cmd_op = op;
  std::memcpy(command_area(sqe), &cmd, sizeof(cmd));
}

void prepare_io_sqe(io_uring_sqe* sqe, int fd, std::uint32_t op, const ublksrv_io_cmd& cmd) {
  // The 16-byte command area of a normal SQE (addr3 and the padding after it).
  static_assert(sizeof(io_uring_sqe) - offsetof(io_uring_sqe, cmd) >= sizeof(ublksrv_io_cmd));
  std::memset(static_cast<void*>(sqe), 0, sizeof(io_uring_sqe));
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = fd;
  sqe->cmd_op = op;
  std::memcpy(command_area(sqe), &cmd, sizeof(cmd));
}

// The control descriptor and its SQE128 ring; one command at a time, from any thread.
class RealUblkKernel::Control {
 public:
  explicit Control(int fd) : fd_(fd) {}
  ~Control() {
    if (ring_ready_) io_uring_queue_exit(&ring_);
    ::close(fd_);
  }

  // Sets the ring up in place (liburing's ring must not move). 0 or -errno.
  int init() {
    int result = io_uring_queue_init(control_ring_entries, &ring_, IORING_SETUP_SQE128);
    ring_ready_ = result == 0;
    return result;
  }
  Control(const Control&) = delete;
  Control& operator=(const Control&) = delete;

  // Submits one command and waits for its CQE. Blocks: never on the scheduler's thread.
  int run(std::uint32_t op, const ublksrv_ctrl_cmd& cmd) {
    std::lock_guard lock(mutex_);
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) return -EBUSY;
    prepare_control_sqe(sqe, fd_, op, cmd);
    int submitted = io_uring_submit(&ring_);
    if (submitted < 0) return submitted;
    io_uring_cqe* cqe = nullptr;
    int waited = -EINTR;
    while (waited == -EINTR)
      waited = io_uring_wait_cqe(&ring_, &cqe);
    if (waited < 0) return waited;
    int result = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    return result;
  }

 private:
  int fd_;
  io_uring ring_{};
  bool ring_ready_ = false;
  std::mutex mutex_;
};

Result<std::unique_ptr<RealUblkKernel>> RealUblkKernel::open(fiber::Scheduler& scheduler,
                                                             Ring& ring, std::string control_path) {
  int fd = ::open(control_path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return fail(errno_error(-errno, "opening " + control_path));
  auto control = std::make_shared<Control>(fd);  // owns fd from here on
  int set_up = control->init();
  if (set_up < 0) return fail(errno_error(set_up, "setting up the ublk control ring (SQE128)"));
  return std::unique_ptr<RealUblkKernel>(new RealUblkKernel(scheduler, ring, std::move(control)));
}

RealUblkKernel::RealUblkKernel(fiber::Scheduler& scheduler, Ring& ring,
                               std::shared_ptr<Control> control)
    : scheduler_(scheduler), ring_(ring), control_(std::move(control)) {}

RealUblkKernel::~RealUblkKernel() {
  close_queues();
}

// ---- Control plane ----

int RealUblkKernel::command(std::uint32_t op, std::uint32_t dev_id, std::uint64_t data,
                            std::span<std::byte> payload) {
  // The helper thread owns copies of everything it touches (off_thread.h: the wait may
  // end early when the scheduler shuts down).
  auto buffer = std::make_shared<std::vector<std::byte>>(payload.begin(), payload.end());
  ublksrv_ctrl_cmd cmd{};
  cmd.dev_id = dev_id;
  cmd.queue_id = UINT16_MAX;
  cmd.data[0] = data;
  if (!buffer->empty()) {
    cmd.addr = reinterpret_cast<std::uint64_t>(buffer->data());
    cmd.len = static_cast<std::uint16_t>(buffer->size());
  }
  int result = 0;
  if (encoding_ == Encoding::legacy) {
    result = run_control(legacy_opcode(op), cmd, buffer);
  } else {
    std::vector<std::byte> sent(buffer->begin(), buffer->end());
    result = run_control(op, cmd, buffer);
    if (result >= 0) encoding_ = Encoding::ioctl;
    if (result < 0 && encoding_ == Encoding::unknown && result != -ECANCELED) {
      // Perhaps a kernel before 6.4: the same command by its legacy number, from the
      // same payload (the failed attempt may have written to it).
      std::copy(sent.begin(), sent.end(), buffer->begin());
      int legacy = run_control(legacy_opcode(op), cmd, buffer);
      if (legacy >= 0) {
        encoding_ = Encoding::legacy;
        result = legacy;
      } else {
        std::copy(sent.begin(), sent.end(), buffer->begin());
      }
    }
  }
  if (result == -ECANCELED) return result;
  std::copy(buffer->begin(), buffer->end(), payload.begin());
  return result;
}

int RealUblkKernel::run_control(std::uint32_t op, const ublksrv_ctrl_cmd& cmd,
                                const std::shared_ptr<std::vector<std::byte>>& buffer) {
  auto done = run_off_thread<int>(scheduler_, ring_, "ublk-control",
                                  [control = control_, buffer, op, cmd]() -> Result<int> {
                                    // `buffer` rides along: cmd.addr points into it.
                                    HAST_ASSERT(buffer != nullptr);
                                    return control->run(op, cmd);
                                  });
  return done ? *done : -ECANCELED;
}

int RealUblkKernel::add_dev(ublksrv_ctrl_dev_info& info) {
  return command(cmd_add_dev, info.dev_id, 0, std::as_writable_bytes(std::span(&info, 1)));
}

int RealUblkKernel::get_dev_info(std::uint32_t dev_id, ublksrv_ctrl_dev_info& info) {
  return command(cmd_get_dev_info, dev_id, 0, std::as_writable_bytes(std::span(&info, 1)));
}

int RealUblkKernel::set_params(std::uint32_t dev_id, const ublk_params& params) {
  ublk_params copy = params;
  return command(cmd_set_params, dev_id, 0, std::as_writable_bytes(std::span(&copy, 1)));
}

int RealUblkKernel::get_params(std::uint32_t dev_id, ublk_params& params) {
  return command(cmd_get_params, dev_id, 0, std::as_writable_bytes(std::span(&params, 1)));
}

int RealUblkKernel::start_dev(std::uint32_t dev_id, std::int32_t pid) {
  return command(cmd_start_dev, dev_id, static_cast<std::uint64_t>(pid), {});
}

int RealUblkKernel::stop_dev(std::uint32_t dev_id) {
  return command(cmd_stop_dev, dev_id, 0, {});
}

int RealUblkKernel::del_dev(std::uint32_t dev_id) {
  // DEL_DEV waits until the block device's last user closed it (a mounted file system
  // would hold the role change); DEL_DEV_ASYNC (6.9+, never legacy-encoded) does not.
  // Older kernels reject the unknown command, and then only DEL_DEV is left.
  if (encoding_ == Encoding::ioctl) {
    int result = command(cmd_del_dev_async, dev_id, 0, {});
    if (result != -EOPNOTSUPP && result != -EINVAL && result != -enotsupp) return result;
  }
  return command(cmd_del_dev, dev_id, 0, {});
}

int RealUblkKernel::start_user_recovery(std::uint32_t dev_id) {
  return command(cmd_start_user_recovery, dev_id, 0, {});
}

int RealUblkKernel::end_user_recovery(std::uint32_t dev_id, std::int32_t pid) {
  return command(cmd_end_user_recovery, dev_id, static_cast<std::uint64_t>(pid), {});
}

// ---- Data plane ----

int RealUblkKernel::open_queues(const ublksrv_ctrl_dev_info& info) {
  HAST_ASSERT(char_fd_ < 0);
  std::string path = fmt::format("/dev/ublkc{}", info.dev_id);
  for (int attempt = 0; char_fd_ < 0; attempt++) {
    char_fd_ = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (char_fd_ >= 0) break;
    int error = errno;
    if (error != ENOENT || attempt + 1 >= char_open_attempts) return -error;
    if (!scheduler_.sleep_for(char_open_retry)) return -ECANCELED;
  }
  queue_depth_ = info.queue_depth;
  // Each queue's array starts at a stride sized for the largest depth (kernel UAPI).
  std::size_t stride = page_round_up(queue_depth_max * sizeof(ublksrv_io_desc));
  std::size_t length = page_round_up(info.queue_depth * sizeof(ublksrv_io_desc));
  for (std::uint16_t q = 0; q < info.nr_hw_queues; q++) {
    auto offset = static_cast<off_t>(UBLKSRV_CMD_BUF_OFFSET + q * stride);
    void* address = ::mmap(nullptr, length, PROT_READ, MAP_SHARED | MAP_POPULATE, char_fd_, offset);
    if (address == MAP_FAILED) {
      int error = errno;
      close_queues();
      return -error;
    }
    descriptors_.push_back(Mapping{address, length});
  }
  return 0;
}

void RealUblkKernel::close_queues() {
  for (const Mapping& mapping : descriptors_)
    ::munmap(mapping.address, mapping.length);
  descriptors_.clear();
  if (char_fd_ >= 0) ::close(char_fd_);
  char_fd_ = -1;
}

ublksrv_io_desc RealUblkKernel::descriptor(std::uint16_t queue, std::uint16_t tag) const {
  HAST_ASSERT(queue < descriptors_.size());
  HAST_ASSERT(tag < queue_depth_);
  ublksrv_io_desc desc{};
  const auto* base = static_cast<const std::byte*>(descriptors_[queue].address);
  std::memcpy(&desc, base + tag * sizeof(ublksrv_io_desc), sizeof(desc));
  return desc;
}

int RealUblkKernel::io(std::uint32_t op, std::uint16_t queue, std::uint16_t tag,
                       std::int32_t result, std::span<std::byte> buffer) {
  HAST_ASSERT(char_fd_ >= 0);
  ublksrv_io_cmd cmd{};
  cmd.q_id = queue;
  cmd.tag = tag;
  cmd.result = result;
  cmd.addr = reinterpret_cast<std::uint64_t>(buffer.data());
  std::uint32_t sent = encoding_ == Encoding::legacy ? legacy_opcode(op) : op;
  return ring_.run([&](io_uring_sqe* sqe) { prepare_io_sqe(sqe, char_fd_, sent, cmd); });
}

int RealUblkKernel::fetch(std::uint16_t queue, std::uint16_t tag, std::span<std::byte> buffer) {
  return io(io_fetch_req, queue, tag, 0, buffer);
}

int RealUblkKernel::commit_and_fetch(std::uint16_t queue, std::uint16_t tag, std::int32_t result,
                                     std::span<std::byte> buffer) {
  return io(io_commit_and_fetch_req, queue, tag, result, buffer);
}

}  // namespace hast::real::ublk
