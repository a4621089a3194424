// property(): runs a rapidcheck property inside a Catch2 test with a fixed seed.
//
// The seed is derived from the property's name, so every run of the default test suite
// checks the same cases (DESIGN.md §6). RC_PARAMS still works: when it names a seed (or a
// `reproduce` string) rapidcheck's own configuration wins, which is how long sweeps vary
// the seed. On failure the message says how to replay.
#pragma once

#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>

#include <rapidcheck.h>
#include <catch2/catch.hpp>

#include "core/prng.h"

namespace hast::test {

// True when RC_PARAMS (the environment; tests may read it) mentions `key`.
inline bool rc_params_mention(std::string_view key) {
  const char* params = std::getenv("RC_PARAMS");
  return params != nullptr && std::string_view(params).find(key) != std::string_view::npos;
}

// `cases` caps the number of cases of an expensive property in the default run; an
// RC_PARAMS max_success overrides it (long sweeps).
template <typename Testable>
void property(const std::string& name, Testable&& testable, int cases = 0) {
  using namespace rc::detail;
  TestParams params = configuration().testParams;
  if (!rc_params_mention("seed") && !rc_params_mention("reproduce")) params.seed = fnv1a(name);
  if (cases > 0 && !rc_params_mention("max_success")) params.maxSuccess = cases;
  TestMetadata metadata;
  metadata.id = name;
  metadata.description = name;
  const auto result = checkTestable(std::forward<Testable>(testable), metadata, params);
  if (result.template is<SuccessResult>()) {
    SUCCEED(name);
    return;
  }
  std::ostringstream message;
  printResultMessage(result, message);
  message << "\nreplay this property: RC_PARAMS=\"seed=" << params.seed << "\" <test binary> \""
          << Catch::getResultCapture().getCurrentTestName() << "\"";
  FAIL(message.str());
}

}  // namespace hast::test
