#include "core/schedule.hpp"

#include <vector>

#include <fmt/format.h>

#include "core/time.hpp"

namespace bartl {

std::string format_last_backup(const LastBackupRecord& r) {
    return fmt::format("{} {} {}\n", r.state_id, r.backup_id, format_rfc3339_ms(r.created));
}

std::optional<LastBackupRecord> parse_last_backup(std::string_view text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
    const auto a = text.find(' ');
    if (a == std::string_view::npos || a == 0) return std::nullopt;
    const auto b = text.find(' ', a + 1);
    if (b == std::string_view::npos || b == a + 1 || text.find(' ', b + 1) != std::string_view::npos)
        return std::nullopt;
    LastBackupRecord r;
    r.state_id = std::string(text.substr(0, a));
    r.backup_id = std::string(text.substr(a + 1, b - a - 1));
    try {
        r.created = parse_rfc3339_ms(text.substr(b + 1));
    } catch (const std::exception&) {
        return std::nullopt;
    }
    return r;
}

std::string format_running_backup(const RunningBackupRecord& r) {
    using Phase = RunningBackupRecord::Phase;
    return fmt::format("{} {} {} {}\n", r.backup_id, r.reason, format_rfc3339_ms(r.started),
                       r.phase == Phase::pre_backup    ? "pre_backup"
                       : r.phase == Phase::post_backup ? "post_backup"
                                                       : "upload");
}

std::optional<RunningBackupRecord> parse_running_backup(std::string_view text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
    std::vector<std::string_view> fields;
    while (!text.empty()) {
        const auto sp = text.find(' ');
        fields.push_back(text.substr(0, sp));
        if (fields.back().empty() || fields.size() > 4) return std::nullopt;
        if (sp == std::string_view::npos) break;
        text.remove_prefix(sp + 1);
        if (text.empty()) return std::nullopt;
    }
    if (fields.size() < 3) return std::nullopt;
    RunningBackupRecord r;
    r.backup_id = std::string(fields[0]);
    r.reason = std::string(fields[1]);
    try {
        r.started = parse_rfc3339_ms(fields[2]);
    } catch (const std::exception&) {
        return std::nullopt;
    }
    if (fields.size() == 4) {
        if (fields[3] == "pre_backup")
            r.phase = RunningBackupRecord::Phase::pre_backup;
        else if (fields[3] == "post_backup")
            r.phase = RunningBackupRecord::Phase::post_backup;
        else if (fields[3] != "upload")
            return std::nullopt;
    }
    return r;
}

std::string interrupted_backup_message(const RunningBackupRecord& r, const std::string& store_url) {
    const auto head = fmt::format("the backup {} started at {} ({}) was interrupted", r.backup_id,
                                  format_rfc3339_ms(r.started), r.reason);
    if (r.phase == RunningBackupRecord::Phase::pre_backup)
        return head + " in its pre_backup hook: bartld was killed or the host went down before the hook ended; "
                      "post_backup never ran and nothing was uploaded: what the hook had begun (pausing the "
                      "app, freezing a filesystem, a dump) may be left half done";
    if (r.phase == RunningBackupRecord::Phase::post_backup)
        return head + " in its post_backup hook: bartld was killed or the host went down before the hook "
                      "ended; the backup itself is stored and listed";
    const bool s3 = store_url.rfind("s3://", 0) == 0;
    return fmt::format("{}: bartld was killed or the host went down before it ended; {}", head,
                       s3 ? "its unfinished multipart upload is aborted by the first backup a day after it began"
                          : "its partial upload is removed by the next backup");
}

std::chrono::milliseconds first_backup_delay(const std::optional<LastBackupRecord>& last, const std::string& state_id,
                                             std::chrono::sys_time<std::chrono::milliseconds> now,
                                             std::chrono::milliseconds interval) {
    if (!last || last->state_id != state_id || last->created > now) return interval;
    const auto due = last->created + interval;
    return due <= now ? std::chrono::milliseconds(0) : std::chrono::duration_cast<std::chrono::milliseconds>(due - now);
}

}  // namespace bartl
