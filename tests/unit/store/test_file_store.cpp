// The store contract (store_contract.hpp) on the file:// store, and what is particular to
// it: an unmounted disk, a read-only or full filesystem, temporary names that say who writes
// them, URL parsing.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "store/file_store.hpp"
#include "store/store.hpp"
#include "store_contract.hpp"
#include "store_test_util.hpp"

using namespace bartl;
using namespace bartl::test;

namespace {

std::string url_of(const stdfs::path& p) { return "file://" + p.string(); }

struct FileBackend {
    TempDir tmp;
    std::unique_ptr<Store> store = open_store(url_of(tmp.path()));
    std::unique_ptr<Store> unreachable() { return open_store(url_of(tmp / "unmounted")); }
};

}  // namespace

BARTL_STORE_CONTRACT(FileBackend)

TEST_CASE("file store: a missing directory is unavailable and never created", "[store]") {
    TempDir tmp;
    auto store = open_store(url_of(tmp / "unmounted"));
    CHECK_THROWS_WITH(store->list(Context{}, ""), "store " + url_of(tmp / "unmounted") + ": directory " +
                                                      (tmp / "unmounted").string() +
                                                      " does not exist (backup disk not mounted?)");
    // The store never creates its directory: that would put backups on the wrong disk.
    CHECK_FALSE(stdfs::exists(tmp / "unmounted"));

    write_file(tmp / "file", "x");
    auto not_dir = open_store(url_of(tmp / "file"));
    CHECK_THROWS_WITH(not_dir->list(Context{}, ""), Catch::Contains("is not a directory"));
    CHECK_THROWS_AS(not_dir->create(Context{}, "x"), StoreUnavailable);
    CHECK_THROWS_AS(not_dir->get(Context{}, "x"), StoreUnavailable);
}

TEST_CASE("file store: temporary files are hidden, name their writer, and are 0600 when committed", "[store]") {
    TempDir tmp;
    auto store = open_store(url_of(tmp.path()));
    Context ctx;
    {
        auto w = store->create(ctx, "notes-1.tar.zst");
        w->write("partial", 7);
        const auto names = names_in(tmp.path());
        REQUIRE(names.size() == 1);
        CHECK(names[0].rfind(".notes-1.tar.zst.tmp-", 0) == 0);
        const auto owner = parse_upload_owner(names[0]);
        REQUIRE(owner);
        CHECK(owner->pid == ::getpid());
        CHECK_FALSE(owner->host.empty());
    }
    CHECK(names_in(tmp.path()).empty());  // destroyed without commit: removed locally
    put_object(*store, "notes-1.tar.zst", "x");
    CHECK(names_in(tmp.path()) == std::vector<std::string>{"notes-1.tar.zst"});
    CHECK((stdfs::status(tmp / "notes-1.tar.zst").permissions() & stdfs::perms::all) == stdfs::perms(0600));
    // Hidden files, directories and leftovers are never listed or opened.
    write_file(tmp / ".notes-c.tmp-deadbeef", "left by a killed writer");
    stdfs::create_directories(tmp / "notes-dir");
    CHECK(listed_names(*store) == std::vector<std::string>{"notes-1.tar.zst"});
    CHECK_THROWS_AS(store->open(ctx, ".notes-c.tmp-deadbeef"), NotFound);
    CHECK_THROWS_AS(store->open(ctx, "notes-dir"), NotFound);
}

TEST_CASE("file store: an upload whose writer is provably dead goes at once, others after the age", "[store]") {
    TempDir tmp;
    auto store = open_store(url_of(tmp.path()));
    Context ctx;
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    // A PID that is certainly gone: a child that has exited and been reaped.
    pid_t dead = ::fork();
    if (dead == 0) ::_exit(0);
    int st = 0;
    ::waitpid(dead, &st, 0);
    const std::string mine = fmt::format(".notes-a.tar.zst.tmp-{}-{}-0000000a", host, ::getpid());
    const std::string gone = fmt::format(".notes-b.tar.zst.tmp-{}-{}-0000000b", host, dead);
    const std::string elsewhere = fmt::format(".notes-c.tar.zst.tmp-otherhost-{}-0000000c", dead);
    const std::string legacy = ".notes-d.tar.zst.tmp-0000000d";
    for (const auto& n : {mine, gone, elsewhere, legacy}) write_file(tmp / n, "x");
    CHECK(store->remove_abandoned_uploads(ctx, "notes-", std::chrono::hours(24)) == 1);
    CHECK(names_in(tmp.path()) == std::vector<std::string>{mine, elsewhere, legacy});
    // Older than the age: whoever wrote them, they go.
    CHECK(store->remove_abandoned_uploads(ctx, "other-", std::chrono::seconds(0)) == 0);
    CHECK(store->remove_abandoned_uploads(ctx, "notes-", std::chrono::seconds(-5)) == 3);
    CHECK(names_in(tmp.path()).empty());
}

TEST_CASE("file store: upload owners are parsed from temporary names", "[store]") {
    auto o = parse_upload_owner(".notes-x.tar.zst.tmp-my-host.example-4242-deadbeef");
    REQUIRE(o);
    CHECK(o->host == "my-host.example");
    CHECK(o->pid == 4242);
    CHECK_FALSE(parse_upload_owner(".notes-x.tar.zst.tmp-deadbeef"));
    CHECK_FALSE(parse_upload_owner(".notes-x.tar.zst.tmp-host-12a-deadbeef"));
    CHECK_FALSE(parse_upload_owner("notes-x"));
}

TEST_CASE("a read-only store refuses writes with StoreUnavailable", "[store]") {
    TempDir tmp;
    const auto dir = tmp / "ro";
    if (::geteuid() == 0) {
        // Root ignores permission bits, so only a read-only filesystem really refuses.
        if (!tmp.mount_tmpfs(dir, "ro")) {
            WARN("cannot mount a read-only tmpfs here; read-only store not tested");
            return;
        }
    } else {
        stdfs::create_directories(dir);
        stdfs::permissions(dir, stdfs::perms(0555));
    }
    auto store = open_store(url_of(dir));
    CHECK(store->list(Context{}, "").empty());
    CHECK_THROWS_AS(store->create(Context{}, "x"), StoreUnavailable);
    CHECK_THROWS_WITH(store->create(Context{}, "x"), Catch::Contains("cannot create x in " + dir.string()) &&
                                                         (Catch::Contains("Read-only file system") ||
                                                          Catch::Contains("Permission denied")));
    CHECK_THROWS_AS(store->put(Context{}, "x", "y", WriteCondition::absent()), StoreUnavailable);
}

TEST_CASE("a full store fails the write naming the store, and leaves nothing behind", "[store]") {
    TempDir tmp;
    const auto dir = tmp / "small";
    if (!tmp.mount_tmpfs(dir, "size=256k")) {
        WARN("cannot mount a small tmpfs here; full store not tested");
        return;
    }
    auto store = open_store(url_of(dir));
    {
        Context ctx;
        auto w = store->create(ctx, "big");
        std::string chunk(64 * 1024, 'x');
        auto fill = [&] {
            for (int i = 0; i < 16; ++i) w->write(chunk.data(), chunk.size());
        };
        CHECK_THROWS_WITH(fill(), Catch::Contains("store " + url_of(dir) + ": cannot write big") &&
                                      Catch::Contains("No space left on device"));
        w->abort(ctx);
    }
    CHECK(names_in(dir).empty());
    CHECK(store->list(Context{}, "").empty());
}

TEST_CASE("open_store dispatches on the URL scheme", "[store]") {
    TempDir tmp;
    auto kept = open_store("file://localhost" + tmp.path().string());
    auto* file_store = dynamic_cast<FileStore*>(kept.get());
    REQUIRE(file_store != nullptr);
    CHECK(file_store->dir() == tmp.path());
    CHECK(file_url_path("file:///var/backups/my%20disk/notes/") == "/var/backups/my disk/notes/");
    CHECK_FALSE(kept->conditional_write_guarantee().empty());

    CHECK(open_store("s3://bucket/prefix")->url() == "s3://bucket/prefix");  // test_s3_store.cpp
    CHECK(open_store("sftp://host/dir")->url() == "sftp://host/dir");  // test_sftp_store.cpp
    CHECK_THROWS_AS(open_store("sftp://host"), ConfigError);  // no directory
    CHECK_THROWS_AS(open_store("ftp://host/dir"), ConfigError);
    CHECK_THROWS_WITH(open_store("/var/backups"), Catch::Contains("malformed"));
    CHECK_THROWS_AS(open_store("file://host/dir"), ConfigError);
    CHECK_THROWS_AS(open_store("file://relative"), ConfigError);
    CHECK_THROWS_AS(open_store("file:///a%zzb"), ConfigError);
    CHECK_THROWS_AS(open_store("file:///a%2"), ConfigError);
    CHECK_THROWS_AS(open_store("file:///"), ConfigError);
}
