// The store identity object bartl-store.json (bartl(7) "STORES", invariants 5 and 9) as
// data with JSON (de)serialisation. Pure: reading and writing it is store/identity.hpp.
//
// A location is a bartl store only if it holds this object: an empty directory, an
// unmounted mount point or a wrong bucket/prefix does not, so it can never answer
// "no backup". It also records the store's current writer (invariant 9): the state that may
// back up to it and apply retention. A restore on another host takes the store over
// (generation + 1); the state that lost the claim is fenced.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace bartl {

/// The name of the identity object at the store's root.
inline constexpr const char* kStoreIdentityName = "bartl-store.json";

/// The state that may write backups to the store.
struct StoreWriter {
    std::string state_id;          ///< the writer state's ID (core/marker.hpp)
    std::string host;              ///< where that state lives (for messages)
    std::string instance;          ///< its instance name
    std::uint64_t generation = 0;  ///< 1 for the first writer, + 1 at each takeover
    std::string since;             ///< RFC 3339 UTC (milliseconds), when it took the store
};

/// bartl-store.json.
struct StoreIdentity {
    int format = 1;
    std::string store_id;    ///< 32 lower-case hex, drawn by --init-store
    std::string app;         ///< the app whose backups the store holds
    std::string created;     ///< RFC 3339 UTC
    std::string created_by;  ///< host that ran --init-store
    std::optional<StoreWriter> writer;  ///< none until the first state claims it

    /// Pretty JSON text, newline-terminated.
    std::string to_json() const;
    /// Parses the identity strictly (core/json_read.hpp). Throws std::invalid_argument naming
    /// the bad key; other formats are rejected.
    static StoreIdentity from_json(const std::string& text);
};

}  // namespace bartl
