// The directory listing of an SFTP server, pure: no I/O. SFTP version 3 (the version
// OpenSSH speaks, draft-ietf-secsh-filexfer-02 section 7) gives every READDIR entry a
// "longname" in `ls -l` format; libcurl passes these lines on (with " -> TARGET" after a
// symbolic link). Their times are the server's local wall clock to the minute ("Dec  1
// 11:22") or, older than six months or in the future, the day ("Jan  1  2020").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bartl {

/// One entry of a long listing.
struct SftpListEntry {
    char type = '-';  ///< ls(1)'s file type letter: '-' regular file, 'd' directory, 'l' symlink, ...
    std::string name;
    std::uint64_t size = 0;  ///< bytes
    /// The modification time as listed, in the server's local time read as if it were UTC
    /// (seconds since the epoch): the start of the minute, or of the day for `clock_shown` false.
    std::int64_t listed_time = 0;
    bool clock_shown = false;  ///< true when the line shows the time of day, false when a year
};

/// Parses one line of a long listing: "-rw-------    1 root     root   1234 Dec  1 11:22 NAME".
/// The owner and group columns may be missing or hold any text; the name (after exactly one
/// space) may hold spaces. For a symlink, " -> TARGET" is cut off the name. `now` (seconds
/// since the epoch) picks the year of a date shown without one: the latest year that puts it
/// no more than two days after `now`. std::nullopt when the line is not in this format.
std::optional<SftpListEntry> parse_sftp_long_entry(std::string_view line, std::int64_t now);

/// The server's offset from UTC in seconds, from one entry's listed time (`listed_time`, to
/// the minute) and its exact modification time (`exact`, seconds since the epoch, from a stat):
/// the difference rounded to the quarter hour every time zone's offset is a multiple of.
std::int64_t sftp_utc_offset(std::int64_t listed_time, std::int64_t exact);

}  // namespace bartl
