// The zstd stages of the blob pipeline, on libzstd directly (the library libarchive's own zstd
// filter wraps): libarchive 3.6 cannot set zstd's job size, and reading through libarchive
// would put a second archive parser in front of the tar one.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "util/byte_stream.hpp"

struct ZSTD_CCtx_s;
struct ZSTD_DCtx_s;

namespace bartl {

/// Backup side: compresses what is written into one zstd frame with a content checksum
/// (`zstd -t` and `zstd -dc` check every byte without bartl), written to `next`.
class ZstdCompressor : public ByteSink {
public:
    /// `level` 1 to 19; `threads` 1 = compress on the calling thread, streaming; N > 1 = N
    /// zstd workers with 1 MiB jobs (about 5 MiB of memory each); 0 = one per core, at most
    /// 4. Throws ConfigError "compression zstd:L with T thread(s) is not supported: ..." when
    /// zstd rejects them, RuntimeError when it cannot allocate.
    ZstdCompressor(ByteSink& next, int level, int threads);
    ~ZstdCompressor() override;
    /// Compresses `n` bytes; throws RuntimeError, what `next` throws.
    void write(const void* data, std::size_t n) override;
    /// Ends the frame and writes the rest. Call once, after the last write().
    void finish();
    /// Default worker count for threads = 0: one per core, at most 4.
    static int default_threads();

private:
    void feed(const void* data, std::size_t n, bool end);
    ByteSink& next_;
    std::unique_ptr<ZSTD_CCtx_s, void (*)(ZSTD_CCtx_s*)> z_;
    std::vector<char> out_;
};

/// Restore side: decompresses the zstd frames read from `from`, refusing to unpack more than
/// `max_unpacked` bytes (a zstd bomb must not fill the disk before the blob's SHA-256 is
/// known). Accepts what the zstd tool writes too (several frames, skippable frames).
class ZstdDecompressor : public ByteSource {
public:
    /// `label` names the blob in messages.
    ZstdDecompressor(ByteSource& from, std::uint64_t max_unpacked, std::string label);
    ~ZstdDecompressor() override;
    /// Up to `n` decompressed bytes; 0 at the end of the input, after a complete frame.
    /// Throws IntegrityError for corrupt data ("corrupt compressed stream after N unpacked
    /// bytes: ..."), a stream that ends inside a frame or holds no frame, and for more than
    /// max_unpacked bytes ("... refusing a possible decompression bomb"); what `from` throws.
    std::size_t read(void* data, std::size_t n) override;
    /// Decompressed bytes so far.
    std::uint64_t unpacked() const noexcept { return unpacked_; }

private:
    ByteSource& from_;
    const std::uint64_t limit_;
    const std::string label_;
    std::unique_ptr<ZSTD_DCtx_s, void (*)(ZSTD_DCtx_s*)> z_;
    std::vector<char> in_;
    std::size_t in_pos_ = 0, in_len_ = 0;
    bool eof_ = false;
    bool frames_ = false;      // at least one frame began
    bool mid_frame_ = false;   // the last call left a frame unfinished
    bool out_full_ = false;    // the last call filled the caller's buffer: zstd may hold more
    std::uint64_t unpacked_ = 0;
};

}  // namespace bartl
