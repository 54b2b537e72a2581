// Retention selection (restic `forget --keep-*` semantics), pure: no I/O.
// A backup kept by any rule is kept. Calendar periods are UTC.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace bartl {

/// Retention policy from [backup] keep_* keys; 0 disables a rule.
struct RetentionPolicy {
    unsigned keep_last = 0;     ///< the N newest backups
    unsigned keep_daily = 0;    ///< the newest backup of each of the N newest UTC days that have one
    unsigned keep_weekly = 0;   ///< ... of each of the N newest ISO 8601 weeks
    unsigned keep_monthly = 0;  ///< ... of each of the N newest calendar months
    /// The N newest pre-migration backups (the way back after an upgrade), whatever the
    /// other rules say.
    unsigned keep_pre_migration = 0;
};

/// One backup as retention sees it.
struct RetentionItem {
    std::string id;
    std::chrono::sys_time<std::chrono::milliseconds> created;  ///< creation time, UTC (the sidecar's ms)
    bool verified = false;             ///< read back from the store and checked (size, SHA-256)
    bool pre_migration = false;        ///< taken before a migration (sidecar reason "pre-migration")
    bool ours = true;                  ///< written by the state applying retention (invariant 6)
};

/// The outcome: ids to keep and ids to delete, each newest first. Every input id is in
/// exactly one list.
struct RetentionResult {
    std::vector<std::string> keep;
    std::vector<std::string> remove;
};

/// Applies the policy to `items` (any order). Safety rules (bartl(7) invariant 6) beat the
/// policy: another writer's backups (`ours` false) are always kept and not counted; so are
/// backups created more than `skew` after `now` (a host with a wrong clock must not make the
/// real newest backups look old); a backup may be deleted only when it is older than the
/// newest verified backup of ours, so that one and everything newer are always kept, and
/// with no verified backup nothing is deleted; the keep_pre_migration newest pre-migration
/// backups are kept. When every keep_last/daily/weekly/monthly rule is 0 the policy keeps
/// everything. Backups with equal `created` are ordered by id, descending, so the result does
/// not depend on input order. Unlike restic >= 0.16, a rule with counts left does not also
/// keep the oldest backup. `now` unset: no backup counts as future.
RetentionResult select_retention(const std::vector<RetentionItem>& items, const RetentionPolicy& policy,
                                 std::optional<std::chrono::sys_seconds> now = std::nullopt,
                                 std::chrono::seconds skew = std::chrono::minutes(5));

/// The way back after an upgrade: the ids of the `keep_pre_migration` newest pre-migration
/// backups of ours (not another writer's, not one created more than `skew` after `now`),
/// newest first — exactly those select_retention() keeps by that rule. For `bartlctl
/// backups` to mark them, and select_retention() itself.
std::vector<std::string> select_way_back(const std::vector<RetentionItem>& items, unsigned keep_pre_migration,
                                         std::optional<std::chrono::sys_seconds> now = std::nullopt,
                                         std::chrono::seconds skew = std::chrono::minutes(5));

}  // namespace bartl
