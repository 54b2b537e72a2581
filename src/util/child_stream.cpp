// posix_spawn(3) rather than process.cpp's fork()+exec: these children never switch the user,
// and glibc's posix_spawn (clone with CLONE_VFORK) reports a failed exec as its return value,
// so a missing program is an error here, not a child that exits 127.
#include "util/child_stream.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "util/process.hpp"

extern char** environ;

namespace bartl {

namespace {

/// Pipe buffers of 1 MiB (the default /proc/sys/fs/pipe-max-size) instead of 64 KiB: a
/// 64 KiB pipe costs a context switch per age chunk.
constexpr int kPipeBytes = 1 << 20;
constexpr std::size_t kChunk = 256 * 1024;
constexpr int kPollMs = 100;

std::string errno_text(int err) { return std::strerror(err); }

void close_fd(int& fd) noexcept {
    if (fd >= 0) ::close(fd);
    fd = -1;
}

/// Blocks SIGPIPE on this thread while we write to a child's stdin, and swallows the one a
/// write to a closed pipe raises: a child that died must show up as EPIPE and its exit
/// status, not kill bartld (bartld ignores SIGPIPE; tests and tools linking us may not).
class SigpipeBlock {
public:
    SigpipeBlock() {
        sigemptyset(&set_);
        sigaddset(&set_, SIGPIPE);
        sigset_t pending;
        sigpending(&pending);
        was_pending_ = sigismember(&pending, SIGPIPE) == 1;
        ::pthread_sigmask(SIG_BLOCK, &set_, &old_);
    }
    ~SigpipeBlock() {
        if (!was_pending_) {
            const timespec zero{0, 0};
            while (::sigtimedwait(&set_, nullptr, &zero) == SIGPIPE) {
            }
        }
        ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    SigpipeBlock(const SigpipeBlock&) = delete;
    SigpipeBlock& operator=(const SigpipeBlock&) = delete;

private:
    sigset_t set_{}, old_{};
    bool was_pending_ = false;
};

std::vector<std::string> child_env(const std::map<std::string, std::string>& overrides) {
    std::vector<std::string> out;
    for (char** e = environ; e && *e; ++e) {
        const std::string_view entry(*e);
        if (!overrides.count(std::string(entry.substr(0, entry.find('='))))) out.emplace_back(entry);
    }
    for (const auto& [k, v] : overrides) out.push_back(k + "=" + v);
    return out;
}

std::string trim_newlines(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
}

}  // namespace

struct ChildStream::Round {
    bool in_ready = false;   // stdin writable (or its reader gone: the write says which)
    bool out_ready = false;  // stdout readable or at its end
};

ChildStream::ChildStream(ChildStreamSpec spec) : spec_(std::move(spec)) {
    if (spec_.argv.empty()) throw std::logic_error("ChildStream without argv");
    what_ = spec_.what.empty() ? spec_.argv.front() : spec_.what;
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    std::vector<int> extra;  // our fds duplicated above every target number
    auto cleanup = [&] {
        for (int* p : {in, out, err})
            for (int i = 0; i < 2; ++i) close_fd(p[i]);
        for (int& fd : extra) close_fd(fd);
    };
    auto make_pipe = [&](int p[2], bool ours_writes) {
        if (::pipe2(p, O_CLOEXEC) != 0) {
            const int e = errno;
            cleanup();
            throw RuntimeError(fmt::format("cannot start {}: pipe: {}", what_, errno_text(e)));
        }
        ::fcntl(p[0], F_SETPIPE_SZ, kPipeBytes);  // best effort: the default size works too
        const int ours = ours_writes ? p[1] : p[0];
        ::fcntl(ours, F_SETFL, ::fcntl(ours, F_GETFL) | O_NONBLOCK);
    };
    if (spec_.input) make_pipe(in, true);
    if (spec_.output) make_pipe(out, false);
    make_pipe(err, false);
    int highest = 2;
    for (const auto& [child_fd, our_fd] : spec_.fds) highest = std::max(highest, child_fd);
    for (const auto& [child_fd, our_fd] : spec_.fds) {
        const int d = ::fcntl(our_fd, F_DUPFD_CLOEXEC, highest + 1);
        if (d < 0) {
            const int e = errno;
            cleanup();
            throw RuntimeError(fmt::format("cannot start {}: fd {}: {}", what_, our_fd, errno_text(e)));
        }
        extra.push_back(d);
    }

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    if (spec_.input)
        posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (spec_.output)
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    else
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    for (std::size_t i = 0; i < extra.size(); ++i) posix_spawn_file_actions_adddup2(&fa, extra[i], spec_.fds[i].first);
    posix_spawn_file_actions_addclosefrom_np(&fa, highest + 1);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

    std::vector<char*> argv;
    for (auto& a : spec_.argv) argv.push_back(a.data());
    argv.push_back(nullptr);
    auto env = child_env(spec_.env);
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    const int rc = ::posix_spawnp(&pid_, argv[0], &fa, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    // The child's ends (and the duplicates) are the child's now, or nobody's.
    close_fd(in[0]);
    close_fd(out[1]);
    close_fd(err[1]);
    for (int& fd : extra) close_fd(fd);
    in_ = in[1];
    out_ = out[0];
    err_ = err[0];
    if (rc != 0) {
        pid_ = -1;
        reaped_ = true;
        close_fd(in_);
        close_fd(out_);
        close_fd(err_);
        throw RuntimeError(fmt::format("cannot start {}: {}: {}", what_, spec_.argv.front(), errno_text(rc)));
    }
}

ChildStream::~ChildStream() {
    if (feeder_.joinable()) {
        // Killed first, so a feeder blocked on the child's full stdin sees EPIPE and ends;
        // reaped only after the join, so the feeder never signals a reused PID.
        feeder_stop_ = true;
        if (!reaped_ && pid_ > 0) {
            ::kill(-pid_, SIGKILL);
            ::kill(pid_, SIGKILL);
        }
        feeder_.join();
    }
    kill_and_reap();
    close_fd(in_);
    close_fd(out_);
    close_fd(err_);
}

void ChildStream::kill_and_reap() noexcept {
    if (reaped_ || pid_ <= 0) return;
    // Not reaped yet, so the PID and the process group ID are still the child's.
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
}

void ChildStream::poll_round(bool want_in, bool want_out, Round& r) {
    if ((++rounds_ & 15) == 0) spec_.cancel.check(what_);
    pollfd fds[3];
    nfds_t n = 0;
    int in_at = -1, out_at = -1, err_at = -1;
    if (want_in && in_ >= 0) {
        in_at = int(n);
        fds[n++] = {in_, POLLOUT, 0};
    }
    if (want_out && out_ >= 0) {
        out_at = int(n);
        fds[n++] = {out_, POLLIN, 0};
    }
    if (err_ >= 0) {
        err_at = int(n);
        fds[n++] = {err_, POLLIN, 0};
    }
    if (n == 0) throw std::logic_error("ChildStream: nothing to wait for");
    const int rc = ::poll(fds, n, kPollMs);
    if (rc < 0) {
        if (errno == EINTR) return;
        throw RuntimeError(fmt::format("{}: poll: {}", what_, errno_text(errno)));
    }
    if (rc == 0) {
        spec_.cancel.check(what_);
        return;
    }
    if (err_at >= 0 && fds[err_at].revents != 0) drain_stderr();
    r.in_ready = in_at >= 0 && fds[in_at].revents != 0;
    r.out_ready = out_at >= 0 && fds[out_at].revents != 0;
}

void ChildStream::drain_stderr() {
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(err_, buf, sizeof buf);
        if (n > 0) {
            err_text_.append(buf, std::size_t(n));
            if (err_text_.size() > spec_.stderr_limit) err_text_.erase(0, err_text_.size() - spec_.stderr_limit);
            continue;
        }
        if (n == 0) close_fd(err_);
        else if (errno == EINTR) continue;
        else if (errno != EAGAIN) close_fd(err_);
        return;
    }
}

void ChildStream::close_input() { close_fd(in_); }

void ChildStream::wait_exit() {
    // stdout is at its end: the child has exited or is about to. Its stderr ends with it.
    while (err_ >= 0) {
        Round r;
        poll_round(false, false, r);
    }
    int status = 0;
    for (;;) {
        const pid_t got = ::waitpid(pid_, &status, WNOHANG);
        if (got == pid_) break;
        if (got < 0 && errno != EINTR) throw RuntimeError(fmt::format("{}: waitpid: {}", what_, errno_text(errno)));
        spec_.cancel.check(what_);
        const timespec pause{0, 2'000'000};
        ::nanosleep(&pause, nullptr);
    }
    reaped_ = true;
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    const int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    if (code == 0) return;
    const std::string err = trim_newlines(err_text_);
    throw ChildFailed(fmt::format("{} {}{}{}", what_, describe_exit(code, sig), err.empty() ? "" : ": ", err), code,
                      sig, err);
}

void ChildStream::fail_stopped_reading() {
    // It closed its stdin while we had more for it: say how it ended, and if it claims
    // success, that it did not take all of its input.
    close_input();
    while (out_ >= 0) {
        char buf[4096];
        const ssize_t n = ::read(out_, buf, sizeof buf);
        if (n == 0) close_fd(out_);
        else if (n < 0 && errno != EINTR && errno != EAGAIN) close_fd(out_);
        else if (n < 0 && errno == EAGAIN) {
            Round r;
            poll_round(false, true, r);
        }
    }
    wait_exit();
    throw ChildFailed(fmt::format("{} exited with status 0 before it read all of its input", what_), 0, 0,
                      trim_newlines(err_text_));
}

void ChildStream::write(const void* data, std::size_t n, ByteSink* out) {
    const SigpipeBlock block;
    const auto* p = static_cast<const char*>(data);
    if (outbuf_.empty() && out_ >= 0) outbuf_.resize(kChunk);
    while (n > 0) {
        if (in_ < 0) fail_stopped_reading();
        Round r;
        poll_round(true, out != nullptr, r);
        if (r.out_ready) {
            const ssize_t got = ::read(out_, outbuf_.data(), outbuf_.size());
            if (got > 0) out->write(outbuf_.data(), std::size_t(got));
            else if (got == 0) close_fd(out_);  // it may still read: age writes its output at the end of each chunk
            else if (errno != EAGAIN && errno != EINTR)
                throw RuntimeError(fmt::format("{}: reading its output: {}", what_, errno_text(errno)));
        }
        if (r.in_ready) {
            const ssize_t put = ::write(in_, p, n);
            if (put > 0) {
                p += put;
                n -= std::size_t(put);
            } else if (put < 0 && errno == EPIPE) {
                fail_stopped_reading();
            } else if (put < 0 && errno != EAGAIN && errno != EINTR) {
                throw RuntimeError(fmt::format("{}: writing its input: {}", what_, errno_text(errno)));
            }
        }
    }
}

std::size_t ChildStream::read(void* data, std::size_t n, ByteSource* in) {
    if (n == 0) throw std::logic_error("ChildStream::read of 0 bytes");
    if (spec_.feed_thread) return read_fed(data, n, in);
    const SigpipeBlock block;
    if (in == nullptr && in_ >= 0) close_input();
    for (;;) {
        if (out_ < 0) {
            if (reaped_) return 0;
            close_input();
            wait_exit();
            return 0;
        }
        const bool feeding = in_ >= 0;
        Round r;
        poll_round(feeding, true, r);
        if (r.out_ready) {
            const ssize_t got = ::read(out_, data, n);
            if (got > 0) return std::size_t(got);
            if (got == 0) {
                close_fd(out_);
                continue;
            }
            if (errno != EAGAIN && errno != EINTR)
                throw RuntimeError(fmt::format("{}: reading its output: {}", what_, errno_text(errno)));
        }
        if (r.in_ready && in_ >= 0) {
            if (inpos_ == inbuf_.size() && !in_done_) {
                // The child wants input: only now pull from upstream, which may block.
                inbuf_.resize(kChunk);
                const std::size_t got = in->read(inbuf_.data(), inbuf_.size());
                inbuf_.resize(got);
                inpos_ = 0;
                if (got == 0) in_done_ = true;
            }
            if (inpos_ == inbuf_.size()) {
                close_input();  // the end of the input: EOF for the child
                continue;
            }
            const ssize_t put = ::write(in_, inbuf_.data() + inpos_, inbuf_.size() - inpos_);
            if (put > 0) {
                inpos_ += std::size_t(put);
            } else if (put < 0 && errno == EPIPE) {
                // It stopped reading; whether that is an error its exit status says, once
                // stdout ends. What is left of its input stays unread (the caller's hashing
                // stage still sees it when it drains the source).
                close_input();
            } else if (put < 0 && errno != EAGAIN && errno != EINTR) {
                throw RuntimeError(fmt::format("{}: writing its input: {}", what_, errno_text(errno)));
            }
        }
    }
}

void ChildStream::feed(ByteSource* in) noexcept {
    const SigpipeBlock block;
    try {
        std::vector<char> buf(kChunk);
        for (;;) {
            const std::size_t got = in->read(buf.data(), buf.size());
            if (got == 0) break;
            std::size_t pos = 0;
            while (pos < got) {
                if (feeder_stop_) return;
                // Non-blocking with a timeout, so a stop is seen even if nobody kills the child.
                pollfd p{in_, POLLOUT, 0};
                const int rc = ::poll(&p, 1, kPollMs);
                if (rc < 0 && errno != EINTR) throw RuntimeError(fmt::format("{}: poll: {}", what_, errno_text(errno)));
                if (rc <= 0) continue;
                const ssize_t put = ::write(in_, buf.data() + pos, got - pos);
                if (put > 0) {
                    pos += std::size_t(put);
                } else if (put < 0 && errno == EPIPE) {
                    // It stopped reading: whether that is an error its exit status says. The
                    // rest of `in` stays unread for the caller (the hashing stage drains it).
                    close_fd(in_);
                    return;
                } else if (put < 0 && errno != EAGAIN && errno != EINTR) {
                    throw RuntimeError(fmt::format("{}: writing its input: {}", what_, errno_text(errno)));
                }
            }
        }
        close_fd(in_);  // the end of the input: EOF for the child
    } catch (...) {
        feeder_error_ = std::current_exception();
        // Its stdout ends now, and read() reports this error rather than the child's exit.
        ::kill(-pid_, SIGKILL);
        ::kill(pid_, SIGKILL);
    }
}

void ChildStream::join_feeder() {
    if (feeder_.joinable()) feeder_.join();
    if (!feeder_error_) return;
    kill_and_reap();  // the feeder killed it; no zombie waits for the destructor
    std::rethrow_exception(std::exchange(feeder_error_, nullptr));
}

std::size_t ChildStream::read_fed(void* data, std::size_t n, ByteSource* in) {
    if (!feeder_started_) {
        feeder_started_ = true;
        if (in == nullptr || in_ < 0) close_input();
        else feeder_ = std::thread([this, in] { feed(in); });
    }
    for (;;) {
        if (out_ < 0) {
            if (reaped_) return 0;
            // Joined before the exit status counts: an error upstream is the cause of any.
            join_feeder();
            wait_exit();
            return 0;
        }
        Round r;
        poll_round(false, true, r);
        if (!r.out_ready) continue;
        const ssize_t got = ::read(out_, data, n);
        if (got > 0) return std::size_t(got);
        if (got == 0) close_fd(out_);
        else if (errno != EAGAIN && errno != EINTR)
            throw RuntimeError(fmt::format("{}: reading its output: {}", what_, errno_text(errno)));
    }
}

void ChildStream::finish(ByteSink* out) {
    const SigpipeBlock block;
    close_input();
    if (outbuf_.empty() && out_ >= 0) outbuf_.resize(kChunk);
    while (out_ >= 0) {
        Round r;
        poll_round(false, true, r);
        if (!r.out_ready) continue;
        const ssize_t got = ::read(out_, outbuf_.data(), outbuf_.size());
        if (got > 0 && out != nullptr) out->write(outbuf_.data(), std::size_t(got));
        else if (got == 0) close_fd(out_);
        else if (got < 0 && errno != EAGAIN && errno != EINTR)
            throw RuntimeError(fmt::format("{}: reading its output: {}", what_, errno_text(errno)));
    }
    if (!reaped_) wait_exit();
}

namespace {

/// Collects a child's stdout, up to a limit.
class StringSink : public ByteSink {
public:
    StringSink(std::string& s, std::size_t max, const std::string& what) : s_(s), max_(max), what_(what) {}
    void write(const void* data, std::size_t n) override {
        if (s_.size() + n > max_) throw RuntimeError(fmt::format("{} wrote more than {} bytes", what_, max_));
        s_.append(static_cast<const char*>(data), n);
    }

private:
    std::string& s_;
    std::size_t max_;
    const std::string& what_;
};

}  // namespace

ChildOutput run_child(ChildStreamSpec spec, const std::string& input, std::size_t max_output) {
    ChildOutput r;
    spec.input = true;
    spec.output = true;
    ChildStream child(std::move(spec));
    StringSink sink(r.out, max_output, child.what());
    child.write(input.data(), input.size(), &sink);
    child.finish(&sink);
    r.err = child.stderr_text();
    return r;
}

int memory_file(const char* name, const std::string& content) {
    const int fd = ::memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) throw RuntimeError(fmt::format("memfd_create {}: {}", name, errno_text(errno)));
    std::size_t done = 0;
    while (done < content.size()) {
        const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const int e = errno;
            ::close(fd);
            throw RuntimeError(fmt::format("writing memfd {}: {}", name, errno_text(e)));
        }
        done += std::size_t(n);
    }
    ::lseek(fd, 0, SEEK_SET);
    return fd;
}

}  // namespace bartl
