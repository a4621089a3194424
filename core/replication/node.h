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
// first ("Token doesn't match."). Anything malformed closes that connection only.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config/config.h"
#include "core/fiber/task_group.h"
#include "core/io/frontend.h"
#include "core/io/node_io.h"
#include "core/proto/messages.h"
#include "core/replication/context.h"
#include "core/replication/local_component.h"
#include "core/replication/primary.h"

namespace hast::replication {

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
  PrimaryStats primary;
  SyncProgress sync;
  bool inconsistent = false;
};

class Resource;

class HastNode {
 public:
  // `mutation` is the simulator's (mutation.h); production passes none. Without `disks`
  // every resource uses io.disk (the simulator's one disk per node).
  HastNode(NodeIo& io, config::NodeConfig config, EventSink& events, FrontendFactory& frontends,
           Timing timing, Mutation mutation = Mutation::none, DiskProvider* disks = nullptr);
  ~HastNode();
  HastNode(const HastNode&) = delete;
  HastNode& operator=(const HastNode&) = delete;

  // Opens the listeners and starts accepting. Errors: a listen address is unusable.
  Result<void> start();
  // Every resource to init, listeners closed, every fiber joined.
  void stop();

  // Changes the role of `resource`; returns the previous role. Errc::not_found for an
  // unknown resource; Errc::busy for `primary` on an inconsistent component (a sync to it
  // did not complete) unless `force`; other errors when the new role could not start (it
  // is then init).
  Result<meta::Role> set_role(std::string_view resource, meta::Role role, bool force = false);
  Result<ResourceStatus> status(std::string_view resource) const;
  std::vector<std::string> resource_names() const;
  const config::NodeConfig& config() const { return config_; }

 private:
  void accept_loop(Listener& listener);
  void admit(std::shared_ptr<Connection> connection);
  Resource* find(std::string_view name) const;
  bool known_peer(const Address& peer) const;

  NodeIo& io_;
  config::NodeConfig config_;
  EventSink& events_;
  FrontendFactory& frontends_;
  Timing timing_;
  std::unique_ptr<DiskProvider> node_disk_;  // when no DiskProvider was given
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::map<std::string, std::unique_ptr<Resource>, std::less<>> resources_;
  fiber::TaskGroup fibers_;
};

}  // namespace hast::replication
