// util/fs on real files: atomic replace, durable rename/remove, safe tree removal.
// (Tested here because the file store is built on it; tests/unit/util covers the rest of util.)
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "store_test_util.hpp"
#include "util/fs.hpp"

using namespace bartl;
using namespace bartl::test;

TEST_CASE("write_file_atomic replaces content with the requested mode, leaving no temp file", "[fs]") {
    TempDir tmp;
    const auto p = tmp / "marker.json";
    fs::write_file_atomic(p, "one", 0600);
    CHECK(read_file(p) == "one");
    CHECK((stdfs::status(p).permissions() & stdfs::perms::all) == stdfs::perms(0600));
    fs::write_file_atomic(p, "two");
    CHECK(read_file(p) == "two");
    CHECK((stdfs::status(p).permissions() & stdfs::perms::all) == stdfs::perms(0644));
    CHECK(names_in(tmp.path()) == std::vector<std::string>{"marker.json"});
    CHECK_THROWS_WITH(fs::write_file_atomic(tmp / "missing/x", "y"),
                      Catch::Contains((tmp / "missing").string()) && Catch::Contains("No such file or directory"));
}

TEST_CASE("read_file tells a missing file from an unreadable one", "[fs]") {
    TempDir tmp;
    CHECK_FALSE(fs::read_file(tmp / "none").has_value());
    write_file(tmp / "f", std::string(100000, 'q'));
    CHECK(fs::read_file(tmp / "f") == std::string(100000, 'q'));
    CHECK_THROWS_AS(fs::read_file(tmp.path()), RuntimeError);  // a directory: EISDIR
}

TEST_CASE("rename_durable and remove_durable", "[fs]") {
    TempDir tmp;
    write_file(tmp / "a", "A");
    stdfs::create_directories(tmp / "sub");
    fs::rename_durable(tmp / "a", tmp / "sub/b");
    CHECK(read_file(tmp / "sub/b") == "A");
    CHECK_FALSE(stdfs::exists(tmp / "a"));
    CHECK_THROWS_WITH(fs::rename_durable(tmp / "a", tmp / "c"),
                      "cannot rename " + (tmp / "a").string() + " to " + (tmp / "c").string() +
                          ": No such file or directory");
    fs::remove_durable(tmp / "sub/b");
    CHECK_FALSE(stdfs::exists(tmp / "sub/b"));
    CHECK_NOTHROW(fs::remove_durable(tmp / "sub/b"));
    // A staging directory renamed over an empty target directory (restore/init commit).
    stdfs::create_directories(tmp / ".t.bartl-staging/inner");
    stdfs::create_directories(tmp / "t");
    fs::rename_durable(tmp / ".t.bartl-staging", tmp / "t");
    CHECK(stdfs::is_directory(tmp / "t/inner"));
}

TEST_CASE("sync_filesystem syncs the filesystem of a directory or file, naming a missing path", "[fs]") {
    TempDir tmp;
    write_file(tmp / "f", "F");
    CHECK_NOTHROW(fs::sync_filesystem(tmp.path()));
    CHECK_NOTHROW(fs::sync_filesystem(tmp / "f"));
    CHECK_THROWS_WITH(fs::sync_filesystem(tmp / "none"),
                      Catch::Contains((tmp / "none").string()) && Catch::Contains("No such file or directory"));
}

TEST_CASE("remove_tree never follows symlinks out of the tree", "[fs]") {
    TempDir tmp;
    stdfs::create_directories(tmp / "outside/keep-dir");
    write_file(tmp / "outside/keep", "keep");
    stdfs::create_directories(tmp / "tree/a/b/c");
    write_file(tmp / "tree/a/b/c/f", "x");
    write_file(tmp / "tree/top", "x");
    stdfs::create_directory_symlink(tmp / "outside", tmp / "tree/a/link-dir");
    stdfs::create_symlink(tmp / "outside/keep", tmp / "tree/a/b/link-file");
    ::chmod((tmp / "tree/a/b").c_str(), 0500);  // read-only dirs are still removed (as owner/root)
    fs::remove_tree(tmp / "tree");
    CHECK_FALSE(stdfs::exists(stdfs::symlink_status(tmp / "tree")));
    CHECK(read_file(tmp / "outside/keep") == "keep");
    CHECK(stdfs::is_directory(tmp / "outside/keep-dir"));

    CHECK_NOTHROW(fs::remove_tree(tmp / "tree"));  // missing is fine

    // The path itself a symlink: the link goes, its target stays.
    stdfs::create_directory_symlink(tmp / "outside", tmp / "alias");
    fs::remove_tree(tmp / "alias");
    CHECK_FALSE(stdfs::exists(stdfs::symlink_status(tmp / "alias")));
    CHECK(read_file(tmp / "outside/keep") == "keep");

    write_file(tmp / "plain", "x");
    fs::remove_tree(tmp / "plain");
    CHECK_FALSE(stdfs::exists(tmp / "plain"));
}

TEST_CASE("remove_tree does not descend into another filesystem", "[fs]") {
    TempDir tmp;
    stdfs::create_directories(tmp / "tree");
    if (!tmp.mount_tmpfs(tmp / "tree/mnt", "size=64k")) {
        WARN("cannot mount a tmpfs here; mount point refusal not tested");
        return;
    }
    write_file(tmp / "tree/mnt/other-fs-data", "precious");
    CHECK_THROWS_WITH(fs::remove_tree(tmp / "tree"), Catch::Contains("mount point"));
    CHECK(read_file(tmp / "tree/mnt/other-fs-data") == "precious");
}

TEST_CASE("is_missing_or_empty", "[fs]") {
    TempDir tmp;
    CHECK(fs::is_missing_or_empty(tmp / "none"));
    stdfs::create_directories(tmp / "empty");
    CHECK(fs::is_missing_or_empty(tmp / "empty"));
    stdfs::create_directory_symlink(tmp / "empty", tmp / "link");
    CHECK(fs::is_missing_or_empty(tmp / "link"));
    write_file(tmp / "empty/.hidden", "");
    CHECK_FALSE(fs::is_missing_or_empty(tmp / "empty"));
    write_file(tmp / "file", "");
    CHECK_FALSE(fs::is_missing_or_empty(tmp / "file"));
}

TEST_CASE("make_dirs creates missing parents with the mode", "[fs]") {
    TempDir tmp;
    fs::make_dirs(tmp / "a/b/c", 0700);
    CHECK(stdfs::is_directory(tmp / "a/b/c"));
    CHECK((stdfs::status(tmp / "a/b").permissions() & stdfs::perms::all) == stdfs::perms(0700));
    CHECK_NOTHROW(fs::make_dirs(tmp / "a/b/c/"));
    write_file(tmp / "f", "");
    CHECK_THROWS_WITH(fs::make_dirs(tmp / "f/g"), Catch::Contains("is not a directory"));
}

TEST_CASE("staging_path_for names a hidden sibling", "[fs]") {
    CHECK(fs::staging_path_for("/var/lib/notes") == "/var/lib/.notes.bartl-staging");
    CHECK(fs::staging_path_for("/var/lib/notes/") == "/var/lib/.notes.bartl-staging");
    CHECK(fs::staging_path_for("/srv//data/./db") == "/srv/data/.db.bartl-staging");
}
