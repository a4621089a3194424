// Scenario: the text format of scenarios/*.scn, and its parser (a pure function, like
// core/config: text in, Result<Scenario> out). scenario_runner.h runs a parsed scenario.
//
// A scenario is a script for the simulated two-node cluster: the hast.conf both nodes
// run, a client workload, operator actions and faults at simulated times, and
// expectations about what the nodes show at given times. The runner adds what the script
// leaves open (latencies, which cached writes a power loss keeps, action jitter) from a
// seed, and judges every run with the swarm's oracles as well.
//
// Grammar. One statement per line; blanks separate words; `#` starts a comment (at the
// start of a word, outside the config block); blank lines are ignored. Times are a
// number and a unit (`us`, `ms`, `s`, `m`: `250ms`, `1.5s`), at most a day, and every
// action happens within the first simulated day; sizes are a number with an optional
// binary suffix (`512`, `64K`, `16M`, `1G`). Statements:
//
//   name TEXT...                 a one-line title, printed by the runner
//   config                       the hast.conf both nodes run, verbatim, up to a line
//   ...                          `end`. Exactly one resource with two `on NODE` sections;
//   end                          each node's address is the host of the other's `remote`.
//                                `replication` and `timeout` are taken from it; `local`
//                                names the node's simulated disk (the path is not used).
//   set KEY VALUE                keepalive TIME | reconnect TIME | disk-size SIZE |
//                                extent-size SIZE | keep-dirty N | jitter TIME |
//                                clock-offset NODE TIME (the node's clock runs TIME ahead)
//                                (each action is delayed by up to `jitter`, from the seed,
//                                keeping file order)
//   workload KEY VALUE...        mix read N write N flush N discard N zeroes N |
//                                fua PROBABILITY | size SIZE (largest request) |
//                                rate N (requests per second, mean) | inflight N |
//                                run FROM TO (start and stop the workload)
//   duration TIME                the script ends at TIME (default: the last action, plus
//                                its `within`, plus 100ms); then the workload stops,
//                                links heal, disk faults stop and the pair must converge
//   at TIME ACTION...            an action at simulated TIME; `at +TIME` is relative to
//                                the previous `at`. Actions at one time run in file order.
//
// Actions (NODE is a node name from the config; A -> B is one direction, A B both):
//   create NODE                  `hastctl create` on NODE's disk, then hastd starts
//   start NODE                   hastd starts (role init); the node must be down
//   restart NODE [as ROLE]       hastd starts (killed first if running); the role is set
//                                10ms later
//   role NODE ROLE               `hastctl role init|primary|secondary`
//   recreate NODE ROLE           `role init; create; role ROLE` (split-brain recovery:
//                                NODE's data is discarded)
//   kill NODE | power-loss NODE  the process dies | the machine loses power (the disk's
//                                volatile cache is lost, in part, from the seed)
//   pause NODE TIME              the node freezes for TIME (a zombie past the timeout)
//   partition A B | A -> B       cut both directions | one direction
//   clog A B TIME | A -> B TIME  hold the link's bytes for TIME
//   heal [A B]                   heal every link (or the pair's), clogs included
//   disk NODE slow TIME          every operation takes at least TIME (gray failure)
//   disk NODE fail read|write|flush [PROBABILITY]   EIO (probability 1 by default)
//   disk NODE latent OFFSET [LENGTH]   latent sector errors at data-area offsets
//   disk NODE lose-writes P | misdirect P   silent corruption (no checksum at rest)
//   disk NODE healthy            no faults, latent errors cleared
//   swap-disk NODE empty|foreign the node's disk is replaced (the node must be down):
//                                by a blank disk, or by a created disk of another pair
//   workload start | stop
//   may-lose NODE [since connect | since TIME | all]   writes NODE acknowledged since
//                                its last handshake (default), since TIME or ever may be
//                                lost: the allowance of the guarantee table (fault-model
//                                §6.6); the oracles then accept their loss
//   expect EXPECTATION [within TIME]   checked at TIME; with `within`, the first moment
//                                in [TIME, TIME + within] it holds
//
// Expectations:
//   NODE down | NODE up
//   NODE FIELD VALUE...          fields: role ROLE, status complete|degraded,
//                                dirty [OP] SIZE, sync running|done,
//                                inconsistent yes|no  (OP: = != < <= > >=, default =)
//   NODE hook EVENT [OP N]       hook events NODE ran so far (role, connect, disconnect,
//                                syncstart, syncdone, syncintr, split-brain); default >= 1
//   split-brain [on NODE] | no split-brain   reported by a node so far (or not)
//   identical                    both data areas hold the same bytes now
//   converged                    one node primary and the other secondary, both complete,
//                                nothing dirty or to sync, data areas identical
//   writes acked|failed [OP] N   client writes (and discards) answered OK | with an
//                                error so far
//   NODE holds acked             every write acknowledged OK and not allowed lost
//                                (`may-lose`, power loss) reads back on NODE's disk
//
// Errors: Errc::invalid_argument whose context is "FILE:LINE: what is wrong" (1-based
// lines; errors inside the config block name the file line too).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config/config.h"
#include "core/io/clock.h"
#include "core/meta/role.h"
#include "core/replication/events.h"
#include "core/result.h"
#include "sim/workload.h"

namespace hast::sim {

// A comparison of a counter against a constant: `dirty > 0`, `hook syncdone >= 1`.
struct Comparison {
  enum class Op : std::uint8_t { eq, ne, lt, le, gt, ge };
  Op op = Op::eq;
  std::uint64_t value = 0;

  bool holds(std::uint64_t actual) const;
  std::string text() const;  // "> 0"
};

enum class ExpectKind : std::uint8_t {
  down,
  up,
  state,  // role, status, dirty, sync, inconsistent
  hook,
  split_brain,
  no_split_brain,
  identical,
  converged,
  holds_acked,
  writes,  // `writes acked|failed OP N`
};

struct Expectation {
  ExpectKind kind = ExpectKind::state;
  std::uint32_t node = 0;
  std::optional<std::uint32_t> on;  // split_brain on NODE
  std::optional<meta::Role> role;
  std::optional<std::string> status;  // "complete" or "degraded"
  std::optional<Comparison> dirty;
  std::optional<bool> syncing;
  std::optional<bool> inconsistent;
  replication::HookEvent event = replication::HookEvent::connect;
  Comparison count{Comparison::Op::ge, 1};  // hook, writes
  bool failed_writes = false;               // writes: count the failed ones
  std::optional<Duration> within;
};

enum class ActionKind : std::uint8_t {
  create,
  start,
  restart,
  role,
  recreate,
  kill,
  power_loss,
  pause,
  partition,
  clog,
  heal,
  disk_slow,
  disk_fail,
  disk_latent,
  disk_lose_writes,
  disk_misdirect,
  disk_healthy,
  swap_disk,
  workload_start,
  workload_stop,
  may_lose,
  expect,
};

enum class DiskOp : std::uint8_t { read, write, flush };
enum class SwapKind : std::uint8_t { empty, foreign };
enum class LossSince : std::uint8_t { connect, time, all };

struct Action {
  int line = 0;
  Duration at{};
  ActionKind kind = ActionKind::expect;
  std::string text;  // the statement after `at TIME`, as written (for the timeline)
  std::uint32_t node = 0;
  std::optional<std::uint32_t> peer;  // partition, clog, heal
  bool one_way = false;               // partition, clog: only node -> peer
  std::optional<meta::Role> role;     // role, recreate, restart ... as
  Duration duration{};                // pause, clog, disk slow, may-lose since TIME
  DiskOp disk_op = DiskOp::write;
  double probability = 1;
  std::uint64_t offset = 0;  // disk latent
  std::uint64_t length = 0;
  SwapKind swap = SwapKind::empty;
  LossSince since = LossSince::connect;
  Expectation expect;
};

struct ScenarioSettings {
  Duration keepalive = std::chrono::milliseconds(500);
  Duration reconnect = std::chrono::milliseconds(300);
  std::uint64_t disk_bytes = 16 << 20;
  std::uint32_t extent_size = 256 * 1024;
  std::uint32_t keep_dirty = 8;
  Duration jitter{0};
  std::array<Duration, 2> clock_offset{};
};

struct Scenario {
  std::string file;  // as given to the parser, for messages
  std::string name;
  // The inline hast.conf and what the runner needs of it.
  std::string config_text;
  int config_line = 0;  // file line of the `config` statement
  std::string resource;
  std::array<std::string, 2> nodes;  // in the order of the resource's `on` sections
  std::array<std::string, 2> hosts;  // each node's address: the host the other dials
  config::ReplicationMode mode = config::ReplicationMode::memsync;
  int timeout_seconds = config::default_timeout_seconds;
  ScenarioSettings settings;
  WorkloadOptions workload;
  std::optional<Duration> workload_from;  // `workload run FROM TO`
  std::optional<Duration> workload_to;
  std::vector<Action> actions;  // in file order; times never decrease
  Duration duration{};
};

// Parses the text of a .scn file; `file` names it in messages. Never asserts on its
// input: any byte string gives a Scenario or an Errc::invalid_argument error whose context
// is "FILE:LINE: message" with LINE between 1 and the number of lines of `text`.
Result<Scenario> parse_scenario(std::string_view text, std::string_view file);

// "1.250s", "250ms": a duration as the timeline prints it.
std::string format_duration(Duration duration);

}  // namespace hast::sim
