// Backup stores: one interface, one implementation per URL scheme (file://; s3:// and
// sftp:// follow). The contract every implementation follows (tests/unit/store runs the same
// contract test against each backend):
//
// - Object names are flat ("notes-20261130T030904Z-2.1.0-3f9a0c1d.tar.zst"), no '/', not
//   starting with '.'.
// - list() returns only committed objects, sorted by name, with size and modification time;
//   an object being written is never listed. Pagination is internal.
// - A store that cannot be reached or read (missing base directory = unmounted disk,
//   permission denied, network error, deadline passed) throws StoreUnavailable. An empty
//   answer means the store answered and holds nothing matching. Whether the location is a
//   bartl store at all is decided by its identity object (store/identity.hpp), never by an
//   empty listing (invariant 5).
// - create() writes under a temporary name; commit() makes the object visible atomically
//   and durably; abort() discards it. Neither happens in a destructor: a writer destroyed
//   without either releases local resources only, and what it left is removed later by
//   remove_abandoned_uploads().
// - get()/put() read and write small whole objects (sidecars, the store identity); put()
//   takes a condition (create only if absent, replace only if unchanged since read) so two
//   writers cannot overwrite each other's identity record unnoticed.
// - open() of a missing object throws NotFound; get() of one returns std::nullopt.
// - remove() of a missing object is not an error (idempotent).
// - Every call takes a Context (cancellation + deadline). Retrying transient failures is the
//   job of the implementation's one retry loop, not of callers.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/store_settings.hpp"
#include "util/byte_stream.hpp"
#include "util/cancel.hpp"

namespace bartl {

/// One committed object as list() reports it.
struct ObjectInfo {
    std::string name;
    std::uint64_t size = 0;                          ///< bytes
    std::chrono::system_clock::time_point modified;  ///< the store's modification time
};

/// A small object read whole, with the version tag a conditional put() compares against.
struct SmallObject {
    std::string data;
    std::string etag;  ///< opaque; changes whenever the object is replaced
};

/// Precondition of put(): S3's If-None-Match: * / If-Match: ETAG, the file store's
/// compare-and-swap under a lock.
struct WriteCondition {
    enum class Kind { none, if_absent, if_match } kind = Kind::none;
    std::string etag;  ///< for if_match: the etag get() returned

    /// Write only when no object of that name exists.
    static WriteCondition absent() { return {Kind::if_absent, ""}; }
    /// Write only when the object still has `etag`.
    static WriteCondition match(std::string etag) { return {Kind::if_match, std::move(etag)}; }
};

/// An object being written. Not visible until commit().
class ObjectWriter : public ByteSink {
public:
    /// Makes the object visible under its final name, durably. Throws StoreUnavailable or
    /// RuntimeError (ENOSPC, ...); the object is then not visible and abort() still applies.
    virtual void commit(const Context& ctx) = 0;
    /// Discards what was written (the temporary object, a multipart upload). Idempotent; a
    /// no-op after commit(). Throws StoreUnavailable when the store cannot be told (the
    /// leftover is removed later by remove_abandoned_uploads()).
    virtual void abort(const Context& ctx) = 0;
};

/// Settings and secrets a store implementation may need ([store.*] sections, systemd
/// credentials). The file store needs none of them.
struct StoreOptions {
    /// $CREDENTIALS_DIRECTORY of the unit (LoadCredential=), "" when not set.
    std::filesystem::path credentials_dir;
    /// [store] and its per-scheme sections.
    StoreSettings settings;
};

/// One backup store.
class Store {
public:
    virtual ~Store() = default;
    /// The store URL, for messages ("file:///var/backups/bartl/notes"). Never holds secrets.
    virtual std::string url() const = 0;
    /// Committed objects whose name begins with `prefix`, sorted by name. Throws StoreUnavailable.
    virtual std::vector<ObjectInfo> list(const Context& ctx, const std::string& prefix) = 0;
    /// Streams a committed object from byte `offset`. Throws NotFound, StoreUnavailable.
    virtual std::unique_ptr<ByteSource> open(const Context& ctx, const std::string& name,
                                             std::uint64_t offset = 0) = 0;
    /// Reads a small object whole; std::nullopt when it does not exist. Throws
    /// StoreUnavailable, RuntimeError when it is larger than `max_bytes`.
    virtual std::optional<SmallObject> get(const Context& ctx, const std::string& name,
                                           std::size_t max_bytes = 1 << 20) = 0;
    /// Writes a small object whole, visible atomically, if `cond` holds. Returns its new
    /// etag. Throws PreconditionFailed when `cond` does not hold, StoreUnavailable.
    virtual std::string put(const Context& ctx, const std::string& name, const std::string& data,
                            const WriteCondition& cond = {}) = 0;
    /// Starts writing an object. Throws StoreUnavailable (e.g. read-only store).
    virtual std::unique_ptr<ObjectWriter> create(const Context& ctx, const std::string& name) = 0;
    /// Deletes an object; missing is fine. Throws StoreUnavailable.
    virtual void remove(const Context& ctx, const std::string& name) = 0;
    /// Deletes several objects; missing ones are fine. Not atomic: when it throws, some may be
    /// gone, so callers that need an order (sidecars before blobs) call it once per step. The
    /// default removes them one by one in the given order; S3 sends DeleteObjects, up to
    /// 1,000 names per request. Throws StoreUnavailable naming an object that stayed.
    virtual void remove_many(const Context& ctx, const std::vector<std::string>& names);
    /// Removes what uploads of objects beginning with `prefix` left behind when their writer
    /// was killed before commit() or abort(): at once when the store can prove the writer dead
    /// (the file store: written on this host by a PID that no longer exists; callers hold the
    /// instance lock), else once older than `age`. Never listed, never restored, so only
    /// space is at stake. Returns how many were removed. Throws StoreUnavailable.
    virtual unsigned remove_abandoned_uploads(const Context& ctx, const std::string& prefix,
                                              std::chrono::seconds age) = 0;
    /// How put() conditions are enforced, for the docs and the log ("atomic: flock on the
    /// store directory"; stores without conditional writes say where the race window is).
    virtual std::string conditional_write_guarantee() const = 0;
};

/// Opens the store for a URL from [backup] store. Throws ConfigError for an unsupported
/// scheme or malformed URL. Does not contact the store.
std::unique_ptr<Store> open_store(const std::string& url, const StoreOptions& options = {});

}  // namespace bartl
