// Replays a fuzz target's seed corpus without libFuzzer (the `fuzz-smoke` ctest label).
//
//   fuzz_<input>_replay DIR...   runs every file under each DIR through the target
//
// Built with g++ in the default build, so every decoder's corpus is exercised on every
// test run; the coverage-guided search itself needs -DHAST_FUZZ=ON with clang.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

std::vector<std::uint8_t> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t replayed = 0;
  for (int i = 1; i < argc; i++) {
    std::filesystem::path root(argv[i]);
    if (!std::filesystem::is_directory(root)) {
      std::fprintf(stderr, "replay: %s is not a directory\n", argv[i]);
      return 2;
    }
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
      if (entry.is_regular_file()) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      auto bytes = read_file(file);
      LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
      replayed++;
    }
  }
  // An empty input too: every decoder must reject it cleanly.
  LLVMFuzzerTestOneInput(nullptr, 0);
  std::printf("replay: %zu inputs, no crash\n", replayed);
  return replayed > 0 ? 0 : 1;
}
