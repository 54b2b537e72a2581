// DirectoryComponent (state/directory.hpp) on real directories: the state ID in
// user.bartl.state_id, the inode fallback where a filesystem has no user xattrs (ramfs), and
// the findings of issue "observed facts" items 1 and 2: an app that emptied its directory,
// a replaced directory, an unmounted filesystem, a replacement disk, an empty lost+found.
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "state/directory.hpp"
#include "../test_util.hpp"

using namespace bartl;
using namespace bartl::test;

namespace {

const std::string kId = "0123456789abcdef0123456789abcdef";
const std::string kOther = "fedcba9876543210fedcba9876543210";

/// Mounts a filesystem of `type` at `dir` in this process's private mount namespace.
bool mount_fs(TempDir& tmp, const stdfs::path& dir, const char* type) {
    // TempDir::mount_tmpfs enters the private namespace and cleans up; ramfs needs its own call.
    if (std::string(type) == "tmpfs") return tmp.mount_tmpfs(dir, "size=1m");
    if (!tmp.mount_tmpfs(tmp / "ns-probe", "size=64k")) return false;  // enters the namespace
    stdfs::create_directories(dir);
    return ::mount("ramfs", dir.c_str(), "ramfs", 0, nullptr) == 0;
}

}  // namespace

TEST_CASE("directory: a state ID it carries makes it ours, even when the app emptied it", "[state]") {
    TempDir tmp;
    const auto dir = tmp / "data";
    DirectoryComponent c(dir);
    CHECK(c.kind() == "path");
    CHECK(c.id() == "path:" + dir.string());
    // Missing, no marker: free to create.
    CHECK(c.observe(nullptr, "").finding == ComponentFinding::fresh);
    const auto rec = c.bind_live(kId, Owner{});
    CHECK(stdfs::is_directory(dir));
    CHECK(read_state_id_xattr(dir) == std::optional<std::string>(kId));
    CHECK(rec.binding == "xattr");
    CHECK(rec.name == dir.string());
    CHECK_FALSE(rec.mount_point.empty());
    CHECK_FALSE(rec.device.empty());
    write_file(dir / "f", "precious");
    CHECK(c.observe(&rec, kId).finding == ComponentFinding::ours);
    // Item 1: the app deletes its own files: still ours, served.
    stdfs::remove(dir / "f");
    const auto o = c.observe(&rec, kId);
    CHECK(o.finding == ComponentFinding::ours);
    CHECK(o.detail.find(kId) != std::string::npos);
    // The app never sees the ID in its listing.
    CHECK(names_in(dir).empty());
}

TEST_CASE("directory: a replaced directory is lost when empty, foreign when it holds data", "[state]") {
    TempDir tmp;
    const auto dir = tmp / "data";
    DirectoryComponent c(dir);
    const auto rec = c.bind_live(kId, Owner{});
    // Item 1: rm -rf and mkdir: no ID where the marker expects one, nothing in it: state lost.
    stdfs::remove_all(dir);
    stdfs::create_directories(dir);
    auto o = c.observe(&rec, kId);
    CHECK(o.finding == ComponentFinding::lost);
    CHECK(o.detail.find("no state ID") != std::string::npos);
    // Missing altogether: lost too (the filesystem that held it is mounted).
    stdfs::remove_all(dir);
    CHECK(c.observe(&rec, kId).finding == ComponentFinding::lost);
    // Someone else's data, or another state's: foreign, naming both IDs.
    stdfs::create_directories(dir);
    write_file(dir / "x", "not ours");
    o = c.observe(&rec, kId);
    CHECK(o.finding == ComponentFinding::foreign);
    CHECK(o.detail.find("no state ID") != std::string::npos);
    REQUIRE(::lsetxattr(dir.c_str(), kStateIdXattr, kOther.data(), kOther.size(), 0) == 0);
    o = c.observe(&rec, kId);
    CHECK(o.finding == ComponentFinding::foreign);
    CHECK(o.carried_id == kOther);
    CHECK(o.detail.find(kOther) != std::string::npos);
    CHECK(o.detail.find(kId) != std::string::npos);
    // Without any marker, data is foreign whatever ID it carries.
    CHECK(c.observe(nullptr, "").finding == ComponentFinding::foreign);
}

TEST_CASE("directory: an empty lost+found is no data", "[state]") {
    TempDir tmp;
    const auto dir = tmp / "data";
    stdfs::create_directories(dir / "lost+found");
    DirectoryComponent c(dir);
    CHECK_FALSE(c.holds_data());
    CHECK(c.observe(nullptr, "").finding == ComponentFinding::fresh);
    write_file(dir / "lost+found" / "#12", "recovered");
    CHECK(c.holds_data());
    stdfs::remove(dir / "lost+found" / "#12");
    write_file(dir / "f", "x");
    CHECK(c.holds_data());
}

TEST_CASE("directory: an unmounted filesystem is 'not mounted', a replacement disk is 'lost'", "[state]") {
    TempDir tmp;
    const auto mnt = tmp / "disk";
    if (!mount_fs(tmp, mnt, "tmpfs")) {
        WARN("cannot mount a tmpfs here; not-mounted findings not tested");
        return;
    }
    const auto dir = mnt / "data";
    DirectoryComponent c(dir);
    const auto rec = c.bind_live(kId, Owner{});
    CHECK(rec.mount_point == mnt.string());
    write_file(dir / "f", "on the disk");
    // Item 2: the disk is unmounted; the mount point directory on the root filesystem is bare.
    REQUIRE(::umount2(mnt.c_str(), MNT_DETACH) == 0);
    auto o = c.observe(&rec, kId);
    CHECK(o.finding == ComponentFinding::not_mounted);
    CHECK(o.detail.find("not mounted") != std::string::npos);
    CHECK(o.detail.find(mnt.string()) != std::string::npos);
    // Even with the path re-created on the root filesystem underneath.
    stdfs::create_directories(dir);
    CHECK(c.observe(&rec, kId).finding == ComponentFinding::not_mounted);
    stdfs::remove_all(dir);
    // A new, empty disk mounted there: state lost (restore), naming the new filesystem.
    REQUIRE(tmp.mount_tmpfs(mnt, "size=1m"));
    o = c.observe(&rec, kId);
    CHECK(o.finding == ComponentFinding::lost);
}

TEST_CASE("directory: a unit's bind mount of the state's parent, gone outside the sandbox, is 'lost'", "[state]") {
    TempDir tmp;
    const auto parent = tmp / "disk";  // a filesystem of its own, as the host's root filesystem
    if (!mount_fs(tmp, parent, "tmpfs")) {
        WARN("cannot mount a tmpfs here; bind mount findings not tested");
        return;
    }
    const auto notes = parent / "notes";
    stdfs::create_directories(notes);
    // ReadWritePaths=notes: under the unit notes is a bind mount of the same filesystem.
    REQUIRE(::mount(notes.c_str(), notes.c_str(), nullptr, MS_BIND, nullptr) == 0);
    const auto dir = notes / "data";
    DirectoryComponent c(dir);
    const auto rec = c.bind_live(kId, Owner{});
    CHECK(rec.mount_point == notes.string());
    // Outside the sandbox (bartld by hand): no bind mount, the same filesystem; the data moved away.
    REQUIRE(::umount2(notes.c_str(), MNT_DETACH) == 0);
    stdfs::rename(dir, parent / "aside");
    auto o = c.observe(&rec, kId);
    CHECK(o.finding == ComponentFinding::lost);
    CHECK(o.detail == dir.string() + " is missing (no state ID): state lost");
    // The reverse: recorded by hand (mount point of the filesystem), judged under the unit.
    stdfs::rename(parent / "aside", dir);
    const auto by_hand = c.record();
    CHECK(by_hand.mount_point == parent.string());
    REQUIRE(::mount(notes.c_str(), notes.c_str(), nullptr, MS_BIND, nullptr) == 0);
    stdfs::remove_all(dir);
    CHECK(c.observe(&by_hand, kId).finding == ComponentFinding::lost);
    REQUIRE(::umount2(notes.c_str(), MNT_DETACH) == 0);
}

TEST_CASE("directory: without user xattrs the inode is the proof", "[state]") {
    TempDir tmp;
    const auto mnt = tmp / "ramfs";
    if (!mount_fs(tmp, mnt, "ramfs")) {
        WARN("cannot mount a ramfs here; the inode fallback is not tested");
        return;
    }
    const auto dir = mnt / "data";
    DirectoryComponent c(dir);
    const auto rec = c.bind_live(kId, Owner{});
    CHECK_FALSE(read_state_id_xattr(dir).has_value());  // ramfs: no user xattrs
    CHECK(rec.binding == "inode");
    CHECK(rec.inode != 0);
    write_file(dir / "f", "x");
    CHECK(c.observe(&rec, kId).finding == ComponentFinding::ours);
    stdfs::remove(dir / "f");
    CHECK(c.observe(&rec, kId).finding == ComponentFinding::ours);
    // Replaced: a new inode.
    stdfs::remove_all(dir);
    stdfs::create_directories(dir);
    CHECK(c.observe(&rec, kId).finding == ComponentFinding::lost);
    ::umount2(mnt.c_str(), MNT_DETACH);
}

TEST_CASE("directory: staging binds before the commit, and the commit refuses data in the way", "[state]") {
    TempDir tmp;
    const auto dir = tmp / "data";
    DirectoryComponent c(dir);
    c.prepare_staging(Owner{});
    CHECK(stdfs::is_directory(c.staging_path()));
    CHECK(c.staging_path().parent_path() == dir.parent_path());  // same filesystem
    write_file(c.staging_path() / "f", "staged");
    c.bind_staging(kId);
    c.sync_staging();
    c.commit_staging();
    CHECK(read_file(dir / "f") == "staged");
    CHECK(read_state_id_xattr(dir) == std::optional<std::string>(kId));
    CHECK(c.record().binding == "xattr");
    // A second commit over data is refused; nothing is replaced.
    c.prepare_staging(Owner{});
    CHECK_THROWS_WITH(c.commit_staging(), Catch::Contains("is not empty"));
    CHECK(read_file(dir / "f") == "staged");
    c.discard_staging();
    CHECK_FALSE(stdfs::exists(c.staging_path()));
    // Over an empty directory holding only an empty lost+found (a fresh disk's root would be
    // a mount point, refused earlier; a copied one is fine).
    stdfs::remove_all(dir);
    stdfs::create_directories(dir / "lost+found");
    c.prepare_staging(Owner{});
    CHECK_NOTHROW(c.commit_staging());
}

TEST_CASE("directory: targets a rename cannot replace are configuration errors", "[state]") {
    TempDir tmp;
    stdfs::create_directories(tmp / "real");
    stdfs::create_symlink(tmp / "real", tmp / "link");
    CHECK_THROWS_AS(DirectoryComponent(tmp / "link").check_target(), ConfigError);
    CHECK_THROWS_AS(DirectoryComponent(tmp / "link").observe(nullptr, ""), ConfigError);
    write_file(tmp / "file", "x");
    CHECK_THROWS_WITH(DirectoryComponent(tmp / "file").check_target(), Catch::Contains("is not a directory"));
    CHECK_THROWS_WITH(DirectoryComponent(tmp / "file").observe(nullptr, ""), Catch::Contains("is not a directory"));
    CHECK_NOTHROW(DirectoryComponent(tmp / "missing").check_target());
}
