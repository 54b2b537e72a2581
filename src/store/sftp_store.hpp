// The sftp:// store: a directory on an SSH server (sftp://[USER@]HOST[:PORT]/PATH), through
// libcurl's SFTP (libssh2), with key authentication only and host keys checked against a
// known_hosts file.
#pragma once

#include <memory>
#include <string>

#include "core/store_url.hpp"
#include "store/store.hpp"

namespace bartl {

/// Store in a directory on an SFTP server (store.hpp contract, bartl(7) STORES).
///
/// Objects are files in the directory, mode 0600. An object being written is a hidden
/// ".NAME.tmp-HOST-PID-XXXXXXXX" file (as the file store names them), renamed at commit; the
/// rename is no-clobber on SFTP version 3 servers (OpenSSH: link(2) then unlink(2)), so a
/// replacement first moves the old object aside. Every request runs in the store's one retry
/// loop (store/retry.hpp); connections are kept and reused. Streams run on a thread of their
/// own behind a bounded pipe (4 MiB), so neither side waits on the other and memory does not
/// grow with the object. A dropped download resumes where it got to; a dropped upload fails
/// (the caller's next backup starts over) and leaves a temporary that
/// remove_abandoned_uploads() takes away.
///
/// Conditional put() holds a lock: the directory ".bartl-store.lock.d", made by an SFTP
/// MKDIR, which the server creates atomically or refuses. A lock older than five minutes (by
/// the server's clock) was left by a writer that died holding it and is broken; that is the
/// race window conditional_write_guarantee() describes.
///
/// The directory is never created: a missing directory means the server is not the one
/// holding the store, and creating it would put backups in the wrong place.
class SftpStore : public Store {
public:
    /// `url` is kept for messages; `where` is what it names. Reads nothing and contacts no one:
    /// the key and known_hosts files are checked at each new connection. Throws ConfigError
    /// when no user is named and the current user has no name.
    SftpStore(std::string url, SftpLocation where, const StoreOptions& options);
    ~SftpStore() override;

    std::string url() const override;
    /// One directory listing (the server's long names, times calibrated to UTC against the
    /// directory's own exact modification time): regular files only, no hidden names, sizes
    /// exact, times to the minute (to the day for objects older than six months).
    std::vector<ObjectInfo> list(const Context& ctx, const std::string& prefix) override;
    std::unique_ptr<ByteSource> open(const Context& ctx, const std::string& name, std::uint64_t offset = 0) override;
    /// The etag is the modification time, size and the start of the content's SHA-256.
    std::optional<SmallObject> get(const Context& ctx, const std::string& name, std::size_t max_bytes) override;
    std::string put(const Context& ctx, const std::string& name, const std::string& data,
                    const WriteCondition& cond) override;
    std::unique_ptr<ObjectWriter> create(const Context& ctx, const std::string& name) override;
    void remove(const Context& ctx, const std::string& name) override;
    /// Up to 500 removals per request (SFTP REMOVE commands run in turn on one
    /// session, then a listing shows which stayed); each that stayed is removed again alone, so
    /// the error names it and why. Throws StoreReadOnly when one is refused (permission
    /// denied), StoreUnavailable naming each object that stayed otherwise.
    void remove_many(const Context& ctx, const std::vector<std::string>& names) override;
    /// Removes hidden ".PREFIX...tmp-..." files written on this host by a PID that no longer
    /// exists, and any whose listed time is older than `age`.
    unsigned remove_abandoned_uploads(const Context& ctx, const std::string& prefix,
                                      std::chrono::seconds age) override;
    std::string conditional_write_guarantee() const override;

    struct Shared;  ///< connections and settings, shared with the streams a store opened

private:
    std::shared_ptr<Shared> shared_;
};

}  // namespace bartl
