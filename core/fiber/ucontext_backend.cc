// Boost.Context's ucontext backend (BOOST_USE_UCONTEXT, defined by the HAST_FUZZ build so
// that fibers switch stacks through ASan's hooks) declares the per-thread "current fiber"
// record in its header and expects the library to define it; the distribution's
// libboost_context is built for the fcontext backend and does not. This defines it: each
// thread starts in a record of its own main context, created on first use and freed at
// thread exit. Empty in every other build.
#if defined(BOOST_USE_UCONTEXT)

#include <memory>

#include <boost/context/fiber.hpp>

namespace boost::context::detail {
namespace {

struct ThreadRecords {
  std::unique_ptr<fiber_activation_record> main = std::make_unique<fiber_activation_record>();
  fiber_activation_record* current = main.get();
};

}  // namespace

fiber_activation_record*& fiber_activation_record::current() noexcept {
  thread_local ThreadRecords records;
  return records.current;
}

}  // namespace boost::context::detail

#endif
