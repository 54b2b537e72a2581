// The store contract (store_contract.hpp) on the sftp:// store against a real OpenSSH server
// (ssh_server.hpp), and what is particular to it: host keys and user keys, permissions, a
// missing directory, a server that goes away or stops answering mid-stream, streams larger
// than memory, listed times in the server's time zone, the lock of conditional writes.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <cstdio>
#include <cstring>
#include <functional>
#include <chrono>
#include <random>
#include <thread>

#include <fmt/format.h>

#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "store/file_store.hpp"
#include "store/sftp_store.hpp"
#include "store/store.hpp"
#include "store_contract.hpp"
#include "store_test_util.hpp"
#include "ssh_server.hpp"
#include "util/sha256.hpp"

using namespace bartl;
using namespace bartl::test;
using namespace std::chrono_literals;

namespace {

/// The server the contract and most cases share, started once per test binary.
SshServer& server() {
    static SshServer s;
    return s;
}

struct SftpBackend {
    TempDir tmp;  // the store directory, on the server (which runs on this machine)
    std::unique_ptr<Store> store = open_store(server().url(tmp.path()), server().options());
    std::unique_ptr<Store> unreachable() {
        // Nothing listens there: connection refused, retried for 300 ms.
        return open_store(fmt::format("sftp://root@127.0.0.1:{}{}", free_port(), tmp.path().string()),
                          server().options(300ms));
    }
};

/// Deterministic bytes that do not compress or repeat: chunk `n` of a stream.
std::string chunk_of(std::uint64_t n, std::size_t size) {
    std::mt19937_64 rng(n);
    std::string out(size, '\0');
    for (std::size_t i = 0; i + 8 <= size; i += 8) {
        const auto v = rng();
        std::memcpy(out.data() + i, &v, 8);
    }
    return out;
}

/// Writes `chunks` chunks of chunk_of() to a new object; returns the SHA-256 of what it wrote.
std::string write_stream(Store& s, const std::string& name, std::uint64_t chunks, std::size_t chunk_size,
                         const std::function<void(std::uint64_t)>& each = {}) {
    Context ctx;
    auto w = s.create(ctx, name);
    Sha256 h;
    for (std::uint64_t i = 0; i < chunks; ++i) {
        const auto c = chunk_of(i, chunk_size);
        h.update(c.data(), c.size());
        w->write(c.data(), c.size());
        if (each) each(i);
    }
    w->commit(ctx);
    return h.hex();
}

/// Reads a whole stream, calling `each` with the bytes read so far after each read; returns its SHA-256.
std::string hash_stream(ByteSource& src, const std::function<void(std::uint64_t)>& each = {}) {
    Sha256 h;
    std::vector<char> buf(1 << 20);
    std::uint64_t total = 0;
    while (std::size_t n = src.read(buf.data(), buf.size())) {
        h.update(buf.data(), n);
        total += n;
        if (each) each(total);
    }
    return h.hex();
}

/// This process's resident set size in bytes (VmRSS).
std::uint64_t rss() {
    std::istringstream in(read_file("/proc/self/status"));
    for (std::string line; std::getline(in, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
    return 0;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

/// A TCP relay from a loopback port to `target` that holds every chunk for `delay` in each
/// direction, as a network with a round trip of 2 x `delay` would (no netem in the test VM).
class SlowLink {
public:
    SlowLink(unsigned target, std::chrono::milliseconds delay) : target_(target), delay_(delay) {
        listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listener_, 8) != 0 ||
            ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
            throw std::runtime_error(std::string("SlowLink: ") + std::strerror(errno));
        port_ = ntohs(a.sin_port);
        threads_.emplace_back([this] { accept_loop(); });
    }
    ~SlowLink() {
        stopping_ = true;
        ::shutdown(listener_, SHUT_RDWR);
        {
            std::lock_guard lock(mu_);
            for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
        }
        for (auto& t : threads_) t.join();
        for (int fd : fds_) ::close(fd);
        ::close(listener_);
    }
    unsigned port() const { return port_; }

private:
    struct Queue {
        std::mutex mu;
        std::condition_variable cv;
        std::deque<std::pair<std::chrono::steady_clock::time_point, std::string>> chunks;
        bool closed = false;
    };
    void accept_loop() {
        for (;;) {
            const int in = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
            if (in < 0 || stopping_) {
                if (in >= 0) ::close(in);
                return;
            }
            const int out = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            a.sin_port = htons(static_cast<std::uint16_t>(target_));
            if (::connect(out, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
                ::close(in);
                ::close(out);
                continue;
            }
            std::lock_guard lock(mu_);
            fds_.push_back(in);
            fds_.push_back(out);
            pump(in, out);
            pump(out, in);
        }
    }
    /// Reads `from` on one thread, writes each chunk to `to` `delay_` later on another.
    void pump(int from, int to) {
        auto q = std::make_shared<Queue>();
        threads_.emplace_back([this, from, q] {
            char buf[65536];
            for (ssize_t n; (n = ::read(from, buf, sizeof buf)) > 0;) {
                std::lock_guard lock(q->mu);
                q->chunks.emplace_back(std::chrono::steady_clock::now() + delay_, std::string(buf, std::size_t(n)));
                q->cv.notify_one();
            }
            std::lock_guard lock(q->mu);
            q->closed = true;
            q->cv.notify_one();
        });
        threads_.emplace_back([from, to, q] {
            for (;;) {
                std::unique_lock lock(q->mu);
                q->cv.wait(lock, [&] { return q->closed || !q->chunks.empty(); });
                if (q->chunks.empty()) break;
                auto [due, data] = std::move(q->chunks.front());
                q->chunks.pop_front();
                lock.unlock();
                std::this_thread::sleep_until(due);
                if (::send(to, data.data(), data.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(data.size())) break;
            }
            ::shutdown(to, SHUT_WR);
            ::shutdown(from, SHUT_RD);
        });
    }

    unsigned target_;
    std::chrono::milliseconds delay_;
    int listener_ = -1;
    unsigned port_ = 0;
    std::atomic<bool> stopping_{false};
    std::mutex mu_;
    std::vector<int> fds_;
    std::vector<std::thread> threads_;  // appended to only by accept_loop() after the first
};

}  // namespace

BARTL_STORE_CONTRACT(SftpBackend)

TEST_CASE("sftp store: open_store takes sftp:// URLs", "[store][sftp]") {
    auto s = open_store("sftp://backup@example.org:2222/srv/bartl/notes");
    CHECK(dynamic_cast<SftpStore*>(s.get()) != nullptr);
    CHECK(s->url() == "sftp://backup@example.org:2222/srv/bartl/notes");
    CHECK_THAT(s->conditional_write_guarantee(), Catch::Contains(".bartl-store.lock.d") &&
                                                     Catch::Contains("5 minutes") && Catch::Contains("Fencing"));
    CHECK_THROWS_AS(open_store("sftp://user:secret@host/dir"), ConfigError);
    CHECK_THROWS_AS(open_store("sftp://host/"), ConfigError);
}

TEST_CASE("sftp store: an unknown host key is refused, never accepted or added", "[store][sftp]") {
    TempDir tmp;
    write_file(tmp / "known_hosts", "", 0644);
    auto o = server().options(10s);
    o.settings.sftp.known_hosts = tmp / "known_hosts";
    auto s = open_store(server().url(tmp.path()), o);
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(s->list(Context{}, ""), StoreUnavailable);
    CHECK_THROWS_WITH(s->list(Context{}, ""),
                      Catch::Contains(fmt::format("the host key of 127.0.0.1:{} is not in {}", server().port(),
                                                  (tmp / "known_hosts").string())) &&
                          Catch::Contains(fmt::format("[127.0.0.1]:{}", server().port())) &&
                          Catch::Contains("does not connect"));
    CHECK(seconds_since(t0) < 5);  // not retried: it will not pass by itself
    CHECK(read_file(tmp / "known_hosts").empty());
    CHECK_THROWS_AS(s->create(Context{}, "x"), StoreUnavailable);

    // A missing known_hosts file (the default /etc/ssh/ssh_known_hosts on a host without one).
    o.settings.sftp.known_hosts = tmp / "absent";
    auto none = open_store(server().url(tmp.path()), o);
    CHECK_THROWS_WITH(none->list(Context{}, ""), Catch::Contains("cannot read the known_hosts file") &&
                                                     Catch::Contains((tmp / "absent").string()) &&
                                                     Catch::Contains("No such file or directory"));
    CHECK_FALSE(stdfs::exists(tmp / "absent"));
}

TEST_CASE("sftp store: a changed host key is refused", "[store][sftp]") {
    SshServer srv;
    TempDir store_dir;
    auto s = open_store(srv.url(store_dir.path()), srv.options(10s));
    CHECK(s->list(Context{}, "").empty());
    // The same server comes back with another host key: a reinstalled machine, or an impostor.
    srv.stop();
    const auto other = srv.dir() / "hostkey-new";
    SshServer::keygen(other);
    srv.start(other);
    const auto before = read_file(srv.known_hosts());
    auto again = open_store(srv.url(store_dir.path()), srv.options(10s));
    CHECK_THROWS_AS(again->list(Context{}, ""), StoreUnavailable);
    CHECK_THROWS_WITH(again->get(Context{}, "bartl-store.json"),
                      Catch::Contains(fmt::format("the host key of 127.0.0.1:{} does not match the one {} holds",
                                                  srv.port(), srv.known_hosts().string())) &&
                          Catch::Contains(fmt::format("ssh-keygen -R '[127.0.0.1]:{}'", srv.port())));
    CHECK(read_file(srv.known_hosts()) == before);
    // With the new key in known_hosts it is accepted.
    write_file(srv.known_hosts(), srv.known_hosts_line(other), 0644);
    CHECK(again->list(Context{}, "").empty());
}

TEST_CASE("sftp store: a key the server does not know is refused, naming user and key", "[store][sftp]") {
    TempDir tmp;
    SshServer::keygen(tmp / "stranger");
    auto o = server().options(10s);
    o.settings.sftp.key_file = tmp / "stranger";
    auto s = open_store(server().url(tmp.path()), o);
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(s->list(Context{}, ""), StoreUnavailable);
    CHECK_THROWS_WITH(s->get(Context{}, "x"), Catch::Contains("refused the key " + (tmp / "stranger").string()) &&
                                                  Catch::Contains("[store.sftp] key_file") &&
                                                  Catch::Contains("for user root"));
    CHECK(seconds_since(t0) < 5);  // not retried

    o.settings.sftp.key_file = tmp / "nokey";
    CHECK_THROWS_WITH(open_store(server().url(tmp.path()), o)->list(Context{}, ""),
                      Catch::Contains("cannot read the SSH key ([store.sftp] key_file) " + (tmp / "nokey").string()));

    // No key_file and no credential: the message says how to pass one.
    o.settings.sftp.key_file.reset();
    CHECK_THROWS_WITH(open_store(server().url(tmp.path()), o)->list(Context{}, ""),
                      Catch::Contains("no SSH key") && Catch::Contains("systemd credential sftp-key"));
    // The systemd credential sftp-key ($CREDENTIALS_DIRECTORY/sftp-key).
    stdfs::create_directories(tmp / "credentials");
    stdfs::create_directories(tmp / "store");
    stdfs::copy_file(server().user_key(), tmp / "credentials" / "sftp-key");
    o.credentials_dir = tmp / "credentials";
    CHECK(open_store(server().url(tmp / "store"), o)->list(Context{}, "").empty());
    stdfs::remove(tmp / "credentials" / "sftp-key");
    CHECK_THROWS_WITH(open_store(server().url(tmp / "store"), o)->list(Context{}, ""),
                      Catch::Contains("cannot read the SSH key (the systemd credential sftp-key)"));
}

TEST_CASE("sftp store: the user defaults to the one bartl runs as", "[store][sftp]") {
    TempDir tmp;
    const auto url = fmt::format("sftp://127.0.0.1:{}{}", server().port(), tmp.path().string());
    auto s = open_store(url, server().options());
    put_object(*s, "notes-a", "x");  // bartl runs as root here, the server takes root's key
    CHECK(listed_names(*s) == std::vector<std::string>{"notes-a"});
}

TEST_CASE("sftp store: a missing directory is unavailable and never created", "[store][sftp]") {
    TempDir tmp;
    const auto dir = tmp / "unmounted";
    auto s = open_store(server().url(dir), server().options());
    Context ctx;
    CHECK_THROWS_AS(s->list(ctx, ""), StoreUnavailable);
    CHECK_THROWS_WITH(s->list(ctx, ""), Catch::Contains(fmt::format("directory {} does not exist on 127.0.0.1:{}",
                                                                    dir.string(), server().port())));
    CHECK_THROWS_AS(s->get(ctx, "bartl-store.json"), StoreUnavailable);
    CHECK_THROWS_AS(s->open(ctx, "x"), StoreUnavailable);
    CHECK_THROWS_AS(s->create(ctx, "x"), StoreUnavailable);
    CHECK_THROWS_AS(s->put(ctx, "x", "y"), StoreUnavailable);
    CHECK_THROWS_AS(s->put(ctx, "x", "y", WriteCondition::absent()), StoreUnavailable);
    CHECK_THROWS_AS(s->remove(ctx, "x"), StoreUnavailable);
    CHECK_THROWS_AS(s->remove_abandoned_uploads(ctx, "notes-", 24h), StoreUnavailable);
    CHECK_FALSE(stdfs::exists(dir));
}

TEST_CASE("sftp store: a directory the user may not write is read-only", "[store][sftp]") {
    // `nobody` logs in with the same key; the directory is root's, mode 0755.
    TempDir tmp;
    ::chmod(tmp.path().c_str(), 0755);
    auto root = open_store(server().url(tmp.path()), server().options());
    put_object(*root, "notes-a", "written by root");
    ::chmod((tmp / "notes-a").c_str(), 0644);
    auto s = open_store(server().url(tmp.path(), "nobody"), server().options(10s));
    Context ctx;
    CHECK(listed_names(*s) == std::vector<std::string>{"notes-a"});
    CHECK(read_object(*s, "notes-a") == "written by root");
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(s->create(ctx, "notes-b"), StoreReadOnly);
    CHECK_THROWS_WITH(s->create(ctx, "notes-b"), Catch::Contains("permission denied"));
    CHECK_THROWS_AS(s->put(ctx, "notes-b.json", "{}"), StoreReadOnly);
    CHECK_THROWS_AS(s->put(ctx, "bartl-store.json", "{}", WriteCondition::absent()), StoreReadOnly);
    CHECK_THROWS_AS(s->remove(ctx, "notes-a"), StoreReadOnly);
    CHECK(seconds_since(t0) < 5);  // refusals are answers, not retried
    CHECK(names_in(tmp.path()) == std::vector<std::string>{"notes-a"});
}

TEST_CASE("sftp store: remove_many removes in batches, far faster than one by one", "[store][sftp]") {
    // Through a link with a 10 ms round trip, where round trips are what deleting costs.
    TempDir tmp;
    SlowLink link(server().port(), 5ms);
    auto options = server().options();
    options.settings.sftp.known_hosts = tmp / "known_hosts.link";
    const std::string line = server().known_hosts_line(server().host_key());  // "[127.0.0.1]:PORT TYPE KEY"
    write_file(options.settings.sftp.known_hosts,
               fmt::format("[127.0.0.1]:{} {}", link.port(), line.substr(line.find(' ') + 1)));
    stdfs::create_directory(tmp / "store");
    auto s = open_store(fmt::format("sftp://root@127.0.0.1:{}{}", link.port(), (tmp / "store").string()), options);
    Context ctx;
    std::vector<std::string> names;
    for (int i = 0; i < 200; ++i) names.push_back(fmt::format("notes-{:03}.tar.zst", i));
    auto plant = [&] {
        for (const auto& n : names) write_file(tmp / "store" / n, "x");
    };
    CHECK(listed_names(*s).empty());  // the connection is open before the clocks start
    plant();
    auto t0 = std::chrono::steady_clock::now();
    for (const auto& n : names) s->remove(ctx, n);
    const double one_by_one = seconds_since(t0);
    CHECK(names_in(tmp / "store").empty());
    plant();
    names.push_back("notes-never-there");  // missing is fine
    t0 = std::chrono::steady_clock::now();
    s->remove_many(ctx, names);
    const double batched = seconds_since(t0);
    CHECK(names_in(tmp / "store").empty());
    std::fprintf(stderr, "sftp, 10 ms round trip: removing 200 objects: %.2f s one by one, %.2f s with remove_many "
                         "(%.1fx)\n",
                 one_by_one, batched, one_by_one / batched);
    CHECK(batched * 1.5 < one_by_one);
}

TEST_CASE("sftp store: remove_many takes more than one batch", "[store][sftp]") {
    TempDir tmp;
    auto s = open_store(server().url(tmp.path()), server().options());
    std::vector<std::string> names;
    for (int i = 0; i < 1201; ++i) names.push_back(fmt::format("notes-{:04}", i));
    for (const auto& n : names) write_file(tmp / n, "x");
    write_file(tmp / "notes-kept", "x");
    s->remove_many(Context{}, names);
    CHECK(names_in(tmp.path()) == std::vector<std::string>{"notes-kept"});
    s->remove_many(Context{}, {});
}

TEST_CASE("sftp store: remove_many names each object that stayed and why, removing the rest", "[store][sftp]") {
    // A sticky directory, as /tmp: nobody may remove its own files, not root's.
    TempDir tmp;
    ::chmod(tmp.path().c_str(), 01777);
    auto root = open_store(server().url(tmp.path()), server().options());
    auto s = open_store(server().url(tmp.path(), "nobody"), server().options(10s));
    Context ctx;
    put_object(*root, "notes-root-a", "root's");
    put_object(*s, "notes-own", "nobody's");
    put_object(*root, "notes-root-b", "root's");
    const auto t0 = std::chrono::steady_clock::now();
    try {
        s->remove_many(ctx, {"notes-root-a", "notes-gone", "notes-own", "notes-root-b"});
        FAIL("remove_many of root's files as nobody did not throw");
    } catch (const StoreReadOnly& e) {
        const std::string m = e.what();
        CHECK_THAT(m, Catch::Contains("removing 4 objects (notes-root-a ...): 2 of them stayed: "));
        CHECK_THAT(m, Catch::Contains("removing notes-root-a: ") && Catch::Contains("removing notes-root-b: "));
        CHECK_THAT(m, Catch::Contains("ermission denied"));
        CHECK_THAT(m, !Catch::Contains("notes-gone") && !Catch::Contains("notes-own"));
    }
    CHECK(seconds_since(t0) < 5);  // a refusal is an answer, not retried
    CHECK(names_in(tmp.path()) == std::vector<std::string>{"notes-root-a", "notes-root-b"});
    root->remove_many(ctx, {"notes-root-a", "notes-root-b"});
    CHECK(names_in(tmp.path()).empty());
}

TEST_CASE("sftp store: temporaries are hidden, name their writer; objects are 0600", "[store][sftp]") {
    TempDir tmp;
    auto s = open_store(server().url(tmp.path()), server().options());
    Context ctx;
    {
        auto w = s->create(ctx, "notes-1.tar.zst");
        w->write("partial", 7);
        const auto names = names_in(tmp.path());
        REQUIRE(names.size() == 1);
        CHECK(names[0].rfind(".notes-1.tar.zst.tmp-", 0) == 0);
        const auto owner = parse_upload_owner(names[0]);
        REQUIRE(owner);
        CHECK(owner->pid == ::getpid());
        CHECK(listed_names(*s).empty());
        w->abort(ctx);
        CHECK(names_in(tmp.path()).empty());
    }
    put_object(*s, "notes-1.tar.zst", "x");
    CHECK((stdfs::status(tmp / "notes-1.tar.zst").permissions() & stdfs::perms::all) == stdfs::perms(0600));
    // Directories, symbolic links and hidden files are not objects.
    stdfs::create_directories(tmp / "notes-dir");
    stdfs::create_symlink(tmp / "notes-1.tar.zst", tmp / "notes-link");
    write_file(tmp / ".notes-c.tmp-deadbeef", "left by a killed writer");
    write_file(tmp / "notes with spaces", "odd but fine", 0600);
    CHECK(listed_names(*s) == std::vector<std::string>{"notes with spaces", "notes-1.tar.zst"});
    CHECK(read_object(*s, "notes with spaces") == "odd but fine");
    CHECK_THROWS_AS(s->open(ctx, "notes-dir"), NotFound);
}

TEST_CASE("sftp store: an upload whose writer is provably dead goes at once, others after the age", "[store][sftp]") {
    TempDir tmp;
    auto s = open_store(server().url(tmp.path()), server().options());
    Context ctx;
    auto mine = s->create(ctx, "notes-a.tar.zst");
    mine->write("x", 1);
    // A writer killed mid-upload: a child of this test, SIGKILLed once its upload runs.
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    const pid_t child = ::fork();
    if (child == 0) {
        try {
            auto cs = open_store(server().url(tmp.path()), server().options());
            auto w = cs->create(Context{}, "notes-b.tar.zst");
            w->write("partial", 7);
            (void)!::write(ready[1], "1", 1);
            ::pause();
        } catch (...) {
        }
        ::_exit(1);
    }
    char c = 0;
    REQUIRE(::read(ready[0], &c, 1) == 1);
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    ::close(ready[0]);
    ::close(ready[1]);
    write_file(tmp / ".notes-c.tar.zst.tmp-otherhost-1-0000000c", "x", 0600);
    REQUIRE(names_in(tmp.path()).size() == 3);
    CHECK(s->remove_abandoned_uploads(ctx, "notes-", 24h) == 1);  // the dead child's
    auto left = names_in(tmp.path());
    REQUIRE(left.size() == 2);
    CHECK(left[0].rfind(".notes-a.tar.zst.tmp-", 0) == 0);
    CHECK(left[1] == ".notes-c.tar.zst.tmp-otherhost-1-0000000c");
    // Older than the age, whoever wrote them (the listed time is to the minute).
    CHECK(s->remove_abandoned_uploads(ctx, "other-", 0s) == 0);
    CHECK(s->remove_abandoned_uploads(ctx, "notes-", -120s) == 2);
    CHECK(names_in(tmp.path()).empty());
    mine->abort(ctx);
}

TEST_CASE("sftp store: listed times are UTC whatever the server's time zone", "[store][sftp]") {
    // India is 5:30 ahead of UTC: a listing read as UTC would be 5.5 hours off.
    SshServer srv(std::map<std::string, std::string>{{"TZ", "Asia/Kolkata"}});
    TempDir tmp;
    auto s = open_store(srv.url(tmp.path()), srv.options());
    put_object(*s, "notes-new", "x");
    write_file(tmp / "notes-old", "y", 0600);
    sh(fmt::format("touch -d '2020-02-29 13:45:00 UTC' '{}'", (tmp / "notes-old").string()));
    const auto listed = s->list(Context{}, "notes-");
    REQUIRE(listed.size() == 2);
    const auto now = std::chrono::system_clock::now();
    CHECK(listed[0].name == "notes-new");
    CHECK(now - listed[0].modified < 2min);
    CHECK(now - listed[0].modified > -1min);
    // Older than six months: listed to the day, in the server's time zone.
    const auto old = std::chrono::system_clock::from_time_t(1582983900);  // 2020-02-29T13:45:00Z
    CHECK(listed[1].name == "notes-old");
    CHECK(listed[1].modified - old < 24h);
    CHECK(old - listed[1].modified < 24h);
}

TEST_CASE("sftp store: a blob larger than the memory it may use streams both ways", "[store][sftp]") {
    TempDir tmp;
    auto s = open_store(server().url(tmp.path()), server().options());
    constexpr std::uint64_t kChunks = 256;  // 256 MiB
    constexpr std::size_t kChunk = 1 << 20;
    const auto base = rss();
    std::uint64_t peak = base;
    const auto t0 = std::chrono::steady_clock::now();
    const auto written = write_stream(*s, "notes-big", kChunks, kChunk, [&](std::uint64_t) { peak = std::max(peak, rss()); });
    const double up = seconds_since(t0);
    CHECK(stdfs::file_size(tmp / "notes-big") == kChunks * kChunk);
    auto src = s->open(Context{}, "notes-big");
    const auto t1 = std::chrono::steady_clock::now();
    const auto read = hash_stream(*src, [&](std::uint64_t) { peak = std::max(peak, rss()); });
    const double down = seconds_since(t1);
    CHECK(read == written);
    CHECK(sha256_file(tmp / "notes-big") == written);
    WARN(fmt::format("256 MiB over sftp on loopback: upload {:.0f} MiB/s, download {:.0f} MiB/s, RSS growth {} MiB",
                     256 / up, 256 / down, (peak - base) >> 20));
    if (!kAddressSanitizer) CHECK(peak - base < (48u << 20));
}

TEST_CASE("sftp store: a dropped download resumes where it got to, the SHA-256 still right", "[store][sftp]") {
    TempDir tmp;
    auto s = open_store(server().url(tmp.path()), server().options());
    const auto written = write_stream(*s, "notes-blob", 48, 1 << 20);
    const auto logins = server().logins();
    auto src = s->open(Context{}, "notes-blob");
    bool dropped = false;
    const auto read = hash_stream(*src, [&](std::uint64_t done) {
        if (!dropped && done >= (4u << 20)) {
            server().kill_sessions();  // the connection drops; the server still answers new ones
            dropped = true;
        }
    });
    CHECK(dropped);
    CHECK(read == written);
    CHECK(server().logins() > logins);  // it connected again

    // From an offset, and across a drop too.
    auto tail = s->open(Context{}, "notes-blob", 40u << 20);
    Sha256 expect;
    for (std::uint64_t i = 40; i < 48; ++i) {
        const auto c = chunk_of(i, 1 << 20);
        expect.update(c.data(), c.size());
    }
    bool again = false;
    CHECK(hash_stream(*tail, [&](std::uint64_t done) {
              if (!again && done >= (1u << 20)) {
                  server().kill_sessions();
                  again = true;
              }
          }) == expect.hex());
}

TEST_CASE("sftp store: a server that stops answering is given up on after call_timeout, then resumed",
          "[store][sftp]") {
    TempDir tmp;
    auto o = server().options(20s);
    o.settings.call_timeout = 2s;
    auto s = open_store(server().url(tmp.path()), o);
    const auto written = write_stream(*s, "notes-blob", 32, 1 << 20);
    auto src = s->open(Context{}, "notes-blob");
    bool frozen = false;
    const auto t0 = std::chrono::steady_clock::now();
    const auto read = hash_stream(*src, [&](std::uint64_t done) {
        if (!frozen && done >= (2u << 20)) {
            server().signal_sessions(SIGSTOP);  // a hung server: the connection stays, nothing moves
            frozen = true;
        }
    });
    server().signal_sessions(SIGCONT);
    CHECK(read == written);
    CHECK(seconds_since(t0) >= 2);
    CHECK(seconds_since(t0) < 15);
}

TEST_CASE("sftp store: server stopped mid-upload: a clear error, nothing listable, cleaned later", "[store][sftp]") {
    SshServer srv;
    TempDir tmp;
    auto s = open_store(srv.url(tmp.path()), srv.options(1s));
    Context ctx;
    auto w = s->create(ctx, "notes-1.tar.zst");
    const auto c = chunk_of(1, 1 << 20);
    for (int i = 0; i < 8; ++i) w->write(c.data(), c.size());
    srv.stop();
    auto rest = [&] {
        for (int i = 0; i < 64; ++i) w->write(c.data(), c.size());
        w->commit(ctx);
    };
    CHECK_THROWS_AS(rest(), StoreUnavailable);
    CHECK_THROWS_WITH(rest(), Catch::Contains("notes-1.tar.zst"));
    CHECK_THROWS_AS(w->abort(ctx), StoreUnavailable);  // the server is down: the leftover stays
    w.reset();
    srv.start();
    CHECK(s->list(ctx, "").empty());
    const auto names = names_in(tmp.path());
    REQUIRE(names.size() == 1);
    CHECK(names[0].rfind(".notes-1.tar.zst.tmp-", 0) == 0);
    CHECK(s->remove_abandoned_uploads(ctx, "notes-", -120s) == 1);
    CHECK(names_in(tmp.path()).empty());
}

TEST_CASE("sftp store: server stopped mid-download: a clear error within the retry budget", "[store][sftp]") {
    SshServer srv;
    TempDir tmp;
    auto s = open_store(srv.url(tmp.path()), srv.options(2s));
    write_stream(*s, "notes-blob", 32, 1 << 20);
    auto src = s->open(Context{}, "notes-blob");
    std::vector<char> buf(1 << 20);
    REQUIRE(src->read(buf.data(), buf.size()) > 0);
    srv.stop();
    const auto t0 = std::chrono::steady_clock::now();
    auto drain = [&] {
        while (src->read(buf.data(), buf.size()) > 0) {
        }
    };
    CHECK_THROWS_AS(drain(), StoreUnavailable);
    CHECK(seconds_since(t0) < 10);
}

TEST_CASE("sftp store: readers never miss an object while it is replaced", "[store][sftp]") {
    TempDir tmp;
    auto writer = open_store(server().url(tmp.path()), server().options());
    auto reader = open_store(server().url(tmp.path()), server().options());
    Context ctx;
    auto etag = writer->put(ctx, "bartl-store.json", "version 0", WriteCondition::absent());
    std::atomic<bool> done{false};
    std::atomic<int> reads{0}, misses{0};
    std::thread t([&] {
        while (!done) {
            if (!reader->get(Context{}, "bartl-store.json")) ++misses;
            ++reads;
        }
    });
    int version = 0;
    while (version < 30 || (reads < 50 && version < 2000))
        etag = writer->put(ctx, "bartl-store.json", fmt::format("version {}", ++version), WriteCondition::match(etag));
    done = true;
    t.join();
    CHECK(reads >= 50);
    CHECK(misses == 0);
    CHECK(writer->get(ctx, "bartl-store.json")->data == fmt::format("version {}", version));
    CHECK(names_in(tmp.path()) == std::vector<std::string>{"bartl-store.json"});
}

TEST_CASE("sftp store: of two writers racing, one wins each conditional write", "[store][sftp]") {
    TempDir tmp;
    auto a = open_store(server().url(tmp.path()), server().options());
    auto b = open_store(server().url(tmp.path()), server().options());
    // Both at once, each with its own connection: exactly one write succeeds.
    auto race = [&](const std::string& name, const WriteCondition& cond) {
        std::atomic<int> won{0}, lost{0};
        auto attempt = [&](Store& s, const std::string& text) {
            try {
                s.put(Context{}, name, text, cond);
                ++won;
            } catch (const PreconditionFailed&) {
                ++lost;
            }
        };
        std::thread ta([&] { attempt(*a, "by a"); }), tb([&] { attempt(*b, "by b"); });
        ta.join();
        tb.join();
        CHECK(won == 1);
        CHECK(lost == 1);
    };
    for (int round = 0; round < 3; ++round) {
        const std::string name = fmt::format("bartl-store-{}.json", round);
        race(name, WriteCondition::absent());  // two hosts creating the identity
        const auto cur = a->get(Context{}, name);
        REQUIRE(cur);
        race(name, WriteCondition::match(cur->etag));  // two hosts claiming the store
    }
    CHECK_FALSE(stdfs::exists(tmp / ".bartl-store.lock.d"));
}

TEST_CASE("sftp store: a held lock is waited for, a stale one broken and what it left repaired", "[store][sftp]") {
    TempDir tmp;
    auto s = open_store(server().url(tmp.path()), server().options());
    const auto lock = tmp / ".bartl-store.lock.d";
    // Held by a live writer: waited for until it is released.
    stdfs::create_directory(lock);
    std::thread release([&] {
        std::this_thread::sleep_for(1500ms);
        stdfs::remove(lock);
    });
    const auto t0 = std::chrono::steady_clock::now();
    s->put(Context{}, "bartl-store.json", "mine", WriteCondition::absent());
    release.join();
    CHECK(seconds_since(t0) >= 1.4);
    // Still held when the call's deadline passes: it fails, writing nothing.
    stdfs::create_directory(lock);
    CHECK_THROWS(s->put(Context{}.with_timeout(1s), "notes-a.json", "x", WriteCondition::absent()));
    CHECK(names_in(tmp.path()) == std::vector<std::string>{".bartl-store.lock.d", "bartl-store.json"});
    // Left by a writer that died between moving the identity aside and putting the new one in
    // place: after five minutes the lock is broken and the identity put back.
    stdfs::rename(tmp / "bartl-store.json", tmp / ".bartl-store.json.old-deadhost-1-0000000a");
    sh(fmt::format("touch -d '-10 minutes' '{}'", lock.string()));
    CHECK_THROWS_AS(s->put(Context{}, "bartl-store.json", "second", WriteCondition::absent()), PreconditionFailed);
    CHECK(s->get(Context{}, "bartl-store.json")->data == "mine");
    CHECK(names_in(tmp.path()) == std::vector<std::string>{"bartl-store.json"});
}
