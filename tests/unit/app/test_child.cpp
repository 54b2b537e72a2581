// AppProcess with real children: /bin/sh and python3 scripts that become ready after a delay.
#include <catch2/catch.hpp>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <netinet/in.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include "../util/temp_dir.hpp"
#include "app/child.hpp"
#include "core/error.hpp"

using namespace bartl;
using Catch::Matchers::Contains;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace {

Readiness kind(Readiness::Kind k) {
    Readiness r;
    r.kind = k;
    return r;
}

Readiness tcp(int port) {
    Readiness r = kind(Readiness::Kind::tcp);
    r.host = "127.0.0.1";
    r.port = port;
    return r;
}

Readiness http(int port, const std::string& path) {
    Readiness r = kind(Readiness::Kind::http);
    r.host = "127.0.0.1";
    r.port = port;
    r.url = "http://127.0.0.1:" + std::to_string(port) + path;
    return r;
}

/// A port nothing listens on right now (the kernel's pick for a socket we close again).
int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

std::vector<std::string> python(const std::string& code, std::vector<std::string> args = {}) {
    std::vector<std::string> argv = {"/usr/bin/python3", "-c", code};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

std::vector<std::string> sh(const std::string& script) { return {"/bin/sh", "-c", script}; }

/// Message of the RuntimeError `fn` throws, or a marker when it does not throw.
template <typename F>
std::string error_of(F&& fn) {
    try {
        fn();
    } catch (const RuntimeError& e) {
        return e.what();
    }
    return "(no error)";
}

bool reaped(pid_t pid) { return ::kill(pid, 0) == -1 && errno == ESRCH; }

/// Waits (up to 3 s) for a file a child writes when it has set itself up.
void wait_for_file(const std::filesystem::path& f) {
    for (int i = 0; i < 300 && !std::filesystem::exists(f); ++i)
        std::this_thread::sleep_for(milliseconds(10));
    REQUIRE(std::filesystem::exists(f));
}

const char* notify_script = R"(
import os, socket, sys, time
with open(sys.argv[1], "w") as f:
    f.write(os.environ.get("WATCHDOG_USEC", "unset") + " " + os.environ.get("LISTEN_FDS", "unset"))
time.sleep(0.4)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
addr = os.environ["NOTIFY_SOCKET"]
s.sendto(b"STATUS=warming up", addr)
s.sendto(b"STATUS=almost\nREADY=1", addr)
time.sleep(0.2)
s.sendto(b"STATUS=serving 3 users", addr)
time.sleep(30)
)";

const char* http_script = R"(
import http.server, sys, time
time.sleep(0.3)
code = int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(code if self.path == "/health?deep=1" else 404)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
)";

}  // namespace

TEST_CASE("notify readiness waits for READY=1 from the child", "[app]") {
    test::TempDir tmp;
    ::setenv("WATCHDOG_USEC", "1000000", 1);
    ::setenv("LISTEN_FDS", "2", 1);
    AppProcess app(python(notify_script, {(tmp / "env").string()}), {}, std::nullopt,
                   kind(Readiness::Kind::notify), tmp.path());
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("LISTEN_FDS");
    REQUIRE(app.notify_fd() >= 0);

    const auto start = Clock::now();
    app.wait_ready(milliseconds(5000));
    CHECK(Clock::now() - start >= milliseconds(400));
    CHECK(test::read_file(tmp / "env") == "unset unset");

    // The STATUS= sent together with READY=1 is kept for the first drain.
    CHECK(app.drain_notify() == std::optional<std::string>("almost"));
    std::this_thread::sleep_for(milliseconds(400));
    CHECK(app.drain_notify() == std::optional<std::string>("serving 3 users"));
    CHECK_FALSE(app.drain_notify());

    const pid_t pid = app.pid();
    const auto end = app.stop(milliseconds(3000));
    CHECK(end.term_signal == SIGTERM);
    CHECK(end.describe() == "killed by signal 15 (SIGTERM)");
    CHECK(reaped(pid));
    // Idempotent.
    CHECK(app.stop(milliseconds(3000)).term_signal == SIGTERM);
}

TEST_CASE("started readiness is immediate; env and cwd reach the child", "[app]") {
    test::TempDir tmp;
    ::setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
    const auto start = Clock::now();
    AppProcess app(sh("echo \"$BARTL_T ${NOTIFY_SOCKET-unset} $(pwd -P)\" > out; exec sleep 30"),
                   {{"BARTL_T", "hello"}}, tmp.path(), kind(Readiness::Kind::started), tmp.path());
    ::unsetenv("NOTIFY_SOCKET");
    app.wait_ready(milliseconds(5000));
    CHECK(Clock::now() - start < milliseconds(500));
    CHECK(app.notify_fd() == -1);
    wait_for_file(tmp / "out");
    std::this_thread::sleep_for(milliseconds(50));
    CHECK(test::read_file(tmp / "out") ==
          "hello unset " + std::filesystem::canonical(tmp.path()).string() + "\n");
    CHECK_FALSE(app.poll_exit());
}

TEST_CASE("tcp readiness waits until the port accepts", "[app]") {
    test::TempDir tmp;
    const int port = free_port();
    AppProcess app(python(R"(
import socket, sys, time
time.sleep(0.3)
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
time.sleep(30)
)", {std::to_string(port)}),
                   {}, std::nullopt, tcp(port), tmp.path());
    const auto start = Clock::now();
    app.wait_ready(milliseconds(5000));
    CHECK(Clock::now() - start >= milliseconds(300));
}

TEST_CASE("http readiness waits for a 2xx answer on the configured path", "[app]") {
    test::TempDir tmp;
    const int port = free_port();
    AppProcess app(python(http_script, {std::to_string(port), "204"}), {}, std::nullopt,
                   http(port, "/health?deep=1"), tmp.path());
    const auto start = Clock::now();
    app.wait_ready(milliseconds(5000));
    CHECK(Clock::now() - start >= milliseconds(300));
}

TEST_CASE("http readiness never accepts a 500; the timeout stops the child", "[app]") {
    test::TempDir tmp;
    const int port = free_port();
    AppProcess app(python(http_script, {std::to_string(port), "500"}), {}, std::nullopt,
                   http(port, "/health?deep=1"), tmp.path());
    const pid_t pid = app.pid();
    int ticks = 0;
    const auto msg = error_of([&] { app.wait_ready(milliseconds(1200), [&] { ++ticks; }); });
    CHECK_THAT(msg, Contains("app not ready after 1s200ms (ready = http://127.0.0.1:" + std::to_string(port) +
                             "/health?deep=1; last attempt: answered \"HTTP/1.0 500"));
    CHECK(ticks >= 2);
    CHECK(reaped(pid));
}

TEST_CASE("notify readiness times out when the child never notifies", "[app]") {
    test::TempDir tmp;
    AppProcess app({"/bin/sleep", "30"}, {}, std::nullopt, kind(Readiness::Kind::notify), tmp.path());
    const pid_t pid = app.pid();
    const auto msg = error_of([&] { app.wait_ready(milliseconds(300)); });
    CHECK(msg == "app not ready after 300ms (ready = notify)");
    CHECK(reaped(pid));
    CHECK(app.poll_exit()->term_signal == SIGTERM);
}

TEST_CASE("a child exiting before it is ready is reported with its status", "[app]") {
    test::TempDir tmp;
    AppProcess app(sh("sleep 0.1; exit 3"), {}, std::nullopt, kind(Readiness::Kind::notify), tmp.path());
    const auto start = Clock::now();
    const auto msg = error_of([&] { app.wait_ready(milliseconds(5000)); });
    CHECK(msg == "app exited before it was ready: exited with status 3");
    CHECK(Clock::now() - start < milliseconds(2000));
    CHECK(app.poll_exit()->exit_status == 3);
}

TEST_CASE("a child that cannot be executed is a RuntimeError naming it", "[app]") {
    test::TempDir tmp;
    const auto prog = (tmp / "missing-app").string();
    const auto msg = error_of([&] { AppProcess app({prog}, {}, std::nullopt, kind(Readiness::Kind::notify), tmp.path()); });
    CHECK_THAT(msg, Contains(prog) && Contains("No such file or directory"));
    // The failed start left no notify directory behind.
    CHECK(std::filesystem::is_empty(tmp.path()));
}

TEST_CASE("stop escalates to SIGKILL for a child ignoring SIGTERM, and kills its group", "[app]") {
    test::TempDir tmp;
    AppProcess app(sh("trap '' TERM; sleep 30 & echo $! > pid; wait"), {}, tmp.path(),
                   kind(Readiness::Kind::started), tmp.path());
    wait_for_file(tmp / "pid");
    std::this_thread::sleep_for(milliseconds(50));
    const pid_t grandchild = std::atoi(test::read_file(tmp / "pid").c_str());
    REQUIRE(grandchild > 0);

    const auto start = Clock::now();
    const auto end = app.stop(milliseconds(300));
    const auto took = Clock::now() - start;
    CHECK(end.term_signal == SIGKILL);
    CHECK(took >= milliseconds(300));
    CHECK(took < milliseconds(2000));
    CHECK(reaped(app.pid()));
    CHECK(test::gone_soon(grandchild));
}

TEST_CASE("poll_exit reports a finished child once it has exited", "[app]") {
    test::TempDir tmp;
    AppProcess app(sh("exit 7"), {}, std::nullopt, kind(Readiness::Kind::started), tmp.path());
    std::optional<ChildExit> end;
    for (int i = 0; i < 300 && !end; ++i) {
        end = app.poll_exit();
        std::this_thread::sleep_for(milliseconds(10));
    }
    REQUIRE(end);
    CHECK(end->exit_status == 7);
    CHECK(end->describe() == "exited with status 7");
    CHECK(app.stop(milliseconds(100)).exit_status == 7);
}

TEST_CASE("the destructor stops a running child", "[app]") {
    test::TempDir tmp;
    pid_t pid;
    {
        AppProcess app({"/bin/sleep", "30"}, {}, std::nullopt, kind(Readiness::Kind::started), tmp.path());
        pid = app.pid();
        CHECK_FALSE(reaped(pid));
    }
    CHECK(reaped(pid));
}
