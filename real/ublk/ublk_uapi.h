// The ublk kernel UAPI we use, as constants of our own (reference/frontends.md §1).
//
// Why vendored: Debian 12's linux-libc-dev (6.1) ships <linux/ublk_cmd.h> with the structs
// and the legacy opcodes only (UBLK_CMD_ADD_DEV = 0x04, ...). Kernels built without
// CONFIG_BLKDEV_UBLK_LEGACY_OPCODES reject those; every kernel since 6.4 accepts the
// ioctl-encoded forms (UBLK_F_CMD_IOCTL_ENCODE), which the 6.1 header lacks. They are
// stable UAPI, spelled here from the facts of the kernel's include/uapi/linux/ublk_cmd.h:
// - control commands are _IOR/_IOWR('u', nr, struct ublksrv_ctrl_cmd): GET_DEV_INFO
//   (0x02, read), ADD_DEV 0x04, DEL_DEV 0x05, START_DEV 0x06, STOP_DEV 0x07, SET_PARAMS
//   0x08 (read-write), GET_PARAMS 0x09 (read), START_USER_RECOVERY 0x10 and
//   END_USER_RECOVERY 0x11 (read-write), GET_FEATURES 0x13 (read, 6.5+), DEL_DEV_ASYNC
//   0x14 (read, 6.9+: deletes without waiting for the block device's last user);
// - I/O commands are _IOWR('u', nr, struct ublksrv_io_cmd): FETCH_REQ 0x20,
//   COMMIT_AND_FETCH_REQ 0x21;
// - UBLK_F_CMD_IOCTL_ENCODE is feature bit 6.
// The struct layouts come from the installed header; their sizes are asserted below,
// since the ioctl encoding carries them.
#pragma once

#include <linux/ublk_cmd.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstdint>

namespace hast::real::ublk {

// Control commands (URING_CMD on /dev/ublk-control, 128-byte SQEs).
constexpr std::uint32_t cmd_get_dev_info = _IOR('u', 0x02, struct ublksrv_ctrl_cmd);
constexpr std::uint32_t cmd_add_dev = _IOWR('u', 0x04, struct ublksrv_ctrl_cmd);
constexpr std::uint32_t cmd_del_dev = _IOWR('u', 0x05, struct ublksrv_ctrl_cmd);
constexpr std::uint32_t cmd_start_dev = _IOWR('u', 0x06, struct ublksrv_ctrl_cmd);
constexpr std::uint32_t cmd_stop_dev = _IOWR('u', 0x07, struct ublksrv_ctrl_cmd);
constexpr std::uint32_t cmd_set_params = _IOWR('u', 0x08, struct ublksrv_ctrl_cmd);
constexpr std::uint32_t cmd_get_params = _IOR('u', 0x09, struct ublksrv_ctrl_cmd);
constexpr std::uint32_t cmd_start_user_recovery = _IOWR('u', 0x10, struct ublksrv_ctrl_cmd);
constexpr std::uint32_t cmd_end_user_recovery = _IOWR('u', 0x11, struct ublksrv_ctrl_cmd);
constexpr std::uint32_t cmd_get_features = _IOR('u', 0x13, struct ublksrv_ctrl_cmd);
constexpr std::uint32_t cmd_del_dev_async = _IOR('u', 0x14, struct ublksrv_ctrl_cmd);

// I/O commands (URING_CMD on /dev/ublkcN; the 16-byte ublksrv_io_cmd fits a normal SQE).
constexpr std::uint32_t io_fetch_req = _IOWR('u', 0x20, struct ublksrv_io_cmd);
constexpr std::uint32_t io_commit_and_fetch_req = _IOWR('u', 0x21, struct ublksrv_io_cmd);

// Feature flags newer than the 6.1 header.
constexpr std::uint64_t flag_cmd_ioctl_encode = 1ULL << 6;
constexpr std::uint64_t flag_user_recovery = 1ULL << 3;  // UBLK_F_USER_RECOVERY (6.1)

// Descriptor fields (struct ublksrv_io_desc.op_flags): the op in bits 0-7, flags above.
constexpr std::uint32_t op_mask = 0xff;
constexpr std::uint32_t op_read = 0;
constexpr std::uint32_t op_write = 1;
constexpr std::uint32_t op_flush = 2;
constexpr std::uint32_t op_discard = 3;
constexpr std::uint32_t op_write_same = 4;
constexpr std::uint32_t op_write_zeroes = 5;
constexpr std::uint32_t io_flag_fua = 1U << 13;
// ublk counts sectors of 512 bytes whatever the logical block size.
constexpr std::uint32_t sector_shift = 9;

// Completion results of FETCH_REQ / COMMIT_AND_FETCH_REQ.
constexpr int io_res_ok = 0;                     // UBLK_IO_RES_OK: a request is in desc[tag]
constexpr int io_res_abort = -ENODEV;            // UBLK_IO_RES_ABORT: the device stops
constexpr std::uint16_t queue_depth_max = 4096;  // UBLK_MAX_QUEUE_DEPTH

// Device states (ublksrv_ctrl_dev_info.state).
constexpr std::uint16_t state_dead = 0;
constexpr std::uint16_t state_live = 1;
constexpr std::uint16_t state_quiesced = 2;
constexpr std::uint16_t state_fail_io = 3;  // UBLK_S_DEV_FAIL_IO (6.13+)

static_assert(sizeof(struct ublksrv_ctrl_cmd) == 32);
static_assert(sizeof(struct ublksrv_ctrl_dev_info) == 64);
static_assert(sizeof(struct ublksrv_io_cmd) == 16);
static_assert(sizeof(struct ublksrv_io_desc) == 24);
// The value reference/frontends.md §1 gives for ADD_DEV pins the encoding.
static_assert(cmd_add_dev == 0xc0207504U);
static_assert(io_fetch_req == 0xc0107520U);
static_assert(flag_user_recovery == UBLK_F_USER_RECOVERY);
static_assert(io_flag_fua == UBLK_IO_F_FUA);
static_assert(op_write_zeroes == UBLK_IO_OP_WRITE_ZEROES);
static_assert(queue_depth_max == UBLK_MAX_QUEUE_DEPTH);
static_assert(io_res_abort == UBLK_IO_RES_ABORT);

}  // namespace hast::real::ublk
