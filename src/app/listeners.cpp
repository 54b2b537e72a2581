// Listening sockets and their processes, from /proc (see listeners.hpp).
#include "app/listeners.hpp"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <map>
#include <sys/syscall.h>
#include <unistd.h>


namespace bartl {
namespace {

/// Sets the calling thread's file system ids for its lifetime (setfsuid(2) is per thread,
/// so the D-Bus and backup threads keep theirs). A no-op without `as`, and when we may not
/// change them (an unprivileged bartld reads only what it can anyway).
class FsIds {
public:
    explicit FsIds(std::optional<std::pair<uid_t, gid_t>> as) {
        if (!as)
            return;
        active_ = true;
        // The group first: with a non-zero fsuid the thread keeps CAP_SETGID, but not the rest.
        old_gid_ = gid_t(::syscall(SYS_setfsgid, as->second));
        old_uid_ = uid_t(::syscall(SYS_setfsuid, as->first));
    }
    ~FsIds() {
        if (!active_)
            return;
        ::syscall(SYS_setfsuid, old_uid_);
        ::syscall(SYS_setfsgid, old_gid_);
    }
    FsIds(const FsIds&) = delete;
    FsIds& operator=(const FsIds&) = delete;

private:
    bool active_ = false;
    uid_t old_uid_ = 0;
    gid_t old_gid_ = 0;
};

/// A whole /proc file; std::nullopt on any error (processes vanish while we look).
std::optional<std::string> read_proc(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return std::nullopt;
    std::string out;
    char buf[16384];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) {
            out.append(buf, std::size_t(n));
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        ::close(fd);
        if (n < 0)
            return std::nullopt;
        return out;
    }
}

/// A number in `base` that fills `s` completely.
std::optional<std::uint64_t> number(std::string_view s, int base) {
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
    if (s.empty() || ec != std::errc{} || end != s.data() + s.size())
        return std::nullopt;
    return v;
}
std::optional<std::uint64_t> hex(std::string_view s) { return number(s, 16); }
std::optional<std::uint64_t> decimal(std::string_view s) { return number(s, 10); }

std::vector<std::string_view> words(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t'))
            ++i;
        const std::size_t start = i;
        while (i < line.size() && line[i] != ' ' && line[i] != '\t')
            ++i;
        if (i > start)
            out.push_back(line.substr(start, i - start));
    }
    return out;
}

/// The PIDs listed in /proc.
std::vector<pid_t> all_pids() {
    std::vector<pid_t> out;
    DIR* d = ::opendir("/proc");
    if (!d)
        return out;
    while (const dirent* e = ::readdir(d))
        if (auto pid = decimal(e->d_name); pid && *pid > 0 && *pid < (1u << 31))
            out.push_back(pid_t(*pid));
    ::closedir(d);
    return out;
}

/// Parent PID and process group from /proc/PID/stat ("PID (COMM) S PPID PGRP ..."; COMM may
/// hold spaces and parentheses, hence the last ')').
std::optional<std::pair<pid_t, pid_t>> parent_and_group(pid_t pid) {
    auto text = read_proc("/proc/" + std::to_string(pid) + "/stat");
    if (!text)
        return std::nullopt;
    const auto close = text->rfind(')');
    if (close == std::string::npos)
        return std::nullopt;
    const auto w = words(std::string_view(*text).substr(close + 1));
    if (w.size() < 3)
        return std::nullopt;
    const auto ppid = decimal(w[1]), pgrp = decimal(w[2]);
    if (!ppid || !pgrp)
        return std::nullopt;
    return std::pair(pid_t(*ppid), pid_t(*pgrp));
}

/// Calls `fn(inode)` for every socket open in process `pid`; stops early when it returns true.
template <typename Fn>
bool each_socket(pid_t pid, Fn fn) {
    const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return false;
    DIR* d = ::fdopendir(dfd);
    if (!d) {
        ::close(dfd);
        return false;
    }
    bool stopped = false;
    while (const dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.')
            continue;
        char target[64];
        const ssize_t n = ::readlinkat(dfd, e->d_name, target, sizeof target - 1);
        if (n <= 0)
            continue;
        const std::string_view t(target, std::size_t(n));
        if (!t.starts_with("socket:[") || !t.ends_with("]"))
            continue;
        if (auto inode = decimal(t.substr(8, t.size() - 9)); inode && fn(*inode)) {
            stopped = true;
            break;
        }
    }
    ::closedir(d);
    return stopped;
}

}  // namespace

std::vector<ListeningSocket> parse_proc_net_tcp(std::string_view text, bool v6) {
    std::vector<ListeningSocket> out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        if (nl == std::string_view::npos)
            nl = text.size();
        const auto w = words(text.substr(pos, nl - pos));
        pos = nl + 1;
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
        if (w.size() < 10 || w[3] != "0A")
            continue;
        const auto colon = w[1].find(':');
        if (colon == std::string_view::npos)
            continue;
        const std::string_view addr = w[1].substr(0, colon);
        const auto port = hex(w[1].substr(colon + 1));
        const auto uid = decimal(w[7]);
        const auto inode = decimal(w[9]);
        if (addr.size() != (v6 ? 32u : 8u) || !port || *port > 65535 || !uid || !inode)
            continue;
        ListeningSocket s;
        s.v6 = v6;
        bool ok = true;
        // Each 32-bit word is printed as the number the kernel holds in memory: copying it
        // back as a native word restores the network byte order.
        for (std::size_t i = 0; i * 8 < addr.size(); ++i) {
            const auto word = hex(addr.substr(i * 8, 8));
            if (!word) {
                ok = false;
                break;
            }
            const auto w32 = std::uint32_t(*word);
            std::memcpy(s.address.data() + i * 4, &w32, 4);
        }
        if (!ok)
            continue;
        s.port = int(*port);
        s.uid = uid_t(*uid);
        s.inode = *inode;
        out.push_back(s);
    }
    return out;
}

bool takes_connections_to(const ListeningSocket& s, const std::vector<std::uint8_t>& address) {
    static constexpr std::array<std::uint8_t, 16> zero{};
    const bool wildcard = std::memcmp(s.address.data(), zero.data(), s.v6 ? 16 : 4) == 0;
    if (address.size() == 4) {
        if (!s.v6)
            return wildcard || std::memcmp(s.address.data(), address.data(), 4) == 0;
        static constexpr std::uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        return wildcard || (std::memcmp(s.address.data(), mapped, 12) == 0 &&
                            std::memcmp(s.address.data() + 12, address.data(), 4) == 0);
    }
    if (address.size() == 16 && s.v6)
        return wildcard || std::memcmp(s.address.data(), address.data(), 16) == 0;
    return false;
}

std::optional<std::vector<ListeningSocket>> listening_sockets() {
    std::optional<std::vector<ListeningSocket>> out;
    for (const bool v6 : {false, true}) {
        // Unreadable counts as absent: IPv6 may be disabled.
        const auto text = read_proc(v6 ? "/proc/self/net/tcp6" : "/proc/self/net/tcp");
        if (!text)
            continue;
        if (!out)
            out.emplace();
        auto part = parse_proc_net_tcp(*text, v6);
        out->insert(out->end(), part.begin(), part.end());
    }
    return out;
}

std::set<pid_t> process_tree(pid_t leader, std::optional<std::pair<uid_t, gid_t>> as) {
    FsIds ids(as);
    std::map<pid_t, pid_t> parent;
    std::set<pid_t> tree{leader};
    for (pid_t pid : all_pids()) {
        if (auto pg = parent_and_group(pid)) {
            parent[pid] = pg->first;
            if (pg->second == leader)
                tree.insert(pid);
        }
    }
    // Descendants, to a fixed point: a child that left the group (setsid) is still the app's.
    for (bool grew = true; grew;) {
        grew = false;
        for (const auto& [pid, ppid] : parent)
            if (!tree.count(pid) && tree.count(ppid))
                grew = tree.insert(pid).second || grew;
    }
    return tree;
}

std::set<std::uint64_t> socket_inodes(const std::set<pid_t>& pids, std::optional<std::pair<uid_t, gid_t>> as) {
    FsIds ids(as);
    std::set<std::uint64_t> out;
    for (pid_t pid : pids)
        each_socket(pid, [&](std::uint64_t inode) {
            out.insert(inode);
            return false;
        });
    return out;
}

std::optional<ProcessInfo> socket_owner(std::uint64_t inode, std::optional<std::pair<uid_t, gid_t>> as) {
    std::vector<std::optional<std::pair<uid_t, gid_t>>> tries{std::nullopt};
    if (as)
        tries.push_back(as);
    for (const auto& t : tries) {
        FsIds ids(t);
        for (pid_t pid : all_pids()) {
            if (!each_socket(pid, [&](std::uint64_t i) { return i == inode; }))
                continue;
            ProcessInfo info{pid, ""};
            if (auto comm = read_proc("/proc/" + std::to_string(pid) + "/comm")) {
                info.comm = *comm;
                while (!info.comm.empty() && info.comm.back() == '\n')
                    info.comm.pop_back();
            }
            return info;
        }
    }
    return std::nullopt;
}

}  // namespace bartl
