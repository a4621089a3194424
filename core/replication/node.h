// HastNode: what one hastd process does, in core (DESIGN.md §7), so the simulator runs the
// same code the daemon runs: the resources of a resolved configuration, their roles, the
// listeners that accept the primary's connections and hand them to the resource they name
// (reference/hast-spec.md §6.3, §11), and the control operations (role, status).
//
// Roles (§3.3): `init` = the resource is off (no component open, peers refused);
// `secondary` = the component is open and the configured remote may connect; `primary` =
// the component is open, the frontend serves clients and the node connects out. A role
// change stops the old role completely first: the frontend stops taking requests, every
// fiber of the old role is cancelled and joined (requests in flight fail), then the new
// role starts and the `role` event fires.
//
// Admission (§11): a connection whose peer address is no resource's remote is closed
// without a reply ("Client … isn't known."); then the first message must name a configured
// resource ("Resource not configured."), come from that resource's remote ("No access to
// the resource."), reach a secondary ("Remote node acts as … and not as secondary.", with
// `wait` when this node is primary) and, on a second connection, carry the token of the
// first ("Token doesn't match."). Anything malformed closes that connection only. A first
// connection (HELLO) ends the session or half-made pair of the previous one; when that
// session outlives half the timeout (a disk write it accepted is stuck) the connection is
// refused with errmsg_session_busy, which the primary retries (ours and FreeBSD's).
//
// Reload (§1.5): reload() moves the node to a new configuration while it serves. Listen
// addresses are diffed (kept, opened, closed); resources are removed (role init first),
// added (in init), restarted (role → init → previous role) or changed in place on a live
// primary, as classify_change() decides. Each resource owns its configuration; the code
// of its role reads it through ResourceContext::config, which always refers to the same
// object: a restart replaces it only while the role is init, and a live change replaces it
// between two suspensions of the primary's fibers (a request in flight keeps the
// replication mode it started with). Role changes and reloads run one at a time.
//
// Executors (resource_host.h): each resource runs on the executor its ResourceHost made
// for it (hastd: a thread per resource with its own scheduler and io_uring; the
// simulator: the node's own scheduler). The node's fibers (accept loops, admission,
// role changes, reload, status) reach a resource only through ResourceExecutor::run; an
// admitted connection moves to the resource's executor after its first message was read
// here. Executors are created by start() and by reload() (before anything changes, so a
// failure leaves the configuration as it was) and stopped when their resource is removed
// and by stop().
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/config/config.h"
#include "core/fiber/semaphore.h"
#include "core/fiber/task_group.h"
#include "core/io/frontend.h"
#include "core/io/node_io.h"
#include "core/proto/messages.h"
#include "core/replication/context.h"
#include "core/replication/local_component.h"
#include "core/replication/primary.h"
#include "core/replication/resource_host.h"

namespace hast::replication {

// The refusal of a primary's first connection while the previous session still waits for
// local I/O it accepted (ours: FreeBSD's parent waits for its old worker without bound).
// Sent without `wait`: a failed connection attempt, retried after the reconnect pause.
inline constexpr std::string_view errmsg_session_busy =
    "Remote node is still ending the previous session (local I/O in progress).";

// Where a primary's clients come from (NBD, FUSE, ublk; the simulator's workload).
class FrontendFactory {
 public:
  virtual ~FrontendFactory() = default;
  // Opens the device of `resource`, `data_size` bytes. Null: serve no clients. An error
  // (the device cannot be served) makes the role change to primary fail.
  virtual Result<std::unique_ptr<BlockFrontend>> open(const config::ResourceConfig& resource,
                                                      std::uint64_t data_size) = 0;
  // Stops taking requests (queued ones fail); called before the primary stops.
  virtual void close(BlockFrontend& frontend) = 0;
};

// Where each resource's local component (its `local` provider) comes from. A resource
// opens it when its role leaves init and closes it when the role returns to init, so that
// `hastctl create` and `dump` can use the provider while the resource is off (HAST opens
// the provider in the worker only). The simulator hands out the node's one disk.
class DiskProvider {
 public:
  virtual ~DiskProvider() = default;
  // Opens the provider of `resource`. The Disk stays valid until close(resource). Errors
  // name the path (missing, in use by another process, not a multiple of the sector size).
  virtual Result<Disk*> open(const config::ResourceConfig& resource) = 0;
  // Closes what open(resource) returned; nothing of it is in use any more.
  virtual void close(const config::ResourceConfig& resource) = 0;
};

// What `hastctl status` and `list` show of one resource (§3.4, §3.5).
struct ResourceStatus {
  std::string name;
  meta::Role role = meta::Role::init;
  std::string status;  // "complete", "degraded" or "-"
  std::string provider_name;
  std::string local_path;
  std::string remote;
  std::string source;
  config::ReplicationMode replication = config::ReplicationMode::memsync;
  std::uint64_t dirty_bytes = 0;
  std::uint64_t sync_extents = 0;  // extents still to copy
  std::uint32_t extent_size = 0;
  std::uint32_t keep_dirty = 0;
  std::uint64_t activemap_updates = 0;   // activemap images made durable (`list`)
  std::uint64_t requests_in_flight = 0;  // of request_count_max (`list` queues: idle)
  std::uint64_t async_backlog = 0;       // async remote legs after their client's answer (send)
  PrimaryStats primary;
  SyncProgress sync;
  bool inconsistent = false;
  // The copy of the metadata area the open local component was read from (nullopt in role
  // init): `second` means the last metadata write was interrupted (logged at the open).
  std::optional<meta::MetadataCopy> metadata_copy;
};

// What a configuration reload does to one resource whose configuration changed (HAST's
// resource_needs_restart and resource_needs_reload, §1.5):
//
//   provider name, local path or frontend differ      → restart (any role)
//   remote, source, replication, checksum, compression,
//   timeout, exec, metaflush or syncrate differ:
//     role init or secondary                            → restart
//     role primary                                      → live
//   nothing else differs (the `line` of the statement, busypoll, which the executor's
//   thread applies itself: real/resource_thread.h)     → none: the new values are kept
//
// A restart of a resource in init only replaces its configuration (no role change, no
// event). The frontend is not one of HAST's fields: a primary serves it, so changing it
// needs the primary restarted, like the provider.
enum class ResourceChange : std::uint8_t { none, live, restart };
ResourceChange classify_change(const config::ResourceConfig& running,
                               const config::ResourceConfig& next, meta::Role role);

// What a successful reload did, for the daemon's log and for tests. Addresses are named
// as configured, resources by name, each list in the order the reload met them.
struct ReloadReport {
  std::vector<std::string> listen_opened;   // new listeners
  std::vector<std::string> listen_failed;   // new addresses that could not be opened (warned)
  std::vector<std::string> listen_closed;   // addresses no longer in the configuration
  std::vector<std::string> removed;         // set to init, then dropped
  std::vector<std::string> added;           // in init
  std::vector<std::string> restarted;       // role → init → previous role
  std::vector<std::string> changed_live;    // applied to the running primary
  std::vector<std::string> restart_failed;  // restarted, but the previous role did not start
};

class Resource;
struct HostedResource;
struct NodeListener;
struct ListenChange;

class HastNode {
 public:
  // Every resource on the node's own scheduler (InlineHost) with `frontends` and `disks`.
  // `mutation` is the simulator's (mutation.h); production passes none. Without `disks`
  // every resource uses io.disk (the simulator's one disk per node).
  HastNode(NodeIo& io, config::NodeConfig config, EventSink& events, FrontendFactory& frontends,
           Timing timing, Mutation mutation = Mutation::none, DiskProvider* disks = nullptr);
  // Every resource on an executor of `host`, which must outlive the node. `events` may be
  // called from the executors' threads.
  HastNode(NodeIo& io, config::NodeConfig config, EventSink& events, ResourceHost& host,
           Timing timing, Mutation mutation = Mutation::none);
  ~HastNode();
  HastNode(const HastNode&) = delete;
  HastNode& operator=(const HastNode&) = delete;

  // Creates every resource (in init) on its executor, then opens the listeners and starts
  // accepting. Errors: an executor cannot be created, a listen address is unusable.
  Result<void> start();
  // Every resource to init, listeners closed, every fiber joined (after a role change or
  // reload in progress), every executor stopped.
  void stop();

  // set_role, status and reload suspend while the resource's executor runs them: call
  // them from a fiber of the node's scheduler (with InlineHost status() also from outside
  // fibers). set_role and status fail with Errc::cancelled when the executor was stopped
  // under them (reload logs such a resource as not reloaded).
  //
  // Changes the role of `resource`; returns the previous role. Errc::not_found for an
  // unknown resource; Errc::busy for `primary` on an inconsistent component (a sync to it
  // did not complete) unless `force`; other errors when the new role could not start (it
  // is then init). A role change or reload in progress ends first.
  Result<meta::Role> set_role(std::string_view resource, meta::Role role, bool force = false);
  Result<ResourceStatus> status(std::string_view resource) const;
  std::vector<std::string> resource_names() const;
  // The configuration running now. During a reload it moves resource by resource: at every
  // suspension its resources are exactly those status() knows, each with the configuration
  // it runs with (a changed resource's once its change is applied); the rest (control,
  // pidfile, listen, resource order) changes at the end.
  const config::NodeConfig& config() const { return config_; }

  // Moves the node to `next` (§1.5; see the top of this file). Call from a fiber, after
  // start(); suspends while roles stop and start, after any role change in progress.
  // Listeners first: unchanged addresses keep their listener, new ones are opened (a
  // failure is logged as a warning and reported), removed ones are closed. When no
  // listener would remain, Errc::unsupported "No address to listen on." and nothing has
  // changed (listeners closed to make room for a new address are reopened). Then
  // resources: removed ones go to init and are dropped, new ones are added in init,
  // changed ones are handled per classify_change(). A restarted resource whose previous
  // role fails to start stays in init with the new configuration (reported, logged).
  // Logs each step in HAST's words; the caller logs the start and the outcome. Executors
  // of added resources are created first: when one cannot be, the reload fails with that
  // error and nothing has changed.
  Result<ReloadReport> reload(config::NodeConfig next);

 private:
  Result<std::unique_ptr<NodeListener>> open_listener(const config::ConfiguredAddress& address);
  void close_listener(NodeListener& listener);
  using ListenFailures = std::vector<std::pair<const config::ConfiguredAddress*, Error>>;
  Result<void> reload_listeners(const std::vector<config::ConfiguredAddress>& wanted,
                                ReloadReport& report);
  ListenChange split_listeners(const std::vector<config::ConfiguredAddress>& wanted);
  ListenFailures open_listeners(const std::vector<const config::ConfiguredAddress*>& addresses,
                                std::vector<std::unique_ptr<NodeListener>>& opened);
  void restore_listeners(std::vector<std::unique_ptr<NodeListener>> retired, bool closed);
  using AddedResources = std::map<std::string, std::shared_ptr<HostedResource>, std::less<>>;
  HastNode(NodeIo& io, config::NodeConfig config, EventSink& events, Timing timing,
           Mutation mutation);
  void remove_resources(const config::NodeConfig& next, ReloadReport& report);
  Result<AddedResources> make_added(const config::NodeConfig& next);
  void add_resources(const config::NodeConfig& next, AddedResources added, ReloadReport& report);
  void change_resources(const config::NodeConfig& next, ReloadReport& report);
  config::ResourceConfig& running_config(std::string_view name);
  Result<std::shared_ptr<HostedResource>> make_resource(const config::ResourceConfig& resource);
  Result<meta::Role> set_role_on(HostedResource& hosted, meta::Role role, bool force);
  void accept_loop(Listener& listener);
  void admit(std::shared_ptr<Connection> connection);
  std::shared_ptr<HostedResource> find(std::string_view name) const;
  bool known_peer(const Address& peer) const;

  NodeIo& io_;
  config::NodeConfig config_;
  EventSink& events_;
  Timing timing_;
  Mutation mutation_;
  std::unique_ptr<DiskProvider> node_disk_;  // InlineHost without a DiskProvider given
  std::unique_ptr<InlineHost> inline_host_;  // when no ResourceHost was given
  ResourceHost* host_ = nullptr;
  std::vector<std::unique_ptr<NodeListener>> listeners_;
  // Shared with the admission fibers working on a resource, so that a reload dropping it
  // cannot pull it from under them.
  std::map<std::string, std::shared_ptr<HostedResource>, std::less<>> resources_;
  fiber::Semaphore changes_;  // one role change or reload at a time
  fiber::TaskGroup fibers_;   // admissions
};

}  // namespace hast::replication
