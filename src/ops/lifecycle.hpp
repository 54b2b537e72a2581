// The lifecycle loop (bartl(7) "THE DECISION TABLE"): observe, decide (core/decision), act,
// observe again, until the state is ready to serve, or a refusal/failure ends it.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "blob/manifest.hpp"
#include "config/config.hpp"
#include "core/decision.hpp"
#include "core/marker.hpp"
#include "core/semver.hpp"
#include "ops/report.hpp"
#include "store/store.hpp"
#include "util/cancel.hpp"

namespace bartl {

/// Options of one run of the loop.
struct LoopOptions {
    std::optional<std::string> restore_from;  ///< --restore-from ID: restore this backup when no state exists
    unsigned max_iterations = 16;             ///< bound: the loop throws if it has not converged by then
};

/// One declared or recorded component as observed (for --plan, status and the log).
struct ComponentView {
    std::string id;       ///< "path:/var/lib/notes/data"
    std::string finding;  ///< "ours", "lost", "not mounted", "foreign", "new", "no longer declared"
    std::string detail;
};

/// The facts observed, with the details behind them (for --plan and the log).
struct Observation {
    Observed facts;
    std::optional<Marker> marker;
    std::string state_detail;    ///< e.g. "state 1.0.0 (state ID 3f…, origin init, marker /var/lib/bartl/notes/marker.json)"
    std::string backup_detail;   ///< e.g. "store file:///x answered: 3 backups, newest 3f9a0c1d (state 1.0.0)"
    std::vector<ComponentView> components;
    bool marker_lost = false;    ///< a marker exists but its state is lost (components gone)
    std::string pinned;          ///< the pinned backup id in force, if any
    std::optional<BackupManifest> candidate;  ///< the backup restore would take (its sidecar read)
    std::vector<std::string> warnings;        ///< e.g. changed applied migrations, skipped backups
    /// State IDs that components holding data carry while there is no marker, or one that
    /// does not parse: bartl's own state whose marker is lost or damaged (still refused as
    /// foreign: no marker proves it).
    std::vector<std::string> orphan_state_ids;
    /// The marker exists but does not parse (its parse error is in state_detail).
    bool marker_damaged = false;
};

/// Observes the facts without changing anything. `rejected` holds backup ids rejected earlier
/// in this run. Throws RuntimeError for unreadable bookkeeping files, ConfigError for a
/// declared path that is not a directory.
Observation observe(const Config& config, const Version& engine, Store* store, const Context& ctx,
                    const std::set<std::string>& rejected, const std::optional<std::string>& pin);

/// What a run of the loop did.
struct LoopResult {
    std::vector<Action> path;  ///< actions taken, the last one Action::serve
    Marker marker;             ///< the committed state
};

/// Runs the loop until the decision is serve. Requires the instance lock to be held.
/// Throws DowngradeError (65), ForeignStateError (66), ConfigError (78: a component no
/// longer declared, a bad migrations directory), RuntimeError/StoreUnavailable (1),
/// StopRequested when `ctx` is cancelled between or during steps, and RuntimeError when it
/// does not converge within max_iterations.
LoopResult run_lifecycle(const Config& config, const Version& engine, Store* store, const Context& ctx,
                         const Reporter& reporter, const LoopOptions& options);

/// --plan: the observation and predicted path in operator words (every step, including the
/// pre-migration backup). Changes nothing. `pin_given` is true when the pin came from the
/// command line (the plan then says when it does not apply).
std::string plan_text(const Config& config, const Version& engine, Store* store, const Context& ctx,
                      const std::optional<std::string>& pin, bool pin_given = false);

}  // namespace bartl
