// Structured logging to the journal or stderr (see log.hpp).
#include "util/log.hpp"

#include <cstdlib>
#include <map>
#include <mutex>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <vector>

#define SD_JOURNAL_SUPPRESS_LOCATION  // CODE_FILE= etc. would all point at this file
#include <systemd/sd-journal.h>

#include <fmt/format.h>

namespace bartl::log {
namespace {

struct Sink {
    std::mutex mutex;
    bool initialised = false;
    bool journal = false;
    Level max_level = Level::info;
    std::map<std::string, std::string, std::less<>> context;
};

Sink& sink() {
    static Sink s;
    return s;
}

const char* level_name(Level l) {
    switch (l) {
    case Level::err: return "error";
    case Level::warning: return "warning";
    case Level::notice: return "notice";
    case Level::info: return "info";
    case Level::debug: return "debug";
    }
    return "info";
}

/// Called with the mutex held.
void initialise(Sink& s) {
    if (s.initialised)
        return;
    s.initialised = true;
    s.max_level = Level::info;
    s.journal = stderr_is_journal();
    if (const char* env = std::getenv("BARTL_LOG_LEVEL"); env && *env) {
        if (auto l = parse_level(env))
            s.max_level = *l;
        else {
            // Not fatal: a typo in a debugging aid must not stop the service.
            const std::string line = fmt::format(
                "bartld: warning: BARTL_LOG_LEVEL={} is not one of error, warning, notice, info, "
                "debug; using info\n",
                env);
            [[maybe_unused]] auto r = ::write(STDERR_FILENO, line.data(), line.size());
        }
    }
}

}  // namespace

std::optional<Level> parse_level(std::string_view name) {
    for (Level l : {Level::err, Level::warning, Level::notice, Level::info, Level::debug})
        if (name == level_name(l))
            return l;
    return std::nullopt;
}

bool stderr_is_journal() {
    const char* env = std::getenv("JOURNAL_STREAM");
    if (!env || !*env)
        return false;
    struct stat st {};
    if (::fstat(STDERR_FILENO, &st) < 0)
        return false;
    // A child of ours that inherited the variable but had stderr redirected must not log to
    // the journal; hence the comparison rather than the mere presence of the variable.
    return fmt::format("{}:{}", static_cast<unsigned long long>(st.st_dev),
                       static_cast<unsigned long long>(st.st_ino)) == env;
}

void reinitialise() {
    Sink& s = sink();
    std::lock_guard lock(s.mutex);
    s.initialised = false;
    initialise(s);
}

void set_context(std::string_view key, std::string value) {
    Sink& s = sink();
    std::lock_guard lock(s.mutex);
    if (value.empty()) {
        if (auto it = s.context.find(key); it != s.context.end())
            s.context.erase(it);
    } else {
        s.context.insert_or_assign(std::string(key), std::move(value));
    }
}

std::string printable(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    auto cont = [&](std::size_t i) { return i < text.size() && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80; };
    for (std::size_t i = 0; i < text.size();) {
        const auto c = static_cast<unsigned char>(text[i]);
        std::size_t len = 0;  // length of a valid sequence starting here, 0 if none
        if (c >= 0x20 && c < 0x7F) {
            len = 1;
        } else if (c == '\n' || c == '\t') {
            len = 1;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = cont(i + 1) ? 2 : 0;
        } else if (c >= 0xE0 && c <= 0xEF) {
            const auto c1 = i + 1 < text.size() ? static_cast<unsigned char>(text[i + 1]) : 0;
            const bool ok1 = c == 0xE0 ? (c1 >= 0xA0 && c1 <= 0xBF) : c == 0xED ? (c1 >= 0x80 && c1 <= 0x9F)
                                                                                : cont(i + 1);
            len = ok1 && cont(i + 2) ? 3 : 0;
        } else if (c >= 0xF0 && c <= 0xF4) {
            const auto c1 = i + 1 < text.size() ? static_cast<unsigned char>(text[i + 1]) : 0;
            const bool ok1 = c == 0xF0 ? (c1 >= 0x90 && c1 <= 0xBF) : c == 0xF4 ? (c1 >= 0x80 && c1 <= 0x8F)
                                                                                : cont(i + 1);
            len = ok1 && cont(i + 2) && cont(i + 3) ? 4 : 0;
        }
        if (len == 0) {
            out += fmt::format("\\x{:02x}", c);
            ++i;
        } else {
            out.append(text.substr(i, len));
            i += len;
        }
    }
    return out;
}

std::vector<std::string> child_entry(std::string_view identifier, pid_t pid, Stream stream, std::string_view line,
                                     const std::vector<std::pair<std::string, std::string>>& fields) {
    char priority = '6';  // info
    if (line.size() >= 3 && line[0] == '<' && line[1] >= '0' && line[1] <= '7' && line[2] == '>') {
        priority = line[1];
        line.remove_prefix(3);
    }
    // Plain concatenation: this runs for every line the app writes.
    std::vector<std::string> items;
    items.reserve(5 + fields.size());
    items.push_back(std::string("MESSAGE=").append(line));
    items.push_back(std::string("PRIORITY=") + priority);
    items.push_back(std::string("SYSLOG_IDENTIFIER=").append(identifier));
    if (pid > 0)
        items.push_back("SYSLOG_PID=" + std::to_string(pid));
    items.push_back(stream == Stream::out ? "BARTL_STREAM=stdout" : "BARTL_STREAM=stderr");
    for (const auto& [k, v] : fields)
        items.push_back(k + "=" + v);
    return items;
}

ChildOutput::ChildOutput(std::string identifier, Stream stream, std::vector<std::pair<std::string, std::string>> fields)
    : identifier_(std::move(identifier)), stream_(stream), fields_(std::move(fields)) {}

ChildOutput::~ChildOutput() { finish(); }

void ChildOutput::feed(std::string_view data) {
    constexpr std::size_t max_line = 4096;
    while (!data.empty()) {
        const auto nl = data.find('\n');
        if (nl == std::string_view::npos) {
            partial_.append(data);
            // A line without end (progress bars, binary junk) goes out in pieces instead of
            // growing without bound.
            while (partial_.size() >= max_line) {
                forward(std::string_view(partial_).substr(0, max_line));
                partial_.erase(0, max_line);
            }
            return;
        }
        if (partial_.empty()) {
            forward(data.substr(0, nl));
        } else {
            partial_.append(data.substr(0, nl));
            forward(partial_);
            partial_.clear();
        }
        data.remove_prefix(nl + 1);
    }
}

void ChildOutput::finish() {
    if (partial_.empty())
        return;
    forward(partial_);
    partial_.clear();
}

void ChildOutput::forward(std::string_view line) {
    Sink& s = sink();
    std::vector<std::pair<std::string, std::string>> fields;
    bool journal;
    {
        std::lock_guard lock(s.mutex);
        initialise(s);
        journal = s.journal;
        if (journal)
            fields.assign(s.context.begin(), s.context.end());
    }
    if (journal) {
        fields.insert(fields.end(), fields_.begin(), fields_.end());
        auto items = child_entry(identifier_, pid_, stream_, line, fields);
        std::vector<iovec> iov;
        iov.reserve(items.size());
        for (auto& i : items)
            iov.push_back({i.data(), i.size()});
        if (sd_journal_sendv(iov.data(), int(iov.size())) >= 0)
            return;
        // The journal went away (journald restart): the line goes to stderr, which systemd
        // still forwards.
    }
    std::string out = "[" + identifier_ + "] ";
    out.append(line).push_back('\n');
    // One write per line keeps lines whole when other threads also write to stderr.
    [[maybe_unused]] auto r = ::write(STDERR_FILENO, out.data(), out.size());
}

void write(Level level, std::string_view raw_message, std::initializer_list<Field> fields,
           std::string_view message_id) {
    Sink& s = sink();
    std::lock_guard lock(s.mutex);
    initialise(s);
    if (int(level) > int(s.max_level))
        return;
    const std::string message = printable(raw_message);

    if (!s.journal) {
        const std::string line = fmt::format("bartld: {}: {}\n", level_name(level), message);
        // One write(2) per entry: lines stay whole even with other writers on the same fd.
        [[maybe_unused]] auto r = ::write(STDERR_FILENO, line.data(), line.size());
        return;
    }

    std::vector<std::string> items;
    items.reserve(4 + s.context.size() + fields.size());
    items.push_back(fmt::format("MESSAGE={}", message));
    items.push_back(fmt::format("PRIORITY={}", int(level)));
    items.push_back("SYSLOG_IDENTIFIER=bartld");
    if (!message_id.empty())
        items.push_back(fmt::format("MESSAGE_ID={}", message_id));
    for (const auto& [k, v] : s.context)
        items.push_back(k + "=" + v);
    for (const auto& [k, v] : fields)
        items.push_back(fmt::format("{}={}", k, v));
    std::vector<iovec> iov;
    iov.reserve(items.size());
    for (auto& i : items)
        iov.push_back({i.data(), i.size()});
    if (sd_journal_sendv(iov.data(), int(iov.size())) < 0) {
        // The journal went away (journald restart): keep the message on stderr, which
        // systemd still forwards.
        const std::string line = fmt::format("bartld: {}: {}\n", level_name(level), message);
        [[maybe_unused]] auto r = ::write(STDERR_FILENO, line.data(), line.size());
    }
}

}  // namespace bartl::log
