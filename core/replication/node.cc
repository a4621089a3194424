// HastNode and Resource: roles, admission, the secondary's connection pairing, and the
// configuration reload.
#include "core/replication/node.h"

#include <algorithm>

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

void refuse(Connection& connection, std::string errmsg, bool wait, Deadline deadline) {
  proto::Refusal refusal{std::move(errmsg), wait};
  ignore_error(
      proto::send_message(connection, proto::protocol_version_max, refusal.to_nv(), {}, deadline),
      "the connection is closed next either way");
  connection.close();
}

}  // namespace

// One configured resource on this node. It owns its configuration: context_.config refers
// to config_ for the resource's whole life, and reloads replace config_ in place.
class Resource {
 public:
  Resource(NodeIo& io, config::ResourceConfig config, EventSink& events, FrontendFactory& frontends,
           DiskProvider& disks, Timing timing, Mutation mutation)
      : config_(std::move(config)),
        context_{io, config_, events, timing, mutation},
        frontends_(frontends),
        disks_(disks),
        sessions_(io.scheduler) {
    context_.timing.timeout = std::chrono::seconds(config_.timeout_seconds);
  }

  ~Resource() { HAST_ASSERT(role_ == meta::Role::init || context_.io.scheduler.is_shut_down()); }

  // Every method runs on the resource's own scheduler (the executor's), called by
  // HastNode through ResourceExecutor::run.
  Result<meta::Role> set_role(meta::Role role, bool force);
  ResourceStatus status() const;
  // Moves the resource to `next` during a reload (§1.5), as classify_change() decides;
  // `restart_failed` when a restarted resource could not take its previous role again.
  ResourceChange reload(const config::ResourceConfig& next, bool& restart_failed);
  // The rest of admission for a connection whose first message named this resource:
  // checks that it comes from the remote and reaches a secondary, then takes it as the
  // first or second connection of a pair. `deadline` bounds a refusal's send.
  void admit(std::shared_ptr<Connection> connection, const proto::HelloRequest& hello,
             const proto::Nv& message, const std::optional<proto::Token>& token,
             Deadline deadline);

 private:
  // Replaces the configuration of a resource in init (a restart, §1.5): nothing of the
  // old one is in use.
  void replace_config(const config::ResourceConfig& next);
  // Applies `next` to the running primary (ResourceChange::live): new requests, deadlines,
  // metadata writes and sync chunks use it; a new remote or source address drops the
  // connection, and the connection loop connects to the new one.
  void change_live(const config::ResourceConfig& next);
  // Role → init → previous role (two `role` events, as HAST). Returns false when the
  // previous role did not start again.
  bool restart(const config::ResourceConfig& next);
  void on_hello(std::shared_ptr<Connection> connection, std::uint8_t version);
  // Refuses `connection` as HAST does when the role is not secondary; true when it did.
  bool refuse_unless_secondary(Connection& connection, Deadline deadline);
  Result<void> on_identity(std::shared_ptr<Connection> connection, const proto::Nv& nv,
                           const proto::Token& token);
  void stop_role();
  Result<void> start_role(meta::Role role);
  Result<meta::Metadata> read_own_metadata();
  void close_disk();

  config::ResourceConfig config_;  // before context_, which refers to it
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
  // Bumped by every HELLO and role change: a HELLO that waited (on_hello) goes on only if
  // nothing newer began meanwhile.
  std::uint64_t hello_epoch_ = 0;
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
  role_ = meta::Role::init;  // first: a HELLO waiting on the old session sees it (on_hello)
  hello_epoch_++;
  stop_role();
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

void Resource::replace_config(const config::ResourceConfig& next) {
  HAST_ASSERT(role_ == meta::Role::init);
  HAST_ASSERT(disk_ == nullptr);
  HAST_ASSERT(next.name == config_.name);
  config_ = next;
  context_.timing.timeout = std::chrono::seconds(config_.timeout_seconds);
}

void Resource::change_live(const config::ResourceConfig& next) {
  HAST_ASSERT(role_ == meta::Role::primary);
  HAST_ASSERT(primary_ != nullptr && local_ != nullptr);
  HAST_ASSERT(next.name == config_.name);
  bool readdress = next.remote != config_.remote || next.source != config_.source;
  // The link goes down while the configuration still names the address it went to.
  if (readdress) primary_->drop_link("the remote or source address changed");
  config_ = next;
  context_.timing.timeout = std::chrono::seconds(config_.timeout_seconds);
  local_->set_metaflush(config_.metaflush);
  primary_->config_changed(readdress);
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
  if (!local_->opened_note().empty()) {
    // A metadata write was interrupted (a power loss): open() wrote both copies again.
    log_warning(context_.io.log, "[{}] Metadata of {} read from its {} copy: {}",
                context_.config.name, context_.config.local_path,
                meta::metadata_copy_name(local_->opened_copy()), local_->opened_note());
  }
  if (role == meta::Role::secondary) return ok();
  auto frontend = frontends_.open(context_.config, local_->data_size());
  if (!frontend) return fail(frontend.error());
  frontend_ = std::move(*frontend);
  primary_ = std::make_unique<Primary>(context_, *local_, frontend_.get());
  return primary_->start();
}

// A new first connection replaces whatever session or half-made pair there was (the
// primary restarted), as HAST's parent stops the old worker. The old session ends only once
// the disk operations it accepted have (SecondarySession::serve): a stuck disk write keeps
// it alive, so the wait is bounded by half the timeout (the primary waits `timeout` for this
// answer) and the connection is refused while the old session lives; the primary logs the
// refusal and tries again (FreeBSD's too: an errmsg without `wait` is a failed connection
// attempt, retried later). A group cancelled here stays cancelled (no session can start)
// until a later first connection finds it empty.
void Resource::on_hello(std::shared_ptr<Connection> connection, std::uint8_t version) {
  // Several HELLOs may wait here at once (a primary that restarted again, or gave up on
  // this answer and retried): only the newest may leave a half-made pair, and none after a
  // role change began.
  std::uint64_t epoch = ++hello_epoch_;
  first_.reset();
  sessions_.cancel();
  session_up_ = false;  // the old session is ending, whether or not it ends in time
  auto joined = sessions_.join(context_.deadline(context_.timing.timeout / 2));
  if (!joined) {
    if (joined.error().code() != Errc::timed_out) return connection->close();  // cancelled
    log_warning(context_.io.log,
                "[{}] Refusing a new connection from the primary: the previous session still "
                "waits for local I/O it accepted.",
                context_.config.name);
    return refuse(*connection, std::string(errmsg_session_busy), false,
                  context_.deadline(context_.timing.timeout));
  }
  // The role may have changed while this waited.
  if (refuse_unless_secondary(*connection, context_.deadline(context_.timing.timeout))) return;
  if (epoch != hello_epoch_) return connection->close();  // a newer HELLO took over
  sessions_.reset();
  session_up_ = false;
  std::uint8_t agreed = std::min<std::uint8_t>(version, proto::protocol_version_max);
  proto::Token token;
  for (auto& byte : token) byte = static_cast<std::uint8_t>(context_.io.random.next_u64());
  proto::HelloReply reply{agreed, token};
  auto sent = proto::send_message(*connection, agreed, reply.to_nv(), {},
                                  context_.deadline(context_.timing.timeout));
  if (!sent) return;
  if (epoch != hello_epoch_) return connection->close();  // superseded during the send
  version_ = agreed;
  token_ = token;
  first_ = std::move(connection);
}

bool Resource::refuse_unless_secondary(Connection& connection, Deadline deadline) {
  if (role_ == meta::Role::secondary) return false;
  refuse(connection, proto::errmsg_wrong_role(static_cast<proto::Role>(meta::role_code(role_))),
         role_ == meta::Role::primary, deadline);
  return true;
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

void Resource::admit(std::shared_ptr<Connection> connection, const proto::HelloRequest& hello,
                     const proto::Nv& message, const std::optional<proto::Token>& token,
                     Deadline deadline) {
  const auto& remote = config_.remote;
  if (!remote || remote->address.host != connection->peer_address().host) {
    return refuse(*connection, std::string(proto::errmsg_no_access), false, deadline);
  }
  if (refuse_unless_secondary(*connection, deadline)) return;
  if (!token.has_value()) return on_hello(connection, hello.version);
  auto paired = on_identity(connection, message, *token);
  if (!paired) {
    log_warning(context_.io.log, "[{}] Unable to pair connections: {}", hello.resource,
                paired.error().message());
    connection->close();
  }
}

ResourceChange Resource::reload(const config::ResourceConfig& next, bool& restart_failed) {
  ResourceChange change = classify_change(config_, next, role_);
  switch (change) {
    case ResourceChange::none:
      config_.line = next.line;
      config_.busypoll_us = next.busypoll_us;
      break;
    case ResourceChange::live:
      log_info(context_.io.log, "Resource {} configuration was modified, reloading it.",
               next.name);
      change_live(next);
      break;
    case ResourceChange::restart:
      restart_failed = !restart(next);
      break;
  }
  HAST_ASSERT(config_ == next);
  return change;
}

// The previous role was started, or forced, on this provider: on the same provider it is
// forced again; a new provider is checked afresh (an inconsistent one refuses primary).
bool Resource::restart(const config::ResourceConfig& next) {
  log_info(context_.io.log, "Resource {} configuration was modified, restarting it.", next.name);
  meta::Role role = role_;
  bool same_provider =
      config_.local_path == next.local_path && config_.provider_name == next.provider_name;
  ignore_error(set_role(meta::Role::init, false), "init always starts");
  replace_config(next);
  if (role == meta::Role::init) return true;
  return set_role(role, same_provider).has_value();
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
    status.metadata_copy = local_->opened_copy();
  }
  if (primary_ != nullptr) {
    status.status = primary_->connected() ? "complete" : "degraded";
    status.dirty_bytes = local_->map().stats().dirty_bytes;
    status.sync_extents = local_->map().stats().sync_extents;
    status.keep_dirty = local_->metadata().keep_dirty;
    status.activemap_updates = local_->map().stats().map_updates;
    status.requests_in_flight = primary_->requests_in_flight();
    status.async_backlog = primary_->async_backlog();
    status.primary = primary_->stats();
    status.sync = primary_->sync_progress();
  } else if (role_ == meta::Role::secondary && session_up_) {
    status.status = "complete";
  }
  return status;
}

// One listen address and the fiber accepting on it.
struct NodeListener {
  NodeListener(fiber::Scheduler& scheduler, config::ConfiguredAddress address_value,
               std::unique_ptr<Listener> listener_value)
      : address(std::move(address_value)), listener(std::move(listener_value)), accept(scheduler) {}

  config::ConfiguredAddress address;
  std::unique_ptr<Listener> listener;
  fiber::TaskGroup accept;
};

// A resource and the executor it runs on. The executor is stopped before the resource
// goes, so that nothing of the resource runs while it is destroyed.
struct HostedResource {
  std::unique_ptr<ResourceExecutor> executor;
  std::unique_ptr<Resource> resource;

  ~HostedResource() {
    executor->stop();
    resource.reset();
  }
};

HastNode::HastNode(NodeIo& io, config::NodeConfig config, EventSink& events,
                   FrontendFactory& frontends, Timing timing, Mutation mutation,
                   DiskProvider* disks)
    : HastNode(io, std::move(config), events, timing, mutation) {
  if (disks == nullptr) {
    node_disk_ = std::make_unique<NodeDisk>(io.disk);
    disks = node_disk_.get();
  }
  inline_host_ = std::make_unique<InlineHost>(io, frontends, *disks);
  host_ = inline_host_.get();
}

HastNode::HastNode(NodeIo& io, config::NodeConfig config, EventSink& events, ResourceHost& host,
                   Timing timing, Mutation mutation)
    : HastNode(io, std::move(config), events, timing, mutation) {
  host_ = &host;
}

HastNode::HastNode(NodeIo& io, config::NodeConfig config, EventSink& events, Timing timing,
                   Mutation mutation)
    : io_(io),
      config_(std::move(config)),
      events_(events),
      timing_(timing),
      mutation_(mutation),
      changes_(io.scheduler, 1),
      fibers_(io.scheduler) {}

HastNode::~HastNode() {
  // Resources (and their executors) go before the host that made them.
  resources_.clear();
}

Result<std::shared_ptr<HostedResource>> HastNode::make_resource(
    const config::ResourceConfig& resource) {
  HAST_ASSERT(host_ != nullptr);
  auto executor = host_->create(resource);
  if (!executor) return fail(executor.error().wrap("resource " + resource.name));
  auto hosted = std::make_shared<HostedResource>();
  hosted->executor = std::move(*executor);
  ResourceExecutor& on = *hosted->executor;
  hosted->resource = std::make_unique<Resource>(on.io(), resource, events_, on.frontends(),
                                                on.disks(), timing_, mutation_);
  return hosted;
}

Result<void> HastNode::start() {
  HAST_ASSERT(listeners_.empty());
  HAST_ASSERT(resources_.empty());
  for (const config::ResourceConfig& resource : config_.resources) {
    auto hosted = make_resource(resource);
    if (!hosted) return fail(hosted.error());
    resources_.emplace(resource.name, std::move(*hosted));
  }
  for (const config::ConfiguredAddress& address : config_.listen) {
    auto listener = open_listener(address);
    if (!listener) return fail(listener.error());
    listeners_.push_back(std::move(*listener));
  }
  return ok();
}

Result<std::unique_ptr<NodeListener>> HastNode::open_listener(
    const config::ConfiguredAddress& address) {
  auto listener = io_.network.listen(address.address);
  if (!listener) return fail(listener.error().wrap("listen on " + address.text));
  auto opened = std::make_unique<NodeListener>(io_.scheduler, address, std::move(*listener));
  Listener& bound = *opened->listener;
  auto spawned = opened->accept.spawn("accept", [this, &bound] { accept_loop(bound); });
  if (!spawned) {
    bound.close();
    return fail(spawned.error());
  }
  return opened;
}

void HastNode::close_listener(NodeListener& listener) {
  listener.listener->close();
  listener.accept.cancel_and_join();
}

void HastNode::stop() {
  // After a reload or role change in progress (unless this fiber is being cancelled).
  bool serialised = changes_.acquire().has_value();
  for (auto& listener : listeners_)
    listener->listener->close();
  for (auto& listener : listeners_)
    listener->accept.cancel_and_join();
  fibers_.cancel_and_join();
  for (auto& [name, hosted] : resources_)
    ignore_error(set_role_on(*hosted, meta::Role::init, false), "stopping");
  // Frontends and providers are closed: the resources' own schedulers end.
  for (auto& [name, hosted] : resources_)
    hosted->executor->stop();
  listeners_.clear();
  if (serialised) changes_.release();
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

std::shared_ptr<HostedResource> HastNode::find(std::string_view name) const {
  auto found = resources_.find(name);
  return found == resources_.end() ? nullptr : found->second;
}

// Reads the first message of an accepted connection and hands it to its resource, on the
// resource's own executor, which does the rest of the checks.
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
  // Held to the end: a reload may drop the resource while this fiber waits inside it.
  std::shared_ptr<HostedResource> hosted = find(hello->resource);
  if (hosted == nullptr)
    return refuse(*connection, std::string(proto::errmsg_not_configured), false, deadline);
  std::string peer = connection->peer_address().host;
  auto moved = hosted->executor->adopt(std::move(connection));
  if (!moved) {
    log_warning(io_.log, "[{}] Unable to take the connection from {}: {}", hello->resource, peer,
                moved.error().message());
    return;
  }
  auto ran = hosted->executor->run([&] {
    hosted->resource->admit(std::move(*moved), *hello, message->nv, *token, deadline);
  });
  ignore_error(std::move(ran), "a stopped resource closed the connection as it unwound");
}

Result<meta::Role> HastNode::set_role_on(HostedResource& hosted, meta::Role role, bool force) {
  std::optional<Result<meta::Role>> changed;
  HAST_TRY(hosted.executor->run([&] { changed.emplace(hosted.resource->set_role(role, force)); }));
  HAST_ASSERT(changed.has_value());
  return std::move(*changed);
}

Result<meta::Role> HastNode::set_role(std::string_view name, meta::Role role, bool force) {
  HAST_TRY(changes_.acquire());
  fiber::Permit permit(changes_);
  std::shared_ptr<HostedResource> hosted = find(name);
  if (hosted == nullptr) return fail(Errc::not_found, fmt::format("resource {}", name));
  return set_role_on(*hosted, role, force);
}

Result<ResourceStatus> HastNode::status(std::string_view name) const {
  std::shared_ptr<HostedResource> hosted = find(name);
  if (hosted == nullptr) return fail(Errc::not_found, fmt::format("resource {}", name));
  ResourceStatus status;
  HAST_TRY(hosted->executor->run([&] { status = hosted->resource->status(); }));
  return status;
}

std::vector<std::string> HastNode::resource_names() const {
  std::vector<std::string> names;
  for (const config::ResourceConfig& resource : config_.resources)
    names.push_back(resource.name);
  return names;
}

// ---- Configuration reload (§1.5) ----

ResourceChange classify_change(const config::ResourceConfig& running,
                               const config::ResourceConfig& next, meta::Role role) {
  HAST_ASSERT(running.name == next.name);
  if (running.provider_name != next.provider_name || running.local_path != next.local_path ||
      running.frontend != next.frontend) {
    return ResourceChange::restart;
  }
  // The fields a live primary takes as they are; anything else that differs (a field
  // added to ResourceConfig and not classified here) restarts the resource, to be safe.
  config::ResourceConfig rest = next;
  rest.line = running.line;
  rest.remote = running.remote;
  rest.source = running.source;
  rest.replication = running.replication;
  rest.checksum = running.checksum;
  rest.compression = running.compression;
  rest.timeout_seconds = running.timeout_seconds;
  rest.exec_path = running.exec_path;
  rest.metaflush = running.metaflush;
  rest.syncrate_bytes_per_second = running.syncrate_bytes_per_second;
  rest.busypoll_us = running.busypoll_us;
  if (!(rest == running)) return ResourceChange::restart;
  config::ResourceConfig moved = running;
  moved.line = next.line;
  moved.busypoll_us = next.busypoll_us;  // the executor's (ThreadHost::tune), not the role's
  if (moved == next) return ResourceChange::none;
  return role == meta::Role::primary ? ResourceChange::live : ResourceChange::restart;
}

Result<ReloadReport> HastNode::reload(config::NodeConfig next) {
  HAST_ASSERT(!next.listen.empty());
  HAST_TRY(changes_.acquire());
  fiber::Permit permit(changes_);
  ReloadReport report;
  // New resources get their executors first: the one resource step that may fail.
  auto added = make_added(next);
  if (!added) return fail(added.error());
  HAST_TRY(reload_listeners(next.listen, report));
  remove_resources(next, report);
  add_resources(next, std::move(*added), report);
  change_resources(next, report);
  config_ = std::move(next);
  HAST_ASSERT(config_.resources.size() == resources_.size());
  return report;
}

// The running listeners sorted against the wanted addresses (a reload's first step).
struct ListenChange {
  std::vector<std::unique_ptr<NodeListener>> kept;      // running and still wanted
  std::vector<std::unique_ptr<NodeListener>> retired;   // running and no longer wanted
  std::vector<std::unique_ptr<NodeListener>> opened;    // new
  std::vector<const config::ConfiguredAddress*> fresh;  // wanted and not running
};

// Keeps the listeners of addresses still wanted, opens the new ones, closes the others.
// Linux refuses to bind an address that overlaps a listening one (0.0.0.0:P and
// 10.0.0.1:P), so new addresses that fail are tried again once the listeners going away
// are closed; if then nothing would listen, those are reopened and the reload fails.
Result<void> HastNode::reload_listeners(const std::vector<config::ConfiguredAddress>& wanted,
                                        ReloadReport& report) {
  ListenChange change = split_listeners(wanted);
  ListenFailures failures = open_listeners(change.fresh, change.opened);
  bool retired_closed = false;
  if (!failures.empty() && !change.retired.empty()) {
    for (auto& listener : change.retired)
      close_listener(*listener);
    retired_closed = true;
    std::vector<const config::ConfiguredAddress*> again;
    for (const auto& [address, error] : failures)
      again.push_back(address);
    failures = open_listeners(again, change.opened);
  }
  for (const auto& [address, error] : failures) {
    log_warning(io_.log, "Unable to listen on address {}: {}", address->text, error.message());
    report.listen_failed.push_back(address->text);
  }
  if (change.kept.empty() && change.opened.empty()) {
    restore_listeners(std::move(change.retired), retired_closed);
    return fail(Errc::unsupported, "No address to listen on.");
  }
  for (auto& listener : change.retired) {
    if (!retired_closed) close_listener(*listener);
    log_info(io_.log, "Stopped listening on {}.", listener->address.text);
    report.listen_closed.push_back(listener->address.text);
  }
  listeners_ = std::move(change.kept);
  for (auto& listener : change.opened) {
    log_info(io_.log, "Listening on {}.", listener->address.text);
    report.listen_opened.push_back(listener->address.text);
    listeners_.push_back(std::move(listener));
  }
  return ok();
}

// Moves every running listener into kept or retired; an address listed twice counts once.
ListenChange HastNode::split_listeners(const std::vector<config::ConfiguredAddress>& wanted) {
  ListenChange change;
  for (const config::ConfiguredAddress& address : wanted) {
    auto same = [&](const auto& other) {
      return other != nullptr && other->address.address == address.address;
    };
    auto same_fresh = [&](const config::ConfiguredAddress* other) {
      return other->address == address.address;
    };
    if (std::any_of(change.kept.begin(), change.kept.end(), same) ||
        std::any_of(change.fresh.begin(), change.fresh.end(), same_fresh)) {
      continue;
    }
    auto running = std::find_if(listeners_.begin(), listeners_.end(), same);
    if (running == listeners_.end()) {
      change.fresh.push_back(&address);
      continue;
    }
    (*running)->address = address;  // the same address, perhaps written differently
    change.kept.push_back(std::move(*running));
  }
  for (auto& listener : listeners_) {
    if (listener != nullptr) change.retired.push_back(std::move(listener));
  }
  listeners_.clear();
  return change;
}

HastNode::ListenFailures HastNode::open_listeners(
    const std::vector<const config::ConfiguredAddress*>& addresses,
    std::vector<std::unique_ptr<NodeListener>>& opened) {
  ListenFailures failures;
  for (const config::ConfiguredAddress* address : addresses) {
    auto listener = open_listener(*address);
    if (listener) {
      opened.push_back(std::move(*listener));
    } else {
      failures.emplace_back(address, listener.error());
    }
  }
  return failures;
}

// A failed reload puts the listeners back: as they were, or reopened if they were closed.
void HastNode::restore_listeners(std::vector<std::unique_ptr<NodeListener>> retired, bool closed) {
  HAST_ASSERT(listeners_.empty());
  for (auto& listener : retired) {
    if (!closed) {
      listeners_.push_back(std::move(listener));
      continue;
    }
    auto reopened = open_listener(listener->address);
    if (!reopened) {
      log_error(io_.log, "Unable to listen on address {} again: {}", listener->address.text,
                reopened.error().message());
      continue;
    }
    listeners_.push_back(std::move(*reopened));
  }
}

config::ResourceConfig& HastNode::running_config(std::string_view name) {
  auto found =
      std::find_if(config_.resources.begin(), config_.resources.end(),
                   [&](const config::ResourceConfig& resource) { return resource.name == name; });
  HAST_ASSERT(found != config_.resources.end());
  return *found;
}

// Each removed resource leaves the running configuration and the map together, after its
// role went to init, so that config() and status() agree at every suspension.
void HastNode::remove_resources(const config::NodeConfig& next, ReloadReport& report) {
  std::vector<std::string> gone;
  for (const config::ResourceConfig& resource : config_.resources) {
    if (next.find(resource.name) == nullptr) gone.push_back(resource.name);
  }
  for (const std::string& name : gone) {
    log_info(io_.log, "Resource {} removed from the configuration file.", name);
    std::shared_ptr<HostedResource> hosted = find(name);
    HAST_ASSERT(hosted != nullptr);
    ignore_error(set_role_on(*hosted, meta::Role::init, false), "init always starts");
    hosted->executor->stop();
    resources_.erase(name);
    std::erase_if(config_.resources,
                  [&](const config::ResourceConfig& running) { return running.name == name; });
    report.removed.push_back(name);
  }
}

Result<HastNode::AddedResources> HastNode::make_added(const config::NodeConfig& next) {
  AddedResources added;
  for (const config::ResourceConfig& resource : next.resources) {
    if (resources_.contains(resource.name)) continue;
    auto hosted = make_resource(resource);
    if (!hosted) {
      log_error(io_.log, "Unable to add resource {}: {}", resource.name,
                hosted.error().message());
      return fail(hosted.error());
    }
    added.emplace(resource.name, std::move(*hosted));
  }
  return added;
}

void HastNode::add_resources(const config::NodeConfig& next, AddedResources added,
                             ReloadReport& report) {
  for (const config::ResourceConfig& resource : next.resources) {
    if (resources_.contains(resource.name)) continue;
    log_info(io_.log, "Resource {} added to the configuration file.", resource.name);
    auto made = added.find(resource.name);
    HAST_ASSERT(made != added.end());
    resources_.emplace(resource.name, std::move(made->second));
    config_.resources.push_back(resource);
    report.added.push_back(resource.name);
  }
}

// Each resource applies its change on its own executor (Resource::reload); the running
// configuration follows once it has.
void HastNode::change_resources(const config::NodeConfig& next, ReloadReport& report) {
  for (const config::ResourceConfig& wanted : next.resources) {
    std::shared_ptr<HostedResource> hosted = find(wanted.name);
    HAST_ASSERT(hosted != nullptr);
    ResourceChange change = ResourceChange::none;
    bool restart_failed = false;
    auto ran = hosted->executor->run(
        [&] { change = hosted->resource->reload(wanted, restart_failed); });
    if (!ran) {
      log_error(io_.log, "Resource {} not reloaded: {}", wanted.name, ran.error().message());
      continue;
    }
    running_config(wanted.name) = wanted;
    if (change == ResourceChange::live) report.changed_live.push_back(wanted.name);
    if (change == ResourceChange::restart) report.restarted.push_back(wanted.name);
    if (restart_failed) report.restart_failed.push_back(wanted.name);
  }
}

}  // namespace hast::replication
