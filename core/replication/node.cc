// HastNode and Resource: roles, admission and the secondary's connection pairing.
#include "core/replication/node.h"

#include <fmt/format.h>

#include "core/proto/frame.h"
#include "core/replication/secondary.h"

namespace hast::replication {
namespace {

// Every resource on the node's own disk (the simulator).
class NodeDisk final : public DiskProvider {
 public:
  explicit NodeDisk(Disk& disk) : disk_(disk) {}
  Result<Disk*> open(const config::ResourceConfig&) override { return &disk_; }
  void close(const config::ResourceConfig&) override {}

 private:
  Disk& disk_;
};

}  // namespace

// One configured resource on this node.
class Resource {
 public:
  Resource(NodeIo& io, const config::ResourceConfig& config, EventSink& events,
           FrontendFactory& frontends, DiskProvider& disks, Timing timing, Mutation mutation)
      : context_{io, config, events, timing, mutation},
        frontends_(frontends),
        disks_(disks),
        sessions_(io.scheduler) {}

  ~Resource() { HAST_ASSERT(role_ == meta::Role::init || context_.io.scheduler.is_shut_down()); }

  meta::Role role() const { return role_; }
  const config::ResourceConfig& config() const { return context_.config; }

  Result<meta::Role> set_role(meta::Role role, bool force);
  void on_hello(std::shared_ptr<Connection> connection, std::uint8_t version);
  Result<void> on_identity(std::shared_ptr<Connection> connection, const proto::Nv& nv,
                           const proto::Token& token);
  ResourceStatus status() const;

 private:
  void stop_role();
  Result<void> start_role(meta::Role role);
  Result<meta::Metadata> read_own_metadata();
  void close_disk();

  ResourceContext context_;
  FrontendFactory& frontends_;
  DiskProvider& disks_;
  Disk* disk_ = nullptr;  // open while the role is not init
  meta::Role role_ = meta::Role::init;
  std::unique_ptr<LocalComponent> local_;
  std::unique_ptr<BlockFrontend> frontend_;
  std::unique_ptr<Primary> primary_;
  // Secondary: the first connection of a pair waits here for the second.
  std::shared_ptr<Connection> first_;
  proto::Token token_{};
  std::uint8_t version_ = 1;
  bool session_up_ = false;
  bool split_brain_reported_ = false;
  fiber::TaskGroup sessions_;
};

Result<meta::Role> Resource::set_role(meta::Role role, bool force) {
  meta::Role old = role_;
  if (role == old) return old;
  if (role == meta::Role::primary && !force) {
    auto metadata = read_own_metadata();
    if (metadata && metadata->inconsistent) {
      // Defect 8: a half-synced node holds a mix of old and new extents.
      log_error(context_.io.log,
                "[{}] Refusing role primary: the local component is inconsistent (a "
                "synchronisation to it did not complete); use --force.",
                context_.config.name);
      return fail(Errc::busy, "inconsistent: a synchronisation to this node did not complete");
    }
  }
  log_info(context_.io.log, "[{}] Role changed to {}.", context_.config.name,
           meta::role_name(role));
  stop_role();
  role_ = meta::Role::init;
  auto started = start_role(role);
  if (!started) {
    log_error(context_.io.log, "[{}] Unable to start as {}: {}", context_.config.name,
              meta::role_name(role), started.error().message());
    stop_role();
  } else {
    role_ = role;
  }
  if (role_ != old) {
    context_.events.on_event(EventRecord{context_.config.name, HookEvent::role, old, role_});
  }
  if (!started) return fail(started.error());
  return old;
}

void Resource::stop_role() {
  if (frontend_ != nullptr) frontends_.close(*frontend_);
  if (primary_ != nullptr) primary_->stop();
  primary_.reset();
  frontend_.reset();
  sessions_.cancel_and_join();
  sessions_.reset();
  first_.reset();
  session_up_ = false;
  local_.reset();
  close_disk();
}

void Resource::close_disk() {
  if (disk_ == nullptr) return;
  disk_ = nullptr;
  disks_.close(context_.config);
}

// The metadata on the provider, opened for the read when the role is init.
Result<meta::Metadata> Resource::read_own_metadata() {
  bool opened_here = disk_ == nullptr;
  if (opened_here) {
    auto disk = disks_.open(context_.config);
    if (!disk) return fail(disk.error());
    disk_ = *disk;
  }
  auto metadata = read_metadata(*disk_, context_.config.local_path, context_.config.name);
  if (opened_here) close_disk();
  return metadata;
}

Result<void> Resource::start_role(meta::Role role) {
  if (role == meta::Role::init) return ok();
  auto disk = disks_.open(context_.config);
  if (!disk) return fail(disk.error());
  disk_ = *disk;
  auto local = LocalComponent::open(*disk_, context_.io.scheduler, context_.config.local_path,
                                    context_.config.name, context_.config.metaflush);
  if (!local) return fail(local.error());
  local_ = std::move(*local);
  local_->test_set_mutation(context_.mutation);
  if (role == meta::Role::secondary) return ok();
  auto frontend = frontends_.open(context_.config, local_->data_size());
  if (!frontend) return fail(frontend.error());
  frontend_ = std::move(*frontend);
  primary_ = std::make_unique<Primary>(context_, *local_, frontend_.get());
  return primary_->start();
}

void Resource::on_hello(std::shared_ptr<Connection> connection, std::uint8_t version) {
  // A new first connection replaces whatever session or half-made pair there was (the
  // primary restarted).
  sessions_.cancel_and_join();
  sessions_.reset();
  session_up_ = false;
  version_ = std::min<std::uint8_t>(version, proto::protocol_version_max);
  for (auto& byte : token_)
    byte = static_cast<std::uint8_t>(context_.io.random.next_u64());
  proto::HelloReply reply{version_, token_};
  auto sent = proto::send_message(*connection, version_, reply.to_nv(), {},
                                  context_.deadline(context_.timing.timeout));
  if (!sent) return;
  first_ = std::move(connection);
}

Result<void> Resource::on_identity(std::shared_ptr<Connection> connection, const proto::Nv& nv,
                                   const proto::Token& token) {
  if (first_ == nullptr || token != token_) {
    proto::Refusal refusal{std::string(proto::errmsg_token_mismatch), false};
    ignore_error(proto::send_message(*connection, proto::protocol_version_max, refusal.to_nv(), {},
                                     context_.deadline(context_.timing.timeout)),
                 "refused anyway");
    return fail(Errc::refused, std::string(proto::errmsg_token_mismatch));
  }
  auto identity = proto::IdentityRequest::from_nv(nv);
  if (!identity) return fail(identity.error());
  std::shared_ptr<Connection> in = std::move(first_);
  std::shared_ptr<Connection> out = std::move(connection);
  auto spawned = sessions_.spawn("secondary-session", [this, in, out, request = *identity] {
    session_up_ = true;
    SecondarySession session(context_, *local_, *in, *out, version_, split_brain_reported_);
    ignore_error(session.run(request), "the session logged why it ended");
    session_up_ = false;
    in->close();
    out->close();
  });
  if (!spawned) return fail(spawned.error());
  return ok();
}

ResourceStatus Resource::status() const {
  ResourceStatus status;
  const config::ResourceConfig& config = context_.config;
  status.name = config.name;
  status.role = role_;
  status.provider_name = config.provider_name;
  status.local_path = config.local_path;
  status.remote = config.remote_text();
  status.source = config.source ? config.source->text : std::string();
  status.replication = config.replication;
  status.status = "-";
  if (local_ != nullptr) {
    status.extent_size = local_->metadata().extent_size_bytes;
    status.inconsistent = local_->metadata().inconsistent;
  }
  if (primary_ != nullptr) {
    status.status = primary_->connected() ? "complete" : "degraded";
    status.dirty_bytes = local_->map().stats().dirty_bytes;
    status.sync_extents = local_->map().stats().sync_extents;
    status.keep_dirty = local_->metadata().keep_dirty;
    status.activemap_updates = local_->map().stats().map_updates;
    status.requests_in_flight = primary_->requests_in_flight();
    status.primary = primary_->stats();
    status.sync = primary_->sync_progress();
  } else if (role_ == meta::Role::secondary && session_up_) {
    status.status = "complete";
  }
  return status;
}

HastNode::HastNode(NodeIo& io, config::NodeConfig config, EventSink& events,
                   FrontendFactory& frontends, Timing timing, Mutation mutation,
                   DiskProvider* disks)
    : io_(io),
      config_(std::move(config)),
      events_(events),
      frontends_(frontends),
      timing_(timing),
      fibers_(io.scheduler) {
  if (disks == nullptr) {
    node_disk_ = std::make_unique<NodeDisk>(io.disk);
    disks = node_disk_.get();
  }
  for (const config::ResourceConfig& resource : config_.resources) {
    Timing resource_timing = timing_;
    resource_timing.timeout = std::chrono::seconds(resource.timeout_seconds);
    resources_.emplace(resource.name,
                       std::make_unique<Resource>(io_, resource, events_, frontends_, *disks,
                                                  resource_timing, mutation));
  }
}

HastNode::~HastNode() = default;

Result<void> HastNode::start() {
  for (const config::ConfiguredAddress& address : config_.listen) {
    auto listener = io_.network.listen(address.address);
    if (!listener) return fail(listener.error().wrap("listen on " + address.text));
    listeners_.push_back(std::move(*listener));
    Listener& bound = *listeners_.back();
    HAST_ASSERT(fibers_.spawn("accept", [this, &bound] { accept_loop(bound); }).has_value());
  }
  return ok();
}

void HastNode::stop() {
  for (auto& listener : listeners_)
    listener->close();
  fibers_.cancel_and_join();
  for (auto& [name, resource] : resources_)
    ignore_error(resource->set_role(meta::Role::init, false), "stopping");
  listeners_.clear();
}

void HastNode::accept_loop(Listener& listener) {
  while (true) {
    auto accepted = listener.accept(std::nullopt);
    if (!accepted) return;
    std::shared_ptr<Connection> connection = std::move(*accepted);
    if (!known_peer(connection->peer_address())) {
      log_warning(io_.log, "Client {} isn't known.", connection->peer_address().host);
      connection->close();
      continue;
    }
    auto spawned = fibers_.spawn("admit", [this, connection] { admit(connection); });
    if (!spawned) return;
  }
}

bool HastNode::known_peer(const Address& peer) const {
  for (const config::ResourceConfig& resource : config_.resources) {
    if (resource.remote && resource.remote->address.host == peer.host) return true;
  }
  return false;
}

Resource* HastNode::find(std::string_view name) const {
  auto found = resources_.find(name);
  return found == resources_.end() ? nullptr : found->second.get();
}

namespace {

void refuse(Connection& connection, std::string errmsg, bool wait, Deadline deadline) {
  proto::Refusal refusal{std::move(errmsg), wait};
  ignore_error(
      proto::send_message(connection, proto::protocol_version_max, refusal.to_nv(), {}, deadline),
      "the connection is closed next either way");
  connection.close();
}

}  // namespace

// Reads the first message of an accepted connection and hands it to its resource.
void HastNode::admit(std::shared_ptr<Connection> connection) {
  Deadline deadline = deadline_after(io_.clock, timing_.timeout);
  proto::RecvLimits limits;
  limits.payload_max = 0;
  auto message = proto::recv_message(*connection, limits, deadline);
  if (!message) return connection->close();
  auto hello = proto::HelloRequest::from_nv(message->nv);
  auto token = proto::hello_token(message->nv);
  if (!hello || !token) {
    log_warning(io_.log, "Invalid first message from {}: {}", connection->peer_address().host,
                !hello ? hello.error().message() : token.error().message());
    return connection->close();
  }
  Resource* resource = find(hello->resource);
  if (resource == nullptr)
    return refuse(*connection, std::string(proto::errmsg_not_configured), false, deadline);
  const auto& remote = resource->config().remote;
  if (!remote || remote->address.host != connection->peer_address().host) {
    return refuse(*connection, std::string(proto::errmsg_no_access), false, deadline);
  }
  if (resource->role() != meta::Role::secondary) {
    return refuse(
        *connection,
        proto::errmsg_wrong_role(static_cast<proto::Role>(meta::role_code(resource->role()))),
        resource->role() == meta::Role::primary, deadline);
  }
  if (!token->has_value()) return resource->on_hello(connection, hello->version);
  auto paired = resource->on_identity(connection, message->nv, **token);
  if (!paired) {
    log_warning(io_.log, "[{}] Unable to pair connections: {}", hello->resource,
                paired.error().message());
    connection->close();
  }
}

Result<meta::Role> HastNode::set_role(std::string_view name, meta::Role role, bool force) {
  Resource* resource = find(name);
  if (resource == nullptr) return fail(Errc::not_found, fmt::format("resource {}", name));
  return resource->set_role(role, force);
}

Result<ResourceStatus> HastNode::status(std::string_view name) const {
  Resource* resource = find(name);
  if (resource == nullptr) return fail(Errc::not_found, fmt::format("resource {}", name));
  return resource->status();
}

std::vector<std::string> HastNode::resource_names() const {
  std::vector<std::string> names;
  for (const config::ResourceConfig& resource : config_.resources)
    names.push_back(resource.name);
  return names;
}

}  // namespace hast::replication
