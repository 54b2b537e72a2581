// InstanceLock with real lock files, a second open in this process, and a forked holder.
#include <catch2/catch.hpp>

#include <csignal>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.hpp"
#include "temp_dir.hpp"
#include "util/lock.hpp"

using namespace bartl;
using Catch::Matchers::Contains;

namespace {

/// The message of the LockedError a second lock attempt throws, or a marker when none.
std::string locked_message(const std::filesystem::path& dir, const std::string& name) {
    try {
        InstanceLock second(dir, name);
    } catch (const LockedError& e) {
        return e.what();
    }
    return "(not locked)";
}

}  // namespace

TEST_CASE("InstanceLock creates the directory and records our PID", "[lock]") {
    test::TempDir tmp;
    const auto dir = tmp / "var/lib/bartl/notes";
    InstanceLock lock(dir, "notes");
    CHECK(test::read_file(dir / "lock") == std::to_string(::getpid()) + "\n");
    struct stat st {};
    REQUIRE(::stat(dir.c_str(), &st) == 0);
    const mode_t umask = ::umask(0);
    ::umask(umask);
    CHECK((st.st_mode & 0777) == (0755 & ~umask));
}

TEST_CASE("a second InstanceLock is refused naming the holder's PID", "[lock]") {
    test::TempDir tmp;
    {
        InstanceLock lock(tmp.path(), "notes");
        const std::string msg = locked_message(tmp.path(), "notes");
        CHECK_THAT(msg, Contains("instance notes is locked by PID " + std::to_string(::getpid())));
        CHECK_THAT(msg, Contains("bartlctl -i notes backup"));
    }
    // Released with the object: the next one gets it.
    InstanceLock again(tmp.path(), "notes");
    CHECK(test::read_file(tmp / "lock") == std::to_string(::getpid()) + "\n");
}

TEST_CASE("a lock held by a killed process is free again", "[lock]") {
    test::TempDir tmp;
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        try {
            InstanceLock lock(tmp.path(), "notes");
            [[maybe_unused]] auto w = ::write(ready[1], "x", 1);
            ::pause();
        } catch (...) {
        }
        ::_exit(1);
    }
    ::close(ready[1]);
    char c = 0;
    REQUIRE(::read(ready[0], &c, 1) == 1);
    ::close(ready[0]);

    CHECK_THAT(locked_message(tmp.path(), "notes"), Contains("locked by PID " + std::to_string(child)));

    ::kill(child, SIGKILL);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFSIGNALED(status));

    InstanceLock mine(tmp.path(), "notes");
    CHECK(test::read_file(tmp / "lock") == std::to_string(::getpid()) + "\n");
}

TEST_CASE("InstanceLock reports an unusable directory as a runtime error, not as locked", "[lock]") {
    test::TempDir tmp;
    test::write_file(tmp / "file", "not a directory");
    try {
        InstanceLock lock(tmp / "file", "notes");
        FAIL("no error");
    } catch (const LockedError&) {
        FAIL("reported as locked");
    } catch (const RuntimeError& e) {
        CHECK_THAT(std::string(e.what()), Contains((tmp / "file").string()));
    }
}
