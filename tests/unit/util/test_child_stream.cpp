// ChildStream: a child process as a stream stage, with real programs (cat, head, sh, sleep).
// Neither side may deadlock on full pipes, a failure is quoted with the child's stderr, and no
// child outlives its stream.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>

#include "core/error.hpp"
#include "util/child_stream.hpp"
#include "../string_streams.hpp"

using namespace bartl;
using namespace bartl::test;

namespace {

std::string random_text(std::size_t n) {
    std::mt19937 rng(5);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>('a' + rng() % 26);
    return s;
}

ChildStreamSpec spec(std::vector<std::string> argv) {
    ChildStreamSpec s;
    s.argv = std::move(argv);
    s.cancel = CancelToken();
    return s;
}

/// True while `pid` exists (as a process or an unreaped zombie).
bool alive(pid_t pid) { return ::kill(pid, 0) == 0; }

}  // namespace

TEST_CASE("a filter child gets every byte and gives every byte back, far beyond the pipe sizes", "[child_stream]") {
    // 24 MiB through `cat`: both pipes fill up many times over; a writer that did not drain
    // the child's stdout while feeding it would hang here.
    const std::string data = random_text(24u << 20);
    SECTION("pushed by write()") {
        ChildStream c(spec({"cat"}));
        StringSink out;
        for (std::size_t pos = 0; pos < data.size(); pos += 3u << 20)
            c.write(data.data() + pos, std::min<std::size_t>(3u << 20, data.size() - pos), &out);
        c.finish(&out);
        CHECK(out.s.size() == data.size());
        CHECK(out.s == data);
    }
    for (const bool thread : {false, true}) {
        SECTION(thread ? "pulled by read(), fed by a thread of its own" : "pulled by read()") {
            auto s = spec({"cat"});
            s.feed_thread = thread;
            ChildStream c(std::move(s));
            StringSource in(data, 100000);
            std::string got;
            char buf[70000];
            for (;;) {
                const std::size_t n = c.read(buf, sizeof buf, &in);
                if (n == 0) break;
                got.append(buf, n);
            }
            CHECK(got == data);
            CHECK(c.read(buf, sizeof buf, &in) == 0);  // the end stays the end
        }
    }
}

TEST_CASE("a child that writes much more than it reads does not block its feeder", "[child_stream]") {
    // Every input byte becomes 64 output bytes: its stdout fills long before its stdin would.
    ChildStream c(spec({"sh", "-c", "while read -r line; do printf '%064d\\n' 0; done"}));
    StringSink out;
    std::string lines;
    for (int i = 0; i < 40000; ++i) lines += "x\n";
    c.write(lines.data(), lines.size(), &out);
    c.finish(&out);
    CHECK(out.s.size() == 40000u * 65);
}

TEST_CASE("a failing child is an error quoting its exit status and stderr", "[child_stream]") {
    auto s = spec({"sh", "-c", "cat >/dev/null; echo 'age: error: no identity matched' >&2; exit 3"});
    s.what = "age -d";
    ChildStream c(std::move(s));
    StringSink out;
    c.write("abc", 3, &out);
    try {
        c.finish(&out);
        FAIL("no error");
    } catch (const ChildFailed& e) {
        CHECK(std::string(e.what()) == "age -d exited with status 3: age: error: no identity matched");
        CHECK(e.exit_status == 3);
        CHECK(e.stderr_text == "age: error: no identity matched");
    }
}

TEST_CASE("a child killed by a signal is named so", "[child_stream]") {
    ChildStream c(spec({"sh", "-c", "kill -9 $$"}));
    char buf[16];
    CHECK_THROWS_WITH(c.read(buf, sizeof buf, nullptr), Catch::Contains("killed by signal 9 (SIGKILL)"));
}

TEST_CASE("a child that stops reading its input is an error, also when it exits 0", "[child_stream]") {
    const std::string data = random_text(8u << 20);
    SECTION("exit 0") {
        ChildStream c(spec({"head", "-c", "10"}));
        StringSink out;
        CHECK_THROWS_WITH(c.write(data.data(), data.size(), &out),
                          Catch::Contains("head exited with status 0 before it read all of its input"));
    }
    SECTION("exit 1") {
        ChildStream c(spec({"sh", "-c", "head -c 10 >/dev/null; echo bad input >&2; exit 1"}));
        StringSink out;
        CHECK_THROWS_WITH(c.write(data.data(), data.size(), &out),
                          Catch::Contains("exited with status 1: bad input"));
    }
}

TEST_CASE("a source child's failure arrives at the end of its output", "[child_stream]") {
    auto s = spec({"sh", "-c", "printf 'partial dump'; echo 'pg_dump: error: connection lost' >&2; exit 1"});
    s.input = false;
    s.what = "pg_dump";
    ChildStream c(std::move(s));
    std::string got;
    char buf[4];
    try {
        for (;;) {
            const std::size_t n = c.read(buf, sizeof buf, nullptr);
            if (n == 0) break;
            got.append(buf, n);
        }
        FAIL("no error");
    } catch (const ChildFailed& e) {
        CHECK(std::string(e.what()) == "pg_dump exited with status 1: pg_dump: error: connection lost");
    }
    CHECK(got == "partial dump");
}

TEST_CASE("a sink child (no stdout) takes its input", "[child_stream]") {
    char tmpl[] = "/tmp/bartl-child-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    const std::string file = std::string(tmpl) + "/got";
    auto s = spec({"sh", "-c", "cat > \"$0\"", file});
    s.output = false;
    ChildStream c(std::move(s));
    c.write("restored rows\n", 14, nullptr);
    c.finish(nullptr);
    std::FILE* f = std::fopen(file.c_str(), "r");
    REQUIRE(f != nullptr);
    char buf[64] = {};
    CHECK(std::fread(buf, 1, sizeof buf, f) == 14);
    std::fclose(f);
    CHECK(std::string(buf) == "restored rows\n");
    std::remove(file.c_str());
    ::rmdir(tmpl);
}

namespace {

/// A source that throws after `good` bytes, as a store connection that breaks mid-blob.
class BreakingSource : public ByteSource {
public:
    explicit BreakingSource(std::size_t good) : good_(good) {}
    std::size_t read(void* data, std::size_t n) override {
        if (done_ >= good_) throw RuntimeError("the store connection broke");
        const std::size_t take = std::min(n, good_ - done_);
        std::memset(data, 'x', take);
        done_ += take;
        return take;
    }

private:
    std::size_t good_;
    std::size_t done_ = 0;
};

/// `cat` (or `argv`) fed by a thread of its own.
ChildStreamSpec fed(std::vector<std::string> argv = {"cat"}) {
    auto s = spec(std::move(argv));
    s.feed_thread = true;
    return s;
}

}  // namespace

TEST_CASE("a feeding thread's upstream error is what read() throws, and the child is killed", "[child_stream]") {
    BreakingSource in(5u << 20);
    ChildStream c(fed());
    const pid_t pid = c.pid();
    char buf[65536];
    std::size_t got = 0;
    try {
        for (;;) {
            const std::size_t n = c.read(buf, sizeof buf, &in);
            if (n == 0) break;
            got += n;
        }
        FAIL("no error");
    } catch (const ChildFailed& e) {
        FAIL(std::string("the child's exit instead of the upstream error: ") + e.what());
    } catch (const RuntimeError& e) {
        CHECK(std::string(e.what()) == "the store connection broke");
    }
    CHECK(got <= (5u << 20));
    CHECK_FALSE(alive(pid));  // killed, and reaped by read() before it threw
}

TEST_CASE("a fed child that stops reading: its exit status decides, the rest stays unread", "[child_stream]") {
    const std::string data = random_text(8u << 20);
    SECTION("exit 0 after its output") {
        ChildStream c(fed({"head", "-c", "10"}));
        StringSource in(data, 100000);
        char buf[64];
        std::string got;
        for (;;) {
            const std::size_t n = c.read(buf, sizeof buf, &in);
            if (n == 0) break;
            got.append(buf, n);
        }
        CHECK(got == data.substr(0, 10));
        char rest[16];
        CHECK(in.read(rest, sizeof rest) > 0);  // the caller may drain what is left
    }
    SECTION("exit 1") {
        ChildStream c(fed({"sh", "-c", "head -c 10 >/dev/null; echo bad input >&2; exit 1"}));
        StringSource in(data, 100000);
        char buf[64];
        CHECK_THROWS_WITH(c.read(buf, sizeof buf, &in), Catch::Contains("exited with status 1: bad input"));
    }
}

TEST_CASE("a fed stream cancelled or abandoned while its feeder is blocked ends at once", "[child_stream]") {
    // `sleep` reads nothing: the feeder fills the stdin pipe and blocks on it.
    const std::string data = random_text(8u << 20);
    const auto started = std::chrono::steady_clock::now();
    pid_t pid = 0;
    SECTION("cancelled") {
        CancelToken token;
        auto s = fed({"sleep", "60"});
        s.cancel = token;
        std::thread canceller([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(300));
            token.cancel("bartld is stopping");
        });
        {
            ChildStream c(std::move(s));
            pid = c.pid();
            StringSource in(data, 100000);
            char buf[16];
            CHECK_THROWS_AS(c.read(buf, sizeof buf, &in), StopRequested);
        }
        canceller.join();
    }
    SECTION("destroyed by an exception") {
        StringSource in(data, 100000);
        try {
            ChildStream c(fed({"sh", "-c", "echo started; exec sleep 60"}));
            pid = c.pid();
            char buf[16];
            CHECK(c.read(buf, sizeof buf, &in) > 0);
            std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the feeder is blocked by now
            throw RuntimeError("the extractor failed");
        } catch (const RuntimeError&) {
        }
    }
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));
    CHECK_FALSE(alive(pid));
}

TEST_CASE("a missing program cannot be started, and says so", "[child_stream]") {
    auto s = spec({"no-such-program-bartl"});
    s.what = "age -r";
    CHECK_THROWS_WITH(ChildStream(std::move(s)),
                      Catch::Contains("cannot start age -r: no-such-program-bartl: No such file or directory"));
}

TEST_CASE("a cancelled stream kills and reaps its child", "[child_stream]") {
    CancelToken token;
    auto s = spec({"sleep", "60"});
    s.cancel = token;
    s.input = false;
    pid_t pid = 0;
    const auto started = std::chrono::steady_clock::now();
    std::thread canceller([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        token.cancel("bartld is stopping");
    });
    {
        ChildStream c(std::move(s));
        pid = c.pid();
        char buf[16];
        CHECK_THROWS_AS(c.read(buf, sizeof buf, nullptr), StopRequested);
    }
    canceller.join();
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));
    CHECK_FALSE(alive(pid));  // killed and reaped: not even a zombie is left
}

TEST_CASE("a stream abandoned by an exception kills and reaps its child and its children", "[child_stream]") {
    pid_t pid = 0;
    std::string grandchild;
    try {
        ChildStream c(spec({"sh", "-c", "sleep 60 & echo $!; wait"}));
        pid = c.pid();
        char buf[32];
        const std::size_t n = c.read(buf, sizeof buf, nullptr);
        grandchild.assign(buf, n);
        throw RuntimeError("the store went away");
    } catch (const RuntimeError&) {
    }
    CHECK_FALSE(alive(pid));
    const pid_t g = std::stoi(grandchild);
    // The process group got SIGKILL; the orphaned sleep is reaped by init, give it a moment.
    for (int i = 0; i < 100 && alive(g); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK_FALSE(alive(g));
}

TEST_CASE("run_child collects stdout and passes in-memory files as descriptors", "[child_stream]") {
    const int fd = memory_file("allowed_signers", "bartl ssh-ed25519 AAAA\n");
    auto s = spec({"sh", "-c", "cat /dev/fd/3; tr a-z A-Z"});
    s.fds = {{3, fd}};
    const auto r = run_child(std::move(s), "signed data\n");
    ::close(fd);
    CHECK(r.out == "bartl ssh-ed25519 AAAA\nSIGNED DATA\n");
}

TEST_CASE("no descriptor of ours leaks into the child", "[child_stream]") {
    const int fd = memory_file("secret", "x");
    const auto r = run_child(spec({"sh", "-c", "ls /proc/self/fd"}), "");
    ::close(fd);
    // 0, 1, 2 and the descriptor ls itself opens for the directory listing.
    CHECK(r.out == "0\n1\n2\n3\n");
}
