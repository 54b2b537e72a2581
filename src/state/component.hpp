// State components (bartl(7) "STATE COMPONENTS", "WHAT BARTL OBSERVES"): one piece of
// declared state with a stable name, behind one interface, so the lifecycle observes,
// stages, commits and rolls back a directory the same way it will a database. Each kind is
// one implementation; DirectoryComponent (state/directory.hpp) is the first.
//
// A component carries the state ID of the state it belongs to where the app does not see
// it in its own listing (a directory: the extended attribute user.bartl.state_id on the
// directory itself). Observing it against the marker's record says whether it is ours,
// foreign, lost, or on a filesystem that is not mounted.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "core/marker.hpp"

namespace bartl {

/// What observing one component found.
enum class ComponentFinding {
    ours,         ///< carries the marker's state ID (present, even when the app emptied it)
    lost,         ///< missing, or empty without the marker's ID, on its recorded (or a replacement) filesystem
    not_mounted,  ///< missing or empty, and the mount point recorded for it is not mounted now
    foreign,      ///< holds data without the marker's state ID (none, or another state's)
    fresh,        ///< no marker record: missing or empty, free to be created
};

/// Short operator word for a finding: "ours", "lost", "not mounted", "foreign", "new".
const char* finding_name(ComponentFinding f) noexcept;

/// The result of Component::observe().
struct ComponentObservation {
    ComponentFinding finding = ComponentFinding::fresh;
    std::string detail;      ///< one line for the log and --plan, naming the proof
    std::string carried_id;  ///< the state ID it carries ("" when none)
};

/// Ownership a component's staging is created with ([app] user/group; -1 = keep bartld's).
struct Owner {
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
};

/// One piece of declared state.
class Component {
public:
    virtual ~Component() = default;

    /// "path", later "postgresql", "mariadb", "sqlite".
    virtual std::string kind() const = 0;
    /// The name within its kind ("/var/lib/notes/data").
    virtual const std::string& name() const = 0;
    /// "KIND:NAME" (core/marker.hpp component_id()).
    std::string id() const { return component_id(kind(), name()); }

    /// Observes the component without changing anything. `recorded` is the marker's record
    /// of it (nullptr when the marker has none, or there is no marker); `state_id` the
    /// marker's state ID ("" when there is no marker). Throws RuntimeError when it cannot be
    /// inspected (permission denied, I/O error).
    virtual ComponentObservation observe(const ComponentRecord* recorded, const std::string& state_id) const = 0;

    /// True when it holds data (a directory: exists and is not empty, an empty lost+found
    /// not counting). Throws RuntimeError when it cannot be inspected.
    virtual bool holds_data() const = 0;

    /// Checks, before anything is touched, that it can be staged and committed at all; throws
    /// ConfigError naming why not (a directory: a symlink, a mount point, not a directory).
    virtual void check_target() const = 0;

    /// Where an init or restore builds it before the commit (a directory beside the target,
    /// same filesystem). Recorded in the intent, so a crash leaves nothing unexplained.
    virtual std::filesystem::path staging_path() const = 0;
    /// Creates an empty staging target owned by `owner` (removing a leftover one first).
    /// Throws RuntimeError.
    virtual void prepare_staging(const Owner& owner) const = 0;
    /// Binds the staged component to `state_id` (before it is committed, so it never appears
    /// without its ID). Throws RuntimeError.
    virtual void bind_staging(const std::string& state_id) const = 0;
    /// Makes everything written into staging durable. Throws RuntimeError.
    virtual void sync_staging() const = 0;
    /// Switches the staged component into place atomically. The target must be missing or
    /// empty (else RuntimeError: nothing is replaced). Throws RuntimeError.
    virtual void commit_staging() const = 0;
    /// Removes the staging target, if any. Throws RuntimeError.
    virtual void discard_staging() const = 0;
    /// Removes the live target (rollback of an operation that committed it but not the
    /// marker; the intent proves it is ours). Throws RuntimeError.
    virtual void remove_target() const = 0;

    /// Binds the live component to `state_id` (adopt, an upgrade from a marker without state
    /// IDs, a new component created empty). Creates it empty (owned by `owner`) when missing.
    /// Returns the record the marker keeps. Throws RuntimeError.
    virtual ComponentRecord bind_live(const std::string& state_id, const Owner& owner) const = 0;
    /// The record of the live, bound component, for the marker (after commit_staging()).
    /// Throws RuntimeError.
    virtual ComponentRecord record() const = 0;
    /// Makes the live component's content durable (before a marker records what a hook or a
    /// migration step wrote). Throws RuntimeError.
    virtual void sync_live() const = 0;

    /// The directory it is archived from and extracted into ("state/N/" of the blob), for
    /// directory components; std::nullopt for components archived as dumps.
    virtual std::optional<std::filesystem::path> tree() const = 0;
};

}  // namespace bartl
