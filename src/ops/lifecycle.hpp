// The lifecycle loop (bartl(7)): observe, decide (core/decision), act, observe again, until
// the state is ready to serve, or a refusal/failure ends it.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/decision.hpp"
#include "core/marker.hpp"
#include "core/semver.hpp"
#include "ops/report.hpp"
#include "store/store.hpp"

namespace bartl {

/// Options of one run of the loop.
struct LoopOptions {
    std::optional<std::string> restore_from;  ///< --restore-from ID: restore this backup when no state exists
    unsigned max_iterations = 12;             ///< bound: the loop throws if it has not converged by then
    /// Asked between steps; true ends the loop with StopRequested (SIGTERM during a long start).
    std::function<bool()> stop_requested;
};

/// The facts observed, with the details behind them (for --plan and the log).
struct Observation {
    Observed facts;
    std::optional<Marker> marker;
    std::string state_detail;    ///< e.g. "marker /var/lib/bartl/notes/marker.json: state 1.0.0 (origin init)"
    std::string backup_detail;   ///< e.g. "store file:///x answered: 3 backups, newest 3f9a0c1d (state 1.0.0)"
    bool marker_lost = false;    ///< marker present but every declared path is missing
    std::string pinned;          ///< the pinned backup id in force, if any
};

/// Observes the facts without changing anything. `rejected` holds backup ids rejected earlier
/// in this run. Throws RuntimeError for unreadable bookkeeping files.
Observation observe(const Config& config, const Version& engine, Store* store,
                    const std::set<std::string>& rejected, const std::optional<std::string>& pin);

/// What a run of the loop did.
struct LoopResult {
    std::vector<Action> path;  ///< actions taken, the last one Action::serve
    Marker marker;             ///< the committed state
};

/// Runs the loop until the decision is serve. Requires the instance lock to be held.
/// Throws DowngradeError (65), ForeignStateError (66), RuntimeError/StoreUnavailable (1),
/// ConfigError (78, bad migrations directory), and RuntimeError when it does not converge
/// within max_iterations.
LoopResult run_lifecycle(const Config& config, const Version& engine, Store* store, const Reporter& reporter,
                         const LoopOptions& options);

/// --plan: the observation and predicted path, as text for the operator. Changes nothing.
std::string plan_text(const Config& config, const Version& engine, Store* store,
                      const std::optional<std::string>& pin);

}  // namespace bartl
