// run_command / spawn_process against real child processes.
#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.hpp"
#include "temp_dir.hpp"
#include "util/process.hpp"

using namespace bartl;
using Catch::Matchers::Contains;
using Catch::Matchers::EndsWith;
using Catch::Matchers::StartsWith;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace {

CommandResult sh(const std::string& script, CommandSpec spec = {}) {
    spec.argv = {"/bin/sh", "-c", script};
    spec.capture_stdout = true;
    return run_command(spec, false);
}

std::string message_of(const CommandSpec& spec) {
    try {
        run_command(spec, false);
    } catch (const RuntimeError& e) {
        return e.what();
    }
    return "(no error)";
}

using test::StderrToFile;

}  // namespace

TEST_CASE("run_command reports exit codes", "[process]") {
    auto ok = sh("exit 0");
    CHECK(ok.ok());
    CHECK(ok.exit_status == 0);

    auto r = sh("exit 3");
    CHECK_FALSE(r.ok());
    CHECK(r.exit_status == 3);
    CHECK(r.term_signal == 0);
    CHECK_FALSE(r.timed_out);
    CHECK(r.describe() == "exited with status 3");
}

TEST_CASE("run_command reports death by signal", "[process]") {
    auto r = sh("kill -TERM $$");
    CHECK_FALSE(r.ok());
    CHECK(r.exit_status == -1);
    CHECK(r.term_signal == SIGTERM);
    CHECK(r.describe() == "killed by signal 15 (SIGTERM)");
    CHECK(describe_exit(-1, SIGKILL) == "killed by signal 9 (SIGKILL)");
}

TEST_CASE("run_command passes environment overrides on top of ours", "[process]") {
    ::setenv("BARTL_TEST_INHERITED", "from-parent", 1);
    ::setenv("BARTL_TEST_OVERRIDDEN", "old", 1);
    CommandSpec spec;
    spec.env = {{"BARTL_TEST_OVERRIDDEN", "new value"}, {"BARTL_TEST_ADDED", "x=y"}};
    auto r = sh(R"(printf '%s|%s|%s' "$BARTL_TEST_INHERITED" "$BARTL_TEST_OVERRIDDEN" "$BARTL_TEST_ADDED")", spec);
    ::unsetenv("BARTL_TEST_INHERITED");
    ::unsetenv("BARTL_TEST_OVERRIDDEN");
    REQUIRE(r.ok());
    CHECK(r.out == "from-parent|new value|x=y");
}

TEST_CASE("run_command runs in the given working directory", "[process]") {
    test::TempDir dir;
    CommandSpec spec;
    spec.cwd = dir.path().string();
    auto r = sh("pwd -P", spec);
    REQUIRE(r.ok());
    CHECK(r.out == std::filesystem::canonical(dir.path()).string() + "\n");

    spec.cwd = (dir / "missing").string();
    spec.argv = {"/bin/true"};
    CHECK_THAT(message_of(spec), Contains("working directory") && Contains("missing") &&
                                     Contains("No such file or directory"));
}

TEST_CASE("run_command captures stderr, keeping the tail", "[process]") {
    CommandSpec spec;
    spec.max_output = 100;
    auto r = sh("i=0; while [ $i -lt 1000 ]; do echo line$i >&2; i=$((i+1)); done; echo done", spec);
    REQUIRE(r.ok());
    CHECK(r.err.size() == 100);
    CHECK_THAT(r.err, EndsWith("line998\nline999\n"));
    CHECK(r.out == "done\n");
}

TEST_CASE("run_command reads both streams without deadlock on large output", "[process]") {
    CommandSpec spec;
    spec.max_output = 1 << 20;
    auto r = sh("head -c 600000 /dev/zero; head -c 300000 /dev/zero >&2; head -c 400000 /dev/zero", spec);
    REQUIRE(r.ok());
    CHECK(r.out.size() == 1000000);
    CHECK(r.err.size() == 300000);
}

TEST_CASE("run_command without stdout capture leaves out empty", "[process]") {
    CommandSpec spec;
    spec.argv = {"/bin/sh", "-c", "echo to-inherited-stdout >/dev/null; echo err >&2"};
    auto r = run_command(spec, false);
    CHECK(r.ok());
    CHECK(r.out.empty());
    CHECK(r.err == "err\n");
}

TEST_CASE("run_command echoes stderr lines with the program name", "[process]") {
    test::TempDir dir;
    CommandSpec spec;
    spec.argv = {"/bin/sh", "-c", "printf 'first\\nsecond' >&2"};
    CommandResult r;
    {
        StderrToFile redirect(dir / "stderr");
        r = run_command(spec, true);
    }
    CHECK(r.err == "first\nsecond");
    CHECK(test::read_file(dir / "stderr") == "[sh] first\n[sh] second\n");
}

TEST_CASE("run_command timeout kills the whole process group", "[process]") {
    CommandSpec spec;
    spec.timeout = milliseconds(300);
    const auto start = Clock::now();
    auto r = sh("sleep 30 & echo $!; wait", spec);
    const auto took = Clock::now() - start;
    CHECK(r.timed_out);
    CHECK_FALSE(r.ok());
    CHECK(r.describe() == "timed out after 300ms");
    CHECK(took >= milliseconds(300));
    CHECK(took < milliseconds(3000));
    const pid_t grandchild = std::atoi(r.out.c_str());
    REQUIRE(grandchild > 0);
    CHECK(test::gone_soon(grandchild));
}

TEST_CASE("run_command stops the whole group when stop_requested says so", "[process]") {
    CommandSpec spec;
    spec.capture_stdout = true;
    const auto start = Clock::now();
    spec.stop_requested = [&] { return Clock::now() - start > milliseconds(200); };
    auto r = sh("sleep 30 & echo $!; wait", spec);
    const auto took = Clock::now() - start;
    CHECK(r.stopped);
    CHECK_FALSE(r.timed_out);
    CHECK_FALSE(r.ok());
    CHECK(r.describe() == "stopped on request");
    CHECK(took >= milliseconds(200));
    CHECK(took < milliseconds(3000));
    const pid_t grandchild = std::atoi(r.out.c_str());
    REQUIRE(grandchild > 0);
    CHECK(test::gone_soon(grandchild));
}

TEST_CASE("run_command: a command that ends before a stop request is not stopped", "[process]") {
    CommandSpec spec;
    spec.stop_requested = [] { return false; };
    auto r = sh("exit 0", spec);
    CHECK(r.ok());
    CHECK_FALSE(r.stopped);
}

TEST_CASE("run_command escalates to SIGKILL when SIGTERM is ignored", "[process]") {
    test::TempDir dir;
    CommandSpec spec;
    spec.timeout = milliseconds(200);
    spec.kill_grace = milliseconds(300);
    const auto start = Clock::now();
    // The trap is inherited as "ignored" by the sleep too: only SIGKILL ends either.
    auto r = sh("trap '' TERM; sleep 30 & echo $!; wait", spec);
    const auto took = Clock::now() - start;
    CHECK(r.timed_out);
    CHECK(r.term_signal == SIGKILL);
    CHECK(took >= milliseconds(500));
    CHECK(took < milliseconds(3000));
    const pid_t grandchild = std::atoi(r.out.c_str());
    REQUIRE(grandchild > 0);
    CHECK(test::gone_soon(grandchild));
}

TEST_CASE("run_command does not wait for a daemonised grandchild holding the pipes", "[process]") {
    const auto start = Clock::now();
    auto r = sh("sleep 2 & echo started");
    CHECK(r.ok());
    CHECK(r.out == "started\n");
    CHECK(Clock::now() - start < milliseconds(1500));
}

TEST_CASE("run_command reports exec failures naming the program", "[process]") {
    test::TempDir dir;
    CommandSpec spec;
    spec.argv = {(dir / "no-such-program").string()};
    CHECK_THAT(message_of(spec), StartsWith("cannot start " + spec.argv[0]) && Contains("No such file or directory"));

    test::write_file(dir / "not-executable", "#!/bin/sh\nexit 0\n", 0644);
    spec.argv = {(dir / "not-executable").string()};
    CHECK_THAT(message_of(spec), Contains(spec.argv[0]) && Contains("Permission denied"));

    spec.argv = {"bartl-no-such-command-anywhere"};
    CHECK_THAT(message_of(spec), Contains("bartl-no-such-command-anywhere") && Contains("No such file"));

    spec.argv = {};
    CHECK_THAT(message_of(spec), Contains("argv is empty"));
}

TEST_CASE("run_command looks names up in PATH", "[process]") {
    CommandSpec spec;
    spec.argv = {"sh", "-c", "exit 4"};
    CHECK(run_command(spec, false).exit_status == 4);
}

TEST_CASE("the child gets no inherited fds, a clean signal state and its own group", "[process]") {
    const int leaked = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
    REQUIRE(leaked > 2);
    struct sigaction ign {}, old_usr1 {};
    ign.sa_handler = SIG_IGN;
    ::sigaction(SIGUSR1, &ign, &old_usr1);
    sigset_t usr2, old_mask;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    ::sigprocmask(SIG_BLOCK, &usr2, &old_mask);

    CommandSpec spec;
    spec.argv = {"/bin/grep", "^Sig\\(Blk\\|Ign\\)", "/proc/self/status"};
    spec.capture_stdout = true;
    auto status = run_command(spec, false);
    auto fds = sh("[ -e /proc/$$/fd/" + std::to_string(leaked) + " ] && echo open || echo closed");
    // Field 5 of /proc/PID/stat is the process group.
    auto group = sh("echo $$ $(cut -d' ' -f5 /proc/$$/stat)");

    ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    ::sigaction(SIGUSR1, &old_usr1, nullptr);
    ::close(leaked);

    REQUIRE(status.ok());
    const auto mask_of = [&](const std::string& key) {
        const auto at = status.out.find(key);
        REQUIRE(at != std::string::npos);
        return std::stoull(status.out.substr(at + key.size()), nullptr, 16);
    };
    CHECK((mask_of("SigBlk:\t") & (1ull << (SIGUSR2 - 1))) == 0);
    CHECK((mask_of("SigIgn:\t") & (1ull << (SIGUSR1 - 1))) == 0);
    CHECK(fds.out == "closed\n");
    const auto space = group.out.find(' ');
    REQUIRE(space != std::string::npos);
    CHECK(group.out.substr(0, space) + "\n" == group.out.substr(space + 1));
    CHECK(group.out.substr(0, space) != std::to_string(::getpgrp()));
}

TEST_CASE("wait_exited waits without reaping", "[process]") {
    SpawnSpec spec;
    spec.argv = {"/bin/sh", "-c", "sleep 0.2"};
    const pid_t pid = spawn_process(spec);
    CHECK_FALSE(wait_exited(pid, milliseconds(10)));
    CHECK(wait_exited(pid, milliseconds(3000)));
    // Still reapable: wait_exited must not have consumed the status.
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("run_command: what a command leaves running in its group is killed when it exits", "[process]") {
    // A hook's leftovers would go on changing the state and hold the inherited instance lock.
    bartl::CommandSpec spec;
    spec.argv = {"/bin/sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $!"};
    spec.capture_stdout = true;
    auto r = bartl::run_command(spec, false);
    REQUIRE(r.ok());
    const pid_t leftover = static_cast<pid_t>(std::atoi(r.out.c_str()));
    REQUIRE(leftover > 0);
    CHECK(bartl::test::gone_soon(leftover));
}

// ---- running as another user ([app] user) ------------------------------------------------

namespace {

/// nobody:nogroup with one more supplementary group (users, 100), as getgrouplist() would give.
Credentials nobody() { return Credentials{65534, 65534, {65534, 100}, "nobody"}; }

bool root() {
    if (::geteuid() == 0)
        return true;
    WARN("not root: switching users cannot be tested");
    return false;
}

}  // namespace

TEST_CASE("spawn_process runs the child as the given user, group and supplementary groups", "[process][user]") {
    if (!root())
        return;
    CommandSpec spec;
    spec.credentials = nobody();
    // The kernel's view, not id(1)'s: real, effective, saved and fs ids, and the groups.
    auto r = sh("grep -E '^(Uid|Gid|Groups):' /proc/self/status", spec);
    REQUIRE(r.ok());
    CHECK(r.out == "Uid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\nGroups:\t100 65534 \n");
    // Capabilities are gone with root: the child cannot switch back.
    auto caps = sh("grep -E '^Cap(Eff|Prm):' /proc/self/status", spec);
    CHECK(caps.out == "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n");
}

TEST_CASE("a child running as another user enters its working directory as that user", "[process][user]") {
    if (!root())
        return;
    test::TempDir dir;
    ::chmod(dir.path().c_str(), 0755);
    std::filesystem::create_directory(dir / "closed");
    ::chmod((dir / "closed").c_str(), 0700);  // root's only
    CommandSpec spec;
    spec.credentials = nobody();
    spec.argv = {"/bin/true"};
    spec.cwd = (dir / "closed").string();
    CHECK(message_of(spec) == "cannot start /bin/true as user nobody: working directory " + *spec.cwd +
                                  ": Permission denied");
    ::chown((dir / "closed").c_str(), 65534, 65534);
    auto r = sh("pwd", spec);
    CHECK(r.ok());
    CHECK(r.out == *spec.cwd + "\n");
}

TEST_CASE("spawn_process fails, naming the path, when the user cannot write a must_write path", "[process][user]") {
    if (!root())
        return;
    test::TempDir dir;
    ::chmod(dir.path().c_str(), 0755);
    test::write_file(dir / "socket-stand-in", "", 0600);
    SpawnSpec spec;
    spec.argv = {"/bin/true"};
    spec.credentials = nobody();
    spec.must_write = {(dir / "socket-stand-in").string()};
    try {
        spawn_process(spec);
        FAIL("started although nobody cannot write " << spec.must_write[0]);
    } catch (const RuntimeError& e) {
        CHECK(std::string(e.what()) == "cannot start /bin/true as user nobody: it cannot write to " + spec.must_write[0] +
                                           ": Permission denied");
    }
    ::chown((dir / "socket-stand-in").c_str(), 65534, 65534);
    const pid_t pid = spawn_process(spec);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("a user switch bartld may not make is reported with the call and the capability", "[process][user]") {
    if (!root())
        return;
    // In a forked child that is nobody already: it may not become root again.
    const std::string out = test::in_child([] {
        if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
            ::setresuid(65534, 65534, 65534) != 0)
            return std::string("(could not drop to nobody)");
        SpawnSpec spec;
        spec.argv = {"/bin/true"};
        spec.credentials = Credentials{0, 0, {0}, "root"};
        try {
            ::waitpid(spawn_process(spec), nullptr, 0);
        } catch (const RuntimeError& e) {
            return std::string(e.what());
        }
        return std::string("(started)");
    });
    CHECK(out == "cannot start /bin/true as user root: setgroups: Operation not permitted (bartld needs CAP_SETUID "
                 "and CAP_SETGID to switch users)");
}

TEST_CASE("run_command forwards stdout lines tagged like stderr lines", "[process]") {
    test::TempDir dir;
    CommandSpec spec;
    spec.argv = {"/bin/sh", "-c", "echo out1; echo err1 >&2; sleep 0.05; printf out2"};
    CommandResult r;
    {
        StderrToFile redirect(dir / "stderr");
        r = run_command(spec, true);
    }
    CHECK(r.ok());
    CHECK(r.out.empty());  // forwarded, not captured
    CHECK(r.err == "err1\n");
    const std::string log = test::read_file(dir / "stderr");
    CHECK_THAT(log, Contains("[sh] out1\n") && Contains("[sh] err1\n") && EndsWith("[sh] out2\n"));

    // A hook is named after itself; captured stdout is not forwarded.
    spec.log_identifier = "pre-backup";
    spec.capture_stdout = true;
    {
        StderrToFile redirect(dir / "stderr");
        r = run_command(spec, true);
    }
    CHECK(r.out == "out1\nout2");
    CHECK(test::read_file(dir / "stderr") == "[pre-backup] err1\n");
}

TEST_CASE("the instance lock reaches the child as fd 3 and nothing else does", "[process]") {
    test::TempDir dir;
    const int low = ::open((dir / "lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    REQUIRE(low >= 3);
    const int high = ::fcntl(low, F_DUPFD_CLOEXEC, 10);
    // Both the lock at fd 3 already (dup2(3, 3) would keep its FD_CLOEXEC) and elsewhere.
    for (const int lock : {low, high}) {
        set_inherited_lock_fd(lock);
        CommandSpec spec;
        spec.capture_stdout = true;
        spec.argv = {"/bin/readlink", "/proc/self/fd/3"};
        const auto target = run_command(spec, false);
        // ls's own table: 0-2, the lock, and the directory it is reading.
        spec.argv = {"/bin/ls", "/proc/self/fd"};
        const auto fds = run_command(spec, false);
        set_inherited_lock_fd(-1);
        CHECK(target.out == (dir / "lock").string() + "\n");
        CHECK(fds.out == "0\n1\n2\n3\n4\n");
    }
    ::close(low);
    ::close(high);
}
