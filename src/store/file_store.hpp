// The file:// store: a directory, typically on a backup disk or a network mount.
#pragma once

#include <filesystem>
#include <string>

#include "core/store_url.hpp"
#include "store/store.hpp"

namespace bartl {

/// Store in a local directory (store.hpp contract). Objects are plain files, mode 0600; an
/// object being written is a hidden ".NAME.tmp-HOST-PID-XXXXXXXX" file in the same directory,
/// renamed on commit, so an upload whose writer died is recognised at once (same host, PID
/// gone). Conditional put() is a compare-and-swap under flock(2) on ".bartl-store.lock".
/// The directory is never created by bartl: a missing directory means the backup disk is
/// not mounted, and creating it would put backups on the wrong disk.
class FileStore : public Store {
public:
    /// `url` is kept for messages; `dir` is the absolute directory it names.
    FileStore(std::string url, std::filesystem::path dir);

    std::string url() const override { return url_; }
    /// The directory holding the objects.
    const std::filesystem::path& dir() const noexcept { return dir_; }

    std::vector<ObjectInfo> list(const Context& ctx, const std::string& prefix) override;
    std::unique_ptr<ByteSource> open(const Context& ctx, const std::string& name, std::uint64_t offset = 0) override;
    std::optional<SmallObject> get(const Context& ctx, const std::string& name, std::size_t max_bytes) override;
    std::string put(const Context& ctx, const std::string& name, const std::string& data,
                    const WriteCondition& cond) override;
    std::unique_ptr<ObjectWriter> create(const Context& ctx, const std::string& name) override;
    void remove(const Context& ctx, const std::string& name) override;
    /// Unlinks hidden ".PREFIX….tmp-…" files written on this host by a PID that no longer
    /// exists, and any older than `age` (older bartl wrote ".NAME.tmp-XXXXXXXX" without owner).
    unsigned remove_abandoned_uploads(const Context& ctx, const std::string& prefix,
                                      std::chrono::seconds age) override;
    std::string conditional_write_guarantee() const override;

private:
    /// StoreUnavailable for a failure on the store directory itself (errno `err`).
    [[noreturn]] void unavailable(const std::string& action, int err) const;
    /// After ENOENT on an object: NotFound when the directory is there, else StoreUnavailable.
    [[noreturn]] void missing(const std::string& name) const;
    /// Opens the store directory (O_DIRECTORY). Throws StoreUnavailable.
    int open_dir() const;

    std::string url_;
    std::filesystem::path dir_;
};

// Temporary names of uploads, shared by the stores that write under a hidden name and rename
// at commit (file://, sftp://), so remove_abandoned_uploads() reads them alike.

/// Whether `name` can name an object: flat (no '/'), not hidden (hidden names are uploads
/// in progress), 1 to 255 bytes, no NUL. Pure.
bool valid_object_name(const std::string& name);

/// A fresh temporary name for this process's upload of `name`: ".NAME.tmp-HOST-PID-XXXXXXXX"
/// (HOST: this host's name in [A-Za-z0-9.-_], at most 64 characters; XXXXXXXX random hex).
std::string upload_temp_name(const std::string& name);

/// True when temporary name `temp_name` records this host and a PID, other than ours, that no
/// longer exists: nobody can still be writing that upload.
bool upload_writer_gone(const std::string& temp_name);

/// The owner a file store temporary name records: ".NAME.tmp-HOST-PID-XXXXXXXX" gives HOST
/// and PID; std::nullopt for other names (older bartl's ".NAME.tmp-XXXXXXXX"). Pure.
struct UploadOwner {
    std::string host;
    long pid = 0;
};
std::optional<UploadOwner> parse_upload_owner(const std::string& temp_name);

}  // namespace bartl
