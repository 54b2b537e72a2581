// Hostile archives, built entry by entry with libarchive: each must be refused (or, for
// privilege bits, neutralised) without a single byte landing outside the staging directory.
// Escape targets point at a sentinel directory in the test's scratch space rather than
// /etc, so a regression cannot damage the machine running the tests.
#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <catch2/catch.hpp>
#include <functional>

#include "blob/blob.hpp"
#include "archive_builder.hpp"
#include "blob_test_util.hpp"
#include "core/error.hpp"

using namespace bartl;
using namespace bartl::test;

namespace {

struct Scene {
    TempDir tmp;
    stdfs::path blob = tmp / "b.tar.zst";
    stdfs::path stage = tmp / "stage";
    stdfs::path stage1 = tmp / "stage1";
    stdfs::path sentinel = tmp / "sentinel";
    Scene() {
        stdfs::create_directories(stage);
        stdfs::create_directories(stage1);
        stdfs::create_directories(sentinel);
        write_file(sentinel / "keep", "keep");
    }
    BlobExtractResult extract(Builder& b, std::vector<stdfs::path> staging = {}) {
        auto [size, sha] = b.finish();
        if (staging.empty()) staging = {stage};
        FileSource src(blob);
        return extract_blob(src, size, sha, staging, {}, read_opts("backup hostile", 0));
    }
    /// Nothing outside the staging directories changed.
    void check_outside_untouched() {
        std::vector<std::string> outside;
        for (const auto& n : list_tree(tmp.path()))
            if (n.rfind("stage", 0) != 0) outside.push_back(n);
        CHECK(outside == std::vector<std::string>{"b.tar.zst", "sentinel", "sentinel/keep"});
        CHECK(read_file(sentinel / "keep") == "keep");
        struct stat st {};
        REQUIRE(::stat((sentinel / "keep").c_str(), &st) == 0);
        CHECK(st.st_nlink == 1);
        CHECK_FALSE(stdfs::exists(stdfs::current_path() / "x"));
    }
};

void expect_rejected(const std::function<void(Builder&, Scene&)>& build, const std::string& message,
                     int roots = 1) {
    Scene s;
    Builder b(s.blob);
    build(b, s);
    std::vector<stdfs::path> staging{s.stage};
    if (roots == 2) staging.push_back(s.stage1);
    CHECK_THROWS_AS(s.extract(b, staging), IntegrityError);
    Builder again(s.blob);  // rebuild for the message check (the first one was consumed)
    build(again, s);
    stdfs::remove_all(s.stage);
    stdfs::remove_all(s.stage1);
    stdfs::create_directories(s.stage);
    stdfs::create_directories(s.stage1);
    CHECK_THROWS_WITH(s.extract(again, staging), Catch::Contains(message));
    s.check_outside_untouched();
}

}  // namespace

TEST_CASE("entries with escaping names are rejected", "[blob][hostile]") {
    SECTION("absolute path") {
        expect_rejected([](Builder& b, Scene& s) { b.manifest().file((s.sentinel / "evil").string(), "x"); },
                        "absolute path");
    }
    SECTION("../x") {
        expect_rejected([](Builder& b, Scene&) { b.manifest().file("../x", "x"); }, "\"..\" component");
    }
    SECTION("state/0/../../x") {
        expect_rejected([](Builder& b, Scene&) { b.manifest().file("state/0/../../x", "x"); }, "\"..\" component");
    }
    SECTION("state/0/./x") {
        expect_rejected([](Builder& b, Scene&) { b.manifest().file("state/0/./x", "x"); }, "\".\" component");
    }
    SECTION("state//x") {
        expect_rejected([](Builder& b, Scene&) { b.manifest().file("state//x", "x"); }, "empty path component");
    }
    SECTION("entry outside state/") {
        expect_rejected([](Builder& b, Scene&) { b.manifest().file("other/x", "x"); }, "outside state/");
    }
    SECTION("a db/ entry not named as a dump chunk") {
        expect_rejected([](Builder& b, Scene&) { b.manifest().file("db/dump.sql", "x"); },
                        "a db/ entry must be named db/NAME.NNNNNN");
    }
    SECTION("a dump chunk nobody asked for") {
        expect_rejected([](Builder& b, Scene&) { b.manifest().file("db/notes.dump.000000", "x"); },
                        "no database of this restore is stored as db/notes.dump.*");
    }
    SECTION("a dump chunk escaping db/") {
        expect_rejected([](Builder& b, Scene&) { b.manifest().file("db/../state/0/x", "x"); },
                        "a db/ entry must be named db/NAME.NNNNNN");
    }
    SECTION("state/N out of range") {
        expect_rejected([](Builder& b, Scene&) { b.manifest().file("state/7/x", "x"); }, "state/7 is out of range");
    }
    SECTION("state/N with a leading zero") {
        expect_rejected([](Builder& b, Scene&) { b.manifest().file("state/00/x", "x"); }, "decimal N");
    }
    SECTION("a state root that is a file") {
        expect_rejected([](Builder& b, Scene&) { b.manifest().file("state/0", "x"); }, "must be a directory");
    }
}

TEST_CASE("links leaving the tree are rejected", "[blob][hostile]") {
    SECTION("absolute symlink, then a file through it") {
        expect_rejected(
            [](Builder& b, Scene& s) {
                b.manifest().symlink("state/0/l", s.sentinel.string()).file("state/0/l/keep", "pwned");
            },
            "absolute target");
    }
    SECTION("relative symlink climbing out") {
        expect_rejected(
            [](Builder& b, Scene&) { b.manifest().symlink("state/0/l", "../sentinel").file("state/0/l/keep", "pwned"); },
            "points outside");
    }
    SECTION("nested symlink climbing out") {
        expect_rejected([](Builder& b, Scene&) { b.manifest().dir("state/0/d").symlink("state/0/d/l", "../../x"); },
                        "points outside");
    }
    SECTION("a chain of allowed symlinks that resolves outside, then a file through it") {
        // e -> d/up/.. looks contained, but d/up -> .. is the root, so e is the root's parent.
        expect_rejected(
            [](Builder& b, Scene&) {
                b.manifest()
                    .dir("state/0/d")
                    .symlink("state/0/d/up", "..")
                    .symlink("state/0/e", "d/up/..")
                    .file("state/0/e/sentinel/keep", "pwned");
            },
            "symlink");
    }
    SECTION("a symlink that climbs out through a chain of dot links, with nothing written through it") {
        // Found by tests/fuzz: "here/here/../.." is contained as text, but here -> . so the
        // kernel climbs above the root. The link itself must not be restored.
        expect_rejected(
            [](Builder& b, Scene&) {
                b.manifest().symlink("state/0/here", ".").symlink("state/0/passwd", "here/here/../../../etc/passwd");
            },
            "after a path component");
    }
    SECTION("a file written through an inside symlink") {
        expect_rejected(
            [](Builder& b, Scene&) { b.manifest().dir("state/0/d").symlink("state/0/l", "d").file("state/0/l/f", "x"); },
            "symlink");
    }
    SECTION("hard link to an absolute path") {
        expect_rejected(
            [](Builder& b, Scene& s) { b.manifest().hardlink("state/0/h", (s.sentinel / "keep").string()); },
            "absolute path");
    }
    SECTION("hard link climbing out") {
        expect_rejected([](Builder& b, Scene&) { b.manifest().hardlink("state/0/h", "state/0/../../sentinel/keep"); },
                        "\"..\" component");
    }
    SECTION("hard link to a file not extracted before") {
        expect_rejected([](Builder& b, Scene&) { b.manifest().hardlink("state/0/h", "state/0/later").file("state/0/later", "x"); },
                        "not a file extracted earlier");
    }
    SECTION("hard link to a directory") {
        expect_rejected([](Builder& b, Scene&) { b.manifest().dir("state/0/d").hardlink("state/0/h", "state/0/d"); },
                        "not a file extracted earlier");
    }
    SECTION("hard link across state roots") {
        expect_rejected(
            [](Builder& b, Scene&) { b.manifest().file("state/0/f", "x").hardlink("state/1/h", "state/0/f"); },
            "same state/1/ tree", 2);
    }
}

TEST_CASE("special files are rejected", "[blob][hostile]") {
    SECTION("character device") {
        expect_rejected([](Builder& b, Scene&) { b.manifest().special("state/0/null", AE_IFCHR); },
                        "character device not allowed");
    }
    SECTION("block device") {
        expect_rejected([](Builder& b, Scene&) { b.manifest().special("state/0/sda", AE_IFBLK); },
                        "block device not allowed");
    }
    SECTION("FIFO") {
        expect_rejected([](Builder& b, Scene&) { b.manifest().special("state/0/fifo", AE_IFIFO); },
                        "FIFO not allowed");
    }
}

TEST_CASE("archives not shaped like a bartl backup are rejected", "[blob][hostile]") {
    SECTION("no manifest at all") {
        expect_rejected([](Builder& b, Scene&) { b.file("state/0/f", "x"); }, "first entry is \"state/0/f\"");
    }
    SECTION("empty archive") {
        expect_rejected([](Builder&, Scene&) {}, "holds no bartl/manifest.json");
    }
    SECTION("manifest twice") {
        expect_rejected([](Builder& b, Scene&) { b.manifest().manifest(); }, "is not the first entry");
    }
    SECTION("invalid manifest") {
        expect_rejected([](Builder& b, Scene&) { b.manifest("{\"format\": 1}"); }, "\"app\" is missing");
    }
    SECTION("manifest with a number overflowing a double (tests/fuzz) is an integrity error") {
        expect_rejected([](Builder& b, Scene&) { b.manifest("{\"format\": 1e999}"); }, "not valid JSON");
    }
    SECTION("an entry below a file of an earlier entry (libarchive would replace the file)") {
        expect_rejected([](Builder& b, Scene&) { b.manifest().file("state/0/a", "x").file("state/0/a/x", "y"); },
                        "an earlier entry is a file where this one needs a directory");
    }
    SECTION("duplicate entry") {
        expect_rejected([](Builder& b, Scene&) { b.manifest().file("state/0/f", "a").file("state/0/f", "b"); },
                        "appears twice");
    }
    SECTION("not an archive at all") {
        Scene s;
        write_file(s.blob, std::string(4096, 'x'));
        FileSource src(s.blob);
        CHECK_THROWS_AS(extract_blob(src, 4096, std::string(64, '0'), {s.stage}), IntegrityError);
    }
}

TEST_CASE("privilege bits and capabilities are neutralised", "[blob][hostile]") {
    Scene s;
    Builder b(s.blob);
    b.manifest()
        .dir("state/0/", 0755)
        .dir("state/0/shared", 02775)
        .file("state/0/suid", "#!/bin/sh\n", 04755)
        .file("state/0/sgid", "#!/bin/sh\n", 02755)
        .file("state/0/cap", "#!/bin/sh\n", 0755, "security.capability");
    auto r = s.extract(b);
    CHECK((stdfs::status(s.stage / "suid").permissions() & stdfs::perms::mask) == stdfs::perms(0755));
    CHECK((stdfs::status(s.stage / "sgid").permissions() & stdfs::perms::mask) == stdfs::perms(0755));
    // setgid on a directory only chooses the group of new files; it is kept.
    CHECK((stdfs::status(s.stage / "shared").permissions() & stdfs::perms::mask) == stdfs::perms(02775));
    CHECK(::getxattr((s.stage / "cap").c_str(), "security.capability", nullptr, 0) < 0);
    std::string all;
    for (const auto& w : r.warnings) all += w + "\n";
    CHECK(all.find("state/0/suid: setuid/setgid bit cleared") != std::string::npos);
    CHECK(all.find("state/0/cap: security.capability xattr dropped") != std::string::npos);
    s.check_outside_untouched();
}

TEST_CASE("a well-formed hand-made archive with links inside the tree is accepted", "[blob][hostile]") {
    Scene s;
    Builder b(s.blob);
    b.manifest()
        .dir("state/0/")
        .dir("state/0/d")
        .file("state/0/d/f", "content")
        .hardlink("state/0/h", "state/0/d/f")
        .symlink("state/0/d/up", "..")
        .symlink("state/0/d/sib", "../d/./f");
    auto r = s.extract(b);
    CHECK(r.files == 6);
    CHECK(read_file(s.stage / "h") == "content");
    CHECK(stdfs::read_symlink(s.stage / "d/up") == "..");
    CHECK(stdfs::equivalent(s.stage / "h", s.stage / "d/f"));
    s.check_outside_untouched();
}
