// The blob pipeline's stages one by one (blob.hpp composes them): SHA-256 + size, zstd both
// ways with the bomb limit, against the zstd tool where it matters.
#include <catch2/catch.hpp>

#include <random>
#include <string>

#include "blob/hash_stage.hpp"
#include "blob/zstd_stage.hpp"
#include "blob_test_util.hpp"
#include "../string_streams.hpp"
#include "core/error.hpp"

using namespace bartl;
using namespace bartl::test;

namespace {

std::string mixed_data(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::string s;
    while (s.size() < n) {
        if (rng() % 2)
            s += std::string(rng() % 3000, char('a' + rng() % 3));  // compressible runs
        else
            for (int i = 0; i < 2000; ++i) s += char(rng());  // noise
    }
    s.resize(n);
    return s;
}

std::string compress(const std::string& data, int level, int threads) {
    StringSink out;
    ZstdCompressor z(out, level, threads);
    for (std::size_t pos = 0; pos < data.size(); pos += 100000)
        z.write(data.data() + pos, std::min<std::size_t>(100000, data.size() - pos));
    z.finish();
    return out.s;
}

std::string decompress(const std::string& packed, std::uint64_t limit = 1ull << 40, std::size_t read_size = 65536) {
    StringSource in(packed, 777);
    ZstdDecompressor z(in, limit, "backup t");
    std::string got(read_size, '\0'), out;
    for (;;) {
        const std::size_t n = z.read(got.data(), got.size());
        if (n == 0) return out;
        out.append(got.data(), n);
    }
}

std::string sha256_of(const std::string& s) {
    StringSink ignored;
    HashingSink h(ignored);
    h.write(s.data(), s.size());
    return h.finish();
}

}  // namespace

TEST_CASE("the hashing sink counts and hashes what it passes on", "[stages][hash]") {
    StringSink out;
    HashingSink h(out);
    h.write("abc", 3);
    h.write("", 0);
    CHECK(h.size() == 3);
    CHECK(out.s == "abc");
    // FIPS 180-4's example "abc".
    CHECK(h.finish() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("the hashing source checks size and SHA-256 and stops a stream that gets too long", "[stages][hash]") {
    const std::string data = mixed_data(300000, 1);
    const std::string sha = sha256_of(data);
    {
        StringSource src(data);
        HashingSource h(src, data.size(), "backup 1");
        char buf[1000];
        CHECK(h.read(buf, sizeof buf) > 0);
        CHECK_NOTHROW(h.verify(sha));  // drains the rest itself
        CHECK(h.consumed() == data.size());
    }
    {
        StringSource src(data);
        HashingSource h(src, data.size(), "backup 1");
        std::string upper = sha;
        for (auto& c : upper) c = char(std::toupper(static_cast<unsigned char>(c)));
        CHECK_NOTHROW(h.verify(upper));
    }
    {
        StringSource src(data);
        HashingSource h(src, data.size(), "backup 1");
        CHECK_THROWS_WITH(h.verify(std::string(64, 'a')),
                          Catch::Contains("backup 1: SHA-256 mismatch: expected aaaa") && Catch::Contains(sha));
    }
    {
        StringSource src(data);
        HashingSource h(src, data.size() + 1, "backup 1");
        CHECK_THROWS_WITH(h.verify(sha), Catch::Contains("backup 1: size mismatch: expected 300001 bytes, got 300000"));
    }
    {
        StringSource src(data);
        HashingSource h(src, 1000, "backup 1");
        std::string buf(4096, '\0');
        // Refused at the read that crosses the expected size, not at the end of the stream.
        CHECK_THROWS_WITH(h.read(buf.data(), buf.size()), Catch::Contains("backup 1: blob is longer than the expected 1000 bytes"));
    }
}

TEST_CASE("zstd round trips in one frame with a content checksum, on one thread or with workers", "[stages][zstd]") {
    const std::string data = mixed_data(5u << 20, 2);
    TempDir tmp;
    for (int threads : {1, 2, 0}) {
        INFO("threads " << threads);
        const std::string packed = compress(data, 3, threads);
        CHECK(packed.size() < data.size());
        CHECK(decompress(packed) == data);
        CHECK(decompress(packed, 1ull << 40, 1) == data.substr(0, data.size()));  // one byte per read
        write_file(tmp / "x.zst", packed);
        CHECK_THAT(run("zstd -lv '" + (tmp / "x.zst").string() + "'"),
                   Catch::Contains("# Zstandard Frames: 1") && Catch::Contains("Check: XXH64"));
        CHECK(run("zstd -dc '" + (tmp / "x.zst").string() + "'") == data);
    }
}

TEST_CASE("the decompressor reads what the zstd tool writes: several frames, skippable frames", "[stages][zstd]") {
    TempDir tmp;
    write_file(tmp / "a", "first part\n");
    write_file(tmp / "b", "second part\n");
    run("zstd -q '" + (tmp / "a").string() + "' '" + (tmp / "b").string() + "'");
    // Two frames back to back, with a skippable frame (magic 0x184D2A50, 4 bytes) between.
    const std::string skippable("\x50\x2a\x4d\x18\x04\x00\x00\x00skip", 12);
    const std::string packed = read_file(tmp / "a.zst") + skippable + read_file(tmp / "b.zst");
    CHECK(decompress(packed) == "first part\nsecond part\n");
}

TEST_CASE("the decompressor refuses damage, truncation, non-zstd data and bombs", "[stages][zstd]") {
    const std::string data = mixed_data(2u << 20, 3);
    const std::string packed = compress(data, 3, 1);
    SECTION("empty") { CHECK_THROWS_WITH(decompress(""), Catch::Contains("backup t: the compressed stream is empty")); }
    SECTION("not zstd") {
        CHECK_THROWS_AS(decompress(std::string(1000, 'x')), IntegrityError);
        CHECK_THROWS_WITH(decompress(std::string(1000, 'x')), Catch::Contains("corrupt compressed stream after 0"));
    }
    SECTION("truncated") {
        CHECK_THROWS_WITH(decompress(packed.substr(0, packed.size() / 2)),
                          Catch::Contains("ends inside a zstd frame") && Catch::Contains("(truncated)"));
        CHECK_THROWS_WITH(decompress(packed.substr(0, packed.size() - 1)), Catch::Contains("ends inside a zstd frame"));
    }
    SECTION("a flipped byte in the middle") {
        std::string bad = packed;
        bad[bad.size() / 2] ^= 0x20;
        CHECK_THROWS_AS(decompress(bad), IntegrityError);
    }
    SECTION("a flipped byte in the content checksum") {
        std::string bad = packed;
        bad[bad.size() - 2] ^= 0x01;
        CHECK_THROWS_WITH(decompress(bad), Catch::Contains("corrupt compressed stream") && Catch::Contains("checksum"));
    }
    SECTION("garbage after the frame") {
        CHECK_THROWS_AS(decompress(packed + "trailing"), IntegrityError);
    }
    SECTION("more than the limit unpacks") {
        const std::string zeros = compress(std::string(8u << 20, '\0'), 3, 1);
        CHECK(zeros.size() < 4096);
        CHECK_THROWS_WITH(decompress(zeros, 1u << 20),
                          Catch::Contains("backup t: archive unpacks to more than 1048576 bytes") &&
                              Catch::Contains("decompression bomb"));
        CHECK(decompress(zeros, 8u << 20).size() == 8u << 20);  // exactly at the limit is fine
    }
}

TEST_CASE("the compressor refuses levels and thread counts zstd does not take", "[stages][zstd]") {
    StringSink out;
    CHECK_THROWS_AS(ZstdCompressor(out, 0, 1), ConfigError);
    CHECK_THROWS_WITH(ZstdCompressor(out, 99, 1), Catch::Contains("compression zstd:99 with 1 thread(s)"));
}
