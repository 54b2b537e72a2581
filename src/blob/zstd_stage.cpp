#include "blob/zstd_stage.hpp"

#include <zstd.h>

#include <algorithm>
#include <thread>

#include <fmt/format.h>

#include "core/error.hpp"

namespace bartl {

namespace {

/// zstd's job size when it runs workers: zstd's default for level 3 (8 MiB jobs, several of
/// them buffered per worker) costs ~35 MiB per worker; 1 MiB jobs cost ~5 MiB and compress
/// ~1% worse.
constexpr int kJobSize = 1 << 20;
constexpr unsigned kMaxDefaultThreads = 4;

void free_cctx(ZSTD_CCtx* c) { ZSTD_freeCCtx(c); }
void free_dctx(ZSTD_DCtx* d) { ZSTD_freeDCtx(d); }

}  // namespace

int ZstdCompressor::default_threads() {
    return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, kMaxDefaultThreads));
}

ZstdCompressor::ZstdCompressor(ByteSink& next, int level, int threads)
    : next_(next), z_(ZSTD_createCCtx(), free_cctx), out_(ZSTD_CStreamOutSize()) {
    if (!z_) throw RuntimeError("cannot allocate a zstd compressor");
    if (threads <= 0) threads = default_threads();
    auto unsupported = [&](const std::string& why) {
        return ConfigError(
            fmt::format("compression zstd:{} with {} thread(s) is not supported: {}", level, threads, why));
    };
    if (level < 1 || level > ZSTD_maxCLevel())
        throw unsupported(fmt::format("the level must be 1 to {}", ZSTD_maxCLevel()));
    auto set = [&](ZSTD_cParameter p, int v) {
        const size_t rc = ZSTD_CCtx_setParameter(z_.get(), p, v);
        if (ZSTD_isError(rc)) throw unsupported(ZSTD_getErrorName(rc));
    };
    set(ZSTD_c_compressionLevel, level);
    set(ZSTD_c_checksumFlag, 1);
    if (threads > 1) {
        set(ZSTD_c_nbWorkers, threads);
        set(ZSTD_c_jobSize, kJobSize);
    }
}

ZstdCompressor::~ZstdCompressor() = default;

void ZstdCompressor::feed(const void* data, std::size_t n, bool end) {
    // The streaming loop of zstd's examples (streaming_compression.c): all of the input is
    // consumed, and with ZSTD_e_end the frame is flushed to its end.
    ZSTD_inBuffer in{data, n, 0};
    const ZSTD_EndDirective mode = end ? ZSTD_e_end : ZSTD_e_continue;
    for (;;) {
        ZSTD_outBuffer o{out_.data(), out_.size(), 0};
        const size_t left = ZSTD_compressStream2(z_.get(), &o, &in, mode);
        if (ZSTD_isError(left)) throw RuntimeError(fmt::format("zstd compression failed: {}", ZSTD_getErrorName(left)));
        if (o.pos > 0) next_.write(out_.data(), o.pos);
        if (end ? left == 0 : in.pos == in.size) return;
    }
}

void ZstdCompressor::write(const void* data, std::size_t n) {
    if (n > 0) feed(data, n, false);
}

void ZstdCompressor::finish() { feed(nullptr, 0, true); }

ZstdDecompressor::ZstdDecompressor(ByteSource& from, std::uint64_t max_unpacked, std::string label)
    : from_(from), limit_(max_unpacked), label_(std::move(label)), z_(ZSTD_createDCtx(), free_dctx),
      in_(ZSTD_DStreamInSize()) {
    if (!z_) throw RuntimeError("cannot allocate a zstd decompressor");
}

ZstdDecompressor::~ZstdDecompressor() = default;

std::size_t ZstdDecompressor::read(void* data, std::size_t n) {
    if (n == 0) return 0;
    for (;;) {
        // zstd may hold decoded bytes that did not fit last time: those come before new input.
        const bool input_needed = in_pos_ == in_len_ && !out_full_;
        if (input_needed && !eof_) {
            in_len_ = from_.read(in_.data(), in_.size());
            in_pos_ = 0;
            eof_ = in_len_ == 0;
        }
        if (input_needed && eof_) {
            if (!frames_)
                throw IntegrityError(fmt::format("{}: the compressed stream is empty (not a zstd stream)", label_));
            if (mid_frame_)
                throw IntegrityError(fmt::format(
                    "{}: the compressed stream ends inside a zstd frame after {} unpacked bytes (truncated)", label_,
                    unpacked_));
            return 0;
        }
        ZSTD_inBuffer in{in_.data(), in_len_, in_pos_};
        ZSTD_outBuffer out{data, n, 0};
        const size_t rc = ZSTD_decompressStream(z_.get(), &out, &in);
        const bool progressed = in.pos != in_pos_ || out.pos > 0;
        in_pos_ = in.pos;
        if (ZSTD_isError(rc))
            throw IntegrityError(fmt::format("{}: corrupt compressed stream after {} unpacked bytes: {}", label_,
                                             unpacked_, ZSTD_getErrorName(rc)));
        // A call that took and gave nothing (a flush after a complete frame) says nothing
        // about where the stream is: zstd's hint would be the next frame's header size.
        if (progressed) {
            frames_ = true;
            mid_frame_ = rc != 0;
        }
        out_full_ = out.pos == n;
        if (out.pos == 0) continue;
        unpacked_ += out.pos;
        if (unpacked_ > limit_)
            throw IntegrityError(fmt::format(
                "{}: archive unpacks to more than {} bytes: refusing a possible decompression bomb", label_, limit_));
        return out.pos;
    }
}

}  // namespace bartl
