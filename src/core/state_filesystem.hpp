// Whether the filesystem that held a missing or empty state directory is still there
// (bartl(7) "What bartl observes": a state filesystem that is not mounted). Pure.
#pragma once

#include <optional>
#include <string>

namespace bartl {

/// What the host shows now around a missing or empty state directory.
struct FilesystemView {
    /// The recorded mount point is a mount point in this process's mount namespace.
    bool recorded_mount_point_mounted = false;
    /// "MAJOR:MINOR" (st_dev) of the nearest existing ancestor of the state path (the path
    /// itself when it exists); empty when none could be inspected.
    std::string ancestor_device;
    /// The mount that holds the state path's parent: its mount point and "MAJOR:MINOR".
    std::optional<std::string> holding_mount_point;
    std::string holding_device;
    /// "MAJOR:MINOR" of the filesystem mounted at "/"; empty when unknown.
    std::string root_device;
};

/// The verdict on that filesystem.
enum class FilesystemPresence {
    present,      ///< the filesystem that held the state is there: the state itself is lost
    replaced,     ///< another filesystem is mounted at the recorded mount point (a new disk)
    not_mounted,  ///< the filesystem that held it is not there: never restore underneath
};

/// Judges the filesystem of a state directory the marker recorded on `recorded_device`
/// ("MAJOR:MINOR", st_dev at commit) at `recorded_mount_point`, given `now`.
/// The mount point path alone does not decide: a unit's ReadWritePaths= or a by-hand run
/// outside the sandbox sees the same filesystem as a bind mount at the state path or as part
/// of "/". The filesystem counts as present when the recorded mount point is mounted or the
/// nearest existing ancestor is on the recorded device; it is not mounted only when that
/// ancestor is on another device and the recorded mount point is no mount point, or when the
/// recorded mount point (other than "/") is now held by the root filesystem: under the unit,
/// ReadWritePaths= binds the bare directory there once the disk is gone, which is never a new
/// disk. An empty recorded mount point (a marker from before mount points were recorded) is
/// always present.
FilesystemPresence judge_state_filesystem(const std::string& recorded_mount_point,
                                          const std::string& recorded_device, const FilesystemView& now);

/// What the host shows now at the mount point of a bind mount the marker recorded.
struct BindView {
    /// The operator's mount is there: a mount at that point that is not just a unit's
    /// ReadWritePaths= binding its parent's directory onto itself (util/mounts.hpp
    /// effective_mount()).
    bool mounted = false;
    std::string source;  ///< the directory bound there now; "" when a filesystem's root is mounted there
    std::string filesystem;  ///< where the filesystem of `source` is mounted (BindMount::filesystem)
    std::string device;  ///< "MAJOR:MINOR" of what is mounted there, for messages
};

/// Judges the filesystem of a state directory that was held by a bind mount of
/// `recorded_source` (a directory of the filesystem mounted at `recorded_filesystem`,
/// ComponentRecord::bind_filesystem; "" from a marker that did not record it) at the
/// recorded bind mount point.
/// Without the bind the state path is a bare directory of the filesystem underneath, often
/// the same one as the bound directory's, so the device cannot tell: a missing bind is
/// not_mounted. The same directory bound there through another mount (its own disk not
/// mounted beneath it: /mnt/disk/appdata of "/", a mount point above the recorded one) is
/// not_mounted too; through the same mount it is present (the state itself is lost, or a new
/// disk is mounted there in place of a broken one: restored onto it), and so through a mount
/// below the recorded one (a disk the operator mounted at /srv since: nothing can lie
/// underneath it); another directory or a filesystem mounted there is
/// replaced (the operator gave the state a new home). Devices are not compared: their
/// numbers change across reboots, and on btrfs a file's st_dev is not the mount table's.
FilesystemPresence judge_bind_mount(const std::string& recorded_source, const std::string& recorded_filesystem,
                                    const BindView& now);

}  // namespace bartl
