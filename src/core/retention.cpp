// Retention selection with restic `forget --keep-last/daily/weekly/monthly`
// semantics: walk the backups newest first; each rule keeps a backup when its
// calendar bucket differs from the bucket of the last backup that rule kept,
// until the rule has kept N. Restic >= 0.16 (PR #4366) also keeps the oldest backup while
// a rule has counts left; bartl does not, as retention.hpp documents
// "the newest backup of each of the N newest periods" and nothing more.
#include "core/retention.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <optional>

namespace bartl {
namespace {

using namespace std::chrono;

std::int64_t day_bucket(sys_seconds t) { return floor<days>(t).time_since_epoch().count(); }

std::int64_t month_bucket(sys_seconds t) {
    const year_month_day ymd{floor<days>(t)};
    return std::int64_t{int(ymd.year())} * 12 + unsigned(ymd.month());
}

// ISO 8601 week: weeks start on Monday and belong to the year of their
// Thursday, so 2020-12-31 and 2021-01-01 are both in 2020-W53.
std::int64_t iso_week_bucket(sys_seconds t) {
    const sys_days d = floor<days>(t);
    const unsigned iso_weekday = weekday{d}.iso_encoding();  // Monday 1 .. Sunday 7
    const sys_days thursday = d - days{iso_weekday - 1} + days{3};
    const year iso_year = year_month_day{thursday}.year();
    const sys_days jan1 = sys_days{iso_year / January / 1};
    const std::int64_t week = (thursday - jan1).count() / 7 + 1;
    return std::int64_t{int(iso_year)} * 100 + week;
}

}  // namespace

std::vector<std::string> select_way_back(const std::vector<RetentionItem>& items, unsigned keep_pre_migration,
                                         std::optional<sys_seconds> now, seconds skew) {
    std::vector<const RetentionItem*> candidates;
    for (const auto& it : items)
        if (it.ours && it.pre_migration && !(now && it.created > *now + skew)) candidates.push_back(&it);
    std::sort(candidates.begin(), candidates.end(), [](const RetentionItem* a, const RetentionItem* b) {
        if (a->created != b->created) return a->created > b->created;
        return a->id > b->id;
    });
    std::vector<std::string> ids;
    for (const auto* it : candidates) {
        if (ids.size() == keep_pre_migration) break;
        ids.push_back(it->id);
    }
    return ids;
}

RetentionResult select_retention(const std::vector<RetentionItem>& items, const RetentionPolicy& policy,
                                 std::optional<sys_seconds> now, seconds skew) {
    using Time = sys_time<milliseconds>;
    RetentionResult result;
    std::vector<const RetentionItem*> order;
    order.reserve(items.size());
    for (const auto& it : items) {
        if (!it.ours || (now && it.created > *now + skew))
            result.keep.push_back(it.id);  // never ours to judge
        else
            order.push_back(&it);
    }
    // Newest first; equal times are ordered by id so the result does not depend on input order.
    std::sort(order.begin(), order.end(), [](const RetentionItem* a, const RetentionItem* b) {
        if (a->created != b->created) return a->created > b->created;
        return a->id > b->id;
    });

    std::optional<Time> newest_verified;
    for (const auto* it : order)
        if (it->verified) {
            newest_verified = it->created;
            break;
        }

    struct Rule {
        unsigned left;
        std::int64_t (*bucket)(sys_seconds);
        std::optional<std::int64_t> last;
    };
    // keep_last has no bucket function: every backup is its own bucket.
    std::array<Rule, 3> rules{{{policy.keep_daily, day_bucket, {}},
                               {policy.keep_weekly, iso_week_bucket, {}},
                               {policy.keep_monthly, month_bucket, {}}}};
    unsigned last_left = policy.keep_last;
    const bool keep_all = policy.keep_last == 0 && policy.keep_daily == 0 && policy.keep_weekly == 0 &&
                          policy.keep_monthly == 0;

    const auto way_back = select_way_back(items, policy.keep_pre_migration, now, skew);
    for (const auto* it : order) {
        bool keep = keep_all;
        if (std::find(way_back.begin(), way_back.end(), it->id) != way_back.end()) keep = true;
        if (last_left > 0) {
            --last_left;
            keep = true;
        }
        for (auto& r : rules) {
            if (r.left == 0) continue;
            const std::int64_t b = r.bucket(floor<seconds>(it->created));
            if (r.last != b) {
                r.last = b;
                --r.left;
                keep = true;
            }
        }
        // Invariant 6: only what is strictly older than the newest verified backup may go.
        if (!newest_verified || it->created >= *newest_verified) keep = true;
        (keep ? result.keep : result.remove).push_back(it->id);
    }
    // Newest first in both lists, whatever was set aside above.
    std::map<std::string, Time> created;
    for (const auto& it : items) created[it.id] = it.created;
    for (auto* list : {&result.keep, &result.remove})
        std::stable_sort(list->begin(), list->end(), [&](const std::string& a, const std::string& b) {
            const auto ta = created[a], tb = created[b];
            return ta != tb ? ta > tb : a > b;
        });
    return result;
}

}  // namespace bartl
