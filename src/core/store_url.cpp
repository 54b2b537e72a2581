#include "core/store_url.hpp"

#include <string_view>

#include <fmt/format.h>

#include "core/error.hpp"

namespace bartl {

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
    std::string path;
    const std::string raw = rest.substr(slash);
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '%') {
            path += raw[i];
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
        path += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    std::filesystem::path p = std::filesystem::path(path).lexically_normal();
    if (p == "/") throw bad("the root directory cannot be a store");
    return p;
}

}  // namespace bartl
