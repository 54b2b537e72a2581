// A bounded byte pipe between two threads of one blob stream: backup runs the tar writer and
// the zstd compressor on separate cores, restore runs decompression + SHA-256 and extraction
// on separate cores, like `tar | zstd` and `zstd -dc | tar -x` do with two processes.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <span>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "util/byte_stream.hpp"

namespace bartl {

/// Thrown by ChunkPipe::pop() after cancel(): the other side stopped and reports why itself.
struct PipeCancelled : std::runtime_error {
    PipeCancelled() : std::runtime_error("the other stage of the stream stopped") {}
};

/// Single-producer, single-consumer queue of byte chunks with a fixed capacity: at most
/// `max_chunks` chunks of at most `chunk_bytes` bytes each are buffered (memory bounded by
/// configuration, not data). The producer ends the stream with close() or fail(); either side
/// (or their owner) stops it with cancel(), after which push() returns false and pop() throws
/// PipeCancelled. Thread-safe for one producer and one consumer thread.
class ChunkPipe {
public:
    /// `max_chunks` >= 1 chunks of up to `chunk_bytes` (bytes) each.
    explicit ChunkPipe(std::size_t max_chunks = 16, std::size_t chunk_bytes = 256 * 1024)
        : max_chunks_(std::max<std::size_t>(1, max_chunks)), chunk_bytes_(std::max<std::size_t>(1, chunk_bytes)) {}

    /// Producer: copies `n` bytes into the pipe, blocking while it is full. Returns false (and
    /// copies nothing more) once the consumer has cancelled.
    bool push(const void* data, std::size_t n) {
        const auto* p = static_cast<const char*>(data);
        while (n > 0) {
            const std::size_t take = std::min(n, chunk_bytes_);
            std::unique_lock lock(mu_);
            space_.wait(lock, [&] { return cancelled_ || queue_.size() < max_chunks_; });
            if (cancelled_) return false;
            std::vector<char> chunk;
            if (!free_.empty()) {
                chunk = std::move(free_.back());
                free_.pop_back();
            }
            chunk.assign(p, p + take);
            queue_.push_back(std::move(chunk));
            data_.notify_one();
            p += take;
            n -= take;
        }
        return !cancelled();
    }

    /// Producer: the stream ended normally; the consumer sees an empty chunk after the last one.
    void close() {
        std::lock_guard lock(mu_);
        closed_ = true;
        data_.notify_one();
    }

    /// Producer: the stream ended with `error`; the consumer's pop() rethrows it once the chunks
    /// before it are consumed.
    void fail(std::exception_ptr error) {
        std::lock_guard lock(mu_);
        error_ = std::move(error);
        closed_ = true;
        data_.notify_one();
    }

    /// Consumer: the next chunk, valid until the next pop(); an empty span at the end of the
    /// stream. Blocks while the pipe is empty and open. Throws what the producer passed to fail(),
    /// or PipeCancelled after cancel().
    std::span<const char> pop() {
        std::unique_lock lock(mu_);
        if (current_.capacity() > 0) free_.push_back(std::move(current_));
        current_ = {};
        data_.wait(lock, [&] { return !queue_.empty() || closed_ || cancelled_; });
        if (cancelled_) throw PipeCancelled();
        if (queue_.empty()) {
            if (error_) std::rethrow_exception(error_);
            return {};
        }
        current_ = std::move(queue_.front());
        queue_.pop_front();
        space_.notify_one();
        return {current_.data(), current_.size()};
    }

    /// Stops the stream from either side: a blocked or later push() returns false, a blocked or
    /// later pop() throws PipeCancelled. Idempotent.
    void cancel() {
        std::lock_guard lock(mu_);
        cancelled_ = true;
        space_.notify_all();
        data_.notify_all();
    }

    /// Whether the stream was cancelled.
    bool cancelled() const {
        std::lock_guard lock(mu_);
        return cancelled_;
    }

private:
    const std::size_t max_chunks_;
    const std::size_t chunk_bytes_;
    mutable std::mutex mu_;
    std::condition_variable space_;
    std::condition_variable data_;
    std::deque<std::vector<char>> queue_;
    std::vector<std::vector<char>> free_;  // recycled chunk buffers (at most max_chunks + 1 exist)
    std::vector<char> current_;            // the chunk the consumer is reading
    bool closed_ = false;
    bool cancelled_ = false;
    std::exception_ptr error_;
};

/// The producer's side of a pipe as a ByteSink: the stage before a thread boundary writes to it.
class PipeSink : public ByteSink {
public:
    explicit PipeSink(ChunkPipe& pipe) : pipe_(pipe) {}
    /// Copies `n` bytes into the pipe, blocking while it is full. Throws PipeCancelled once the
    /// consumer stopped (it reports why).
    void write(const void* data, std::size_t n) override {
        if (!pipe_.push(data, n)) throw PipeCancelled();
    }

private:
    ChunkPipe& pipe_;
};

/// The consumer's side of a pipe as a ByteSource; next() lends the pipe's chunks without a
/// copy (the tar extractor reads that way).
class PipeSource : public ByteSource {
public:
    explicit PipeSource(ChunkPipe& pipe) : pipe_(pipe) {}
    /// The next chunk, valid until the next call; empty at the end. Throws as ChunkPipe::pop().
    std::span<const char> next() {
        if (pos_ < chunk_.size()) {
            auto rest = chunk_.subspan(pos_);
            pos_ = chunk_.size();
            return rest;
        }
        chunk_ = pipe_.pop();
        pos_ = chunk_.size();
        return chunk_;
    }
    /// Copies up to `n` bytes; 0 at the end. Throws as ChunkPipe::pop().
    std::size_t read(void* data, std::size_t n) override {
        if (pos_ == chunk_.size()) {
            chunk_ = pipe_.pop();
            pos_ = 0;
            if (chunk_.empty()) return 0;
        }
        const std::size_t take = std::min(n, chunk_.size() - pos_);
        std::memcpy(data, chunk_.data() + pos_, take);
        pos_ += take;
        return take;
    }
    /// Reads to the end of the stream, so the producer's verdict (close() or fail()) arrives.
    void drain() {
        while (!next().empty()) {
        }
    }

private:
    ChunkPipe& pipe_;
    std::span<const char> chunk_;
    std::size_t pos_ = 0;
};

/// Joins a pipeline thread on every way out of its scope, cancelling the pipe first so a
/// producer blocked on a full pipe (or a consumer on an empty one) returns.
class PipelineThread {
public:
    PipelineThread(ChunkPipe& pipe, std::thread t) : pipe_(pipe), t_(std::move(t)) {}
    ~PipelineThread() { join(); }
    PipelineThread(const PipelineThread&) = delete;
    PipelineThread& operator=(const PipelineThread&) = delete;
    /// Waits for the thread; cancels the pipe first unless the stream was finished normally.
    void join(bool cancel = true) {
        if (!t_.joinable()) return;
        if (cancel) pipe_.cancel();
        t_.join();
    }

private:
    ChunkPipe& pipe_;
    std::thread t_;
};

}  // namespace bartl
