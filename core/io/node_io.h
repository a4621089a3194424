// NodeIo: everything nondeterministic a node touches, in one bundle passed to
// constructors (DESIGN.md §3). No globals: a simulated cluster is many NodeIo in one
// process. The scheduler travels alongside because every blocking call suspends on it.
#pragma once

#include "core/fiber/scheduler.h"
#include "core/io/clock.h"
#include "core/io/disk.h"
#include "core/io/log.h"
#include "core/io/network.h"
#include "core/io/random.h"
#include "core/io/stack.h"

namespace hast {

struct NodeIo {
  Disk& disk;
  Network& network;
  Clock& clock;
  Random& random;
  Log& log;
  StackAllocator& stacks;
  fiber::Scheduler& scheduler;
};

}  // namespace hast
