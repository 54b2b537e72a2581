// A directory as a state component ([state] paths).
#pragma once

#include "state/component.hpp"

namespace bartl {

/// A declared state directory. It carries the state ID in the extended attribute
/// user.bartl.state_id on the directory itself (the app's listing never shows it, and the
/// app's own writes inside never remove it). Where the filesystem has no user xattrs (ramfs,
/// some network filesystems), the marker records the directory's inode instead: a directory
/// that was replaced (rm -rf, mkdir) gets a new inode. The inode proof is weaker, since a
/// filesystem may reuse an inode number; bartl(7) says so.
class DirectoryComponent final : public Component {
public:
    /// `path` is absolute (config validates it).
    explicit DirectoryComponent(std::filesystem::path path);

    std::string kind() const override { return "path"; }
    const std::string& name() const override { return name_; }
    const std::filesystem::path& path() const noexcept { return path_; }

    ComponentObservation observe(const ComponentRecord* recorded, const std::string& state_id) const override;
    bool holds_data() const override;
    void check_target() const override;
    std::filesystem::path staging_path() const override;
    void prepare_staging(const Owner& owner) const override;
    void bind_staging(const std::string& state_id) const override;
    void sync_staging() const override;
    void commit_staging() const override;
    void discard_staging() const override;
    void remove_target() const override;
    ComponentRecord bind_live(const std::string& state_id, const Owner& owner) const override;
    ComponentRecord record() const override;
    void sync_live() const override;
    std::optional<std::filesystem::path> tree() const override { return path_; }

private:
    std::filesystem::path path_;
    std::string name_;
};

/// The state ID a directory carries in user.bartl.state_id: "" when it has none, std::nullopt
/// when its filesystem has no user xattrs (ENOTSUP). Throws RuntimeError for other errors.
std::optional<std::string> read_state_id_xattr(const std::filesystem::path& dir);

}  // namespace bartl
