// The identity decision for a database component (bartl(7) "STATE IDENTITY", bartl.toml(5)
// "DATABASES"), from facts a server (or a SQLite file) gave: pure, no I/O, so every
// combination is unit-tested (tests/unit/state/test_db_judge.cpp).
#pragma once

#include <string>

#include "state/component.hpp"

namespace bartl {

/// What inspecting one declared database found.
struct DatabaseFacts {
    bool exists = false;      ///< the database (sqlite: the file) exists
    /// It holds at least one of the app's relations (PostgreSQL: a table, view or sequence
    /// outside pg_catalog and information_schema; MariaDB: a table or view; SQLite: an entry
    /// of sqlite_schema). A database without any counts as empty, as a package's postinst
    /// may leave it.
    bool holds_data = false;
    /// The state ID bartl's record in it carries ("" when none; ignored unless `exists`).
    std::string carried_id;
};

/// Judges database `id` ("postgresql:notes") from `facts`, against the marker's state ID
/// `state_id` ("" when there is no marker) and whether the marker records it (`recorded`):
///   carries state_id (not "")          -> ours (even when the app emptied it)
///   otherwise, holds data              -> foreign (66: none or another state's ID)
///   otherwise, not recorded            -> fresh (missing or empty: free to create)
///   otherwise (recorded)               -> lost (missing, or empty without the ID)
/// A database is never "not mounted": its server answered, or inspecting it threw.
ComponentObservation judge_database(const std::string& id, const DatabaseFacts& facts, bool recorded,
                                    const std::string& state_id);

}  // namespace bartl
