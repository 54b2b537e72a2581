#include "core/state_filesystem.hpp"

namespace bartl {

FilesystemPresence judge_state_filesystem(const std::string& recorded_mount_point,
                                          const std::string& recorded_device, const FilesystemView& now) {
    if (recorded_mount_point.empty()) return FilesystemPresence::present;
    const bool same_device = !recorded_device.empty() && now.ancestor_device == recorded_device;
    if (!now.recorded_mount_point_mounted) {
        // Outside the sandbox the unit's bind mount is gone, but its filesystem is not.
        return same_device ? FilesystemPresence::present : FilesystemPresence::not_mounted;
    }
    if (same_device || recorded_device.empty()) return FilesystemPresence::present;
    // The mount point is there, the device is not: another disk in its place, unless the
    // mount point now mounted is just an ancestor's (the reverse view: a bind mount at the
    // state path over the same filesystem is caught by same_device above).
    if (now.holding_mount_point && *now.holding_mount_point == recorded_mount_point &&
        now.holding_device != recorded_device) {
        // The unit's bind mount of the bare mount point of a disk that is not mounted: the
        // root filesystem underneath, where a restore would diverge from the disk.
        if (recorded_mount_point != "/" && !now.root_device.empty() && now.holding_device == now.root_device)
            return FilesystemPresence::not_mounted;
        return FilesystemPresence::replaced;
    }
    return FilesystemPresence::present;
}

FilesystemPresence judge_bind_mount(const std::string& recorded_source, const std::string& recorded_filesystem,
                                    const BindView& now) {
    if (!now.mounted) return FilesystemPresence::not_mounted;
    if (now.source != recorded_source) return FilesystemPresence::replaced;
    // Both mount points lie on the path of the same directory: the one now mounted is the
    // recorded one's parent when the filesystem that held it is gone and what lies underneath
    // shows. One mounted deeper than the recorded one is a new disk the operator put there.
    const bool underneath = !recorded_filesystem.empty() && now.filesystem.size() < recorded_filesystem.size();
    return underneath ? FilesystemPresence::not_mounted : FilesystemPresence::present;
}

}  // namespace bartl
