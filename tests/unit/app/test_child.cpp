// AppProcess with real children: /bin/sh and python3 scripts that become ready after a delay.
#include <catch2/catch.hpp>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <fstream>
#include <sstream>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "../util/temp_dir.hpp"
#include "app/child.hpp"
#include "core/error.hpp"

using namespace bartl;
using Catch::Matchers::Contains;
using Catch::Matchers::EndsWith;
using Catch::Matchers::StartsWith;
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
    CHECK_THAT(msg, Contains("app python3 not ready after 1s200ms (ready = http://127.0.0.1:" + std::to_string(port) +
                             "/health?deep=1; last attempt: answered \"HTTP/1.0 500"));
    CHECK(ticks >= 2);
    CHECK(reaped(pid));
}

TEST_CASE("notify readiness times out when the child never notifies", "[app]") {
    test::TempDir tmp;
    AppProcess app({"/bin/sleep", "30"}, {}, std::nullopt, kind(Readiness::Kind::notify), tmp.path());
    const pid_t pid = app.pid();
    const auto msg = error_of([&] { app.wait_ready(milliseconds(300)); });
    CHECK(msg == "app sleep not ready after 300ms (ready = notify)");
    CHECK(reaped(pid));
    CHECK(app.poll_exit()->term_signal == SIGTERM);
}

TEST_CASE("a child exiting before it is ready is reported with its status", "[app]") {
    test::TempDir tmp;
    AppProcess app(sh("sleep 0.1; exit 3"), {}, std::nullopt, kind(Readiness::Kind::notify), tmp.path());
    const auto start = Clock::now();
    const auto msg = error_of([&] { app.wait_ready(milliseconds(5000)); });
    CHECK(msg == "app sh exited before it was ready: exited with status 3");
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

// ---- the app's own user, readiness that belongs to the app, its output ---------------------

namespace {

Credentials nobody() { return Credentials{65534, 65534, {65534}, "nobody"}; }

bool root() {
    if (::geteuid() == 0)
        return true;
    WARN("not root: running the app as another user cannot be tested");
    return false;
}

/// "Uid:" and "Gid:" lines of /proc/PID/status: the kernel's view of who the process is.
std::string ids_of(pid_t pid) {
    std::string out;
    std::istringstream in(test::read_file("/proc/" + std::to_string(pid) + "/status"));
    for (std::string line; std::getline(in, line);)
        if (line.rfind("Uid:", 0) == 0 || line.rfind("Gid:", 0) == 0 || line.rfind("Groups:", 0) == 0)
            out += line + "\n";
    return out;
}

const char* listen_script = R"(
import os, socket, sys, time
time.sleep(float(sys.argv[2]))
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
if len(sys.argv) > 3:
    with open(sys.argv[3], "w") as f:
        f.write(str(os.getpid()))
time.sleep(30)
)";

using test::StderrToFile;

}  // namespace

TEST_CASE("the app runs as its user, and notify readiness reaches bartld from that user", "[app][user]") {
    if (!root())
        return;
    test::TempDir tmp;
    ::chmod(tmp.path().c_str(), 0711);  // the runtime directory as the shipped units make it
    AppProcess app(python(R"(
import os, socket
socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
import time; time.sleep(30)
)"),
                   {}, std::nullopt, kind(Readiness::Kind::notify), tmp.path(), nobody());
    app.wait_ready(milliseconds(5000));
    CHECK(ids_of(app.pid()) == "Uid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\nGroups:\t65534 \n");
}

TEST_CASE("an app user that cannot reach the notify socket fails the start at once", "[app][user]") {
    if (!root())
        return;
    test::TempDir tmp;  // 0700 root: as /run/bartl/NAME was, 0750 root
    const auto start = Clock::now();
    const auto msg = error_of([&] {
        AppProcess app({"/bin/sleep", "30"}, {}, std::nullopt, kind(Readiness::Kind::notify), tmp.path(), nobody());
    });
    CHECK_THAT(msg, StartsWith("cannot start /bin/sleep as user nobody: it cannot write to " + tmp.path().string() +
                               "/bartl-notify-") &&
                        EndsWith("/notify: Permission denied"));
    CHECK(Clock::now() - start < milliseconds(1000));
    CHECK(std::filesystem::is_empty(tmp.path()));
}

TEST_CASE("command readiness: the probe runs as the app's user every interval until it exits 0", "[app][user]") {
    test::TempDir tmp;
    ::chmod(tmp.path().c_str(), 0777);
    Readiness r = kind(Readiness::Kind::command);
    // Each try records who ran it; ready once the app has made its file.
    r.command = sh("id -u >> " + (tmp / "tries").string() + "; test -e " + (tmp / "up").string());
    r.interval = milliseconds(100);
    const bool as_nobody = ::geteuid() == 0;
    AppProcess app(sh("sleep 0.5; touch " + (tmp / "up").string() + "; exec sleep 30"), {}, std::nullopt, r,
                   tmp.path(), as_nobody ? std::optional(nobody()) : std::nullopt);
    const auto start = Clock::now();
    app.wait_ready(milliseconds(5000));
    const auto took = Clock::now() - start;
    CHECK(took >= milliseconds(500));
    CHECK(took < milliseconds(1500));
    std::istringstream tries(test::read_file(tmp / "tries"));
    int n = 0;
    for (std::string uid; std::getline(tries, uid); ++n)
        CHECK(uid == std::to_string(as_nobody ? 65534 : ::geteuid()));
    // About every 100 ms over 0.5 s, not a busy loop.
    CHECK(n >= 4);
    CHECK(n <= 9);
}

TEST_CASE("command readiness reports the probe's last failure, and kills a try that hangs", "[app]") {
    test::TempDir tmp;
    Readiness r = kind(Readiness::Kind::command);
    r.command = sh("echo 'LOADING Redis is loading the dataset in memory'; exit 1");
    r.interval = milliseconds(100);
    AppProcess app({"/bin/sleep", "30"}, {}, std::nullopt, r, tmp.path());
    CHECK(error_of([&] { app.wait_ready(milliseconds(400)); }) ==
          "app sleep not ready after 400ms (ready = command /bin/sh; last attempt: /bin/sh exited with status 1: LOADING "
          "Redis is loading the dataset in memory)");

    r.command = sh("echo $$ > " + (tmp / "probe").string() + "; exec sleep 30");
    AppProcess hanging({"/bin/sleep", "30"}, {}, std::nullopt, r, tmp.path());
    const auto start = Clock::now();
    CHECK(error_of([&] { hanging.wait_ready(ready_command_try_timeout + milliseconds(700)); }) ==
          "app sleep not ready after 5s700ms (ready = command /bin/sh; last attempt: /bin/sh did not exit within 5s)");
    CHECK(Clock::now() - start < ready_command_try_timeout + milliseconds(2000));
    const pid_t probe = std::atoi(test::read_file(tmp / "probe").c_str());
    REQUIRE(probe > 0);
    CHECK(test::gone_soon(probe));
}

TEST_CASE("tcp readiness refuses a port held by another process, naming it", "[app][tcp]") {
    test::TempDir tmp;
    const int port = free_port();
    // Not the app: a process of the test, listening before the app starts.
    AppProcess other(python(listen_script, {std::to_string(port), "0", (tmp / "other").string()}), {}, std::nullopt,
                     kind(Readiness::Kind::started), tmp.path());
    wait_for_file(tmp / "other");
    std::this_thread::sleep_for(milliseconds(50));
    const std::string other_pid = test::read_file(tmp / "other");
    AppProcess app({"/bin/sleep", "30"}, {}, std::nullopt, tcp(port), tmp.path());
    const pid_t pid = app.pid();
    const auto start = Clock::now();
    const auto msg = error_of([&] { app.wait_ready(milliseconds(10000)); });
    CHECK(msg == "ready = tcp://127.0.0.1:" + std::to_string(port) + ": port " + std::to_string(port) +
                     " is held by PID " + other_pid + " (python3), which is not part of the app (PID " +
                     std::to_string(pid) +
                     "); another process listens there, so a connection would not prove the app ready: stop it, or "
                     "give the app another port");
    CHECK(Clock::now() - start < milliseconds(1000));  // at once, not after the timeout
    CHECK(reaped(pid));
}

TEST_CASE("tcp readiness counts a socket of a child the app forked", "[app][tcp]") {
    test::TempDir tmp;
    const int port = free_port();
    // The app forks a listener into its own session: out of the group, still its child.
    const std::string child = "import os, subprocess, sys, time\n"
                              "subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2], '0.3'], "
                              "start_new_session=True)\n"
                              "time.sleep(30)\n";
    AppProcess app(python(child, {listen_script, std::to_string(port)}), {}, std::nullopt, tcp(port), tmp.path());
    const auto start = Clock::now();
    app.wait_ready(milliseconds(5000));
    CHECK(Clock::now() - start >= milliseconds(300));
}

TEST_CASE("tcp readiness sees the socket of an app running as its own user without CAP_SYS_PTRACE", "[app][tcp][user]") {
    if (!root())
        return;
    // As under the shipped unit: root without CAP_SYS_PTRACE may not read another user's
    // /proc/PID/fd. Done in a forked child that drops the capability.
    test::TempDir tmp;
    ::chmod(tmp.path().c_str(), 0755);
    const int port = free_port();
    const std::string out = test::in_child([&] {
        __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
        __user_cap_data_struct data[2]{};
        ::syscall(SYS_capget, &header, data);
        data[0].effective &= ~(1u << CAP_SYS_PTRACE);
        data[0].permitted &= ~(1u << CAP_SYS_PTRACE);
        if (::syscall(SYS_capset, &header, data) != 0)
            return std::string("capset failed");
        AppProcess app(python(listen_script, {std::to_string(port), "0.2"}), {}, std::nullopt, tcp(port), tmp.path(),
                       nobody());
        // The capability is really gone: bartld itself cannot see what the fds are.
        char target[64];
        if (::readlink(("/proc/" + std::to_string(app.pid()) + "/fd/0").c_str(), target, sizeof target) >= 0)
            return std::string("/proc/PID/fd/0 still readable");
        app.wait_ready(milliseconds(5000));
        return std::string("ready");
    });
    CHECK(out == "ready");
}

TEST_CASE("the app's stdout and stderr lines are forwarded with its name", "[app]") {
    test::TempDir tmp;
    std::string log;
    {
        StderrToFile redirect(tmp / "stderr");
        AppProcess app(sh("echo listening; echo 'warning: low disk' >&2; printf 'bye'; sleep 30"), {}, std::nullopt,
                       kind(Readiness::Kind::started), tmp.path());
        app.wait_ready(milliseconds(1000));
        for (int i = 0; i < 100 && test::read_file(tmp / "stderr").find("low disk") == std::string::npos; ++i) {
            std::this_thread::sleep_for(milliseconds(10));
            app.forward_output();
        }
        // The unfinished last line is forwarded when the app ends.
        app.stop(milliseconds(1000));
    }
    log = test::read_file(tmp / "stderr");
    CHECK_THAT(log, Contains("[sh] listening\n") && Contains("[sh] warning: low disk\n") && EndsWith("[sh] bye\n"));
}

TEST_CASE("the app's lines go by its script, or by the app's name for inline code", "[app]") {
    test::TempDir tmp;
    const auto script = tmp / "serve.py";
    {
        std::ofstream(script) << "import sys, time\nprint('up', flush=True)\ntime.sleep(30)\n";
    }
    std::string log;
    {
        StderrToFile redirect(tmp / "stderr");
        AppProcess by_script({"/usr/bin/python3", "-u", script.string()}, {}, std::nullopt,
                             kind(Readiness::Kind::started), tmp.path(), std::nullopt, "notes");
        AppProcess inline_code(sh("echo inline; sleep 30"), {}, std::nullopt, kind(Readiness::Kind::started),
                               tmp.path(), std::nullopt, "notes");
        CHECK(by_script.name() == "serve.py");
        CHECK(inline_code.name() == "notes");
        for (int i = 0; i < 200 && (test::read_file(tmp / "stderr").find("up") == std::string::npos ||
                                    test::read_file(tmp / "stderr").find("inline") == std::string::npos); ++i) {
            std::this_thread::sleep_for(milliseconds(10));
            by_script.forward_output();
            inline_code.forward_output();
        }
        by_script.stop(milliseconds(1000));
        inline_code.stop(milliseconds(1000));
    }
    log = test::read_file(tmp / "stderr");
    CHECK_THAT(log, Contains("[serve.py] up\n") && Contains("[notes] inline\n"));
    CHECK_THAT(log, !Contains("[python3]") && !Contains("[sh]"));
}
