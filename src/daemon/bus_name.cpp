#include "daemon/bus_name.hpp"

#include <fmt/format.h>

namespace bartl::bus {

namespace {

bool kept(char c, bool first) { return (c >= 'a' && c <= 'z') || (!first && c >= '0' && c <= '9'); }

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

}  // namespace

std::string escape_element(std::string_view instance) {
    if (instance.empty()) return "_";
    std::string out;
    for (std::size_t i = 0; i < instance.size(); ++i) {
        const char c = instance[i];
        if (kept(c, i == 0))
            out += c;
        else
            out += fmt::format("_{:02x}", static_cast<unsigned char>(c));
    }
    return out;
}

std::optional<std::string> unescape_element(std::string_view element) {
    if (element == "_") return std::string();
    std::string out;
    for (std::size_t i = 0; i < element.size(); ++i) {
        const char c = element[i];
        if (c != '_') {
            if (!kept(c, out.empty())) return std::nullopt;
            out += c;
            continue;
        }
        if (i + 2 >= element.size()) return std::nullopt;
        const int hi = hex_value(element[i + 1]), lo = hex_value(element[i + 2]);
        if (hi < 0 || lo < 0) return std::nullopt;
        const char d = static_cast<char>(hi * 16 + lo);
        // Only one spelling per name, so bartlctl never shows two names for one instance.
        if (kept(d, out.empty())) return std::nullopt;
        out += d;
        i += 2;
    }
    return out;
}

std::string bus_name(std::string_view instance) {
    return fmt::format("{}.{}", interface_name, escape_element(instance));
}

std::optional<std::string> instance_of(std::string_view name) {
    const std::string prefix = std::string(interface_name) + ".";
    if (name.substr(0, prefix.size()) != prefix) return std::nullopt;
    auto rest = name.substr(prefix.size());
    if (rest.empty() || rest.find('.') != std::string_view::npos) return std::nullopt;
    return unescape_element(rest);
}

}  // namespace bartl::bus
