// What a starting ublk frontend does with the device its predecessor left: the persisted
// device id (a small state file), the stamp that marks our devices, and the decision.
//
// Why: with UBLK_F_USER_RECOVERY the kernel keeps a device whose server died (kill -9,
// crash) quiesced: its I/O waits, /dev/ublkbN and the file systems on it stay. Only a new
// server that names the device takes it back (START_USER_RECOVERY .. END_USER_RECOVERY),
// so the id must outlive the process: the frontend writes it to
// <runtime directory>/<resource>.ublk after ADD_DEV and removes the file after DEL_DEV.
//
// Model: the next open() reads the file, asks the kernel (GET_DEV_INFO, GET_PARAMS) and
// decide_takeover() chooses, from the facts only:
//   no file, or no such device any more       -> add a new device
//   the id now names a device that is not ours -> leave it alone, add a new device
//   (its ublksrv_flags lack our stamp: the id was reused after ours went away)
//   ours, live, its server process alive      -> refuse (another hastd serves it)
//   ours, with user recovery, quiesced or fail_io, same size and block size
//                                              -> recover it
//   ours otherwise (dead, never started, no recovery, size changed, or live with its
//   server gone)                               -> stop and delete it, add a new device
// A GET_DEV_INFO that fails otherwise than "no such device" refuses (the error is kept).
//
// Threads: the file functions make small blocking calls on a local (tmpfs) directory;
// the rest is pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"
#include "real/ublk/ublk_uapi.h"

namespace hast::real::ublk {

enum class Takeover : std::uint8_t {
  add,      // nothing of ours to take back: ADD_DEV
  recover,  // START_USER_RECOVERY on the persisted id
  replace,  // STOP_DEV + DEL_DEV the persisted id, then ADD_DEV
  foreign,  // the id names someone else's device: forget it, ADD_DEV
  refuse,   // the device is served by a live process, or the kernel's answer is an error
};

std::string_view takeover_name(Takeover takeover);

// What the kernel and the system said about the persisted device.
struct TakeoverFacts {
  bool persisted = false;        // a state file named a device
  int info_result = 0;           // GET_DEV_INFO: 0 or -errno
  ublksrv_ctrl_dev_info info{};  // valid when info_result == 0
  int params_result = 0;         // GET_PARAMS: 0 or -errno (asked only when recovery is possible)
  ublk_params params{};          // valid when params_result == 0
  std::uint64_t stamp = 0;       // ours (owner_stamp)
  std::uint64_t size = 0;        // the bytes we serve now
  std::uint32_t sector_size = 512;
  bool server_alive = false;  // the device's ublksrv_pid names a live process, not us
};

// The decision of the table above.
Takeover decide_takeover(const TakeoverFacts& facts);

// True when a recovery is possible so far (ours, user recovery, quiesced or fail_io): the
// caller then asks GET_PARAMS before deciding.
bool recovery_possible(const TakeoverFacts& facts);

// The stamp of `resource`'s devices: a 64-bit hash of "hast" and the name, never 0.
std::uint64_t owner_stamp(std::string_view resource);

// The state file: one line, the device id in decimal. read_dev_id: nullopt when the file
// is absent; an error when it cannot be read or does not hold an id (the text is named).
Result<std::optional<std::uint32_t>> read_dev_id(const std::string& path);
// Writes the id atomically (a temporary file renamed over `path`). Errors name the path.
Result<void> write_dev_id(const std::string& path, std::uint32_t dev_id);
// Removes the file; absent is fine.
Result<void> remove_dev_id(const std::string& path);

}  // namespace hast::real::ublk
