// The SHA-256 and size stage of the blob pipeline (bartl(7) "THE BACKUP BLOB"): it sits next
// to the store, so it sees the blob exactly as stored (compressed, and encrypted when
// configured), which is what the sidecar's blob.size and blob.sha256 describe and what
// `sha256sum B` checks by hand.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "util/byte_stream.hpp"
#include "util/sha256.hpp"

namespace bartl {

/// Backup side: hashes and counts every byte on its way to `next` (the store writer).
class HashingSink : public ByteSink {
public:
    explicit HashingSink(ByteSink& next) : next_(next) {}
    /// Hashes, counts and passes on `n` bytes; throws what `next` throws.
    void write(const void* data, std::size_t n) override;
    /// Bytes passed on so far.
    std::uint64_t size() const noexcept { return size_; }
    /// The lower-case hex SHA-256 of everything written; call once, at the end.
    std::string finish() { return sha_.hex(); }

private:
    ByteSink& next_;
    Sha256 sha_;
    std::uint64_t size_ = 0;
};

/// Restore side: hashes and counts every byte read from `from` (the store reader), refusing
/// a stream longer than the sidecar says as soon as it gets longer, so an endless or
/// oversized object is never read (nor unpacked) to its end.
class HashingSource : public ByteSource {
public:
    /// `label` names the blob in messages ("backup 3f9a0c1d").
    HashingSource(ByteSource& from, std::uint64_t expected_size, std::string label)
        : from_(from), expected_size_(expected_size), label_(std::move(label)) {}
    /// Reads up to `n` bytes. Throws IntegrityError once more than expected_size bytes came,
    /// what `from` throws.
    std::size_t read(void* data, std::size_t n) override;
    /// Bytes read so far; safe to call from another thread (progress reports).
    std::uint64_t consumed() const noexcept { return consumed_.load(std::memory_order_relaxed); }
    /// Reads what is left of the source, then compares its size and SHA-256 with the expected
    /// ones (`expected_sha256` hex, either case). Throws IntegrityError "LABEL: size mismatch:
    /// ..." or "LABEL: SHA-256 mismatch: expected X, got Y"; call once.
    void verify(const std::string& expected_sha256);

private:
    ByteSource& from_;
    const std::uint64_t expected_size_;
    const std::string label_;
    Sha256 sha_;
    std::atomic<std::uint64_t> consumed_{0};
};

}  // namespace bartl
