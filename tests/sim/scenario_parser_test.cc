// The .scn parser (sim/scenario.h): what a valid file becomes, and every error path
// naming the file, the 1-based line and what is wrong.
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "sim/scenario.h"

using hast::sim::ActionKind;
using hast::sim::ExpectKind;
using hast::sim::parse_scenario;
using namespace std::chrono_literals;

namespace {

// Lines 1..14: a valid header; tests append lines from 15 on.
const std::string kHeader =
    "# a comment\n"                          // 1
    "name test scenario\n"                   // 2
    "config\n"                               // 3
    "listen tcp://0.0.0.0\n"                 // 4
    "replication fullsync\n"                 // 5
    "timeout 3\n"                            // 6
    "resource data {\n"                      // 7
    "  local /dev/sim\n"                     // 8
    "  on alpha {\n"                         // 9
    "    remote tcp://10.1.0.2\n"            // 10
    "  }\n"                                  // 11
    "  on beta { remote tcp://10.1.0.1 }\n"  // 12
    "}\n"                                    // 13
    "end\n";                                 // 14

std::string error_of(const std::string& text) {
  auto parsed = parse_scenario(text, "t.scn");
  REQUIRE_FALSE(parsed.has_value());
  CHECK(parsed.error().code() == hast::Errc::invalid_argument);
  return parsed.error().context();
}

}  // namespace

TEST_CASE("scenario: a valid file parses into nodes, settings, actions and expectations",
          "[scenario]") {
  std::string text = kHeader +
                     "set keepalive 250ms\n"
                     "set disk-size 4M\n"
                     "workload mix read 1 write 3\n"
                     "workload size 16K\n"
                     "workload rate 500\n"
                     "workload run 50ms 2s\n"
                     "at 0s create alpha   # trailing comment\n"
                     "at 10ms role alpha primary\n"
                     "at +1.5s partition alpha -> beta\n"
                     "at 2s clog beta alpha 300ms\n"
                     "at 2s disk beta fail write 0.5\n"
                     "at 2s expect alpha role primary status degraded dirty >0 within 3s\n"
                     "at 3s expect beta hook syncdone >= 2\n"
                     "at 3s may-lose alpha since 1s\n"
                     "at 4s expect no split-brain\n"
                     "duration 9s\n";
  auto parsed = parse_scenario(text, "t.scn");
  REQUIRE(parsed.has_value());
  const auto& s = *parsed;
  CHECK(s.name == "test scenario");
  CHECK(s.resource == "data");
  CHECK(s.nodes[0] == "alpha");
  CHECK(s.nodes[1] == "beta");
  CHECK(s.hosts[0] == "10.1.0.1");  // what beta dials to reach alpha
  CHECK(s.hosts[1] == "10.1.0.2");
  CHECK(s.mode == hast::config::ReplicationMode::fullsync);
  CHECK(s.timeout_seconds == 3);
  CHECK(s.settings.keepalive == 250ms);
  CHECK(s.settings.disk_bytes == 4u << 20);
  CHECK(s.workload.read_weight == 1);
  CHECK(s.workload.write_weight == 3);
  CHECK(s.workload.flush_weight == 0);
  CHECK(s.workload.request_bytes_max == 16u * 1024);
  CHECK(s.workload.mean_interval == 2ms);
  CHECK(s.duration == 9s);
  REQUIRE(s.actions.size() == 9);
  CHECK(s.actions[0].kind == ActionKind::create);
  CHECK(s.actions[0].line == 21);
  CHECK(s.actions[2].kind == ActionKind::partition);
  CHECK(s.actions[2].at == 1510ms);
  CHECK(s.actions[2].one_way);
  CHECK(s.actions[3].duration == 300ms);
  CHECK_FALSE(s.actions[3].one_way);
  CHECK(s.actions[4].probability == 0.5);
  const auto& expect = s.actions[5].expect;
  CHECK(expect.kind == ExpectKind::state);
  CHECK(expect.status == "degraded");
  REQUIRE(expect.dirty.has_value());
  CHECK(expect.dirty->holds(1));
  CHECK_FALSE(expect.dirty->holds(0));
  CHECK(expect.within == 3s);
  CHECK(s.actions[6].expect.count.value == 2);
  CHECK(s.actions[7].since == hast::sim::LossSince::time);
  CHECK(s.actions[8].expect.kind == ExpectKind::no_split_brain);
}

TEST_CASE("scenario: without `duration` the run ends after the last action and within",
          "[scenario]") {
  auto parsed = parse_scenario(kHeader + "at 1s expect alpha up within 2s\n", "t.scn");
  REQUIRE(parsed.has_value());
  CHECK(parsed->duration == 3100ms);
}

TEST_CASE("scenario: every error names the file, the line and the problem", "[scenario]") {
  struct Case {
    std::string lines;  // appended to the header (first line: 15)
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"frobnicate\n", "t.scn:15: unknown statement 'frobnicate'"},
      {"at 1s\n", "t.scn:15: `at TIME` needs an action"},
      {"at soon kill alpha\n", "t.scn:15: `at`: bad time 'soon'"},
      {"at 1x kill alpha\n", "t.scn:15: `at`: bad time '1x'"},
      {"at +x kill alpha\n", "t.scn:15: bad relative time '+x'"},
      {"at 1000m kill alpha\nat +1000m kill beta\n",
       "t.scn:16: actions must happen within one simulated day"},
      {"at 2s kill alpha\nat 1s kill beta\n", "t.scn:16: time goes backwards: 1s after 2s"},
      {"at 1s kill gamma\n", "t.scn:15: unknown node 'gamma' (the config names alpha and beta)"},
      {"at 1s kill\n", "t.scn:15: kill needs a node name"},
      {"at 1s kill alpha now\n", "t.scn:15: unexpected 'now' after kill"},
      {"at 1s role alpha boss\n", "t.scn:15: bad role 'boss'"},
      {"at 1s explode alpha\n", "t.scn:15: unknown action 'explode'"},
      {"at 1s pause alpha\n", "t.scn:15: the pause: bad time ''"},
      {"at 1s partition alpha alpha\n", "t.scn:15: partition needs two different nodes"},
      {"at 1s clog alpha -> beta\n", "t.scn:15: the clog: bad time ''"},
      {"at 1s disk alpha melt\n", "t.scn:15: unknown disk fault 'melt'"},
      {"at 1s disk alpha fail sideways\n", "t.scn:15: disk NODE fail read|write|flush"},
      {"at 1s disk alpha fail read 2\n", "t.scn:15: the failure probability: bad probability '2'"},
      {"at 1s disk alpha latent 100\n", "t.scn:15: latent errors take a sector-aligned offset"},
      {"at 1s swap-disk alpha used\n", "t.scn:15: swap-disk NODE empty|foreign"},
      {"at 1s workload pause\n", "t.scn:15: `workload start` or `stop`"},
      {"at 1s may-lose alpha since never\n", "t.scn:15: `since`: bad time 'never'"},
      {"at 1s expect\n", "t.scn:15: `expect` needs an expectation"},
      {"at 1s expect alpha\n", "t.scn:15: `expect NODE` needs what to expect of it"},
      {"at 1s expect alpha mood happy\n", "t.scn:15: unknown expectation 'mood'"},
      {"at 1s expect alpha status fine\n", "t.scn:15: status is complete or degraded"},
      {"at 1s expect alpha dirty lots\n", "t.scn:15: dirty: bad value 'lots'"},
      {"at 1s expect alpha sync maybe\n", "t.scn:15: sync is running or done"},
      {"at 1s expect alpha hook reboot\n", "t.scn:15: unknown hook event"},
      {"at 1s expect alpha holds data\n", "t.scn:15: `expect NODE holds acked`"},
      {"at 1s expect no luck\n", "t.scn:15: `expect no split-brain`"},
      {"at 1s expect writes lost 0\n", "t.scn:15: `expect writes acked|failed [OP] N`"},
      {"at 1s expect identical within\n", "t.scn:15: `within`: bad time ''"},
      {"set speed 9\n", "t.scn:15: unknown setting 'speed'"},
      {"set disk-size 100K\n", "t.scn:15: disk-size must be a multiple of 4K"},
      {"set disk-size 12Q\n", "t.scn:15: disk-size: bad size '12Q'"},
      {"set keep-dirty 0\n", "t.scn:15: keep-dirty must be in [1, 1024]"},
      {"set keepalive 0s\n", "t.scn:15: keepalive below 1ms"},
      {"set clock-offset alpha\n", "t.scn:15: clock-offset: bad time ''"},
      {"workload mix read x\n", "t.scn:15: the weight of read: bad number 'x'"},
      {"workload mix reed 1\n", "t.scn:15: unknown request kind 'reed'"},
      {"workload mix read 0\n", "t.scn:15: every weight of the mix is 0"},
      {"workload size 100\n", "t.scn:15: the largest request must be a multiple of 512"},
      {"workload rate 0\n", "t.scn:15: rate must be in [1, 1000000]"},
      {"workload fua 1.5\n", "t.scn:15: fua: bad probability '1.5'"},
      {"workload run 2s 1s\n", "t.scn:15: the workload must end after it starts"},
      {"workload juggle\n", "t.scn:15: unknown workload setting 'juggle'"},
      {"duration\n", "t.scn:15: duration: bad time ''"},
      {"end\n", "t.scn:15: `end` without a `config` block"},
      {"name\n", "t.scn:15: `name` needs a title"},
      {"config\nlisten tcp://0.0.0.0\nend\n",
       "t.scn:15: a second `config` block (one hast.conf per scenario)"},
      {"at 5s kill alpha\nduration 2s\n",
       "t.scn:16: duration 2s ends before the last action or `within` (5s)"},
  };
  for (const Case& c : cases) {
    INFO("lines: " << c.lines);
    std::string message = error_of(kHeader + c.lines);
    CHECK_THAT(message, Catch::StartsWith(c.expected));
  }
}

TEST_CASE("scenario: config errors name the file line inside the block", "[scenario]") {
  // core/config's "line 3" of the block is line 5 of the file.
  std::string bad_conf = "# x\nconfig\nlisten tcp://0.0.0.0\nresource r {\n  bogus 1\n}\nend\n";
  CHECK_THAT(error_of(bad_conf), Catch::StartsWith("t.scn:5: hast.conf: "));
  CHECK_THAT(error_of("config\nlisten tcp://0.0.0.0\n"),
             Catch::StartsWith("t.scn:1: the `config` block has no `end` line"));
  CHECK_THAT(error_of("config\nlisten tcp://0.0.0.0\nend\nat 1s kill a\n"),
             Catch::StartsWith("t.scn:1: the config must define exactly one resource, not 0"));
  std::string one_node =
      "config\nresource r {\n  local /d\n  on a {\n    remote tcp://1.2.3.4\n  }\n}\nend\n";
  CHECK_THAT(error_of(one_node), Catch::StartsWith("t.scn:2: resource r must have two `on NODE`"));
  std::string no_remote =
      "config\nresource r {\n  local /d\n  on a {\n    remote tcp://1.2.3.4\n  }\n"
      "  on b {\n    local /e\n  }\n}\nend\n";
  CHECK_THAT(error_of(no_remote), Catch::StartsWith("t.scn:7: node b needs a tcp `remote`"));
  std::string same_host =
      "config\nresource r {\n  local /d\n  on a {\n    remote tcp://1.2.3.4\n  }\n"
      "  on b {\n    remote tcp://1.2.3.4\n  }\n}\nend\n";
  CHECK_THAT(error_of(same_host),
             Catch::StartsWith("t.scn:1: both nodes' remote addresses name the same host"));
}

TEST_CASE("scenario: a file needs a config before its actions and at least one action",
          "[scenario]") {
  CHECK_THAT(error_of("at 1s kill alpha\n"),
             Catch::StartsWith("t.scn:1: the `config` block must come before the actions"));
  CHECK_THAT(error_of("name x\n"), Catch::StartsWith("t.scn:1: no `config` block"));
  CHECK_THAT(error_of(kHeader), Catch::StartsWith("t.scn:1: no `at` statement"));
  CHECK_THAT(error_of(""), Catch::StartsWith("t.scn:1: no `config` block"));
}
