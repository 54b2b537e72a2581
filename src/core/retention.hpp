// Retention selection (restic `forget --keep-*` semantics), pure: no I/O.
// A backup kept by any rule is kept. Calendar periods are UTC.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace bartl {

/// Retention policy from [backup] keep_* keys; 0 disables a rule.
struct RetentionPolicy {
    unsigned keep_last = 0;     ///< the N newest backups
    unsigned keep_daily = 0;    ///< the newest backup of each of the N newest UTC days that have one
    unsigned keep_weekly = 0;   ///< ... of each of the N newest ISO 8601 weeks
    unsigned keep_monthly = 0;  ///< ... of each of the N newest calendar months
};

/// One backup as retention sees it.
struct RetentionItem {
    std::string id;
    std::chrono::sys_seconds created;  ///< creation time, UTC
    bool verified = false;             ///< read back from the store and checked (size, SHA-256)
};

/// The outcome: ids to keep and ids to delete, each newest first. Every input id is in
/// exactly one list.
struct RetentionResult {
    std::vector<std::string> keep;
    std::vector<std::string> remove;
};

/// Applies the policy to `items` (any order). Safety rules (bartl(7) invariant 6) beat the
/// policy: a backup may be deleted only when it is older than the newest verified backup,
/// so the newest verified backup and everything newer are always kept, and with no verified
/// backup nothing is deleted. When every rule is 0 the policy keeps everything. Backups with
/// equal `created` are ordered by id, descending, so the result does not depend on input
/// order. Unlike restic >= 0.16, a rule with counts left does not also keep the oldest backup.
RetentionResult select_retention(const std::vector<RetentionItem>& items, const RetentionPolicy& policy);

}  // namespace bartl
