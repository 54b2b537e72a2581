// Byte streams: what a blob stage writes to or reads from (a store object, a pipe, a file).
#pragma once

#include <cstddef>

namespace bartl {

/// Destination of a byte stream.
class ByteSink {
public:
    virtual ~ByteSink() = default;
    /// Appends `n` bytes. Throws RuntimeError (e.g. ENOSPC, naming the path or URL).
    virtual void write(const void* data, std::size_t n) = 0;
};

/// Source of a byte stream.
class ByteSource {
public:
    virtual ~ByteSource() = default;
    /// Reads up to `n` bytes into `data`; returns 0 only at the end. Throws RuntimeError.
    virtual std::size_t read(void* data, std::size_t n) = 0;
};

}  // namespace bartl
