// libFuzzer target: bartl::extract_blob (src/blob/blob.hpp) on raw blob bytes, i.e. a whole
// ".tar.zst" object as a store would return it. Mutations mostly hit the zstd decoder and the
// reader's error paths; fuzz_archive reaches the tar entry validator more directly.
#include <cstddef>
#include <cstdint>

#include "blob_harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    bartl_fuzz::extract(data, size);
    return 0;
}
