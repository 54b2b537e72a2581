// The startup decision (bartl(7) "decision table") as a pure function of the
// observed facts. No I/O: src/ops observes the facts, calls decide(), acts and
// observes again, until the decision is Action::serve or a refusal/failure.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/semver.hpp"

namespace bartl {

/// What exists locally for the declared state paths (bartl(7) invariants 1-2).
enum class StateFact {
    absent,   ///< no marker, no intent, every declared path missing or empty
    present,  ///< the marker exists and parses (state_version is set)
    partial,  ///< no marker, but an init/restore intent record proves the data is bartl's
    foreign,  ///< no marker, no intent, some declared path holds data
};

/// What the backup store answered for this app (bartl(7) invariant 5).
enum class BackupFact {
    none,          ///< store answered with no backup for this app, or no store configured
    available,     ///< at least one complete backup not yet rejected in this run
    all_rejected,  ///< every backup failed verification/decryption in this run
    unreachable,   ///< the store did not answer, or denied the listing
    pin_missing,   ///< a backup was pinned (--restore-from) but the store does not hold it
};

/// The facts one iteration of the loop observed.
struct Observed {
    StateFact state = StateFact::absent;
    std::optional<Version> state_version;   ///< set when state == present
    Version engine;                         ///< engine version (from config)
    BackupFact backup = BackupFact::none;
    std::optional<Version> backup_version;  ///< version of the candidate restore() would take
    std::string backup_id;                  ///< id of that candidate ("" when none)
};

/// The path the loop takes next.
enum class Action {
    serve,              ///< run the app, schedule backups
    init,               ///< fresh install into staging, commit
    restore,            ///< restore the candidate backup, commit
    migrate,            ///< run migrations (state, engine]
    clean_partial,      ///< remove bartl's own half-done init/restore, then re-observe
    refuse_downgrade,   ///< exit 65: state newer than engine
    refuse_foreign,     ///< exit 66: data present that bartl did not create
    fail_unreachable,   ///< exit 1: store unreachable, never a fresh start (invariant 5)
    fail_all_rejected,  ///< exit 1: every backup rejected, never a fresh start
    fail_pin_missing,   ///< exit 1: pinned backup not in the store
};

/// A decision and the one-line reason an operator reads in the log/STATUS=.
struct Decision {
    Action action;
    std::string reason;
};

/// Short lower-case name of an action, used in plans and LastDecision ("restore", "serve", ...).
const char* action_name(Action a) noexcept;

/// True for actions after which the loop stops (serve, refusals, failures).
bool is_terminal(Action a) noexcept;

/// The decision table: what to do given the observed facts. Pure and total:
/// defined for every combination of facts. Throws std::logic_error only when
/// `state == present` without `state_version`.
Decision decide(const Observed& o);

/// Predicts the whole path from these facts without acting ("restore -> migrate -> serve"),
/// assuming each step succeeds: init yields state at the engine version, restore yields the
/// candidate's backup_version, migrate yields the engine version, clean_partial yields absent.
/// Returns the actions in order; the last one is terminal. Throws std::logic_error (as
/// decide() does) for inconsistent facts: present without state_version, or a restore
/// predicted without backup_version; also if the table ever failed to reach a terminal action.
std::vector<Action> predict_path(const Observed& o);

/// Joins actions as "a -> b -> c".
std::string format_path(const std::vector<Action>& path);

}  // namespace bartl
