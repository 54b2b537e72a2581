// The store contract (store.hpp), checked against the file:// store on real directories,
// including an unmounted disk, a read-only filesystem and a full one.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "store/file_store.hpp"
#include "store/store.hpp"
#include "store_test_util.hpp"

using namespace bartl;
using namespace bartl::test;

namespace {

std::string url_of(const stdfs::path& p) { return "file://" + p.string(); }

void put(Store& store, const std::string& name, const std::string& content) {
    auto w = store.create(name);
    w->write(content.data(), content.size());
    w->commit();
}

std::string get(Store& store, const std::string& name) {
    auto r = store.open(name);
    std::string out;
    char buf[1000];  // smaller than the objects: several reads per object
    while (std::size_t n = r->read(buf, sizeof buf)) out.append(buf, n);
    return out;
}

}  // namespace

TEST_CASE("store contract: an empty store answers with nothing", "[store]") {
    TempDir tmp;
    auto store = open_store(url_of(tmp.path()));
    CHECK(store->url() == url_of(tmp.path()));
    CHECK(store->list("").empty());
    CHECK(store->list("notes-").empty());
}

TEST_CASE("store contract: a missing directory is unavailable, never empty", "[store]") {
    TempDir tmp;
    auto store = open_store(url_of(tmp / "unmounted"));
    CHECK_THROWS_AS(store->list(""), StoreUnavailable);
    CHECK_THROWS_WITH(store->list(""), "store " + url_of(tmp / "unmounted") + ": directory " +
                                           (tmp / "unmounted").string() +
                                           " does not exist (backup disk not mounted?)");
    CHECK_THROWS_AS(store->create("x"), StoreUnavailable);
    CHECK_THROWS_AS(store->open("x"), StoreUnavailable);
    CHECK_THROWS_AS(store->size("x"), StoreUnavailable);
    CHECK_THROWS_AS(store->remove("x"), StoreUnavailable);
    // The store never creates its directory: that would put backups on the wrong disk.
    CHECK_FALSE(stdfs::exists(tmp / "unmounted"));

    write_file(tmp / "file", "x");
    auto not_dir = open_store(url_of(tmp / "file"));
    CHECK_THROWS_WITH(not_dir->list(""), Catch::Contains("is not a directory"));
    CHECK_THROWS_AS(not_dir->create("x"), StoreUnavailable);
}

TEST_CASE("store contract: objects become visible only when committed", "[store]") {
    TempDir tmp;
    auto store = open_store(url_of(tmp.path()));
    {
        auto w = store->create("notes-1.tar.zst");
        w->write("partial", 7);
        CHECK(store->list("").empty());
        CHECK_THROWS_AS(store->open("notes-1.tar.zst"), NotFound);
        REQUIRE(names_in(tmp.path()).size() == 1);  // the hidden temp file
        CHECK(names_in(tmp.path())[0].rfind(".notes-1.tar.zst.tmp-", 0) == 0);
    }
    // Destroyed without commit: the temp data is gone.
    CHECK(names_in(tmp.path()).empty());
    CHECK(store->list("").empty());

    auto w = store->create("notes-1.tar.zst");
    std::string big(3 * 1024 * 1024 + 17, 'z');
    w->write(big.data(), big.size());
    w->commit();
    CHECK_THROWS_AS(w->commit(), RuntimeError);
    w.reset();
    CHECK(store->list("") == std::vector<std::string>{"notes-1.tar.zst"});
    CHECK(names_in(tmp.path()) == std::vector<std::string>{"notes-1.tar.zst"});
    CHECK(store->size("notes-1.tar.zst") == big.size());
    CHECK(get(*store, "notes-1.tar.zst") == big);
    CHECK((stdfs::status(tmp / "notes-1.tar.zst").permissions() & stdfs::perms::all) == stdfs::perms(0600));
}

TEST_CASE("store contract: list filters by prefix, sorts and skips temp files", "[store]") {
    TempDir tmp;
    auto store = open_store(url_of(tmp.path()));
    put(*store, "notes-b", "2");
    put(*store, "notes-a", "1");
    put(*store, "other-a", "3");
    write_file(tmp / ".notes-c.tmp-deadbeef", "left by a killed writer");
    stdfs::create_directories(tmp / "notes-dir");
    CHECK(store->list("notes-") == std::vector<std::string>{"notes-a", "notes-b"});
    CHECK(store->list("") == std::vector<std::string>{"notes-a", "notes-b", "other-a"});
    CHECK_THROWS_AS(store->open(".notes-c.tmp-deadbeef"), NotFound);
    CHECK_THROWS_AS(store->open("notes-dir"), NotFound);
}

TEST_CASE("store contract: missing objects are NotFound, remove is idempotent", "[store]") {
    TempDir tmp;
    auto store = open_store(url_of(tmp.path()));
    CHECK_THROWS_AS(store->open("nope"), NotFound);
    CHECK_THROWS_WITH(store->open("nope"), Catch::Contains("nope not found"));
    CHECK_THROWS_AS(store->size("nope"), NotFound);
    CHECK_THROWS_AS(store->open("../etc/passwd"), NotFound);
    CHECK_NOTHROW(store->remove("nope"));
    put(*store, "obj", "data");
    store->remove("obj");
    CHECK(store->list("").empty());
    CHECK_NOTHROW(store->remove("obj"));
}

TEST_CASE("store contract: object names are flat", "[store]") {
    TempDir tmp;
    auto store = open_store(url_of(tmp.path()));
    CHECK_THROWS_AS(store->create("a/b"), RuntimeError);
    CHECK_THROWS_AS(store->create(".hidden"), RuntimeError);
    CHECK_THROWS_AS(store->create(""), RuntimeError);
    CHECK(names_in(tmp.path()).empty());
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
    CHECK(store->list("").empty());
    CHECK_THROWS_AS(store->create("x"), StoreUnavailable);
    CHECK_THROWS_WITH(store->create("x"), Catch::Contains("cannot create x in " + dir.string()) &&
                                              (Catch::Contains("Read-only file system") ||
                                               Catch::Contains("Permission denied")));
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
        auto w = store->create("big");
        std::string chunk(64 * 1024, 'x');
        auto fill = [&] {
            for (int i = 0; i < 16; ++i) w->write(chunk.data(), chunk.size());
        };
        CHECK_THROWS_WITH(fill(), Catch::Contains("store " + url_of(dir) + ": cannot write big") &&
                                      Catch::Contains("No space left on device"));
    }
    CHECK(names_in(dir).empty());
    CHECK(store->list("").empty());
}

TEST_CASE("open_store dispatches on the URL scheme", "[store]") {
    TempDir tmp;
    auto kept = open_store("file://localhost" + tmp.path().string());
    auto* file_store = dynamic_cast<FileStore*>(kept.get());
    REQUIRE(file_store != nullptr);
    CHECK(file_store->dir() == tmp.path());
    CHECK(file_url_path("file:///var/backups/my%20disk/notes/") == "/var/backups/my disk/notes/");

    CHECK_THROWS_WITH(open_store("s3://bucket/prefix"), Catch::Contains("not supported yet"));
    CHECK_THROWS_AS(open_store("sftp://host/dir"), ConfigError);
    CHECK_THROWS_AS(open_store("ftp://host/dir"), ConfigError);
    CHECK_THROWS_WITH(open_store("/var/backups"), Catch::Contains("malformed"));
    CHECK_THROWS_AS(open_store("file://host/dir"), ConfigError);
    CHECK_THROWS_AS(open_store("file://relative"), ConfigError);
    CHECK_THROWS_AS(open_store("file:///a%zzb"), ConfigError);
    CHECK_THROWS_AS(open_store("file:///a%2"), ConfigError);
    CHECK_THROWS_AS(open_store("file:///"), ConfigError);
}
