// core/schedule: the first scheduled backup after a (re)start, and the local record of the last one.
#include <catch2/catch.hpp>

#include "core/schedule.hpp"
#include "core/state_path_rules.hpp"
#include "core/time.hpp"

using namespace bartl;
using namespace std::chrono_literals;

namespace {
std::chrono::sys_time<std::chrono::milliseconds> at(const char* t) { return parse_rfc3339_ms(t); }
LastBackupRecord rec(const char* state, const char* created) { return {state, "3f9a0c1d", at(created)}; }
}  // namespace

TEST_CASE("the first backup after a restart is due an interval after the last one, not after the restart",
          "[schedule]") {
    const auto now = at("2026-12-01T19:36:04Z");
    // The newcomer's case: interval 3m, a backup at 19:35:04, a restart at 19:36:04.
    CHECK(first_backup_delay(rec("s1", "2026-12-01T19:35:04Z"), "s1", now, 3min) == 2min);
    CHECK(first_backup_delay(rec("s1", "2026-12-01T19:35:04.250Z"), "s1", now, 3min) == 120250ms);
    // Overdue (the host was down longer than the interval): at once.
    CHECK(first_backup_delay(rec("s1", "2026-11-28T03:00:00Z"), "s1", now, 24h) == 0ms);
    CHECK(first_backup_delay(rec("s1", "2026-12-01T19:33:04Z"), "s1", now, 3min) == 0ms);  // exactly due
    // No record of this state: a fresh init or restore starts a full interval.
    CHECK(first_backup_delay(std::nullopt, "s1", now, 24h) == 24h);
    CHECK(first_backup_delay(rec("another-state", "2026-12-01T19:35:04Z"), "s1", now, 3min) == 3min);
    // A record from the future (the clock went back): never later than a full interval.
    CHECK(first_backup_delay(rec("s1", "2026-12-02T19:35:04Z"), "s1", now, 3min) == 3min);
}

TEST_CASE("the last-backup record round-trips and anything else reads as no record", "[schedule]") {
    const LastBackupRecord r = rec("ec857071ddb21a4a44b8359f1b53320d", "2026-12-01T18:54:17.747Z");
    const std::string text = format_last_backup(r);
    CHECK(text == "ec857071ddb21a4a44b8359f1b53320d 3f9a0c1d 2026-12-01T18:54:17.747Z\n");
    const auto back = parse_last_backup(text);
    REQUIRE(back);
    CHECK(back->state_id == r.state_id);
    CHECK(back->backup_id == "3f9a0c1d");
    CHECK(back->created == r.created);
    for (const char* bad : {"", "\n", "s1", "s1 id", "s1 id not-a-time", "s1 id 2026-12-01T18:54:17Z extra",
                            " id 2026-12-01T18:54:17Z", "s1  2026-12-01T18:54:17Z"})
        CHECK_FALSE(parse_last_backup(bad));
}

TEST_CASE("a state path directly in a directory the system shares is named, one of its own is not", "[state-path]") {
    CHECK(shared_parent_of_state_path("/var/lib/notes") == std::filesystem::path("/var/lib"));
    CHECK(shared_parent_of_state_path("/var/lib/notes/") == std::filesystem::path("/var/lib"));
    CHECK(shared_parent_of_state_path("/srv/notes") == std::filesystem::path("/srv"));
    CHECK(shared_parent_of_state_path("/notes") == std::filesystem::path("/"));
    CHECK(shared_parent_of_state_path("/var/lib/./x/../notes") == std::filesystem::path("/var/lib"));
    // The other directories Debian's own packages share: logs, backups (a file:// store's home),
    // mail spools, web roots and /run.
    for (const char* shared : {"/var/log", "/var/backups", "/var/mail", "/var/www", "/run"})
        CHECK(shared_parent_of_state_path(std::string(shared) + "/notes") == std::filesystem::path(shared));
    CHECK_FALSE(shared_parent_of_state_path("/var/lib/notes/data"));
    CHECK_FALSE(shared_parent_of_state_path("/var/lib/notes/data/"));
    CHECK_FALSE(shared_parent_of_state_path("/srv/notes/state"));
    CHECK_FALSE(shared_parent_of_state_path("/tmp/test-xyz/state"));
}

TEST_CASE("the running-backup record round-trips and says what became of an interrupted backup", "[schedule]") {
    const RunningBackupRecord r{"0badc0de", "pre-migration", at("2026-12-01T22:10:03.250Z")};
    CHECK(format_running_backup(r) == "0badc0de pre-migration 2026-12-01T22:10:03.250Z upload\n");
    const auto back = parse_running_backup(format_running_backup(r));
    REQUIRE(back);
    CHECK(back->backup_id == "0badc0de");
    CHECK(back->reason == "pre-migration");
    CHECK(back->started == r.started);
    CHECK(back->phase == RunningBackupRecord::Phase::upload);
    // Written before the phase was: an upload.
    const auto three = parse_running_backup("0badc0de scheduled 2026-12-01T22:10:03Z\n");
    REQUIRE(three);
    CHECK(three->phase == RunningBackupRecord::Phase::upload);
    // A torn or foreign file says nothing rather than something wrong.
    CHECK_FALSE(parse_running_backup(""));
    CHECK_FALSE(parse_running_backup("0badc0de scheduled"));
    CHECK_FALSE(parse_running_backup("0badc0de scheduled 2026-12-01T22:10:03Z extra"));
    CHECK_FALSE(parse_running_backup("0badc0de scheduled 2026-12-01T22:10:03Z upload extra"));
    CHECK_FALSE(parse_running_backup("0badc0de  scheduled 2026-12-01T22:10:03Z"));
    CHECK_FALSE(parse_running_backup("0badc0de scheduled yesterday"));
    CHECK(interrupted_backup_message(r, "file:///srv/backups") ==
          "the backup 0badc0de started at 2026-12-01T22:10:03.250Z (pre-migration) was interrupted: bartld was "
          "killed or the host went down before it ended; its partial upload is removed by the next backup");
    CHECK(interrupted_backup_message(r, "sftp://backup@nas/notes").find("removed by the next backup") !=
          std::string::npos);
    CHECK(interrupted_backup_message(r, "s3://bucket/notes").find(
              "its unfinished multipart upload is aborted by the first backup a day after it began") !=
          std::string::npos);
}

TEST_CASE("a backup killed in its pre_backup hook: post_backup never ran, nothing was uploaded", "[schedule]") {
    RunningBackupRecord r{"0badc0de", "scheduled", at("2026-12-01T22:10:03.250Z")};
    r.phase = RunningBackupRecord::Phase::pre_backup;
    CHECK(format_running_backup(r) == "0badc0de scheduled 2026-12-01T22:10:03.250Z pre_backup\n");
    const auto back = parse_running_backup(format_running_backup(r));
    REQUIRE(back);
    CHECK(back->phase == RunningBackupRecord::Phase::pre_backup);
    const auto text = interrupted_backup_message(r, "s3://bucket/notes");
    CHECK(text.rfind("the backup 0badc0de started at 2026-12-01T22:10:03.250Z (scheduled) was interrupted in its "
                     "pre_backup hook", 0) == 0);
    CHECK(text.find("post_backup never ran") != std::string::npos);
    CHECK(text.find("nothing was uploaded") != std::string::npos);
    CHECK(text.find("multipart") == std::string::npos);
    CHECK_FALSE(parse_running_backup("0badc0de scheduled 2026-12-01T22:10:03Z hooks"));
}

TEST_CASE("a backup killed in its post_backup hook is stored, not a partial upload", "[schedule]") {
    RunningBackupRecord r{"0badc0de", "manual", at("2026-12-01T22:10:03.250Z")};
    r.phase = RunningBackupRecord::Phase::post_backup;
    CHECK(format_running_backup(r) == "0badc0de manual 2026-12-01T22:10:03.250Z post_backup\n");
    const auto back = parse_running_backup(format_running_backup(r));
    REQUIRE(back);
    CHECK(back->phase == RunningBackupRecord::Phase::post_backup);
    const auto text = interrupted_backup_message(r, "file:///srv/backups");
    CHECK(text == "the backup 0badc0de started at 2026-12-01T22:10:03.250Z (manual) was interrupted in its "
                  "post_backup hook: bartld was killed or the host went down before the hook ended; the backup "
                  "itself is stored and listed");
}
