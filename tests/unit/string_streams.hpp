// In-memory byte streams for unit tests of stream stages (blob pipeline, child processes).
#pragma once

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "util/byte_stream.hpp"

namespace bartl::test {

/// ByteSink appending to a string.
class StringSink : public ByteSink {
public:
    void write(const void* data, std::size_t n) override { s.append(static_cast<const char*>(data), n); }
    std::string s;
};

/// ByteSource reading a string in reads of at most `step` bytes (exercises partial reads).
class StringSource : public ByteSource {
public:
    explicit StringSource(std::string s, std::size_t step = 5000) : s_(std::move(s)), step_(step) {}
    std::size_t read(void* data, std::size_t n) override {
        const std::size_t take = std::min({n, step_, s_.size() - pos_});
        std::memcpy(data, s_.data() + pos_, take);
        pos_ += take;
        return take;
    }

private:
    std::string s_;
    std::size_t step_;
    std::size_t pos_ = 0;
};

}  // namespace bartl::test
