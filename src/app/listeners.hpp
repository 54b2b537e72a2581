// Who listens on a TCP port: the listening sockets of this network namespace
// (/proc/self/net/tcp and tcp6, proc(5)) and the processes holding them (/proc/PID/fd), so
// that tcp:// and http:// readiness count only the app's own socket (bartl.toml(5), [app]
// ready).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace bartl {

/// A TCP socket in LISTEN state.
struct ListeningSocket {
    bool v6 = false;
    std::array<std::uint8_t, 16> address{};  ///< network byte order; IPv4 in the first 4 bytes
    int port = 0;
    std::uint64_t inode = 0;  ///< the socket's inode: "socket:[INODE]" in /proc/PID/fd
    uid_t uid = 0;            ///< the user that created it
};

/// The LISTEN sockets (state 0A) in the text of /proc/net/tcp (`v6` false) or
/// /proc/net/tcp6 (`v6` true). Addresses there are the kernel's 32-bit words in host byte
/// order; they are returned in network byte order. Lines that do not parse are skipped. Pure.
std::vector<ListeningSocket> parse_proc_net_tcp(std::string_view text, bool v6);

/// Whether a connection to `address` (4 bytes for IPv4, 16 for IPv6, network byte order)
/// would be taken by `s`: the same address, or a wildcard socket of the family (an IPv6
/// wildcard also takes IPv4, unless it is IPV6_V6ONLY, which /proc does not show), or an
/// IPv4-mapped IPv6 socket for the IPv4 address. The port is not compared. Pure.
bool takes_connections_to(const ListeningSocket& s, const std::vector<std::uint8_t>& address);

/// The LISTEN sockets of our network namespace (/proc/self/net/tcp and tcp6, which
/// ProcSubset=pid leaves visible); std::nullopt when neither can be read.
std::optional<std::vector<ListeningSocket>> listening_sockets();

/// A process as /proc shows it.
struct ProcessInfo {
    pid_t pid = 0;
    std::string comm;  ///< /proc/PID/comm, without the newline
};

/// The app's process tree: `leader`, every process in its process group, and every
/// descendant of either (by parent PID), as far as /proc shows them. Read as
/// `as_uid`/`as_gid` (see socket_inodes()).
std::set<pid_t> process_tree(pid_t leader, std::optional<std::pair<uid_t, gid_t>> as = std::nullopt);

/// The socket inodes open in the processes `pids` (/proc/PID/fd). `as` names the user whose
/// processes these are: the file system ids of the calling thread are set to it while
/// reading, because the app's /proc/PID/fd is open to its own user, while bartld under the
/// shipped unit (root without CAP_SYS_PTRACE, ProtectProc=invisible) may not read it.
std::set<std::uint64_t> socket_inodes(const std::set<pid_t>& pids,
                                      std::optional<std::pair<uid_t, gid_t>> as = std::nullopt);

/// The first visible process holding socket `inode`, looked for as ourselves and then as
/// `as`; std::nullopt when no process that bartld can see holds it.
std::optional<ProcessInfo> socket_owner(std::uint64_t inode, std::optional<std::pair<uid_t, gid_t>> as = std::nullopt);

}  // namespace bartl
