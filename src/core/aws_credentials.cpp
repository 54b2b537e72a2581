#include "core/aws_credentials.hpp"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "core/error.hpp"

namespace bartl {
namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
    return out;
}

}  // namespace

AwsProfile choose_aws_profile(const std::string& configured, const char* aws_default_profile, const char* aws_profile) {
    if (!configured.empty()) return {configured, "[store.s3] profile"};
    if (aws_default_profile && *aws_default_profile) return {aws_default_profile, "AWS_DEFAULT_PROFILE"};
    if (aws_profile && *aws_profile) return {aws_profile, "AWS_PROFILE"};
    return {"default", "the default"};
}

std::optional<AwsCredentials> aws_credentials_from_env(const char* access_key_id, const char* secret_access_key,
                                                       const char* session_token) {
    const bool have_id = access_key_id && *access_key_id;
    const bool have_secret = secret_access_key && *secret_access_key;
    if (!have_id && !have_secret) return std::nullopt;
    if (!have_secret)
        throw ConfigError("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both, or neither to use "
                          "the systemd credential aws-credentials");
    if (!have_id)
        throw ConfigError("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: set both, or neither to use "
                          "the systemd credential aws-credentials");
    AwsCredentials c{access_key_id, secret_access_key, session_token ? session_token : ""};
    return c;
}

std::optional<AwsCredentials> parse_aws_credentials(std::string_view text, std::string_view profile,
                                                    const std::string& file) {
    std::optional<AwsCredentials> found;
    bool in_profile = false;
    std::size_t line_no = 0;
    // botocore reads this file with Python's configparser, and bartl takes what it takes.
    if (text.substr(0, 3) == "\xEF\xBB\xBF")
        throw ConfigError(fmt::format("{}:1:1: the file starts with a UTF-8 byte order mark, which the AWS CLI "
                                      "refuses too: save it without one",
                                      file));
    while (!text.empty()) {
        ++line_no;
        const auto nl = text.find('\n');
        const std::string_view raw = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        const std::string_view line = trim(raw);
        if (line.empty() || line.front() == '#' || line.front() == ';') continue;
        const std::size_t column = static_cast<std::size_t>(line.data() - raw.data()) + 1;
        if (line.front() == '[') {
            // configparser's "[NAME]" ends at the last ']' and ignores what follows ("[default] # main").
            const auto close = line.rfind(']');
            if (close == 0 || close == std::string_view::npos)
                throw ConfigError(fmt::format("{}:{}:{}: a section header must end with ']'", file, line_no, column));
            std::string_view name = trim(line.substr(1, close - 1));
            if (name.substr(0, 8) == "profile ") name = trim(name.substr(8));
            in_profile = name == profile;
            if (in_profile && !found) found.emplace();
            continue;
        }
        // configparser splits at the first '=' or ':', whichever comes first.
        const auto eq = line.find_first_of("=:");
        if (eq == std::string_view::npos)
            throw ConfigError(
                fmt::format("{}:{}:{}: expected \"key = value\" or \"[profile]\"", file, line_no, column));
        if (!in_profile) continue;
        const std::string key = lower(trim(line.substr(0, eq)));
        // The value is never quoted in a message: it may be the secret.
        const std::string value(trim(line.substr(eq + 1)));
        if (key == "aws_access_key_id") found->access_key_id = value;
        else if (key == "aws_secret_access_key") found->secret_access_key = value;
        else if (key == "aws_session_token") found->session_token = value;
    }
    if (!found) return std::nullopt;
    if (found->access_key_id.empty())
        throw ConfigError(fmt::format("{}: profile [{}] has no aws_access_key_id", file, profile));
    if (found->secret_access_key.empty())
        throw ConfigError(fmt::format("{}: profile [{}] has no aws_secret_access_key", file, profile));
    return found;
}

}  // namespace bartl
