// The served application process and its readiness checks (see child.hpp).
#include "app/child.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "app/listeners.hpp"
#include "core/command_name.hpp"
#include "core/duration.hpp"
#include "core/error.hpp"
#include "util/process.hpp"

namespace bartl {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// Variables systemd set for *us*; the app inheriting them would talk to systemd behind our
/// back (NOTIFY_SOCKET), be killed for not pinging (WATCHDOG_*), or grab our sockets (LISTEN_*).
const std::vector<std::string> inherited_service_vars = {
    "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
};

int ms_until(Clock::time_point t) {
    const auto left = std::chrono::ceil<milliseconds>(t - Clock::now()).count();
    return left < 0 ? 0 : int(left);
}

/// Closes a socket when it goes out of scope.
struct Socket {
    int fd = -1;
    ~Socket() {
        if (fd >= 0)
            ::close(fd);
    }
};

/// Waits until `fd` is ready for `events` or `deadline` passes; true when ready.
bool wait_fd(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        pollfd p{fd, events, 0};
        const int rc = ::poll(&p, 1, ms_until(deadline));
        if (rc > 0)
            return true;
        if (rc == 0 || errno != EINTR)
            return false;
    }
}

/// Connects to host:port before `deadline`. Returns true with `sock` connected, else false
/// with the reason in `error`.
bool tcp_connect(const std::string& host, int port, Clock::time_point deadline, Socket& sock,
                 std::string& error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* list = nullptr;
    const std::string service = std::to_string(port);
    if (const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &list); rc != 0) {
        error = fmt::format("cannot resolve {}: {}", host, ::gai_strerror(rc));
        return false;
    }
    bool ok = false;
    for (addrinfo* ai = list; ai && !ok; ai = ai->ai_next) {
        Socket s;
        s.fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (s.fd < 0) {
            error = fmt::format("socket: {}", std::strerror(errno));
            continue;
        }
        int err = 0;
        if (::connect(s.fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            err = errno;
            if (err == EINPROGRESS) {
                if (!wait_fd(s.fd, POLLOUT, deadline)) {
                    error = "connect timed out";
                    continue;
                }
                socklen_t len = sizeof err;
                ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
            }
        }
        if (err != 0) {
            error = fmt::format("connect: {}", std::strerror(err));
            continue;
        }
        std::swap(sock.fd, s.fd);
        ok = true;
    }
    ::freeaddrinfo(list);
    return ok;
}

/// Splits an http:// URL into the Host header value and the request target.
std::pair<std::string, std::string> http_target(const Readiness& r) {
    if (r.url.empty())
        return {fmt::format("{}:{}", r.host, r.port), "/"};
    std::string_view u = r.url;
    if (const auto scheme = u.find("://"); scheme != std::string_view::npos)
        u.remove_prefix(scheme + 3);
    if (const auto frag = u.find('#'); frag != std::string_view::npos)
        u = u.substr(0, frag);
    const auto end = u.find_first_of("/?");
    std::string_view authority = u.substr(0, end);
    if (const auto at = authority.rfind('@'); at != std::string_view::npos)
        authority.remove_prefix(at + 1);
    std::string target(end == std::string_view::npos ? "" : u.substr(end));
    if (target.empty() || target[0] != '/')
        target.insert(0, "/");
    return {std::string(authority), target};
}

/// One HTTP/1.0 GET; true when it answers 2xx before `deadline`.
bool http_ready(const Readiness& r, Clock::time_point deadline, std::string& error) {
    Socket s;
    if (!tcp_connect(r.host, r.port, deadline, s, error))
        return false;
    const auto [host, target] = http_target(r);
    const std::string request =
        fmt::format("GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: bartld\r\nConnection: close\r\n\r\n", target, host);
    std::size_t sent = 0;
    while (sent < request.size()) {
        const ssize_t n = ::send(s.fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += std::size_t(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!wait_fd(s.fd, POLLOUT, deadline)) {
                error = "sending the request timed out";
                return false;
            }
        } else {
            error = fmt::format("send: {}", std::strerror(errno));
            return false;
        }
    }
    // Only the status line matters; a server that never ends its line is cut off at 1 KiB.
    std::string head;
    while (head.find("\r\n") == std::string::npos && head.size() < 1024) {
        char buf[512];
        const ssize_t n = ::recv(s.fd, buf, sizeof buf, 0);
        if (n > 0) {
            head.append(buf, std::size_t(n));
        } else if (n == 0) {
            break;
        } else if (errno == EAGAIN || errno == EINTR) {
            if (!wait_fd(s.fd, POLLIN, deadline)) {
                error = "no answer in time";
                return false;
            }
        } else {
            error = fmt::format("recv: {}", std::strerror(errno));
            return false;
        }
    }
    const std::string line = head.substr(0, head.find("\r\n"));
    // "HTTP/1.1 200 OK": the code is the three characters after the first space.
    const auto sp = line.find(' ');
    if (line.rfind("HTTP/", 0) == 0 && sp != std::string::npos && line.size() >= sp + 4 && line[sp + 1] == '2' &&
        std::isdigit(static_cast<unsigned char>(line[sp + 2])) && std::isdigit(static_cast<unsigned char>(line[sp + 3])))
        return true;
    error = line.empty() ? "empty answer" : fmt::format("answered \"{}\"", line);
    return false;
}

/// Applies one notify datagram: sets `ready` on a line READY=1, keeps the last STATUS= text.
void parse_notify(const std::string& msg, bool& ready, std::optional<std::string>& status) {
    std::size_t pos = 0;
    while (pos <= msg.size()) {
        auto nl = msg.find('\n', pos);
        if (nl == std::string::npos)
            nl = msg.size();
        const std::string_view line(msg.data() + pos, nl - pos);
        if (line == "READY=1")
            ready = true;
        else if (line.rfind("STATUS=", 0) == 0)
            status = std::string(line.substr(7));
        pos = nl + 1;
    }
}

/// Sends `sig` to the child's process group, and to the child itself when it has left it.
void signal_app(pid_t pid, int sig) {
    ::kill(-pid, sig);
    if (::getpgid(pid) != pid)
        ::kill(pid, sig);
}

/// A pipe for one output stream of a child: {read end (ours, non-blocking), write end}.
std::pair<int, int> output_pipe(const char* what) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0)
        throw RuntimeError(fmt::format("cannot create a pipe for the app's {}: {}", what, std::strerror(errno)));
    ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    return {fds[0], fds[1]};
}

/// Reads what `fd` holds without blocking, handing it to `take`; closes `fd` (sets -1) at EOF.
template <typename Take>
void drain(int& fd, Take take) {
    char buf[16384];
    while (fd >= 0) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) {
            take(std::string_view(buf, std::size_t(n)));
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        } else {
            ::close(fd);
            fd = -1;
        }
    }
}

/// The addresses `host` resolves to, as raw bytes (4 for IPv4, 16 for IPv6).
std::vector<std::vector<std::uint8_t>> addresses_of(const std::string& host, std::string& error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* list = nullptr;
    if (const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &list); rc != 0) {
        error = fmt::format("cannot resolve {}: {}", host, ::gai_strerror(rc));
        return {};
    }
    std::vector<std::vector<std::uint8_t>> out;
    for (addrinfo* ai = list; ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            const auto* a = reinterpret_cast<const sockaddr_in*>(ai->ai_addr);
            const auto* b = reinterpret_cast<const std::uint8_t*>(&a->sin_addr);
            out.emplace_back(b, b + 4);
        } else if (ai->ai_family == AF_INET6) {
            const auto* a = reinterpret_cast<const sockaddr_in6*>(ai->ai_addr);
            const auto* b = reinterpret_cast<const std::uint8_t*>(&a->sin6_addr);
            out.emplace_back(b, b + 16);
        }
    }
    ::freeaddrinfo(list);
    return out;
}

}  // namespace

/// A running try of ready = "command".
struct AppProcess::Probe {
    pid_t pid = -1;
    int fd = -1;  ///< its stdout and stderr
    std::string output;  ///< the tail of what it wrote
    Clock::time_point deadline;
    ~Probe() {
        if (fd >= 0)
            ::close(fd);
    }
};

std::string ChildExit::describe() const { return describe_exit(exit_status, term_signal); }

std::string describe_readiness(const Readiness& ready) {
    switch (ready.kind) {
    case Readiness::Kind::notify: return "notify";
    case Readiness::Kind::started: return "started";
    case Readiness::Kind::tcp: return fmt::format("tcp://{}:{}", ready.host, ready.port);
    case Readiness::Kind::http:
        return ready.url.empty() ? fmt::format("http://{}:{}/", ready.host, ready.port) : ready.url;
    case Readiness::Kind::command:
        return ready.command.empty() ? "command" : fmt::format("command {}", ready.command.front());
    }
    return "?";
}

AppProcess::AppProcess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                       const std::optional<std::filesystem::path>& cwd, const Readiness& ready,
                       const std::filesystem::path& runtime_dir, const std::optional<Credentials>& credentials,
                       std::string_view app_name)
    : ready_(ready), credentials_(credentials), name_(argv.empty() ? "app" : command_name(argv, app_name)),
      out_(name_, log::Stream::out), err_(name_, log::Stream::err) {
    SpawnSpec spec;
    spec.argv = argv;
    spec.env = env;
    spec.unset_env = inherited_service_vars;
    for (const auto& v : inherited_service_vars)
        spec.env.erase(v);
    if (cwd)
        spec.cwd = cwd->string();
    spec.credentials = credentials;
    if (ready.kind == Readiness::Kind::command) {
        probe_spec_ = spec;
        probe_spec_.argv = ready.command;
    }
    if (ready.kind == Readiness::Kind::notify) {
        std::optional<std::pair<uid_t, gid_t>> owner;
        if (credentials)
            owner = std::pair(credentials->uid, credentials->gid);
        listener_ = std::make_unique<notify::Listener>(runtime_dir, owner);
        spec.env["NOTIFY_SOCKET"] = listener_->path().string();
        // An app that cannot reach it would only log "sd_notify: -13" while we wait.
        spec.must_write.push_back(listener_->path().string());
    }
    const auto [out_r, out_w] = output_pipe("stdout");
    out_.fd = out_r;
    const auto [err_r, err_w] = output_pipe("stderr");
    err_.fd = err_r;
    spec.stdout_fd = out_w;
    spec.stderr_fd = err_w;
    try {
        pid_ = spawn_process(spec);
    } catch (...) {
        ::close(out_w);
        ::close(err_w);
        ::close(out_.fd);
        ::close(err_.fd);
        out_.fd = err_.fd = -1;
        throw;
    }
    ::close(out_w);
    ::close(err_w);
    out_.lines.set_pid(pid_);
    err_.lines.set_pid(pid_);
}

AppProcess::~AppProcess() {
    try {
        if (pid_ > 0)
            stop(stop_timeout_);
    } catch (...) {
        // A destructor must not throw; the child is then left to systemd's cgroup cleanup.
    }
    kill_probe();
    for (Output* o : {&out_, &err_})
        if (o->fd >= 0)
            ::close(o->fd);
}

void AppProcess::forward_output() {
    drain(out_.fd, [this](std::string_view d) { out_.lines.feed(d); });
    drain(err_.fd, [this](std::string_view d) { err_.lines.feed(d); });
}

void AppProcess::finish_output() {
    forward_output();
    out_.lines.finish();
    err_.lines.finish();
}

bool AppProcess::wait_exited_forwarding(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        forward_output();
        if (wait_exited(pid_, milliseconds(0)))
            return true;
        const int left = ms_until(deadline);
        if (left == 0)
            return false;
        // The pipes wake us for output and (once nothing else holds them) at the exit; the
        // cap notices an exit while a leftover grandchild keeps them open.
        pollfd p[2] = {{out_.fd, POLLIN, 0}, {err_.fd, POLLIN, 0}};
        ::poll(p, 2, std::min(left, 20));
    }
}

void AppProcess::kill_probe() noexcept {
    if (!probe_)
        return;
    ::kill(-probe_->pid, SIGKILL);
    int status = 0;
    while (::waitpid(probe_->pid, &status, 0) < 0 && errno == EINTR) {
    }
    probe_.reset();
}

bool AppProcess::probe_ready(std::string& error) {
    const auto now = Clock::now();
    if (!probe_) {
        if (now < next_probe_)
            return false;
        next_probe_ = now + ready_.interval;
        auto probe = std::make_unique<Probe>();
        const auto [r, w] = output_pipe("readiness probe");
        probe->fd = r;
        SpawnSpec spec = probe_spec_;
        spec.stdout_fd = w;
        spec.stderr_fd = w;
        try {
            probe->pid = spawn_process(spec);
        } catch (...) {
            ::close(w);
            throw;  // a probe that cannot start never will: the config names a bad program
        }
        ::close(w);
        probe->deadline = now + ready_command_try_timeout;
        probe_ = std::move(probe);
    }
    drain(probe_->fd, [this](std::string_view d) {
        probe_->output.append(d);
        if (probe_->output.size() > 4096)
            probe_->output.erase(0, probe_->output.size() - 2048);
    });
    int status = 0;
    pid_t r;
    do
        r = ::waitpid(probe_->pid, &status, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == probe_->pid) {
        // What it left behind in its group must not pile up over the tries.
        ::kill(-probe_->pid, SIGKILL);
        const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!ok) {
            std::string out = probe_->output;
            while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
                out.pop_back();
            if (const auto nl = out.rfind('\n'); nl != std::string::npos)
                out.erase(0, nl + 1);  // its last line says most
            error = fmt::format("{} {}{}{}", ready_.command.front(),
                                describe_exit(WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                                              WIFSIGNALED(status) ? WTERMSIG(status) : 0),
                                out.empty() ? "" : ": ", log::printable(out));
        }
        probe_.reset();
        return ok;
    }
    if (now >= probe_->deadline) {
        kill_probe();
        error = fmt::format("{} did not exit within {}", ready_.command.front(),
                            format_duration(ready_command_try_timeout));
    }
    return false;
}

bool AppProcess::owns_listener(std::string& error) {
    const auto sockets = listening_sockets();
    if (!sockets)
        return true;  // no /proc to ask: the connect alone decides, as before
    const auto addresses = addresses_of(ready_.host, error);
    if (addresses.empty())
        return false;
    std::vector<const ListeningSocket*> matching;
    for (const auto& s : *sockets)
        if (s.port == ready_.port &&
            std::any_of(addresses.begin(), addresses.end(), [&](const auto& a) { return takes_connections_to(s, a); }))
            matching.push_back(&s);
    if (matching.empty()) {
        error = fmt::format("nothing listens on {}:{}", ready_.host, ready_.port);
        return false;
    }
    std::optional<std::pair<uid_t, gid_t>> as;
    if (credentials_)
        as = std::pair(credentials_->uid, credentials_->gid);
    const auto owned = [&] {
        const auto inodes = socket_inodes(process_tree(pid_, as), as);
        return std::any_of(matching.begin(), matching.end(), [&](const auto* m) { return inodes.count(m->inode) > 0; });
    };
    if (owned())
        return true;
    const auto owner = socket_owner(matching.front()->inode, as);
    // A child the app forked after our look at /proc may hold it: look once more.
    if (owned() || (owner && process_tree(pid_, as).count(owner->pid)))
        return true;
    const std::string holder =
        owner ? fmt::format("PID {} ({})", owner->pid, owner->comm)
              : fmt::format("a process bartld cannot see (socket inode {}, uid {})", matching.front()->inode,
                            matching.front()->uid);
    throw RuntimeError(fmt::format("ready = {}: port {} is held by {}, which is not part of the app (PID {}); "
                                   "another process listens there, so a connection would not prove the app ready: "
                                   "stop it, or give the app another port",
                                   describe_readiness(ready_), ready_.port, holder, pid_));
}

std::optional<ChildExit> AppProcess::poll_exit() {
    if (exit_ || pid_ <= 0)
        return exit_;
    int status = 0;
    pid_t r;
    do
        r = ::waitpid(pid_, &status, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        throw RuntimeError(fmt::format("cannot wait for app process {}: {}", pid_, std::strerror(errno)));
    if (r == 0)
        return std::nullopt;
    ChildExit e;
    if (WIFEXITED(status))
        e.exit_status = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        e.term_signal = WTERMSIG(status);
    exit_ = e;
    // Its last words (a crash's reason) come before bartld's message about the exit.
    finish_output();
    kill_probe();
    return exit_;
}

ChildExit AppProcess::stop(std::chrono::milliseconds timeout) {
    kill_probe();
    if (auto done = poll_exit())
        return *done;
    signal_app(pid_, SIGTERM);
    if (!wait_exited_forwarding(timeout)) {
        signal_app(pid_, SIGKILL);
        wait_exited_forwarding(milliseconds(60'000));
    }
    // While the leader is an unreaped zombie its group id cannot be reused, so this reaches
    // only the app's leftovers: nothing of the app may keep running into a backup or migration.
    ::kill(-pid_, SIGKILL);
    int status = 0;
    pid_t r;
    do
        r = ::waitpid(pid_, &status, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        throw RuntimeError(fmt::format("cannot reap app process {}: {}", pid_, std::strerror(errno)));
    ChildExit e;
    if (WIFEXITED(status))
        e.exit_status = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        e.term_signal = WTERMSIG(status);
    exit_ = e;
    finish_output();
    return e;
}

void AppProcess::wait_ready(std::chrono::milliseconds timeout, const std::function<void()>& tick) {
    const auto start = Clock::now();
    const auto deadline = start + timeout;
    auto next_tick = start;
    std::string last_error;
    for (;;) {
        if (tick && Clock::now() >= next_tick) {
            tick();
            next_tick = Clock::now() + std::chrono::seconds(1);
        }

        bool ready = false;
        std::string error;
        // A single attempt may block; keep it short enough for the once-a-second tick.
        const auto attempt_deadline = std::min(deadline, Clock::now() + milliseconds(500));
        try {
            switch (ready_.kind) {
            case Readiness::Kind::started:
                ready = true;
                break;
            case Readiness::Kind::notify:
                while (auto msg = listener_->receive())
                    parse_notify(*msg, ready, pending_status_);
                break;
            case Readiness::Kind::tcp: {
                Socket s;
                ready = owns_listener(error) && tcp_connect(ready_.host, ready_.port, attempt_deadline, s, error);
                break;
            }
            case Readiness::Kind::http:
                ready = owns_listener(error) && http_ready(ready_, attempt_deadline, error);
                break;
            case Readiness::Kind::command:
                ready = probe_ready(error);
                break;
            }
        } catch (...) {
            // A port held by another process, a probe that cannot start: nothing to wait for.
            stop(stop_timeout_);
            throw;
        }
        forward_output();
        if (ready)
            return;
        // An attempt cut short by the overall deadline tells less than the one before it
        // ("answered 500" beats "no answer in time").
        if (!error.empty() && (last_error.empty() || Clock::now() < deadline))
            last_error = std::move(error);

        if (auto e = poll_exit())
            throw RuntimeError(fmt::format("app {} exited before it was ready: {}", name_, e->describe()));
        if (Clock::now() >= deadline) {
            stop(stop_timeout_);
            throw RuntimeError(fmt::format("app {} not ready after {} (ready = {}{})", name_, format_duration(timeout),
                                           describe_readiness(ready_),
                                           last_error.empty() ? "" : "; last attempt: " + last_error));
        }

        const int wait_ms = std::min(ms_until(deadline), 50);
        // A probe's pipe closes when it exits: its answer is taken at once, not 50 ms later.
        pollfd p[4] = {{listener_ ? listener_->fd() : -1, POLLIN, 0},
                       {out_.fd, POLLIN, 0},
                       {err_.fd, POLLIN, 0},
                       {probe_ ? probe_->fd : -1, POLLIN, 0}};
        ::poll(p, 4, wait_ms);
    }
}

int AppProcess::notify_fd() const noexcept { return listener_ ? listener_->fd() : -1; }

std::optional<std::string> AppProcess::drain_notify() {
    std::optional<std::string> status = std::move(pending_status_);
    pending_status_.reset();
    if (!listener_)
        return status;
    bool ready = false;
    while (auto msg = listener_->receive())
        parse_notify(*msg, ready, status);
    return status;
}

}  // namespace bartl
