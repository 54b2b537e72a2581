// Backup stores: one interface, one implementation per URL scheme (file://, later s3://,
// sftp://). Contract every implementation follows (and tests/unit/store checks):
//
// - Object names are flat ("notes-20261130T030904Z-2.1.0-3f9a0c1d.tar.zst"), no '/'.
// - list() returns only committed objects; an object being written is never listed.
// - A store that cannot be reached or read (missing base directory = unmounted disk,
//   permission denied, network error) throws StoreUnavailable. An empty answer means
//   the store answered and holds nothing: only then may bartl initialise (invariant 5).
// - create() writes under a temporary name; commit() makes the object visible atomically
//   and durably (fsync + rename + fsync directory for file://); a writer destroyed without
//   commit() removes its temporary data.
// - open() of a missing object throws NotFound.
// - remove() of a missing object is not an error (idempotent).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace bartl {

/// A named object is not in the store.
class NotFound : public RuntimeError {
public:
    using RuntimeError::RuntimeError;
};

/// Destination of a byte stream.
class ByteSink {
public:
    virtual ~ByteSink() = default;
    /// Appends `n` bytes. Throws RuntimeError (e.g. ENOSPC, naming the path/URL).
    virtual void write(const void* data, std::size_t n) = 0;
};

/// Source of a byte stream.
class ByteSource {
public:
    virtual ~ByteSource() = default;
    /// Reads up to `n` bytes; returns 0 only at the end. Throws RuntimeError.
    virtual std::size_t read(void* data, std::size_t n) = 0;
};

/// An object being written. Not visible until commit().
class ObjectWriter : public ByteSink {
public:
    /// Makes the object visible under its final name, durably. Throws RuntimeError.
    virtual void commit() = 0;
};

/// One backup store.
class Store {
public:
    virtual ~Store() = default;
    /// The store URL, for messages ("file:///var/backups/bartl/notes").
    virtual std::string url() const = 0;
    /// Names of committed objects beginning with `prefix`, sorted by name. Throws StoreUnavailable.
    virtual std::vector<std::string> list(const std::string& prefix) = 0;
    /// Opens a committed object for streaming. Throws NotFound, StoreUnavailable.
    virtual std::unique_ptr<ByteSource> open(const std::string& name) = 0;
    /// Size of a committed object in bytes. Throws NotFound, StoreUnavailable.
    virtual std::uint64_t size(const std::string& name) = 0;
    /// Starts writing an object. Throws StoreUnavailable (e.g. read-only store).
    virtual std::unique_ptr<ObjectWriter> create(const std::string& name) = 0;
    /// Deletes an object; missing is fine. Throws StoreUnavailable.
    virtual void remove(const std::string& name) = 0;
    /// Removes what uploads of objects beginning with `prefix` left behind when their writer
    /// was killed before commit() (never listed, never restored), if older than `age`, so a
    /// store does not fill up with them. Returns how many were removed. The default does
    /// nothing, for stores whose uploads leave nothing behind. Throws StoreUnavailable.
    virtual unsigned remove_abandoned_uploads(const std::string& prefix, std::chrono::seconds age) {
        (void)prefix;
        (void)age;
        return 0;
    }
};

/// Opens the store for a URL from [backup] store. Throws ConfigError for an unsupported
/// scheme or malformed URL. Does not contact the store.
std::unique_ptr<Store> open_store(const std::string& url);

}  // namespace bartl
