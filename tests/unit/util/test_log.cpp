// Logging to stderr, the level filter and journal detection. The logger reads its settings
// once per process, so each case logs from a fresh fork()ed child.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fcntl.h>
#include <functional>
#include <sstream>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <cstring>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "temp_dir.hpp"
#include "util/log.hpp"

using namespace bartl;

namespace {

/// Runs `fn` in a forked child whose stderr is a scratch file; returns what it wrote there.
std::string stderr_of(const std::function<void()>& fn, const char* level_env = nullptr) {
    return test::in_child([&] {
        char path[] = "/tmp/bartl-log-test-XXXXXX";
        const int fd = ::mkstemp(path);
        if (fd < 0)
            return std::string("(no scratch file)");
        ::unlink(path);
        ::dup2(fd, 2);
        ::unsetenv("JOURNAL_STREAM");
        if (level_env)
            ::setenv("BARTL_LOG_LEVEL", level_env, 1);
        else
            ::unsetenv("BARTL_LOG_LEVEL");
        // The parent may have logged already (other test cases): settings are per process.
        log::reinitialise();
        fn();
        std::string out;
        char buf[4096];
        ssize_t n;
        for (off_t at = 0; (n = ::pread(fd, buf, sizeof buf, at)) > 0; at += n)
            out.append(buf, std::size_t(n));
        return out;
    });
}

void every_level() {
    log::error("e");
    log::warn("w");
    log::notice("n");
    log::info("i");
    log::debug("d");
}

}  // namespace

TEST_CASE("log writes 'bartld: level: message' lines to stderr", "[log]") {
    const auto out = stderr_of([] {
        log::set_context("BARTL_INSTANCE", "notes");
        log::write(log::Level::notice, "restored backup 3f9a", {{"BARTL_BACKUP_ID", "3f9a"}},
                   "b1a5c0f2d3e44f1a9c8e7d6b5a4f3e2d");
        log::error("hook failed");
    });
    // Context and per-entry fields belong to the journal only.
    CHECK(out == "bartld: notice: restored backup 3f9a\nbartld: error: hook failed\n");
}

TEST_CASE("log filters by BARTL_LOG_LEVEL, default info", "[log]") {
    CHECK(stderr_of(every_level) ==
          "bartld: error: e\nbartld: warning: w\nbartld: notice: n\nbartld: info: i\n");
    CHECK(stderr_of(every_level, "warning") == "bartld: error: e\nbartld: warning: w\n");
    CHECK(stderr_of(every_level, "debug") ==
          "bartld: error: e\nbartld: warning: w\nbartld: notice: n\nbartld: info: i\nbartld: debug: d\n");
    const auto typo = stderr_of(every_level, "verbose");
    CHECK(typo.find("BARTL_LOG_LEVEL=verbose") != std::string::npos);
    CHECK(typo.find("bartld: info: i\n") != std::string::npos);
    CHECK(typo.find("bartld: debug: d") == std::string::npos);
}

TEST_CASE("log keeps lines whole under concurrent writers", "[log]") {
    const auto out = stderr_of([] {
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t)
            threads.emplace_back([t] {
                for (int i = 0; i < 300; ++i)
                    log::info("thread " + std::to_string(t) + " line " + std::to_string(i));
            });
        for (auto& th : threads)
            th.join();
    });
    std::istringstream in(out);
    std::string line;
    int count = 0;
    while (std::getline(in, line)) {
        ++count;
        CHECK(line.rfind("bartld: info: thread ", 0) == 0);
        CHECK(line.find("bartld", 1) == std::string::npos);
    }
    CHECK(count == 1200);
}

TEST_CASE("stderr_is_journal compares JOURNAL_STREAM with fd 2", "[log]") {
    struct stat st {};
    REQUIRE(::fstat(2, &st) == 0);
    const char* saved = std::getenv("JOURNAL_STREAM");
    const std::string keep = saved ? saved : "";
    ::setenv("JOURNAL_STREAM", (std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino)).c_str(), 1);
    CHECK(log::stderr_is_journal());
    ::setenv("JOURNAL_STREAM", (std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1)).c_str(), 1);
    CHECK_FALSE(log::stderr_is_journal());
    ::unsetenv("JOURNAL_STREAM");
    CHECK_FALSE(log::stderr_is_journal());
    if (saved)
        ::setenv("JOURNAL_STREAM", keep.c_str(), 1);
}

TEST_CASE("parse_level knows the five names", "[log]") {
    CHECK(log::parse_level("error") == log::Level::err);
    CHECK(log::parse_level("warning") == log::Level::warning);
    CHECK(log::parse_level("notice") == log::Level::notice);
    CHECK(log::parse_level("info") == log::Level::info);
    CHECK(log::parse_level("debug") == log::Level::debug);
    CHECK_FALSE(log::parse_level("warn"));
    CHECK_FALSE(log::parse_level(""));
}

TEST_CASE("printable keeps valid UTF-8 and escapes everything else", "[log]") {
    using log::printable;
    CHECK(printable("plain ASCII, a tab\tand\nnewline") == "plain ASCII, a tab\tand\nnewline");
    CHECK(printable("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") == "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    // Found by the sanitizer runs: a corrupt manifest quoted by the JSON parser put raw bytes
    // ("last read: '\"\x83'") on stderr.
    CHECK(printable("last read: '\"\x83'") == "last read: '\"\\x83'");
    CHECK(printable("bad\xff\xfe name") == "bad\\xff\\xfe name");
    CHECK(printable("\x1b[31mred") == "\\x1b[31mred");                    // control characters
    CHECK(printable("\xc3") == "\\xc3");                                  // truncated sequence
    CHECK(printable("\xc0\xaf") == "\\xc0\\xaf");                         // overlong '/'
    CHECK(printable("\xed\xa0\x80") == "\\xed\\xa0\\x80");                // UTF-16 surrogate
    CHECK(printable("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80");       // above U+10FFFF
    CHECK(printable(std::string_view("nul\0byte", 8)) == "nul\\x00byte");
}

// ---- the output of child processes (the app, hooks) ---------------------------------------

TEST_CASE("child_entry builds the journal fields of one line", "[log][child]") {
    const std::vector<std::pair<std::string, std::string>> fields{{"BARTL_INSTANCE", "redis"}, {"BARTL_HOOK", "init"}};
    CHECK(log::child_entry("redis-server", 4242, log::Stream::out, "Ready to accept connections", fields) ==
          std::vector<std::string>{"MESSAGE=Ready to accept connections", "PRIORITY=6", "SYSLOG_IDENTIFIER=redis-server",
                                   "SYSLOG_PID=4242", "BARTL_STREAM=stdout", "BARTL_INSTANCE=redis",
                                   "BARTL_HOOK=init"});
    // stderr has the same priority, as in systemd's stream logging; a "<N>" prefix sets it.
    CHECK(log::child_entry("notes.py", 0, log::Stream::err, "<3>disk full", {}) ==
          std::vector<std::string>{"MESSAGE=disk full", "PRIORITY=3", "SYSLOG_IDENTIFIER=notes.py",
                                   "BARTL_STREAM=stderr"});
    CHECK(log::child_entry("x", 1, log::Stream::err, "<8>not a level", {})[0] == "MESSAGE=<8>not a level");
    CHECK(log::child_entry("x", 1, log::Stream::err, "<7", {})[1] == "PRIORITY=6");
}

TEST_CASE("ChildOutput forwards whole lines to stderr as \"[NAME] line\"", "[log][child]") {
    const auto out = stderr_of([] {
        log::ChildOutput o("notes.py", log::Stream::out);
        o.feed("first\nsec");
        o.feed("ond\n\nthird");
        log::info("between");  // a line in progress is not interrupted by it, only held back
        o.feed(std::string(5000, 'x'));
        o.finish();
        o.feed("after finish\n");
    });
    CHECK(out == "[notes.py] first\n[notes.py] second\n[notes.py] \nbartld: info: between\n[notes.py] third" +
                     std::string(4096 - 5, 'x') + "\n[notes.py] " + std::string(5000 - 4091, 'x') +
                     "\n[notes.py] after finish\n");
}

namespace {

/// The journal's native protocol (systemd's JOURNAL_NATIVE_PROTOCOL): one datagram per
/// entry, "NAME=value\n" per field, or "NAME\n" + 64-bit little-endian length + value + "\n".
std::vector<std::string> journal_fields(const std::string& datagram) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < datagram.size()) {
        const auto nl = datagram.find('\n', i);
        const std::string head = datagram.substr(i, nl - i);
        if (head.find('=') != std::string::npos) {
            out.push_back(head);
            i = nl + 1;
            continue;
        }
        std::uint64_t len = 0;
        std::memcpy(&len, datagram.data() + nl + 1, 8);
        out.push_back(head + "=" + datagram.substr(nl + 9, len));
        i = nl + 9 + len + 1;
    }
    return out;
}

}  // namespace

TEST_CASE("under the journal, child lines go to it through sd_journal_send with their fields", "[log][child]") {
    // A real datagram socket where libsystemd sends: /run/systemd/journal/socket, in a
    // private mount namespace of a forked child, so the host's journal is untouched.
    const std::string out = stderr_of([] {
        auto say = [](const std::string& s) { [[maybe_unused]] auto r = ::write(2, s.data(), s.size()); };
        if (::unshare(CLONE_NEWNS) != 0 || ::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
            ::mount("tmpfs", "/run", "tmpfs", 0, "size=1m") != 0) {
            say("SKIP");
            return;
        }
        ::mkdir("/run/systemd", 0755);
        ::mkdir("/run/systemd/journal", 0755);
        const int journal = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strcpy(addr.sun_path, "/run/systemd/journal/socket");
        if (::bind(journal, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            say("SKIP");
            return;
        }
        // Our stderr is the journal stream now, as systemd would have set it up.
        struct stat st {};
        ::fstat(2, &st);
        ::setenv("JOURNAL_STREAM", (std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino)).c_str(), 1);
        log::reinitialise();
        log::set_context("BARTL_INSTANCE", "redis");
        {
            log::ChildOutput o("migrate-2.0.0", log::Stream::err, {{"BARTL_HOOK", "migration"}});
            o.set_pid(777);
            o.feed("<4>low memory\nmulti\nline");
        }
        ::unsetenv("JOURNAL_STREAM");
        log::reinitialise();
        char buf[8192];
        ssize_t n;
        while ((n = ::recv(journal, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
            std::string entry;
            for (const auto& f : journal_fields(std::string(buf, std::size_t(n))))
                entry += f + "|";
            say(entry + "\n");
        }
    });
    if (out == "SKIP") {
        WARN("no private mount namespace here: the journal path is not tested");
        return;
    }
    const std::string common = "SYSLOG_IDENTIFIER=migrate-2.0.0|SYSLOG_PID=777|BARTL_STREAM=stderr|BARTL_INSTANCE=redis|"
                               "BARTL_HOOK=migration|";
    CHECK(out == "MESSAGE=low memory|PRIORITY=4|" + common + "\nMESSAGE=multi|PRIORITY=6|" + common +
                     "\nMESSAGE=line|PRIORITY=6|" + common + "\n");
}
