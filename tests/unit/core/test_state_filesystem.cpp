// judge_state_filesystem(): bind mounts (a unit's ReadWritePaths=) against real disks.
#include <catch2/catch.hpp>

#include "core/state_filesystem.hpp"

using namespace bartl;

namespace {

FilesystemView view(bool mounted, std::string ancestor, std::optional<std::string> holding_mp = "/",
                    std::string holding_dev = "254:0", std::string root_dev = "254:0") {
    FilesystemView v;
    v.root_device = std::move(root_dev);
    v.recorded_mount_point_mounted = mounted;
    v.ancestor_device = std::move(ancestor);
    v.holding_mount_point = std::move(holding_mp);
    v.holding_device = std::move(holding_dev);
    return v;
}

}  // namespace

TEST_CASE("state filesystem: the unit's bind mount seen from outside the sandbox is present", "[core]") {
    // Under the unit ReadWritePaths=/var/lib/notes made it a bind mount of the root filesystem;
    // by hand /var/lib/notes is part of "/", on the same device.
    CHECK(judge_state_filesystem("/var/lib/notes", "254:0", view(false, "254:0")) == FilesystemPresence::present);
    // With the state directory itself still there (empty).
    CHECK(judge_state_filesystem("/var/lib/notes", "254:0", view(false, "254:0", "/", "254:0")) ==
          FilesystemPresence::present);
}

TEST_CASE("state filesystem: the reverse view, a by-hand marker seen under the unit, is present", "[core]") {
    // Recorded "/" by hand; under the unit /var/lib/notes is a bind mount of 254:0.
    CHECK(judge_state_filesystem("/", "254:0", view(true, "254:0", "/var/lib/notes", "254:0")) ==
          FilesystemPresence::present);
    // Same for a state directory on a separate disk mounted at /srv, bound in by the unit.
    CHECK(judge_state_filesystem("/srv", "8:17", view(true, "8:17", "/srv/notes", "8:17")) ==
          FilesystemPresence::present);
    CHECK(judge_state_filesystem("/srv/notes", "8:17", view(false, "8:17", "/srv", "8:17")) ==
          FilesystemPresence::present);
}

TEST_CASE("state filesystem: a real disk that is not mounted", "[core]") {
    // /mnt/notes held 8:17; now the bare mount point is on the root filesystem.
    CHECK(judge_state_filesystem("/mnt/notes", "8:17", view(false, "254:0")) == FilesystemPresence::not_mounted);
    // Outside the sandbox too: neither the bind mount nor the disk under it.
    CHECK(judge_state_filesystem("/srv/notes", "8:17", view(false, "254:0", "/", "254:0")) ==
          FilesystemPresence::not_mounted);
    // Nothing could be inspected: not proven present.
    CHECK(judge_state_filesystem("/mnt/notes", "8:17", view(false, "")) == FilesystemPresence::not_mounted);
    // A marker without a device and a mount point that is gone.
    CHECK(judge_state_filesystem("/mnt/notes", "", view(false, "254:0")) == FilesystemPresence::not_mounted);
}

TEST_CASE("state filesystem: under the unit, the bind mount of a bare mount point is not mounted", "[core]") {
    // Recorded under the unit: ReadWritePaths=/mnt/disk/notes bound the disk's directory
    // (0:64). The disk is gone; the unit now binds the bare directory of the root filesystem
    // there: no new disk, and restoring onto it would diverge from the real one.
    CHECK(judge_state_filesystem("/mnt/disk/notes", "0:64", view(true, "254:0", "/mnt/disk/notes", "254:0")) ==
          FilesystemPresence::not_mounted);
    // A new disk there is still a replacement, whatever the root filesystem.
    CHECK(judge_state_filesystem("/mnt/disk/notes", "0:64", view(true, "8:33", "/mnt/disk/notes", "8:33")) ==
          FilesystemPresence::replaced);
    // Root unknown: as before.
    CHECK(judge_state_filesystem("/mnt/disk/notes", "0:64", view(true, "254:0", "/mnt/disk/notes", "254:0", "")) ==
          FilesystemPresence::replaced);
    // A state recorded on "/" now on another root filesystem is a replacement, not a mount
    // missing (there is nothing underneath "/").
    CHECK(judge_state_filesystem("/", "254:0", view(true, "254:1", "/", "254:1", "254:1")) ==
          FilesystemPresence::replaced);
}

TEST_CASE("state filesystem: a new disk at the recorded mount point is a replacement", "[core]") {
    CHECK(judge_state_filesystem("/mnt/notes", "8:17", view(true, "8:33", "/mnt/notes", "8:33")) ==
          FilesystemPresence::replaced);
    // Another filesystem mounted deeper than the recorded mount point is no replacement of it.
    CHECK(judge_state_filesystem("/", "254:0", view(true, "0:52", "/var/lib/notes", "0:52")) ==
          FilesystemPresence::present);
    // The same disk back where it was.
    CHECK(judge_state_filesystem("/mnt/notes", "8:17", view(true, "8:17", "/mnt/notes", "8:17")) ==
          FilesystemPresence::present);
}

TEST_CASE("state filesystem: markers without a mount point or a device", "[core]") {
    CHECK(judge_state_filesystem("", "", view(false, "")) == FilesystemPresence::present);
    CHECK(judge_state_filesystem("", "8:17", view(false, "254:0")) == FilesystemPresence::present);
    CHECK(judge_state_filesystem("/mnt/notes", "", view(true, "254:0", "/mnt/notes", "0:52")) ==
          FilesystemPresence::present);
    CHECK(judge_state_filesystem("/mnt/notes", "8:17", view(true, "254:0", std::nullopt, "")) ==
          FilesystemPresence::present);
}

TEST_CASE("state filesystem: a bind mount of another directory must be there before a restore", "[core]") {
    // Recorded: /srv/appdata (of "/") bound at /var/lib/app by fstab, or /mnt/disk/appdata
    // (of the disk at /mnt/disk).
    auto bind = [](bool mounted, std::string source, std::string filesystem, std::string device = "254:0") {
        BindView v;
        v.mounted = mounted;
        v.source = std::move(source);
        v.filesystem = std::move(filesystem);
        v.device = std::move(device);
        return v;
    };
    // The bind is missing: /var/lib/app is a bare directory of "/", the very device of
    // /srv/appdata, which judge_state_filesystem() would call present.
    CHECK(judge_bind_mount("/srv/appdata", "/", bind(false, "", "", "")) == FilesystemPresence::not_mounted);
    // The bind is there: the state itself is lost.
    CHECK(judge_bind_mount("/srv/appdata", "/", bind(true, "/srv/appdata", "/")) == FilesystemPresence::present);
    // The same directory bound, its own disk not mounted beneath it (the root's bare directory).
    CHECK(judge_bind_mount("/mnt/disk/appdata", "/mnt/disk", bind(true, "/mnt/disk/appdata", "/")) ==
          FilesystemPresence::not_mounted);
    // Another directory, or a disk, mounted there by the operator: a new home.
    CHECK(judge_bind_mount("/srv/appdata", "/", bind(true, "/srv/newdata", "/")) == FilesystemPresence::replaced);
    CHECK(judge_bind_mount("/srv/appdata", "/", bind(true, "", "", "8:33")) == FilesystemPresence::replaced);
    // A disk mounted at /srv since, holding the directory now: nothing lies underneath it.
    CHECK(judge_bind_mount("/srv/appdata", "/", bind(true, "/srv/appdata", "/srv", "8:33")) ==
          FilesystemPresence::present);
    // A marker that did not record where the directory's filesystem was: the bind decides.
    CHECK(judge_bind_mount("/srv/appdata", "", bind(true, "/srv/appdata", "/")) == FilesystemPresence::present);
}

TEST_CASE("state filesystem: a bind's device numbers do not decide", "[core]") {
    // The bind and its disk are there, the state was deleted: a restore, never "not mounted"
    // at every start. The device numbers differ from the recorded st_dev: btrfs gives files
    // another st_dev (0:54) than the mount table shows (0:53), and after a reboot an NVMe
    // partition (259:N), a device-mapper volume or an NFS mount may get another number.
    BindView v;
    v.mounted = true;
    v.source = "/mnt/disk/appdata";
    v.filesystem = "/mnt/disk";
    for (const char* device : {"0:53", "259:7", "254:3"}) {
        v.device = device;
        CHECK(judge_bind_mount("/mnt/disk/appdata", "/mnt/disk", v) == FilesystemPresence::present);
    }
    // A new disk mounted in place of a broken one, its appdata bound again: restored onto it.
    v.device = "8:33";
    CHECK(judge_bind_mount("/mnt/disk/appdata", "/mnt/disk", v) == FilesystemPresence::present);
}
