// The FUSE server (see fuse_server.h): the mount, the reader fiber, the operations and
// the requests handed to the core.
//
// Method: a Request is shared by the unanswered list (requests_), the queue (while parts
// remain to be cut) and every part the core holds (parts_), so its buffer lives until the
// last part is completed, whether or not the request was answered meanwhile.
//
// Invariants: a request is in requests_ exactly while it is unanswered; only the front of
// queue_ may be partly cut; parts_pending counts a request's entries in parts_; an
// answered request's fuse_req is gone (libfuse frees it with the reply).
#define FUSE_USE_VERSION 312
#include "real/fuse/fuse_server.h"
#include "real/ring.h"

#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "real/fuse/mounts.h"

namespace hast::real::fuse {
namespace {

constexpr fuse_ino_t root_ino = FUSE_ROOT_ID;
constexpr fuse_ino_t data_ino = 2;
constexpr const char* data_name = "data";
// The file never changes size or place while mounted: the kernel may cache its
// attributes and its name for long.
constexpr double attribute_timeout_seconds = 3600;
constexpr std::uint32_t statfs_block_bytes = 4096;

bool is_power_of_two(std::uint64_t value) {
  return value != 0 && (value & (value - 1)) == 0;
}

bool changes_data(BlockOp op) {
  return op == BlockOp::write || op == BlockOp::discard || op == BlockOp::write_zeroes;
}

}  // namespace

// One FUSE data request from its arrival to its reply (and to its last part).
struct FuseServer::Request {
  bool fully_cut() const { return op == BlockOp::flush ? flush_cut : cut == length; }

  std::uint64_t id = 0;
  fuse_req* req = nullptr;  // until answered
  BlockOp op = BlockOp::read;
  Fua fua = Fua::no;
  std::uint64_t offset = 0;  // the range the parts cover, sector-aligned
  std::uint64_t length = 0;
  std::uint64_t cut = 0;   // bytes of the range handed out as parts
  bool flush_cut = false;  // a flush is one part without a range
  std::size_t parts_pending = 0;
  std::vector<std::byte> buffer;  // read: the whole range; write: the payload
  std::size_t reply_skip = 0;     // read: where the answer starts in the buffer
  std::size_t reply_bytes = 0;    // read: bytes answered; write: bytes reported written
  std::optional<Error> error;     // of the first part that failed
  bool answered = false;
};

// The C callbacks libfuse calls; each forwards to the server named by the userdata.
struct FuseOps {
  static FuseServer& of(fuse_req_t req) {
    return *static_cast<FuseServer*>(fuse_req_userdata(req));
  }
  static void init(void* userdata, fuse_conn_info* connection) {
    static_cast<FuseServer*>(userdata)->on_init(connection);
  }
  static void lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    of(req).on_lookup(req, parent, name);
  }
  static void getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    of(req).on_getattr(req, ino);
  }
  static void setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                      fuse_file_info*) {
    of(req).on_setattr(req, ino, attr->st_size, (to_set & FUSE_SET_ATTR_SIZE) != 0);
  }
  static void open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* file) {
    of(req).on_open(req, ino, file);
  }
  static void opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* file) {
    of(req).on_opendir(req, ino, file);
  }
  static void readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info*) {
    of(req).on_readdir(req, ino, size, offset);
  }
  static void statfs(fuse_req_t req, fuse_ino_t) { of(req).on_statfs(req); }
  static void read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info*) {
    of(req).on_read(req, ino, size, offset);
  }
  static void write(fuse_req_t req, fuse_ino_t ino, const char* data, size_t size, off_t offset,
                    fuse_file_info* file) {
    of(req).on_write(req, ino, data, size, offset, file->flags);
  }
  static void fsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
    of(req).on_fsync(req, ino);
  }
  static void fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                        fuse_file_info*) {
    of(req).on_fallocate(req, ino, mode, offset, length);
  }
  // flush (close(2)), release, releasedir: nothing to do; flush is not durability.
  static void done(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

  static fuse_lowlevel_ops table() {
    fuse_lowlevel_ops ops{};
    ops.init = init;
    ops.lookup = lookup;
    ops.getattr = getattr;
    ops.setattr = setattr;
    ops.open = open;
    ops.read = read;
    ops.write = write;
    ops.flush = done;
    ops.release = done;
    ops.fsync = fsync;
    ops.opendir = opendir;
    ops.readdir = readdir;
    ops.releasedir = done;
    ops.statfs = statfs;
    ops.fallocate = fallocate;
    return ops;
  }
};

namespace {

struct stat attributes_of(fuse_ino_t ino, std::uint64_t size) {
  struct stat st {};
  st.st_ino = ino;
  st.st_uid = ::geteuid();
  st.st_gid = ::getegid();
  if (ino == root_ino) {
    st.st_mode = S_IFDIR | 0755;
    st.st_nlink = 2;
  } else {
    st.st_mode = S_IFREG | 0600;
    st.st_nlink = 1;
    st.st_size = static_cast<off_t>(size);
    st.st_blocks = static_cast<blkcnt_t>(size / 512);
    st.st_blksize = 4096;
  }
  return st;
}

}  // namespace

FuseServer::FuseServer(fiber::Scheduler& scheduler, Ring& ring, Log& log, FuseServerOptions options)
    : scheduler_(scheduler),
      ring_(ring),
      log_(log),
      options_(std::move(options)),
      fibers_(scheduler),
      queued_(scheduler),
      slots_(scheduler) {
  const FuseServerOptions& o = options_;
  HAST_ASSERT(!o.mount_point.empty() && o.mount_point.front() == '/');
  HAST_ASSERT(is_power_of_two(o.sector_size) && o.sector_size >= 512 && o.sector_size <= 4096);
  HAST_ASSERT_MSG(o.size % o.sector_size == 0, "size {} not a multiple of {}", o.size,
                  o.sector_size);
  HAST_ASSERT(o.part_bytes_max >= o.sector_size && o.part_bytes_max % o.sector_size == 0);
  HAST_ASSERT(o.discard_part_bytes_max % o.sector_size == 0);
  HAST_ASSERT(o.discard_part_bytes_max >= o.sector_size);
  HAST_ASSERT(o.max_write >= 4096 && o.max_write <= 1024 * 1024);
  HAST_ASSERT(o.requests_max > 0 && o.max_background > 0);
}

FuseServer::~FuseServer() {
  HAST_ASSERT_MSG(parts_.empty() || scheduler_.is_shut_down(),
                  "FUSE server destroyed while the core holds {} of its requests", parts_.size());
  HAST_ASSERT_MSG(closed_ || !started_ || scheduler_.is_shut_down(),
                  "FUSE server destroyed while serving: close() it first");
  destroy_session();
}

std::string FuseServer::data_path() const {
  return options_.mount_point + "/" + data_name;
}

// ---- The session ----

Result<void> FuseServer::start() {
  HAST_ASSERT(!started_);
  HAST_ASSERT(!closed_);
  int fd = ::open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) return fail(errno_error(-errno, "open /dev/fuse"));
  // The kernel's own mount options (what fusermount would pass): the descriptor, the
  // root's type, the owner, and permission checks by the kernel (only the owner, root,
  // gets in: no allow_other).
  std::string data = fmt::format("fd={},rootmode={:o},user_id={},group_id={},default_permissions",
                                 fd, S_IFDIR | 0755, ::geteuid(), ::getegid());
  std::string source = "hast:" + options_.name;
  const std::string& target = options_.mount_point;
  if (::mount(source.c_str(), target.c_str(), std::string(mount_type).c_str(),
              MS_NOSUID | MS_NODEV | MS_NOEXEC, data.c_str()) != 0) {
    int error = errno;
    ::close(fd);
    return fail(errno_error(-error, fmt::format("mount FUSE on {}", target)));
  }
  if (auto created = create_session(fd); !created) {
    ::umount2(target.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
    return fail(created.error());
  }
  started_ = true;
  auto spawned = fibers_.spawn("fuse-reader", [this] { read_loop(); });
  if (!spawned) {
    ::umount2(target.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
    closed_ = true;
    destroy_session();
    return fail(spawned.error());
  }
  log_info(log_, "[{}] FUSE file {} mounted ({} bytes).", options_.name, data_path(),
           options_.size);
  return ok();
}

// Binds a libfuse session to the mounted descriptor ("/dev/fd/N": libfuse then mounts
// nothing and unmounts nothing; the mount is ours). Closes `fd` on failure.
Result<void> FuseServer::create_session(int fd) {
  std::string program = "hastd";
  char* argv[] = {program.data(), nullptr};
  fuse_args args = FUSE_ARGS_INIT(1, argv);
  fuse_lowlevel_ops ops = FuseOps::table();
  session_ = fuse_session_new(&args, &ops, sizeof ops, this);
  fuse_opt_free_args(&args);
  if (session_ == nullptr) {
    ::close(fd);
    return fail(Errc::io, "fuse_session_new failed");
  }
  std::string fd_path = fmt::format("/dev/fd/{}", fd);
  if (fuse_session_mount(session_, fd_path.c_str()) != 0) {
    fuse_session_destroy(session_);
    session_ = nullptr;
    ::close(fd);
    return fail(Errc::io, "fuse_session_mount of the /dev/fuse descriptor failed");
  }
  fd_ = fd;
  HAST_ASSERT(fuse_session_fd(session_) == fd);
  int flags = ::fcntl(fd, F_GETFL);
  HAST_ASSERT(flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0);
  return ok();
}

void FuseServer::destroy_session() {
  if (session_ == nullptr) return;
  // Closes the descriptor: the kernel aborts the connection if it is still mounted.
  fuse_session_destroy(session_);
  session_ = nullptr;
  fd_ = -1;
}

// The reader fiber: one request at a time, while a slot is free.
void FuseServer::read_loop() {
  fuse_buf buffer{};  // libfuse allocates its memory at the first receive
  struct Free {
    fuse_buf& buffer;
    ~Free() { std::free(buffer.mem); }
  } free_buffer{buffer};
  while (!closed_) {
    if (!wait_for_slot()) return;
    int received = fuse_session_receive_buf(session_, &buffer);
    if (received == -EAGAIN) {
      if (!wait_readable()) return;
      continue;
    }
    if (received == -EINTR) continue;
    if (received <= 0) {
      connection_ended(received);
      return;
    }
    fuse_session_process_buf(session_, &buffer);
  }
}

void FuseServer::connection_ended(int received) {
  disconnected_ = true;
  std::string why = received == 0 ? "unmounted" : std::strerror(-received);
  if (disconnect_expected_) {
    log_debug(log_, "[{}] FUSE connection ended ({}).", options_.name, why);
    return;
  }
  log_error(log_,
            "[{}] The FUSE connection of {} ended ({}): the file system was unmounted or its "
            "connection aborted from outside; nothing is served until the role changes.",
            options_.name, options_.mount_point, why);
}

bool FuseServer::wait_for_slot() {
  while (requests_.size() >= options_.requests_max) {
    if (slots_.wait(std::nullopt) != fiber::WakeReason::woken) return false;
  }
  return true;
}

// False when the reader must stop: cancelled (close), or the poll itself failed.
bool FuseServer::wait_readable() {
  int rc = ring_.run([this](io_uring_sqe* sqe) { io_uring_prep_poll_add(sqe, fd_, POLLIN); });
  if (rc >= 0) return true;
  if (rc != -ECANCELED) {
    log_error(log_, "[{}] Polling /dev/fuse failed: {}; nothing is served until the role changes.",
              options_.name, std::strerror(-rc));
  }
  return false;
}

// ---- Metadata operations ----

void FuseServer::on_init(fuse_conn_info* connection) {
  connection->max_write = options_.max_write;
  connection->max_background = options_.max_background;
  connection->congestion_threshold = options_.max_background * 3 / 4;
  // No writeback cache (acknowledged must mean the core has it), no splicing (the
  // receive buffer is memory), and O_TRUNC through setattr, which refuses it.
  connection->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
                        FUSE_CAP_SPLICE_MOVE | FUSE_CAP_ATOMIC_O_TRUNC);
  // Several reads, and the loop device's asynchronous direct I/O, in flight at once.
  connection->want |= connection->capable & (FUSE_CAP_ASYNC_READ | FUSE_CAP_ASYNC_DIO);
  initialised_ = true;
  log_debug(log_, "[{}] FUSE protocol {}.{}, max_write {}.", options_.name, connection->proto_major,
            connection->proto_minor, connection->max_write);
}

void FuseServer::on_lookup(fuse_req* req, std::uint64_t parent, const char* name) {
  if (parent != root_ino || std::strcmp(name, data_name) != 0) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  fuse_entry_param entry{};
  entry.ino = data_ino;
  entry.generation = 1;
  entry.attr = attributes_of(data_ino, options_.size);
  entry.attr_timeout = attribute_timeout_seconds;
  entry.entry_timeout = attribute_timeout_seconds;
  fuse_reply_entry(req, &entry);
}

void FuseServer::on_getattr(fuse_req* req, std::uint64_t ino) {
  if (ino != root_ino && ino != data_ino) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  struct stat st = attributes_of(ino, options_.size);
  fuse_reply_attr(req, &st, attribute_timeout_seconds);
}

// Owner, mode and times do not change (answered with the attributes as they are); the
// size cannot.
void FuseServer::on_setattr(fuse_req* req, std::uint64_t ino, std::int64_t new_size,
                            bool set_size) {
  if (set_size && (ino != data_ino || static_cast<std::uint64_t>(new_size) != options_.size)) {
    fuse_reply_err(req, EPERM);
    return;
  }
  on_getattr(req, ino);
}

void FuseServer::on_open(fuse_req* req, std::uint64_t ino, fuse_file_info* file) {
  if (ino != data_ino) {
    fuse_reply_err(req, ino == root_ino ? EISDIR : ENOENT);
    return;
  }
  if ((file->flags & O_TRUNC) != 0) {
    fuse_reply_err(req, EPERM);
    return;
  }
  file->direct_io = 1;  // no page cache: every read and write comes here
  file->keep_cache = 0;
  file->noflush = 1;  // close(2) needs no FLUSH: it is not durability
  fuse_reply_open(req, file);
}

void FuseServer::on_opendir(fuse_req* req, std::uint64_t ino, fuse_file_info* file) {
  if (ino != root_ino) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  fuse_reply_open(req, file);
}

void FuseServer::on_readdir(fuse_req* req, std::uint64_t ino, std::size_t size,
                            std::int64_t offset) {
  if (ino != root_ino) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  struct Entry {
    const char* name;
    fuse_ino_t ino;
  };
  constexpr Entry entries[] = {{".", root_ino}, {"..", root_ino}, {data_name, data_ino}};
  std::vector<char> buffer(size);
  std::size_t used = 0;
  for (std::int64_t index = std::max<std::int64_t>(offset, 0); index < 3; index++) {
    const Entry& entry = entries[index];
    struct stat st = attributes_of(entry.ino, options_.size);
    std::size_t need =
        fuse_add_direntry(req, buffer.data() + used, size - used, entry.name, &st, index + 1);
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, buffer.data(), used);
}

void FuseServer::on_statfs(fuse_req* req) {
  struct statvfs st {};
  st.f_bsize = statfs_block_bytes;
  st.f_frsize = statfs_block_bytes;
  st.f_blocks = options_.size / statfs_block_bytes;
  st.f_files = 2;
  st.f_namemax = 255;
  fuse_reply_statfs(req, &st);
}

// ---- Data operations ----

void FuseServer::on_read(fuse_req* req, std::uint64_t ino, std::size_t size, std::int64_t offset) {
  if (ino != data_ino) return reject(req, EISDIR);
  if (offset < 0) return reject(req, EINVAL);
  stats_.reads++;
  std::uint64_t start = static_cast<std::uint64_t>(offset);
  if (start >= options_.size || size == 0) {
    fuse_reply_buf(req, nullptr, 0);
    return;
  }
  std::uint64_t end = std::min<std::uint64_t>(options_.size, start + size);
  // The covering sectors; the end of the file is a sector boundary.
  std::uint64_t first = start - start % options_.sector_size;
  std::uint64_t last =
      end + (options_.sector_size - end % options_.sector_size) % options_.sector_size;
  auto request = make_request(req, BlockOp::read, first, last - first);
  request->buffer.resize(last - first);
  request->reply_skip = start - first;
  request->reply_bytes = end - start;
  enqueue(request);
}

void FuseServer::on_write(fuse_req* req, std::uint64_t ino, const char* data, std::size_t size,
                          std::int64_t offset, int open_flags) {
  if (ino != data_ino) return reject(req, EISDIR);
  stats_.writes++;
  if (offset < 0 || !aligned(static_cast<std::uint64_t>(offset)) || !aligned(size)) {
    return reject(req, EINVAL);
  }
  std::uint64_t start = static_cast<std::uint64_t>(offset);
  if (size == 0) {
    fuse_reply_write(req, 0);
    return;
  }
  if (start >= options_.size) return reject(req, ENOSPC);
  std::uint64_t length = std::min<std::uint64_t>(size, options_.size - start);
  auto request = make_request(req, BlockOp::write, start, length);
  // The kernel sets O_DSYNC for a file opened O_SYNC/O_DSYNC and for RWF_DSYNC writes.
  if ((open_flags & O_DSYNC) != 0) {
    request->fua = Fua::yes;
    stats_.fua_writes++;
  }
  // libfuse's receive buffer is reused for the next request: the payload is copied.
  const auto* bytes = reinterpret_cast<const std::byte*>(data);
  request->buffer.assign(bytes, bytes + length);
  request->reply_bytes = length;
  enqueue(request);
}

void FuseServer::on_fsync(fuse_req* req, std::uint64_t ino) {
  if (ino != data_ino) {
    fuse_reply_err(req, 0);
    return;
  }
  stats_.flushes++;
  if (writes_completed_ == 0) {
    // No write completed through this server yet: nothing for the flush to cover.
    stats_.flushes_at_once++;
    fuse_reply_err(req, 0);
    return;
  }
  enqueue(make_request(req, BlockOp::flush, 0, 0));
}

void FuseServer::on_fallocate(fuse_req* req, std::uint64_t ino, int mode, std::int64_t offset,
                              std::int64_t length) {
  if (ino != data_ino) return reject(req, EOPNOTSUPP);
  if (offset < 0 || length <= 0 || offset > INT64_MAX - length) return reject(req, EINVAL);
  bool keep_size = (mode & FALLOC_FL_KEEP_SIZE) != 0;
  int kind = mode & ~FALLOC_FL_KEEP_SIZE;
  std::uint64_t start = static_cast<std::uint64_t>(offset);
  std::uint64_t end = start + static_cast<std::uint64_t>(length);
  if (kind != 0 && kind != FALLOC_FL_PUNCH_HOLE && kind != FALLOC_FL_ZERO_RANGE) {
    return reject(req, EOPNOTSUPP);
  }
  if (end > options_.size && !keep_size) return reject(req, EFBIG);  // it cannot grow
  if (kind == 0 || start >= options_.size) {
    fuse_reply_err(req, 0);  // allocated already, or all past the end
    return;
  }
  end = std::min<std::uint64_t>(end, options_.size);
  if (!aligned(start) || !aligned(end)) return reject(req, EINVAL);
  BlockOp op = kind == FALLOC_FL_PUNCH_HOLE ? BlockOp::discard : BlockOp::write_zeroes;
  (op == BlockOp::discard ? stats_.discards : stats_.zeroes)++;
  enqueue(make_request(req, op, start, end - start));
}

// ---- Requests ----

std::shared_ptr<FuseServer::Request> FuseServer::make_request(fuse_req* req, BlockOp op,
                                                              std::uint64_t offset,
                                                              std::uint64_t length) {
  HAST_ASSERT(op == BlockOp::flush || length > 0);
  HAST_ASSERT(offset + length <= options_.size);
  auto request = std::make_shared<Request>();
  request->id = next_request_id_++;
  request->req = req;
  request->op = op;
  request->offset = offset;
  request->length = length;
  requests_.emplace(request->id, request);
  stats_.requests++;
  return request;
}

void FuseServer::enqueue(const std::shared_ptr<Request>& request) {
  if (closed_) {
    answer(*request, EIO);
    return;
  }
  queue_.push_back(request);
  queued_.wake_all();
}

void FuseServer::reject(fuse_req* req, int error) {
  stats_.rejected++;
  fuse_reply_err(req, error);
}

BlockRequest FuseServer::cut_part(Request& request) {
  HAST_ASSERT(!request.fully_cut());
  BlockRequest part;
  part.id = next_part_id_++;
  part.op = request.op;
  part.fua = request.fua;
  if (request.op == BlockOp::flush) {
    request.flush_cut = true;
    return part;
  }
  std::uint64_t limit =
      request.op == BlockOp::discard ? options_.discard_part_bytes_max : options_.part_bytes_max;
  std::uint64_t size = std::min<std::uint64_t>(limit, request.length - request.cut);
  part.offset = request.offset + request.cut;
  part.length = size;
  if (request.op == BlockOp::read || request.op == BlockOp::write) {
    part.data = std::span(request.buffer).subspan(request.cut, size);
  }
  request.cut += size;
  HAST_ASSERT(part.offset % options_.sector_size == 0 && size % options_.sector_size == 0);
  return part;
}

// Replies to the kernel: `forced_error`, else the first part's error, else success.
void FuseServer::answer(Request& request, int forced_error) {
  HAST_ASSERT(!request.answered);
  HAST_ASSERT(request.req != nullptr);
  request.answered = true;
  fuse_req* req = std::exchange(request.req, nullptr);
  requests_.erase(request.id);
  slots_.wake_all();
  int error = forced_error;
  if (error == 0 && request.error) error = errno_for(request.error->code());
  int sent = 0;
  if (error != 0) {
    stats_.failed++;
    sent = fuse_reply_err(req, error);
  } else if (request.op == BlockOp::read) {
    const auto* bytes = reinterpret_cast<const char*>(request.buffer.data());
    sent = fuse_reply_buf(req, bytes + request.reply_skip, request.reply_bytes);
  } else if (request.op == BlockOp::write) {
    sent = fuse_reply_write(req, request.reply_bytes);
  } else {
    sent = fuse_reply_err(req, 0);
  }
  if (error == 0 && changes_data(request.op)) writes_completed_++;
  // The kernel forgets requests of an aborted connection (or interrupted ones): ENOENT.
  if (sent != 0) {
    log_debug(log_, "[{}] FUSE reply not delivered: {}", options_.name, std::strerror(-sent));
  }
}

// ---- BlockFrontend ----

Result<BlockRequest> FuseServer::next_request() {
  while (queue_.empty() || closed_) {
    if (closed_) return fail(Errc::cancelled, "FUSE server closed");
    auto reason = queued_.wait(std::nullopt);
    if (reason != fiber::WakeReason::woken) {
      return fail(fiber::wake_result(reason, "waiting for a FUSE request").error());
    }
  }
  std::shared_ptr<Request> request = queue_.front();
  BlockRequest part = cut_part(*request);
  if (request->fully_cut()) queue_.pop_front();
  parts_.emplace(part.id, request);
  request->parts_pending++;
  stats_.parts++;
  return part;
}

void FuseServer::complete(const BlockRequest& part, Result<void> result) {
  auto found = parts_.find(part.id);
  HAST_ASSERT_MSG(found != parts_.end(), "FUSE: complete() of part {}, not outstanding", part.id);
  std::shared_ptr<Request> request = std::move(found->second);
  parts_.erase(found);
  HAST_ASSERT(request->parts_pending > 0);
  request->parts_pending--;
  if (!result) {
    stats_.parts_failed++;
    if (!request->error) request->error = result.error();
  }
  if (request->parts_pending > 0 || request->answered) return;
  if (!request->fully_cut()) {
    if (!request->error) return;  // more parts to come
    // A failed request ends here: its remaining parts never reach the core. Only the
    // front of the queue is ever partly cut.
    HAST_ASSERT(!queue_.empty() && queue_.front() == request);
    queue_.pop_front();
  }
  answer(*request);
}

// ---- Closing ----

void FuseServer::close() {
  if (closed_) return;
  closed_ = true;
  log_info(log_, "[{}] FUSE session on {} ending ({} requests unanswered, {} parts in the core).",
           options_.name, options_.mount_point, requests_.size(), parts_.size());
  // Nothing new comes in: the reader stops, next_request() fails from now on.
  fibers_.cancel();
  queued_.wake_all();
  if (scheduler_.in_fiber() && !scheduler_.is_shut_down()) fibers_.cancel_and_join();
  // Every request not answered yet gets EIO, including those whose parts the core holds.
  queue_.clear();
  auto unanswered = requests_;
  for (auto& [id, request] : unanswered) {
    stats_.failed_at_close++;
    answer(*request, EIO);
  }
  HAST_ASSERT(requests_.empty());
  destroy_session();
}

}  // namespace hast::real::fuse
