// Parsing /proc/net/tcp{,6} and matching listeners to the address a readiness check connects
// to (pure), then the real tables and process tree of this test process.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "app/listeners.hpp"

using namespace bartl;

namespace {

std::vector<std::uint8_t> v4(const char* text) {
    in_addr a{};
    REQUIRE(::inet_pton(AF_INET, text, &a) == 1);
    const auto* b = reinterpret_cast<const std::uint8_t*>(&a);
    return {b, b + 4};
}

std::vector<std::uint8_t> v6(const char* text) {
    in6_addr a{};
    REQUIRE(::inet_pton(AF_INET6, text, &a) == 1);
    const auto* b = reinterpret_cast<const std::uint8_t*>(&a);
    return {b, b + 16};
}

// Lines as a little-endian kernel prints them (header, LISTEN sockets, others).
const char* tcp_table =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 4711 1 0 100 0 0 10 0\n"
    "   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12 1 0 100 0 0 10 0\n"
    "   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000   999        0 4712 1 0 20 4 30 10 -1\n"
    "   3: garbage\n";

const char* tcp6_table =
    "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when "
    "retrnsmt   uid  timeout inode\n"
    "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 "
    "00:00000000 00000000   998        0 5000 1 0 100 0 0 10 0\n"
    "   1: 0000000000000000FFFF00000100007F:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 "
    "00:00000000 00000000   0        0 5001 1 0 100 0 0 10 0\n";

}  // namespace

TEST_CASE("parse_proc_net_tcp keeps LISTEN sockets in network byte order", "[listeners]") {
    const auto v4s = parse_proc_net_tcp(tcp_table, false);
    REQUIRE(v4s.size() == 2);
    CHECK_FALSE(v4s[0].v6);
    CHECK(std::vector<std::uint8_t>(v4s[0].address.begin(), v4s[0].address.begin() + 4) == v4("127.0.0.1"));
    CHECK(v4s[0].port == 8080);
    CHECK(v4s[0].uid == 999);
    CHECK(v4s[0].inode == 4711);
    CHECK(v4s[1].port == 22);
    CHECK(std::vector<std::uint8_t>(v4s[1].address.begin(), v4s[1].address.begin() + 4) == v4("0.0.0.0"));

    const auto v6s = parse_proc_net_tcp(tcp6_table, true);
    REQUIRE(v6s.size() == 2);
    CHECK(v6s[0].v6);
    CHECK(std::vector<std::uint8_t>(v6s[0].address.begin(), v6s[0].address.end()) == v6("::1"));
    CHECK(v6s[0].port == 8080);
    CHECK(v6s[0].inode == 5000);
    CHECK(std::vector<std::uint8_t>(v6s[1].address.begin(), v6s[1].address.end()) == v6("::ffff:127.0.0.1"));
    CHECK(v6s[1].port == 80);

    // The wrong width for the family, an empty text: nothing.
    CHECK(parse_proc_net_tcp(tcp_table, true).empty());
    CHECK(parse_proc_net_tcp("", false).empty());
}

TEST_CASE("takes_connections_to: the same address, the family's wildcard, IPv4-mapped", "[listeners]") {
    const auto v4s = parse_proc_net_tcp(tcp_table, false);
    const auto v6s = parse_proc_net_tcp(tcp6_table, true);
    const auto& loopback = v4s[0];  // 127.0.0.1
    const auto& any = v4s[1];       // 0.0.0.0
    const auto& loopback6 = v6s[0];  // ::1
    const auto& mapped = v6s[1];     // ::ffff:127.0.0.1
    CHECK(takes_connections_to(loopback, v4("127.0.0.1")));
    CHECK_FALSE(takes_connections_to(loopback, v4("127.0.0.2")));
    CHECK_FALSE(takes_connections_to(loopback, v6("::1")));
    CHECK(takes_connections_to(any, v4("192.0.2.1")));
    CHECK_FALSE(takes_connections_to(any, v6("::1")));
    CHECK(takes_connections_to(loopback6, v6("::1")));
    CHECK_FALSE(takes_connections_to(loopback6, v4("127.0.0.1")));
    CHECK(takes_connections_to(mapped, v4("127.0.0.1")));
    CHECK_FALSE(takes_connections_to(mapped, v4("10.0.0.1")));
    ListeningSocket wildcard6;
    wildcard6.v6 = true;
    CHECK(takes_connections_to(wildcard6, v6("2001:db8::1")));
    CHECK(takes_connections_to(wildcard6, v4("127.0.0.1")));  // dual-stack unless V6ONLY
    CHECK_FALSE(takes_connections_to(loopback, {1, 2, 3}));
}

TEST_CASE("a socket we listen on is found in our table, our tree and by its owner", "[listeners]") {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd, 1) == 0);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    const int port = ntohs(a.sin_port);

    const auto sockets = listening_sockets();
    REQUIRE(sockets);
    const ListeningSocket* ours = nullptr;
    for (const auto& s : *sockets)
        if (s.port == port && takes_connections_to(s, v4("127.0.0.1")))
            ours = &s;
    REQUIRE(ours);
    CHECK(ours->uid == ::geteuid());

    const auto tree = process_tree(::getpid());
    CHECK(tree.count(::getpid()) == 1);
    CHECK(socket_inodes(tree).count(ours->inode) == 1);
    const auto owner = socket_owner(ours->inode);
    REQUIRE(owner);
    CHECK(owner->pid == ::getpid());
    CHECK(owner->comm == "unit-app");
    ::close(fd);
    CHECK_FALSE(socket_owner(ours->inode));
}
