#include "core/store_url.hpp"

#include <string_view>

#include <fmt/format.h>

#include "core/error.hpp"

namespace bartl {
namespace {

/// `raw` with its %XX escapes decoded (RFC 3986 section 2.1); a truncated or invalid escape,
/// or one for NUL, throws what `bad` makes of the reason.
template <typename Bad>
std::string percent_decode(const std::string& raw, const Bad& bad) {
    std::string out;
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '%') {
            out += raw[i];
            continue;
        }
        auto hex = [](char c) -> int {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            return -1;
        };
        if (i + 2 >= raw.size()) throw bad("truncated %-escape");
        int hi = hex(raw[i + 1]), lo = hex(raw[i + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) throw bad("invalid %-escape");
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

}  // namespace

std::filesystem::path file_url_path(const std::string& url) {
    constexpr std::string_view scheme = "file://";
    auto bad = [&](const std::string& why) {
        return ConfigError(fmt::format("store URL \"{}\": {} (expected file:///ABSOLUTE/DIR)", url, why));
    };
    if (url.compare(0, scheme.size(), scheme) != 0) throw bad("not a file:// URL");
    std::string rest = url.substr(scheme.size());
    auto slash = rest.find('/');
    std::string host = rest.substr(0, slash);
    if (!host.empty() && host != "localhost") throw bad("host \"" + host + "\" is not supported");
    if (slash == std::string::npos) throw bad("no directory");
    const std::string path = percent_decode(rest.substr(slash), bad);
    std::filesystem::path p = std::filesystem::path(path).lexically_normal();
    if (p == "/") throw bad("the root directory cannot be a store");
    return p;
}

SftpLocation parse_sftp_url(const std::string& url) {
    constexpr std::string_view scheme = "sftp://";
    auto bad = [&](const std::string& why) {
        return ConfigError(fmt::format("store URL \"{}\": {} (expected sftp://[USER@]HOST[:PORT]/PATH)", url, why));
    };
    if (url.compare(0, scheme.size(), scheme) != 0) throw bad("not an sftp:// URL");
    const std::string rest = url.substr(scheme.size());
    if (rest.find_first_of("?#") != std::string::npos) throw bad("a query or fragment is not supported");
    const auto slash = rest.find('/');
    if (slash == std::string::npos) throw bad("no directory");
    std::string authority = rest.substr(0, slash);
    SftpLocation loc;
    if (const auto at = authority.rfind('@'); at != std::string::npos) {
        const std::string user = authority.substr(0, at);
        if (user.find(':') != std::string::npos)
            throw bad("a password in the URL is not supported: bartl authenticates with a key only");
        loc.user = percent_decode(user, bad);
        if (loc.user.empty()) throw bad("empty user name");
        authority = authority.substr(at + 1);
    }
    std::string port;
    if (!authority.empty() && authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string::npos) throw bad("unterminated [IPv6 address]");
        loc.host = authority.substr(1, close - 1);
        if (loc.host.empty() || loc.host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos)
            throw bad("\"" + loc.host + "\" is not an IPv6 address");
        const std::string after = authority.substr(close + 1);
        if (!after.empty() && after.front() != ':') throw bad("unexpected text after the IPv6 address");
        if (!after.empty()) port = after.substr(1);
        if (after == ":") throw bad("empty port");
    } else {
        const auto colon = authority.find(':');
        loc.host = authority.substr(0, colon);
        if (colon != std::string::npos) {
            port = authority.substr(colon + 1);
            if (port.empty()) throw bad("empty port");
        }
        if (loc.host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") !=
            std::string::npos)
            throw bad("\"" + loc.host + "\" is not a host name");
    }
    if (loc.host.empty()) throw bad("no host");
    if (!port.empty()) {
        if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) < 1 ||
            std::stoul(port) > 65535)
            throw bad("port \"" + port + "\" is not a number from 1 to 65535");
        loc.port = static_cast<unsigned>(std::stoul(port));
    }
    std::string path = percent_decode(rest.substr(slash), bad);
    if (("/" + path + "/").find("/../") != std::string::npos) throw bad("\"..\" in the path is not supported");
    bool home = false;
    if (path == "/~" || path.rfind("/~/", 0) == 0) {
        home = true;
        path = path.substr(2);  // "" or "/DIR..."
    }
    std::string dir = std::filesystem::path(path.empty() ? "/" : path).lexically_normal().string();
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    if (home) {
        loc.dir = dir == "/" ? "~" : "~" + dir;
    } else {
        if (dir == "/") throw bad("the root directory cannot be a store");
        loc.dir = dir;
    }
    return loc;
}

}  // namespace bartl
