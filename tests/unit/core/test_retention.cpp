// Retention: restic --keep-* semantics on hand-built calendars, the safety rule
// (invariant 6), and a randomised comparison against an independent oracle.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/retention.hpp"

using namespace bartl;
using namespace std::chrono;

namespace {

sys_seconds at(int y, unsigned m, unsigned d, int hh = 12, int mm = 0, int ss = 0) {
    return sys_days{year{y} / month{m} / day{d}} + hours{hh} + minutes{mm} + seconds{ss};
}

RetentionItem item(std::string id, sys_seconds t, bool verified = true) { return {std::move(id), t, verified}; }

RetentionPolicy policy(unsigned last, unsigned daily, unsigned weekly, unsigned monthly) {
    RetentionPolicy p;
    p.keep_last = last;
    p.keep_daily = daily;
    p.keep_weekly = weekly;
    p.keep_monthly = monthly;
    return p;
}

using Ids = std::vector<std::string>;

}  // namespace

TEST_CASE("retention: empty input", "[retention]") {
    const auto r = select_retention({}, policy(1, 1, 1, 1));
    CHECK(r.keep.empty());
    CHECK(r.remove.empty());
}

TEST_CASE("retention: all rules 0 keeps everything, newest first", "[retention]") {
    const auto r = select_retention({item("b", at(2021, 1, 2)), item("c", at(2021, 1, 3)), item("a", at(2021, 1, 1))},
                                    policy(0, 0, 0, 0));
    CHECK(r.keep == Ids{"c", "b", "a"});
    CHECK(r.remove.empty());
}

TEST_CASE("retention: keep_last alone", "[retention]") {
    std::vector<RetentionItem> items;
    for (int i = 1; i <= 5; ++i) items.push_back(item("b" + std::to_string(i), at(2021, 3, 1, 10 + i)));
    auto r = select_retention(items, policy(2, 0, 0, 0));
    CHECK(r.keep == Ids{"b5", "b4"});
    CHECK(r.remove == Ids{"b3", "b2", "b1"});

    r = select_retention(items, policy(9, 0, 0, 0));  // more than there are
    CHECK(r.keep.size() == 5);
    CHECK(r.remove.empty());
}

TEST_CASE("retention: keep_daily keeps the newest of each UTC day", "[retention]") {
    const std::vector<RetentionItem> items = {
        item("d1a", at(2021, 1, 1, 1)),  item("d1b", at(2021, 1, 1, 12)), item("d1c", at(2021, 1, 1, 23, 59, 59)),
        item("d2a", at(2021, 1, 2, 0)),  item("d2b", at(2021, 1, 2, 6)),   item("d3a", at(2021, 1, 3, 8)),
        item("d5a", at(2021, 1, 5, 0)),  item("d5b", at(2021, 1, 5, 23)),
    };
    auto r = select_retention(items, policy(0, 3, 0, 0));
    CHECK(r.keep == Ids{"d5b", "d3a", "d2b"});
    CHECK(r.remove == Ids{"d5a", "d2a", "d1c", "d1b", "d1a"});

    // 23:59:59 and 00:00:00 are on different days.
    r = select_retention(items, policy(0, 4, 0, 0));
    CHECK(r.keep == Ids{"d5b", "d3a", "d2b", "d1c"});
}

TEST_CASE("retention: keep_weekly uses ISO 8601 weeks", "[retention]") {
    // 2020-12-28 (Mon) .. 2021-01-03 (Sun) is 2020-W53; 2021-01-04 (Mon) starts 2021-W01;
    // 2020-12-27 (Sun) ends 2020-W52.
    const std::vector<RetentionItem> items = {
        item("w52-sun", at(2020, 12, 27)), item("w53-mon", at(2020, 12, 28)), item("w53-thu", at(2020, 12, 31)),
        item("w53-fri", at(2021, 1, 1)),   item("w53-sun", at(2021, 1, 3, 23, 59, 59)),
        item("w01-mon", at(2021, 1, 4, 0)),
    };
    auto r = select_retention(items, policy(0, 0, 2, 0));
    CHECK(r.keep == Ids{"w01-mon", "w53-sun"});
    CHECK(r.remove == Ids{"w53-fri", "w53-thu", "w53-mon", "w52-sun"});
    r = select_retention(items, policy(0, 0, 3, 0));
    CHECK(r.keep == Ids{"w01-mon", "w53-sun", "w52-sun"});

    // The other way round: 2024-12-30 (Mon) and 2025-01-01 are both 2025-W01;
    // 2024-12-29 (Sun) is 2024-W52.
    const std::vector<RetentionItem> turn = {item("2024w52", at(2024, 12, 29)), item("2025w01a", at(2024, 12, 30)),
                                             item("2025w01b", at(2025, 1, 1))};
    r = select_retention(turn, policy(0, 0, 1, 0));
    CHECK(r.keep == Ids{"2025w01b"});
    r = select_retention(turn, policy(0, 0, 2, 0));
    CHECK(r.keep == Ids{"2025w01b", "2024w52"});
    CHECK(r.remove == Ids{"2025w01a"});
}

TEST_CASE("retention: keep_monthly uses calendar months across a year boundary", "[retention]") {
    const std::vector<RetentionItem> items = {
        item("dec-1", at(2020, 12, 1)),  item("dec-31", at(2020, 12, 31, 23, 59, 59)),
        item("jan-1", at(2021, 1, 1, 0)), item("jan-31", at(2021, 1, 31, 23, 59, 59)),
        item("feb-1", at(2021, 2, 1, 0)), item("feb-15", at(2021, 2, 15)),
    };
    auto r = select_retention(items, policy(0, 0, 0, 2));
    CHECK(r.keep == Ids{"feb-15", "jan-31"});
    CHECK(r.remove == Ids{"feb-1", "jan-1", "dec-31", "dec-1"});
    r = select_retention(items, policy(0, 0, 0, 3));
    CHECK(r.keep == Ids{"feb-15", "jan-31", "dec-31"});
    // Same month number in another year is another month.
    r = select_retention({item("2020-02", at(2020, 2, 10)), item("2021-02", at(2021, 2, 10))}, policy(0, 0, 0, 2));
    CHECK(r.keep == Ids{"2021-02", "2020-02"});
}

TEST_CASE("retention: rules combine as a union, each walking all backups", "[retention]") {
    const std::vector<RetentionItem> items = {
        item("d3-10", at(2021, 3, 3, 10)), item("d3-09", at(2021, 3, 3, 9)), item("d2-12", at(2021, 3, 2, 12)),
        item("d1-12", at(2021, 3, 1, 12)), item("feb", at(2021, 2, 20)),    item("jan", at(2021, 1, 20)),
        item("dec", at(2020, 12, 20)),
    };
    // last keeps d3-10, d3-09; daily keeps d3-10 (d3) and d2-12; monthly keeps d3-10 (Mar), feb, jan.
    const auto r = select_retention(items, policy(2, 2, 0, 3));
    CHECK(r.keep == Ids{"d3-10", "d3-09", "d2-12", "feb", "jan"});
    CHECK(r.remove == Ids{"d1-12", "dec"});

    // daily 2 + weekly 2 over a fortnight of one backup a day.
    std::vector<RetentionItem> days;
    for (unsigned d = 1; d <= 14; ++d) days.push_back(item("2021-03-" + std::to_string(d), at(2021, 3, d)));
    // 2021-03-14 is a Sunday: W10 ends on 03-14, W09 on 03-07.
    const auto r2 = select_retention(days, policy(0, 2, 2, 0));
    CHECK(r2.keep == Ids{"2021-03-14", "2021-03-13", "2021-03-7"});
}

TEST_CASE("retention: safety rule beats the policy", "[retention]") {
    SECTION("no verified backup: nothing is deleted") {
        const auto r = select_retention(
            {item("a", at(2021, 1, 1), false), item("b", at(2021, 1, 2), false), item("c", at(2021, 1, 3), false)},
            policy(1, 0, 0, 0));
        CHECK(r.keep == Ids{"c", "b", "a"});
        CHECK(r.remove.empty());
    }
    SECTION("the newest verified backup and everything newer are kept") {
        const auto r = select_retention({item("new-unverified", at(2021, 1, 5), false),
                                         item("newer-unverified", at(2021, 1, 4), false),
                                         item("verified", at(2021, 1, 3), true), item("old1", at(2021, 1, 2), true),
                                         item("old2", at(2021, 1, 1), false)},
                                        policy(1, 0, 0, 0));
        CHECK(r.keep == Ids{"new-unverified", "newer-unverified", "verified"});
        CHECK(r.remove == Ids{"old1", "old2"});
    }
    SECTION("a backup as old as the newest verified one is not older, so it stays") {
        const auto r = select_retention({item("a-unverified", at(2021, 1, 3), false),
                                         item("b-verified", at(2021, 1, 3), true), item("old", at(2021, 1, 1))},
                                        policy(1, 0, 0, 0));
        CHECK(r.keep == Ids{"b-verified", "a-unverified"});
        CHECK(r.remove == Ids{"old"});
    }
}

TEST_CASE("retention: result does not depend on input order", "[retention]") {
    std::vector<RetentionItem> items;
    for (int i = 0; i < 30; ++i) items.push_back(item("id" + std::to_string(i), at(2021, 1, 1) + hours{7 * (i / 2)}));
    const auto p = policy(1, 2, 1, 1);
    const auto expected = select_retention(items, p);
    std::mt19937 rng(7);
    for (int round = 0; round < 20; ++round) {
        std::shuffle(items.begin(), items.end(), rng);
        const auto r = select_retention(items, p);
        CHECK(r.keep == expected.keep);
        CHECK(r.remove == expected.remove);
    }
}

namespace {

// An independent ISO week: ordinal-date formula (ISO 8601 §4.1.4.3 style),
// with the year's week count from its Jan 1 / Dec 31 weekdays.
int weeks_in_year(int y) {
    auto wd = [](int yy, unsigned m, unsigned d) { return weekday{sys_days{year{yy} / month{m} / day{d}}}.iso_encoding(); };
    return (wd(y, 1, 1) == 4 || wd(y, 12, 31) == 4) ? 53 : 52;
}
std::pair<int, int> iso_week(sys_seconds t) {
    const sys_days d = floor<days>(t);
    const year_month_day ymd{d};
    const int y = int(ymd.year());
    const int ordinal = int((d - sys_days{ymd.year() / January / 1}).count()) + 1;
    const int wd = int(weekday{d}.iso_encoding());
    int week = (ordinal - wd + 10) / 7;
    if (week < 1) return {y - 1, weeks_in_year(y - 1)};
    if (week > weeks_in_year(y)) return {y + 1, 1};
    return {y, week};
}

// "Keep the newest backup of each of the N newest periods", computed per rule
// by grouping, then the safety rule applied on top.
RetentionResult oracle(const std::vector<RetentionItem>& items, const RetentionPolicy& p) {
    std::vector<RetentionItem> sorted = items;
    std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
        return a.created != b.created ? a.created > b.created : a.id > b.id;
    });
    std::set<std::string> keep;
    for (unsigned i = 0; i < p.keep_last && i < sorted.size(); ++i) keep.insert(sorted[i].id);
    auto by_period = [&](unsigned n, auto key) {
        using std::chrono::floor;
        using std::chrono::seconds;
        std::map<decltype(key(floor<seconds>(sorted[0].created))), std::string, std::greater<>> newest;  // period -> newest id
        for (auto it = sorted.rbegin(); it != sorted.rend(); ++it) newest[key(floor<seconds>(it->created))] = it->id;
        unsigned taken = 0;
        for (const auto& [period, id] : newest) {
            if (taken++ == n) break;
            keep.insert(id);
        }
    };
    if (!sorted.empty()) {
        by_period(p.keep_daily, [](sys_seconds t) { return floor<days>(t); });
        by_period(p.keep_weekly, iso_week);
        by_period(p.keep_monthly, [](sys_seconds t) {
            const year_month_day ymd{floor<days>(t)};
            return std::pair<int, unsigned>{int(ymd.year()), unsigned(ymd.month())};
        });
    }
    const bool all_zero = p.keep_last + p.keep_daily + p.keep_weekly + p.keep_monthly == 0;
    const RetentionItem* newest_verified = nullptr;
    for (const auto& it : sorted)
        if (it.verified) {
            newest_verified = &it;
            break;
        }
    RetentionResult r;
    for (const auto& it : sorted) {
        const bool k = all_zero || keep.count(it.id) || !newest_verified || it.created >= newest_verified->created;
        (k ? r.keep : r.remove).push_back(it.id);
    }
    return r;
}

}  // namespace

TEST_CASE("retention: oracle sanity on ISO weeks", "[retention]") {
    CHECK(iso_week(at(2020, 12, 31)) == std::pair{2020, 53});
    CHECK(iso_week(at(2021, 1, 3)) == std::pair{2020, 53});
    CHECK(iso_week(at(2021, 1, 4)) == std::pair{2021, 1});
    CHECK(iso_week(at(2024, 12, 30)) == std::pair{2025, 1});
    CHECK(iso_week(at(2026, 12, 31)) == std::pair{2026, 53});
}

TEST_CASE("retention: randomised properties and agreement with an oracle", "[retention]") {
    std::mt19937 rng(20261130);
    const sys_seconds base = at(2019, 12, 1, 0);
    for (int round = 0; round < 2000; ++round) {
        std::uniform_int_distribution<int> count(0, 40), rule(0, 5), span_days(1, 900);
        std::bernoulli_distribution verified(round % 5 == 0 ? 0.0 : 0.4);
        const int span = span_days(rng) * 86400;
        std::uniform_int_distribution<int> offset(0, span);
        std::vector<RetentionItem> items;
        const int n = count(rng);
        for (int i = 0; i < n; ++i) {
            // Every 7th backup reuses an earlier time, to exercise equal timestamps.
            const sys_time<milliseconds> t =
                (i % 7 == 6) ? items[std::size_t(i) / 2].created : sys_time<milliseconds>(base + seconds{offset(rng)});
            items.push_back({"b" + std::to_string(i), t, verified(rng)});
        }
        // Drawn one by one: argument evaluation order differs between compilers.
        RetentionPolicy p;
        p.keep_last = unsigned(rule(rng));
        p.keep_daily = unsigned(rule(rng));
        p.keep_weekly = unsigned(rule(rng));
        p.keep_monthly = unsigned(rule(rng));
        INFO("round " << round << " n=" << n << " policy " << p.keep_last << "/" << p.keep_daily << "/"
                      << p.keep_weekly << "/" << p.keep_monthly);

        const auto r = select_retention(items, p);

        std::map<std::string, sys_time<milliseconds>> created;
        std::optional<sys_time<milliseconds>> newest_verified;
        for (const auto& it : items) {
            created[it.id] = it.created;
            if (it.verified && (!newest_verified || it.created > *newest_verified)) newest_verified = it.created;
        }
        // Every id in exactly one list.
        std::multiset<std::string> seen(r.keep.begin(), r.keep.end());
        seen.insert(r.remove.begin(), r.remove.end());
        REQUIRE(seen.size() == items.size());
        for (const auto& it : items) CHECK(seen.count(it.id) == 1);
        // Both lists newest first.
        auto newest_first = [&](const Ids& ids) {
            return std::is_sorted(ids.begin(), ids.end(),
                                  [&](const auto& a, const auto& b) { return created[a] > created[b]; });
        };
        CHECK(newest_first(r.keep));
        CHECK(newest_first(r.remove));
        // Invariant 6.
        if (!newest_verified) CHECK(r.remove.empty());
        if (newest_verified)
            for (const auto& id : r.remove) CHECK(created[id] < *newest_verified);

        const auto o = oracle(items, p);
        CHECK(r.keep == o.keep);
        CHECK(r.remove == o.remove);
    }
}

TEST_CASE("retention: another writer's backups are never deleted nor counted", "[retention]") {
    // Issue "observed facts" item 6: two hosts writing one store deleted each other's backups.
    std::vector<RetentionItem> items;
    for (int d = 1; d <= 5; ++d) {
        items.push_back(item("ours" + std::to_string(d), at(2021, 1, d), d == 5));
        auto theirs = item("theirs" + std::to_string(d), at(2021, 1, d) + std::chrono::hours(1));
        theirs.ours = false;
        items.push_back(theirs);
    }
    const auto r = select_retention(items, policy(2, 0, 0, 0));
    CHECK(r.remove == std::vector<std::string>{"ours3", "ours2", "ours1"});
    for (int d = 1; d <= 5; ++d)
        CHECK(std::find(r.keep.begin(), r.keep.end(), "theirs" + std::to_string(d)) != r.keep.end());
}

TEST_CASE("retention: a backup dated in the future is kept and prunes nothing real", "[retention]") {
    // Issue item 9: a backup whose created lies in the future won forever and pushed the real
    // newest backups out.
    const auto now = at(2021, 1, 10);
    std::vector<RetentionItem> items = {item("future", at(2031, 1, 1), true), item("d9", at(2021, 1, 9), true),
                                        item("d8", at(2021, 1, 8)), item("d7", at(2021, 1, 7))};
    auto r = select_retention(items, policy(2, 0, 0, 0), now);
    CHECK(r.remove == std::vector<std::string>{"d7"});
    CHECK(r.keep == std::vector<std::string>{"future", "d9", "d8"});
    // Within the allowed skew (5 min) it is an ordinary backup.
    items[0].created = now + std::chrono::minutes(4);
    r = select_retention(items, policy(2, 0, 0, 0), now);
    CHECK(r.remove == std::vector<std::string>{"d8", "d7"});
}

TEST_CASE("retention: the way back is kept (keep_pre_migration)", "[retention]") {
    // Issue "real apps" item 5: after 7 manual backups the pre-migration backup was pruned.
    std::vector<RetentionItem> items;
    for (int d = 1; d <= 10; ++d) {
        auto it = item("b" + std::to_string(d), at(2021, 1, d), d == 10);
        it.pre_migration = d == 2 || d == 4 || d == 6;
        items.push_back(it);
    }
    RetentionPolicy p = policy(3, 0, 0, 0);
    p.keep_pre_migration = 2;
    const auto r = select_retention(items, p);
    CHECK(r.keep == std::vector<std::string>{"b10", "b9", "b8", "b6", "b4"});
    CHECK(r.remove == std::vector<std::string>{"b7", "b5", "b3", "b2", "b1"});
}

TEST_CASE("retention: the way back is the keep_pre_migration newest pre-migration backups of ours", "[retention]") {
    // Issue "real apps": `bartlctl backups` marked every pre-migration backup "way back",
    // also those retention may prune.
    std::vector<RetentionItem> items;
    for (int d = 1; d <= 8; ++d) {
        auto it = item("b" + std::to_string(d), at(2021, 1, d));
        it.pre_migration = d % 2 == 0;  // b2, b4, b6, b8
        items.push_back(it);
    }
    items[7].ours = false;  // b8: another state's, never counted
    const auto now = at(2021, 1, 5) + hours(12);  // b6 (and b8) are dated after now + skew
    CHECK(select_way_back(items, 2) == std::vector<std::string>{"b6", "b4"});
    CHECK(select_way_back(items, 2, now) == std::vector<std::string>{"b4", "b2"});
    CHECK(select_way_back(items, 0).empty());
    CHECK(select_way_back(items, 10) == std::vector<std::string>{"b6", "b4", "b2"});
    // Exactly those that select_retention() keeps by that rule alone.
    RetentionPolicy p = policy(1, 0, 0, 0);
    p.keep_pre_migration = 2;
    items[7].ours = true;
    items[7].verified = true;
    const auto r = select_retention(items, p);
    CHECK(r.keep == std::vector<std::string>{"b8", "b6"});
    CHECK(select_way_back(items, 2) == std::vector<std::string>{"b8", "b6"});
}

TEST_CASE("retention: backups within one second are ordered by their milliseconds", "[retention]") {
    // Found by tests/integration/test_facts.py: same-second backups were never pruned, because
    // the newest one was chosen in another order than the one retention walks.
    const auto t = sys_time<milliseconds>(at(2021, 1, 1));
    std::vector<RetentionItem> items = {{"a", t + milliseconds(900), false},
                                        {"z", t + milliseconds(100), false},
                                        {"m", t + milliseconds(500), true}};
    items[0].verified = true;
    items[2].verified = false;
    const auto r = select_retention(items, policy(1, 0, 0, 0));
    CHECK(r.keep == std::vector<std::string>{"a"});
    CHECK(r.remove == std::vector<std::string>{"m", "z"});
}
