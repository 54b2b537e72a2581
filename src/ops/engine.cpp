// The engine version from its configured source (see engine.hpp).
#include "ops/engine.hpp"

#include <fmt/format.h>

#include "app/user.hpp"
#include "core/error.hpp"
#include "core/duration.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/process.hpp"

namespace bartl {

namespace {

std::string trim(std::string s) {
    const char* ws = " \t\r\n";
    s.erase(0, s.find_first_not_of(ws));
    auto end = s.find_last_not_of(ws);
    s.erase(end == std::string::npos ? 0 : end + 1);
    return s;
}

/// The version text in `text` (a file's contents or a command's output): all of it, trimmed,
/// or what [app] version_pattern's capture group matches in it.
std::string extract(const Config& config, const std::string& text, const std::string& source) {
    if (!config.version_pattern) return trim(text);
    // Checked when the config was loaded: it compiles and has exactly one group.
    const VersionPattern pattern(*config.version_pattern);
    auto version = pattern.first_group(text);
    if (!version) {
        std::string shown = trim(text);
        if (shown.size() > 200) shown = shown.substr(0, 200) + "...";
        throw ConfigError(fmt::format("{}: [app] version_pattern \"{}\" matches nothing in \"{}\"", source,
                                      *config.version_pattern, log::printable(shown)));
    }
    return trim(*version);
}

Version parse_from(const std::string& text, const std::string& source) {
    try {
        return Version::parse(text);
    } catch (const std::invalid_argument& e) {
        throw ConfigError(fmt::format("{}: engine version '{}' is not SemVer 2.0.0: {}", source, text, e.what()));
    }
}

}  // namespace

Version resolve_engine_version(const Config& config) {
    if (config.version) return parse_from(*config.version, fmt::format("{}: [app] version", config.file.string()));
    if (config.version_file) {
        const std::string source = fmt::format("[app] version_file {}", config.version_file->string());
        std::optional<std::string> text;
        try {
            text = fs::read_file(*config.version_file);
        } catch (const Error& e) {
            throw ConfigError(fmt::format("{}: {}", source, e.what()));
        }
        if (!text) throw ConfigError(fmt::format("{}: file does not exist", source));
        return parse_from(extract(config, *text, source), source);
    }
    if (!config.version_command.empty()) {
        const std::string source = fmt::format("[app] version_command {}", config.version_command.front());
        CommandSpec spec;
        spec.argv = config.version_command;
        spec.timeout = config.version_command_timeout;
        spec.capture_stdout = true;
        // Like the app it asks about: as [app] user, never as root when that is not needed.
        spec.credentials = app_credentials(config);
        spec.env = app_user_env(config);
        CommandResult r;
        try {
            r = run_command(spec);
        } catch (const Error& e) {
            throw ConfigError(fmt::format("{}: {}", source, e.what()));
        }
        if (!r.ok()) throw ConfigError(fmt::format("{}: {}{}{}", source, r.describe(), r.err.empty() ? "" : ": ", trim(r.err)));
        return parse_from(extract(config, r.out, source), source);
    }
    throw ConfigError(fmt::format("{}: no engine version source ([app] version, version_file or version_command)",
                                  config.file.string()));
}

}  // namespace bartl
