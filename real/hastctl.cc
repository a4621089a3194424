#include "real/hastctl.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>

#include <fmt/format.h>

#include "core/control/client.h"
#include "core/control/format.h"
#include "core/control/json.h"
#include "core/replication/local_component.h"
#include "real/clock.h"
#include "real/host.h"
#include "real/net.h"
#include "real/posix_disk.h"
#include "real/ring.h"

namespace hast::real {
namespace {

using namespace control;  // exit codes and formats

void print_error(std::string_view message) {
  std::fputs(format_error(message).c_str(), stderr);
}

// One fiber on a fresh scheduler and ring: hastctl's runtime.
int run_in_fiber(const std::function<int(Ring&, Clock&)>& body) {
  RealClock clock;
  GuardedStacks stacks(1024 * 1024);
  fiber::Scheduler scheduler(clock, stacks, nullptr, {});
  Ring ring(scheduler, {}, 64);
  int code = exit_software;
  HAST_ASSERT(scheduler.spawn("hastctl", [&] { code = body(ring, clock); }).has_value());
  scheduler.run(ring);
  ring.drain();
  scheduler.shutdown();
  return code;
}

// hastctl parses and resolves the configuration first, even for status (§3.1).
Result<config::NodeConfig> load(const HastctlOptions& options) {
  auto parsed = load_config(options.config_path);
  if (!parsed) return fail(parsed.error());
  auto resolved = config::resolve(*parsed, host_identity(options.node), host_address_families());
  if (!resolved) {
    return fail(resolved.error().code(),
                fmt::format("{}: {}", options.config_path, resolved.error().context()));
  }
  return std::move(*resolved);
}

int config_failure(const Error& error) {
  print_error(error.context());
  if (error.code() == Errc::not_found) return exit_os_file;
  return error.code() == Errc::unsupported ? exit_temp_fail : exit_config;
}

// The resources named (or every one for "all" or no name), in configuration order.
std::vector<std::string> expand(const config::NodeConfig& config,
                                const std::vector<std::string>& names) {
  if (!names.empty() && !(names.size() == 1 && names[0] == "all")) return names;
  std::vector<std::string> all;
  for (const auto& resource : config.resources)
    all.push_back(resource.name);
  return all;
}

int create_one(Ring& ring, const config::ResourceConfig& resource, const HastctlOptions& options) {
  auto disk = PosixDisk::open(ring, resource.local_path);
  if (!disk) {
    print_error(fmt::format("[{}] Unable to open {}: {}", resource.name, resource.local_path,
                            disk.error().message()));
    return exit_no_input;
  }
  replication::CreateOptions create;
  if (options.extent_size)
    create.extent_size_bytes = static_cast<std::uint32_t>(*options.extent_size);
  if (options.keep_dirty) create.keep_dirty = static_cast<std::uint32_t>(*options.keep_dirty);
  if (options.media_size) create.media_size_bytes = *options.media_size;
  auto created = replication::create_local(**disk, resource.name, create);
  if (!created) {
    print_error(fmt::format("[{}] {}", resource.name, created.error().context()));
    return created.error().code() == Errc::invalid_argument ? exit_data_error : exit_io_error;
  }
  return exit_ok;
}

int create(const config::NodeConfig& config, const HastctlOptions& options) {
  return run_in_fiber([&](Ring& ring, Clock&) {
    int code = exit_ok;
    for (const std::string& name : options.names) {
      const config::ResourceConfig* resource = config.find(name);
      int one = exit_data_error;
      if (resource == nullptr) {
        print_error(fmt::format("Unknown resource {}.", name));
      } else {
        one = create_one(ring, *resource, options);
      }
      if (code == exit_ok) code = one;
    }
    return code;
  });
}

// dump reads the metadata block with plain reads and no lock, so it works on a provider
// a running hastd holds.
int dump_one(const config::ResourceConfig& resource) {
  int fd = ::open(resource.local_path.c_str(), O_RDONLY | O_CLOEXEC);
  std::array<std::byte, meta::metadata_size> block{};
  ssize_t n = fd < 0 ? -1 : ::pread(fd, block.data(), block.size(), 0);
  int error = errno;
  if (fd >= 0) ::close(fd);
  if (n != static_cast<ssize_t>(block.size())) {
    print_error(fmt::format("[{}] Unable to read metadata from {}: {}.", resource.name,
                            resource.local_path, n < 0 ? std::strerror(error) : "short read"));
    return exit_io_error;
  }
  auto area = meta::decode_area(block, resource.local_path);
  if (area) {
    if (auto checked = meta::check_resource(area->metadata, resource.local_path, resource.name);
        !checked) {
      area = fail(checked.error());
    }
  }
  if (!area) {
    print_error(fmt::format("[{}] {}", resource.name, area.error().message()));
    return exit_io_error;
  }
  // Which copy was read goes to stderr, so the output stays FreeBSD's.
  if (!area->note.empty()) {
    std::fputs(
        fmt::format("[WARNING] [{}] Metadata read from the {} copy of {}: {}.\n", resource.name,
                    meta::metadata_copy_name(area->copy), resource.local_path, area->note)
            .c_str(),
        stderr);
  }
  std::fputs(format_dump(area->metadata).c_str(), stdout);
  return exit_ok;
}

int dump(const config::NodeConfig& config, const HastctlOptions& options) {
  int code = exit_ok;
  for (const std::string& name : expand(config, options.names)) {
    const config::ResourceConfig* resource = config.find(name);
    int one = exit_data_error;
    if (resource == nullptr) {
      print_error(fmt::format("Unknown resource {}.", name));
    } else {
      one = dump_one(*resource);
    }
    if (code == exit_ok) code = one;
  }
  return code;
}

template <typename Reply>
int client_failure(const ClientResult<Reply>& result) {
  print_error(result.error().message());
  return result.error().exit_code();
}

int role(const config::NodeConfig& config, const HastctlOptions& options) {
  auto role = meta::parse_role(*options.role);
  HAST_ASSERT(role.has_value());
  return run_in_fiber([&](Ring& ring, Clock& clock) {
    RealNetwork network(ring);
    ControlClient client(network, clock, config.control);
    auto reply = client.set_role(*role, options.names, options.force);
    if (!reply) return client_failure(reply);
    if (reply->error != 0) {
      std::fputs(format_reply_error(reply->error).c_str(), stderr);
      return exit_software;
    }
    std::fputs(format_set_role_warnings(*reply).c_str(), stderr);
    return reply_exit_code(*reply);
  });
}

int status(const config::NodeConfig& config, const HastctlOptions& options) {
  return run_in_fiber([&](Ring& ring, Clock& clock) {
    RealNetwork network(ring);
    ControlClient client(network, clock, config.control);
    std::vector<std::string> names = options.names;
    if (names.size() == 1 && names[0] == "all") names.clear();
    auto reply = client.status(names);
    if (!reply) return client_failure(reply);
    if (reply->error != 0) {
      std::fputs(format_reply_error(reply->error).c_str(), stderr);
      return exit_software;
    }
    std::string text = options.json                ? format_status_json(*reply)
                       : options.command == "list" ? format_list(*reply)
                                                   : format_status(*reply);
    std::fputs(text.c_str(), stdout);
    return reply_exit_code(*reply);
  });
}

int stop(const config::NodeConfig& config) {
  return run_in_fiber([&](Ring& ring, Clock& clock) {
    RealNetwork network(ring);
    ControlClient client(network, clock, config.control);
    auto reply = client.stop();
    if (!reply) return client_failure(reply);
    if (reply->error != 0) {
      std::fputs(format_reply_error(reply->error).c_str(), stderr);
      return exit_software;
    }
    return exit_ok;
  });
}

}  // namespace

int run_hastctl(const HastctlOptions& options) {
  auto config = load(options);
  if (!config) return config_failure(config.error());
  if (options.command == "create") return create(*config, options);
  if (options.command == "dump") return dump(*config, options);
  if (options.command == "role") return role(*config, options);
  if (options.command == "stop") return stop(*config);
  return status(*config, options);
}

}  // namespace hast::real
