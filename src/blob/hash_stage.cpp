#include "blob/hash_stage.hpp"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "core/error.hpp"

namespace bartl {

void HashingSink::write(const void* data, std::size_t n) {
    if (n == 0) return;
    sha_.update(data, n);
    next_.write(data, n);
    size_ += n;
}

std::size_t HashingSource::read(void* data, std::size_t n) {
    const std::size_t got = from_.read(data, n);
    sha_.update(data, got);
    const std::uint64_t total = consumed_.load(std::memory_order_relaxed) + got;
    consumed_.store(total, std::memory_order_relaxed);
    if (total > expected_size_)
        throw IntegrityError(fmt::format("{}: blob is longer than the expected {} bytes", label_, expected_size_));
    return got;
}

void HashingSource::verify(const std::string& expected_sha256) {
    std::vector<char> buf(64 * 1024);
    while (read(buf.data(), buf.size()) > 0) {
    }
    const std::string got = sha_.hex();
    if (consumed() != expected_size_)
        throw IntegrityError(
            fmt::format("{}: size mismatch: expected {} bytes, got {}", label_, expected_size_, consumed()));
    std::string want = expected_sha256;
    std::transform(want.begin(), want.end(), want.begin(), [](unsigned char c) { return std::tolower(c); });
    if (got != want) throw IntegrityError(fmt::format("{}: SHA-256 mismatch: expected {}, got {}", label_, want, got));
}

}  // namespace bartl
