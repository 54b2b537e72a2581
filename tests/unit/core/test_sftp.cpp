// sftp:// store URLs (core/store_url.hpp) and SFTP long listings (core/sftp_listing.hpp).
#include <chrono>

#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "core/sftp_listing.hpp"
#include "core/store_url.hpp"

using namespace bartl;

namespace {

// 2026-12-01T11:22:00Z, a Tuesday.
constexpr std::int64_t kNow = 1796124120;

std::int64_t utc(int y, unsigned m, unsigned d, unsigned hh = 0, unsigned mm = 0) {
    using namespace std::chrono;
    const sys_days day{year{y} / month{m} / std::chrono::day{d}};
    return day.time_since_epoch() / seconds(1) + hh * 3600 + mm * 60;
}

}  // namespace

TEST_CASE("sftp URLs: user, host, port and directory", "[sftp]") {
    auto l = parse_sftp_url("sftp://backup@storage.example.org:2222/srv/bartl/notes/");
    CHECK(l.user == "backup");
    CHECK(l.host == "storage.example.org");
    CHECK(l.port == 2222);
    CHECK(l.dir == "/srv/bartl/notes");

    l = parse_sftp_url("sftp://host/var/backups");
    CHECK(l.user.empty());
    CHECK(l.port == 22);
    CHECK(l.dir == "/var/backups");

    l = parse_sftp_url("sftp://u%40corp@[2001:db8::1]:22022/b%20c");
    CHECK(l.user == "u@corp");
    CHECK(l.host == "2001:db8::1");
    CHECK(l.port == 22022);
    CHECK(l.dir == "/b c");

    // In the login directory, as curl and sftp(1) read "/~/".
    CHECK(parse_sftp_url("sftp://u@h/~/backups/notes").dir == "~/backups/notes");
    CHECK(parse_sftp_url("sftp://u@h/~/").dir == "~");
    CHECK(parse_sftp_url("sftp://u@h/~").dir == "~");
    CHECK(parse_sftp_url("sftp://h//srv//x/./y").dir == "/srv/x/y");
}

TEST_CASE("sftp URLs: what is refused, and why", "[sftp]") {
    auto refused = [](const std::string& url, const std::string& why) {
        CHECK_THROWS_AS(parse_sftp_url(url), ConfigError);
        CHECK_THROWS_WITH(parse_sftp_url(url), Catch::Contains("store URL \"" + url + "\"") && Catch::Contains(why) &&
                                                   Catch::Contains("sftp://[USER@]HOST[:PORT]/PATH"));
    };
    refused("sftp://u:secret@h/dir", "a password in the URL is not supported");
    refused("sftp://h", "no directory");
    refused("sftp:///dir", "no host");
    refused("sftp://u@/dir", "no host");
    refused("sftp://@h/dir", "empty user name");
    refused("sftp://h:/dir", "empty port");
    refused("sftp://h:0/dir", "port \"0\"");
    refused("sftp://h:65536/dir", "port \"65536\"");
    refused("sftp://h:22a/dir", "port \"22a\"");
    refused("sftp://h/", "the root directory cannot be a store");
    refused("sftp://h/a/../b", "\"..\" in the path");
    refused("sftp://h/~/../etc", "\"..\" in the path");
    refused("sftp://h/dir?x=1", "a query or fragment");
    refused("sftp://h/dir#frag", "a query or fragment");
    refused("sftp://[::1/dir", "unterminated [IPv6 address]");
    refused("sftp://[zz]/dir", "is not an IPv6 address");
    refused("sftp://h%20x/dir", "is not a host name");
    refused("sftp://h/a%2", "truncated %-escape");
    refused("sftp://h/a%00b", "invalid %-escape");
    refused("file:///dir", "not an sftp:// URL");
}

TEST_CASE("sftp listings: OpenSSH's long names", "[sftp]") {
    auto e = parse_sftp_long_entry("-rw-------    1 root     root      3145745 Dec  1 11:22 notes-1.tar.zst", kNow);
    REQUIRE(e);
    CHECK(e->type == '-');
    CHECK(e->name == "notes-1.tar.zst");
    CHECK(e->size == 3145745);
    CHECK(e->clock_shown);
    CHECK(e->listed_time == utc(2026, 12, 1, 11, 22));

    // Names with spaces, and with what looks like the columns before them.
    e = parse_sftp_long_entry("-rw-r--r--    1 root     root            1 Nov 30 23:59 a  b 12 Jan  1 2020 c", kNow);
    REQUIRE(e);
    CHECK(e->name == "a  b 12 Jan  1 2020 c");
    CHECK(e->listed_time == utc(2026, 11, 30, 23, 59));

    // Older than six months: the year instead of the time.
    e = parse_sftp_long_entry("-rw-r--r--    1 root     root            3 Jan  1  2020 a.txt", kNow);
    REQUIRE(e);
    CHECK_FALSE(e->clock_shown);
    CHECK(e->listed_time == utc(2020, 1, 1));

    // Directories, symbolic links (curl appends the target), owners with odd names or none.
    e = parse_sftp_long_entry("drwxr-xr-x    3 root     root         4096 Dec  1 11:22 .", kNow);
    REQUIRE(e);
    CHECK(e->type == 'd');
    CHECK(e->name == ".");
    e = parse_sftp_long_entry("lrwxrwxrwx    1 root     root            5 Dec  1 11:22 link -> a.txt", kNow);
    REQUIRE(e);
    CHECK(e->type == 'l');
    CHECK(e->name == "link");
    e = parse_sftp_long_entry("-rw-------   1 1000 1000 18446744073709551615 Dec  1 11:22 huge", kNow);
    REQUIRE(e);
    CHECK(e->size == 18446744073709551615ull);
    e = parse_sftp_long_entry("-rw-------+ 1 Domain Users  Backup Operators 7 Jun  3 08:00 x\r", kNow);
    REQUIRE(e);
    CHECK(e->name == "x");
    CHECK(e->size == 7);
    CHECK(e->listed_time == utc(2026, 6, 3, 8, 0));
}

TEST_CASE("sftp listings: the year of a date shown with its time", "[sftp]") {
    // December seen in January: last year's.
    const std::int64_t jan2 = utc(2027, 1, 2, 10, 0);
    auto e = parse_sftp_long_entry("-rw------- 1 r r 1 Dec 31 23:00 x", jan2);
    REQUIRE(e);
    CHECK(e->listed_time == utc(2026, 12, 31, 23, 0));
    // A server a few hours ahead of UTC lists tomorrow's date: this year's.
    e = parse_sftp_long_entry("-rw------- 1 r r 1 Jan  3 01:00 x", jan2);
    REQUIRE(e);
    CHECK(e->listed_time == utc(2027, 1, 3, 1, 0));
    // February 29th: the last leap year.
    e = parse_sftp_long_entry("-rw------- 1 r r 1 Feb 29 12:00 x", utc(2029, 3, 10));
    REQUIRE(e);
    CHECK(e->listed_time == utc(2028, 2, 29, 12, 0));
}

TEST_CASE("sftp listings: lines in no known format", "[sftp]") {
    for (const char* line : {"", "total 12", "notes-1.tar.zst", "-rw------- 1 r r x Dec  1 11:22 n",
                             "-rw------- 1 r r 1 Dez  1 11:22 n", "-rw------- 1 r r 1 Dec 32 11:22 n",
                             "-rw------- 1 r r 1 Dec  1 25:00 n", "-rw------- 1 r r 1 Dec  1 11:22",
                             "-rw------- 1 r r 1 Feb 30  2020 n", "-rw------- 1 r r 99999999999999999999 Dec  1 11:22 n"})
        CHECK_FALSE(parse_sftp_long_entry(line, kNow));
}

TEST_CASE("sftp listings: the server's offset from UTC", "[sftp]") {
    const std::int64_t exact = utc(2026, 12, 1, 11, 22) + 37;  // 11:22:37Z
    CHECK(sftp_utc_offset(utc(2026, 12, 1, 11, 22), exact) == 0);
    CHECK(sftp_utc_offset(utc(2026, 12, 1, 16, 52), exact) == 5 * 3600 + 1800);  // India
    CHECK(sftp_utc_offset(utc(2026, 12, 1, 6, 22), exact) == -5 * 3600);         // New York
    CHECK(sftp_utc_offset(utc(2026, 12, 1, 17, 7), exact) == 5 * 3600 + 45 * 60);  // Nepal
    CHECK(sftp_utc_offset(utc(2026, 12, 1, 11, 22) + 59, exact + 59) == 0);
}
