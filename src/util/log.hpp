// Structured logging: to the journal (sd_journal_send) when stderr is connected to it
// ($JOURNAL_STREAM matches), else to stderr as "bartld: <level>: message" (level names:
// error, warning, notice, info, debug). $BARTL_LOG_LEVEL (one of those names, default info)
// drops entries less severe than it. Both are read once, at the first entry. Thread-safe.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <utility>
#include <vector>

namespace bartl::log {

/// syslog(3) priorities used by bartl.
enum class Level { err = 3, warning = 4, notice = 5, info = 6, debug = 7 };

/// A journal field, e.g. {"BARTL_BACKUP_ID", "3f9a0c1d"}.
using Field = std::pair<std::string_view, std::string>;

/// Sets fields sent with every entry (BARTL_INSTANCE, BARTL_PHASE, BARTL_STATE_VERSION,
/// BARTL_ENGINE_VERSION). An empty value removes the field.
void set_context(std::string_view key, std::string value);

/// `text` with every byte that is not part of a valid UTF-8 sequence (RFC 3629), and every
/// control character but newline and tab, written as "\xNN": messages that quote a corrupt
/// file or a name that is not UTF-8 stay valid UTF-8 text for the journal, terminals and
/// tools reading bartld's stderr. Pure.
std::string printable(std::string_view text);

/// Logs one entry (its message passed through printable()). `message_id` is a 128-bit id in
/// 32 hex chars ("" for none); it marks lifecycle events documented in the journal catalog.
void write(Level level, std::string_view message, std::initializer_list<Field> fields = {},
           std::string_view message_id = "");

/// Reads $JOURNAL_STREAM and $BARTL_LOG_LEVEL again (otherwise read once, at the first
/// entry): after fd 2 was replaced, or in a forked test child.
void reinitialise();

/// True when fd 2 is the journal stream systemd connected us to: $JOURNAL_STREAM
/// ("DEVICE:INODE", systemd.exec(5)) equals fstat(2)'s st_dev:st_ino. Evaluated on each call.
bool stderr_is_journal();

/// Parses a level name (error, warning, notice, info, debug); std::nullopt when unknown.
std::optional<Level> parse_level(std::string_view name);

/// Which output stream of a child process a line came from.
enum class Stream { out, err };

/// The journal entry ChildOutput sends for one line a child wrote (`line` without its '\n'):
/// MESSAGE=, PRIORITY= (6, or N for a line that starts with "<N>", N 0..7, which is then cut
/// off, as systemd's SyslogLevelPrefix= does), SYSLOG_IDENTIFIER=`identifier`,
/// SYSLOG_PID=`pid` (when > 0), BARTL_STREAM=stdout|stderr, then `fields` (context first:
/// BARTL_INSTANCE, BARTL_PHASE, ...). One "NAME=value" string per field. Pure.
std::vector<std::string> child_entry(std::string_view identifier, pid_t pid, Stream stream, std::string_view line,
                                     const std::vector<std::pair<std::string, std::string>>& fields);

/// Forwards what one output stream of a child (the app, a hook, a readiness probe) writes,
/// line by line: when bartld logs to the journal, each line becomes an entry of its own
/// (child_entry(), with the context fields set by set_context() and the extra `fields`), so
/// `journalctl BARTL_INSTANCE=NAME` shows the app's own log; otherwise the line goes to
/// bartld's stderr as "[identifier] line", one write(2) per line. Lines are forwarded as they
/// are (not through printable()), whatever the log level; a line longer than 4096 bytes is
/// forwarded in pieces. Not thread-safe: one reader per stream.
class ChildOutput {
public:
    ChildOutput(std::string identifier, Stream stream, std::vector<std::pair<std::string, std::string>> fields = {});
    ~ChildOutput();
    ChildOutput(const ChildOutput&) = delete;
    ChildOutput& operator=(const ChildOutput&) = delete;

    /// The PID sent as SYSLOG_PID= (the child's; 0 = none).
    void set_pid(pid_t pid) noexcept { pid_ = pid; }
    /// Takes bytes read from the stream; forwards every line completed by them.
    void feed(std::string_view data);
    /// Forwards an unfinished last line (at the child's exit). Also done by the destructor.
    void finish();

private:
    void forward(std::string_view line);

    std::string identifier_;
    Stream stream_;
    std::vector<std::pair<std::string, std::string>> fields_;
    pid_t pid_ = 0;
    std::string partial_;
};

inline void error(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::err, m, f); }
inline void warn(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::warning, m, f); }
inline void notice(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::notice, m, f); }
inline void info(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::info, m, f); }
inline void debug(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::debug, m, f); }

}  // namespace bartl::log
