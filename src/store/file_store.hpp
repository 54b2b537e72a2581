// The file:// store: a directory, typically on a backup disk or a network mount.
#pragma once

#include <filesystem>
#include <string>

#include "store/store.hpp"

namespace bartl {

/// Store in a local directory (store.hpp contract). Objects are plain files; an object being
/// written is a hidden ".NAME.tmp-XXXXXXXX" file in the same directory, renamed on commit.
/// The directory is never created by bartl: a missing directory means the backup disk is
/// not mounted, and creating it would put backups on the wrong disk and later answer
/// "no backups" for a disk that holds them.
class FileStore : public Store {
public:
    /// `url` is kept for messages; `dir` is the absolute directory it names.
    FileStore(std::string url, std::filesystem::path dir);

    std::string url() const override { return url_; }
    /// The directory holding the objects.
    const std::filesystem::path& dir() const noexcept { return dir_; }

    std::vector<std::string> list(const std::string& prefix) override;
    std::unique_ptr<ByteSource> open(const std::string& name) override;
    std::uint64_t size(const std::string& name) override;
    std::unique_ptr<ObjectWriter> create(const std::string& name) override;
    void remove(const std::string& name) override;
    /// Unlinks hidden ".PREFIX….tmp-XXXXXXXX" files whose mtime is older than `age`.
    unsigned remove_abandoned_uploads(const std::string& prefix, std::chrono::seconds age) override;

private:
    /// StoreUnavailable for a failure on the store directory itself (errno `err`).
    [[noreturn]] void unavailable(const std::string& action, int err) const;
    /// After ENOENT on an object: NotFound when the directory is there, else StoreUnavailable.
    [[noreturn]] void missing(const std::string& name) const;

    std::string url_;
    std::filesystem::path dir_;
};

/// Parses "file:///abs/dir" (percent-escapes decoded) into the directory. Throws ConfigError
/// for another scheme, a host part other than "localhost", or a relative/empty path.
std::filesystem::path file_url_path(const std::string& url);

}  // namespace bartl
