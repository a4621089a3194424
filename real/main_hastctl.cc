// hastctl: see real/hastctl.h.
#include "real/hastctl.h"

int main(int argc, char** argv) {
  auto options = hast::real::parse_hastctl_args(argc, argv);
  if (!options) return 64;  // EX_USAGE
  return hast::real::run_hastctl(*options);
}
