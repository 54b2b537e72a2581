// sd_notify towards a real datagram socket, and the app-side Listener.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

#include "core/error.hpp"
#include "temp_dir.hpp"
#include "util/notify.hpp"

using namespace bartl;
using Catch::Matchers::Contains;

namespace {

sockaddr_un unix_address(const std::filesystem::path& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    return addr;
}

/// A datagram socket bound at `path`, built by hand so the test does not trust Listener.
struct RawSocket {
    explicit RawSocket(const std::filesystem::path& path) {
        fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        const auto addr = unix_address(path);
        REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    }
    ~RawSocket() { ::close(fd); }
    std::string receive() {
        char buf[4096];
        const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        return n < 0 ? "(nothing)" : std::string(buf, std::size_t(n));
    }
    int fd;
};

void send_to(const std::filesystem::path& path, const std::string& msg) {
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const auto addr = unix_address(path);
    REQUIRE(::sendto(fd, msg.data(), msg.size(), 0, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) ==
            ssize_t(msg.size()));
    ::close(fd);
}

}  // namespace

TEST_CASE("notify::send delivers to $NOTIFY_SOCKET", "[notify]") {
    test::TempDir tmp;
    RawSocket sock(tmp / "notify");
    ::setenv("NOTIFY_SOCKET", (tmp / "notify").c_str(), 1);
    notify::send("READY=1\nSTATUS=Serving");
    notify::status("Restoring backup 3f9a");
    ::unsetenv("NOTIFY_SOCKET");
    CHECK(sock.receive() == "READY=1\nSTATUS=Serving");
    CHECK(sock.receive() == "STATUS=Restoring backup 3f9a");
    // Without NOTIFY_SOCKET nothing is sent and nothing fails.
    notify::send("READY=1");
    CHECK(sock.receive() == "(nothing)");
}

TEST_CASE("notify::watchdog_interval follows WATCHDOG_USEC", "[notify]") {
    ::setenv("WATCHDOG_USEC", "2500000", 1);
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    const auto on = notify::watchdog_interval();
    // A watchdog meant for another process is not ours.
    ::setenv("WATCHDOG_PID", "1", 1);
    const auto other = notify::watchdog_interval();
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
    REQUIRE(on);
    CHECK(on->count() == 2500000);
    CHECK_FALSE(other);
    CHECK_FALSE(notify::watchdog_interval());
}

TEST_CASE("notify::Listener receives datagrams and cleans up", "[notify]") {
    test::TempDir tmp;
    std::filesystem::path dir, path;
    {
        notify::Listener listener(tmp.path());
        path = listener.path();
        dir = path.parent_path();
        CHECK(dir.parent_path() == tmp.path());
        struct stat st {};
        REQUIRE(::stat(dir.c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0700);
        REQUIRE(::stat(path.c_str(), &st) == 0);
        CHECK(S_ISSOCK(st.st_mode));

        CHECK_FALSE(listener.receive());
        send_to(path, "READY=1");
        send_to(path, "STATUS=warming up");
        CHECK(listener.receive() == std::optional<std::string>("READY=1"));
        CHECK(listener.receive() == std::optional<std::string>("STATUS=warming up"));
        CHECK_FALSE(listener.receive());
    }
    CHECK_FALSE(std::filesystem::exists(path));
    CHECK_FALSE(std::filesystem::exists(dir));
}

TEST_CASE("notify::Listener refuses a socket path the kernel cannot take", "[notify]") {
    test::TempDir tmp;
    const auto deep = tmp / std::string(100, 'd');
    std::filesystem::create_directory(deep);
    try {
        notify::Listener listener(deep);
        FAIL("no error");
    } catch (const RuntimeError& e) {
        CHECK_THAT(std::string(e.what()), Contains("longer than"));
    }
    // Nothing left behind by the failed attempt.
    CHECK(std::filesystem::is_empty(deep));

    CHECK_THROWS_AS(notify::Listener(tmp / "missing"), RuntimeError);
}

namespace {

/// sendto() `path` from a forked child running as `uid`/`gid`; its errno, 0 on success.
int send_as(uid_t uid, gid_t gid, const std::filesystem::path& path, const std::string& msg) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        if (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 || ::setresuid(uid, uid, uid) != 0)
            ::_exit(255);
        const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        const auto addr = unix_address(path);
        const ssize_t n = ::sendto(fd, msg.data(), msg.size(), 0, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
        ::_exit(n == ssize_t(msg.size()) ? 0 : errno);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("notify::Listener with an owner is reachable by that user only", "[notify][user]") {
    if (::geteuid() != 0) {
        WARN("not root: other users cannot be tested");
        return;
    }
    test::TempDir tmp;
    ::chmod(tmp.path().c_str(), 0711);  // as RuntimeDirectoryMode=0711: searchable, not listable
    notify::Listener listener(tmp.path(), std::pair(uid_t(65534), gid_t(65534)));
    struct stat st {};
    REQUIRE(::stat(listener.path().parent_path().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    CHECK(st.st_uid == 65534);
    CHECK(st.st_gid == 65534);
    REQUIRE(::stat(listener.path().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(st.st_uid == 65534);

    CHECK(send_as(65534, 65534, listener.path(), "READY=1") == 0);
    CHECK(listener.receive() == std::optional<std::string>("READY=1"));
    // Another unprivileged user, even in the same group, cannot reach it.
    CHECK(send_as(65533, 65534, listener.path(), "READY=1") == EACCES);
    CHECK_FALSE(listener.receive());

    // Without an owner it stays bartld's own, as before.
    notify::Listener own(tmp.path());
    CHECK(send_as(65534, 65534, own.path(), "READY=1") == EACCES);
}
