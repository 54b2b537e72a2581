// ChunkPipe: the bounded byte pipe between the two stages of a blob stream (backup: tar |
// zstd, restore: zstd -d | extract), with real threads.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include "blob/pipe.hpp"

using namespace bartl;

namespace {

/// Everything the consumer pops until the end of the stream, concatenated.
std::string drain(ChunkPipe& pipe) {
    std::string out;
    for (;;) {
        const auto c = pipe.pop();
        if (c.empty()) return out;
        out.append(c.data(), c.size());
    }
}

}  // namespace

TEST_CASE("a pipe delivers every byte in order across threads, in chunks of bounded size", "[pipe]") {
    ChunkPipe pipe(3, 7);  // tiny: the producer blocks on a full pipe again and again
    std::string sent;
    for (int i = 0; i < 5000; ++i) sent += std::to_string(i) + ",";
    bool all_pushed = true;  // Catch2 assertions are not thread-safe: checked after join
    std::thread producer([&] {
        for (std::size_t pos = 0; pos < sent.size(); pos += 13) {
            const auto n = std::min<std::size_t>(13, sent.size() - pos);
            all_pushed = pipe.push(sent.data() + pos, n) && all_pushed;
        }
        pipe.close();
    });
    std::string got;
    std::size_t largest = 0;
    for (;;) {
        const auto c = pipe.pop();
        if (c.empty()) break;
        largest = std::max(largest, c.size());
        got.append(c.data(), c.size());
    }
    producer.join();
    CHECK(all_pushed);
    CHECK(got == sent);
    CHECK(largest <= 7);
    CHECK(pipe.pop().empty());  // the end stays the end
}

TEST_CASE("a producer's failure reaches the consumer after the data before it", "[pipe]") {
    ChunkPipe pipe;
    std::thread producer([&] {
        pipe.push("abc", 3);
        pipe.fail(std::make_exception_ptr(std::runtime_error("SHA-256 mismatch")));
    });
    std::string got;
    CHECK_THROWS_WITH(([&] {
                          for (;;) {
                              const auto c = pipe.pop();
                              if (c.empty()) break;
                              got.append(c.data(), c.size());
                          }
                      }()),
                      "SHA-256 mismatch");
    producer.join();
    CHECK(got == "abc");
}

TEST_CASE("cancel unblocks a producer waiting on a full pipe and a consumer waiting on an empty one", "[pipe]") {
    SECTION("producer") {
        ChunkPipe pipe(1, 4);
        std::atomic<bool> returned{false};
        bool result = true;
        std::thread producer([&] {
            result = pipe.push("0123456789abcdef", 16);  // needs 4 chunks, room for 1
            returned = true;
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        CHECK_FALSE(returned.load());
        pipe.cancel();
        producer.join();
        CHECK_FALSE(result);
        CHECK_FALSE(pipe.push("x", 1));
    }
    SECTION("consumer") {
        ChunkPipe pipe;
        std::thread owner([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            pipe.cancel();
        });
        CHECK_THROWS_AS(drain(pipe), PipeCancelled);
        owner.join();
    }
}

TEST_CASE("an empty stream ends at once", "[pipe]") {
    ChunkPipe pipe;
    pipe.push("", 0);
    pipe.close();
    CHECK(drain(pipe).empty());
}
