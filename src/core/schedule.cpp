#include "core/schedule.hpp"

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

std::chrono::milliseconds first_backup_delay(const std::optional<LastBackupRecord>& last, const std::string& state_id,
                                             std::chrono::sys_time<std::chrono::milliseconds> now,
                                             std::chrono::milliseconds interval) {
    if (!last || last->state_id != state_id || last->created > now) return interval;
    const auto due = last->created + interval;
    return due <= now ? std::chrono::milliseconds(0) : std::chrono::duration_cast<std::chrono::milliseconds>(due - now);
}

}  // namespace bartl
