// libFuzzer target: the archive entry validator inside bartl::extract_blob
// (src/blob/blob.hpp). The input is an uncompressed tar; the harness wraps it in a zstd
// frame of stored ("raw") blocks, which costs nothing and keeps every mutation a valid zstd
// stream, so libFuzzer mutates tar headers, names, link targets and modes directly.
#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <vector>

#include "blob_harness.hpp"

namespace {

/// A zstd frame (RFC 8878) holding `data` in raw blocks: magic, a frame header with a
/// 128 KiB window and no content size, then blocks of at most 128 KiB, the last one flagged.
std::vector<std::uint8_t> zstd_stored(const std::uint8_t* data, std::size_t size) {
    constexpr std::size_t kMaxBlock = 128 * 1024;
    std::vector<std::uint8_t> out = {0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x38};  // magic, FHD, window 2^17
    out.reserve(size + size / kMaxBlock * 3 + 16);
    std::size_t pos = 0;
    do {
        const std::size_t n = std::min(kMaxBlock, size - pos);
        const bool last = pos + n == size;
        const std::uint32_t header = (std::uint32_t(n) << 3) | (0u << 1) | (last ? 1u : 0u);  // Raw_Block
        out.push_back(std::uint8_t(header));
        out.push_back(std::uint8_t(header >> 8));
        out.push_back(std::uint8_t(header >> 16));
        out.insert(out.end(), data + pos, data + pos + n);
        pos += n;
    } while (pos < size);
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto blob = zstd_stored(data, size);
    bartl_fuzz::extract(blob.data(), blob.size());
    return 0;
}
