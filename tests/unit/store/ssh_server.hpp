// A real OpenSSH server for the sftp:// store tests: Debian's /usr/sbin/sshd on a loopback
// port, with a host key and a user key generated for it, started and stopped by the test.
// Needs root (sshd's privilege separation) and openssh-server/openssh-client
// (tools/install-deps).
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "store/store.hpp"
#include "store_test_util.hpp"

namespace bartl::test {

/// Runs `command` with /bin/sh; throws with its exit status when it fails.
inline void sh(const std::string& command) {
    const int rc = std::system(command.c_str());
    if (rc != 0) throw std::runtime_error(fmt::format("`{}` failed ({})", command, rc));
}

/// A TCP port on 127.0.0.1 nobody listens on right now.
inline unsigned free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        throw std::runtime_error("cannot find a free port");
    ::close(fd);
    return ntohs(a.sin_port);
}

/// The PIDs of every process below `pid` (its children, theirs, ...), from /proc.
inline std::vector<pid_t> descendants(pid_t pid) {
    std::vector<std::pair<pid_t, pid_t>> all;  // pid, ppid
    for (const auto& e : stdfs::directory_iterator("/proc")) {
        const std::string n = e.path().filename().string();
        if (n.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream in(e.path() / "stat");
        std::string line;
        if (!std::getline(in, line)) continue;
        const auto close = line.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream rest(line.substr(close + 2));
        char state = 0;
        pid_t ppid = 0;
        rest >> state >> ppid;
        all.emplace_back(static_cast<pid_t>(std::stol(n)), ppid);
    }
    std::vector<pid_t> out;
    std::set<pid_t> parents{pid};
    for (bool grew = true; grew;) {
        grew = false;
        for (const auto& [p, pp] : all)
            if (parents.count(pp) && !parents.count(p)) {
                parents.insert(p);
                out.push_back(p);
                grew = true;
            }
    }
    return out;
}

/// One sshd serving SFTP (internal-sftp) on 127.0.0.1:port() to `root` (and `nobody`) with
/// user_key(), with `env` added to its environment (TZ=...). Stopped by the destructor, and
/// killed when the test process dies.
class SshServer {
public:
    explicit SshServer(std::map<std::string, std::string> env = {}) : port_(free_port()), env_(std::move(env)) {
        if (::access("/usr/sbin/sshd", X_OK) != 0)
            throw std::runtime_error("/usr/sbin/sshd is missing: install openssh-server (tools/install-deps)");
        // sshd reads authorized_keys as the user logging in: `nobody` must reach it.
        ::chmod(dir_.path().c_str(), 0755);
        keygen(host_key());
        keygen(user_key());
        std::filesystem::copy_file(user_key().string() + ".pub", dir_ / "authorized_keys");
        ::chmod((dir_ / "authorized_keys").c_str(), 0644);
        write_file(known_hosts(), known_hosts_line(host_key()), 0644);
        write_file(dir_ / "sshd_config", fmt::format("Port {}\nListenAddress 127.0.0.1\nHostKey {}\n"
                                                    "AuthorizedKeysFile {}\nPasswordAuthentication no\n"
                                                    "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
                                                    "StrictModes no\nUsePAM no\nPidFile {}\nLogLevel VERBOSE\n"
                                                    "Subsystem sftp internal-sftp\n",
                                                    port_, host_key().string(), (dir_ / "authorized_keys").string(),
                                                    (dir_ / "sshd.pid").string()));
        ::mkdir("/run/sshd", 0755);  // privilege separation directory
        start();
    }
    ~SshServer() { stop(); }
    SshServer(const SshServer&) = delete;
    SshServer& operator=(const SshServer&) = delete;

    unsigned port() const { return port_; }
    const stdfs::path& dir() const { return dir_.path(); }
    stdfs::path host_key() const { return dir_ / "hostkey"; }
    stdfs::path user_key() const { return dir_ / "userkey"; }
    stdfs::path known_hosts() const { return dir_ / "known_hosts"; }
    stdfs::path log() const { return dir_ / "sshd.log"; }

    /// "[127.0.0.1]:PORT TYPE KEY", the known_hosts line of host key `key` for this server.
    std::string known_hosts_line(const stdfs::path& key) const {
        std::istringstream pub(read_file(key.string() + ".pub"));
        std::string type, blob;
        pub >> type >> blob;
        return fmt::format("[127.0.0.1]:{} {} {}\n", port_, type, blob);
    }

    /// An ed25519 key pair without passphrase at `path` (and `path`.pub).
    static void keygen(const stdfs::path& path) {
        sh(fmt::format("ssh-keygen -q -t ed25519 -N '' -C bartl-test -f '{}'", path.string()));
    }

    /// The store URL of directory `dir` on this server.
    std::string url(const stdfs::path& dir, const std::string& user = "root") const {
        return fmt::format("sftp://{}@127.0.0.1:{}{}", user, port_, dir.string());
    }

    /// Store options for this server: its user key, its known_hosts, and quick give-ups.
    StoreOptions options(std::chrono::milliseconds retry_for = std::chrono::milliseconds(2000)) const {
        StoreOptions o;
        o.settings.sftp.key_file = user_key();
        o.settings.sftp.known_hosts = known_hosts();
        o.settings.retry_for = retry_for;
        o.settings.call_timeout = std::chrono::milliseconds(5000);
        return o;
    }

    /// Starts sshd (again, with `host_key` when given) and waits until it accepts connections.
    void start(const stdfs::path& host_key_override = {}) {
        const std::string config = (dir_ / "sshd_config").string();
        const std::string key = host_key_override.empty() ? host_key().string() : host_key_override.string();
        const std::string logfile = log().string();
        pid_ = ::fork();
        if (pid_ < 0) throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            for (const auto& [k, v] : env_) ::setenv(k.c_str(), v.c_str(), 1);
            const int fd = ::open(logfile.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            ::dup2(fd, 2);
            ::execl("/usr/sbin/sshd", "/usr/sbin/sshd", "-D", "-e", "-f", config.c_str(), "-h", key.c_str(),
                    static_cast<char*>(nullptr));
            ::_exit(127);
        }
        for (int i = 0; i < 500; ++i) {
            const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            a.sin_port = htons(static_cast<uint16_t>(port_));
            const bool up = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
            ::close(fd);
            if (up) return;
            int st = 0;
            if (::waitpid(pid_, &st, WNOHANG) == pid_) {
                pid_ = -1;
                throw std::runtime_error("sshd exited at start: " + read_file(log()));
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        throw std::runtime_error("sshd does not accept connections: " + read_file(log()));
    }

    /// Ends every session (SIGKILL to the processes serving connections); the listener stays,
    /// so a client that connects again gets in: a dropped connection.
    void kill_sessions() const {
        for (pid_t p : descendants(pid_)) ::kill(p, SIGKILL);
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) every session: a server that stops answering.
    void signal_sessions(int sig) const {
        for (pid_t p : descendants(pid_)) ::kill(p, sig);
    }

    /// Stops the server and ends its sessions: the host is down.
    void stop() {
        if (pid_ <= 0) return;
        const auto sessions = descendants(pid_);
        ::kill(pid_, SIGKILL);
        for (pid_t p : sessions) ::kill(p, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

    /// How many connections authenticated so far.
    std::size_t logins() const {
        std::size_t n = 0;
        std::istringstream in(read_file(log()));
        for (std::string line; std::getline(in, line);)
            if (line.find("Accepted publickey") != std::string::npos) ++n;
        return n;
    }

private:
    TempDir dir_;
    unsigned port_;
    std::map<std::string, std::string> env_;
    pid_t pid_ = -1;
};

}  // namespace bartl::test
