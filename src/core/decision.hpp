// The startup decision (bartl(7) "THE DECISION TABLE") as a pure function of the observed
// facts. No I/O: src/ops observes the facts, calls decide(), acts and observes again, until
// the decision is Action::serve or a refusal/failure.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/semver.hpp"

namespace bartl {

/// What exists locally for the declared state (bartl(7) invariants 1-2, "State identity").
enum class StateFact {
    absent,       ///< no marker (or one whose components are all lost), no intent, nothing holds data
    present,      ///< the marker parses and every recorded component carries its state ID
    partial,      ///< no marker, but an init/restore intent record proves the data is bartl's
    foreign,      ///< a component holds data without the marker's state ID (or there is no marker)
    not_mounted,  ///< a recorded component is missing or empty and its filesystem is not mounted
    incomplete,   ///< some recorded components are ours, others lost (bartl will not mix them)
};

/// What the backup store answered for this app (bartl(7) invariant 5).
enum class BackupFact {
    none,          ///< a proven bartl store answered with no backup for this app, or no store is configured
    available,     ///< at least one complete backup not yet rejected in this run
    all_rejected,  ///< every backup failed verification/decryption in this run
    unreachable,   ///< the store did not answer, or denied the listing
    not_a_store,   ///< the location answered but holds no store identity (unmounted, wrong bucket/prefix)
    pin_missing,   ///< a backup was pinned (--restore-from) but the store does not hold it
};

/// The facts one iteration of the loop observed, and the configuration they are read with.
struct Observed {
    StateFact state = StateFact::absent;
    std::optional<Version> state_version;   ///< set when state == present
    Version engine;                         ///< engine version (from config)
    BackupFact backup = BackupFact::none;
    std::optional<Version> backup_version;  ///< version of the candidate restore() would take
    std::string backup_id;                  ///< id of that candidate ("" when none)

    // Details of a present state.
    bool marker_legacy = false;          ///< marker of format 1: components not yet bound to a state ID
    bool components_new = false;         ///< declared components the marker does not record (free to create)
    bool components_undeclared = false;  ///< recorded components the configuration no longer declares
    bool writer_claim_due = false;       ///< the state must take the store over before it serves
    bool migration_in_progress = false;  ///< a migration intent exists: its pre-migration backup is settled

    // Configuration.
    bool store_configured = false;  ///< [backup] store is set
    bool before_migrate = true;     ///< [backup] before_migrate
};

/// The path the loop takes next.
enum class Action {
    serve,                  ///< run the app, schedule backups
    init,                   ///< fresh install into staging, commit
    restore,                ///< restore the candidate backup, commit
    migrate,                ///< run pending migrations, ending at the engine version
    backup_before_migrate,  ///< the one pre-migration backup (the way back), recorded in the intent
    clean_partial,          ///< remove bartl's own half-done init/restore, then re-observe
    upgrade_marker,         ///< bind the components of a format-1 marker to a new state ID
    add_components,         ///< create newly declared components (empty or by init_component) and record them
    take_over,              ///< claim the store as its writer (generation + 1) before serving
    refuse_downgrade,       ///< exit 65: state newer than engine
    refuse_foreign,         ///< exit 66: data present that bartl did not create
    refuse_undeclared,      ///< exit 78: the marker records a component the configuration dropped
    fail_unreachable,       ///< exit 1: store unreachable, never a fresh start (invariant 5)
    fail_not_a_store,       ///< exit 1: no store identity at the location, never a fresh start
    fail_all_rejected,      ///< exit 1: every backup rejected, never a fresh start
    fail_pin_missing,       ///< exit 1: pinned backup not in the store
    fail_not_mounted,       ///< exit 1: a component's filesystem is not mounted, never a restore onto /
    fail_incomplete,        ///< exit 1: some components lost while others are present
};

/// A decision and the one-line reason an operator reads in the log/STATUS=.
struct Decision {
    Action action;
    std::string reason;
};

/// Machine name of an action, for the journal field BARTL_DECISION and LastDecision
/// ("restore", "backup_before_migrate", "refuse_foreign", ...).
const char* action_name(Action a) noexcept;

/// Operator words for an action, as plans show them ("back up (pre-migration)",
/// "refuse: foreign data", "fail: store unreachable").
const char* action_label(Action a) noexcept;

/// True for actions after which the loop stops (serve, refusals, failures).
bool is_terminal(Action a) noexcept;

/// The decision table: what to do given the observed facts. Pure and total: defined for
/// every combination of facts. Throws std::logic_error only when `state == present`
/// without `state_version`.
Decision decide(const Observed& o);

/// Predicts the whole path from these facts without acting ("restore -> take_over ->
/// backup_before_migrate -> migrate -> serve"), assuming each step succeeds: init yields state
/// at the engine version, restore the candidate's backup_version (both then owe the store
/// their writer claim), migrate the engine version, clean_partial no state. Returns the
/// actions in order; the last one is terminal. Throws std::logic_error (as decide() does)
/// for inconsistent facts: present without state_version, or a restore predicted without
/// backup_version; also if the table ever failed to reach a terminal action.
std::vector<Action> predict_path(const Observed& o);

/// Joins machine names as "a -> b -> c".
std::string format_path(const std::vector<Action>& path);
/// Joins operator words as "restore -> back up (pre-migration) -> migrate -> serve".
std::string format_path_words(const std::vector<Action>& path);
/// Rewrites a path of machine names ("init -> take_over -> serve", as in the journal field
/// BARTL_DECISION and the D-Bus property LastDecision) in operator words; a name this
/// version does not know (from a newer bartld) is kept as it is.
std::string path_words_from_names(const std::string& machine_path);

}  // namespace bartl
