#include "core/mariadb_dump.hpp"

#include <algorithm>

namespace bartl {
namespace {

/// The length of a charset or collation name at the start of `s` (letters, digits, '_').
std::size_t word_length(std::string_view s) {
    std::size_t n = 0;
    while (n < s.size() && ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
                            (s[n] >= '0' && s[n] <= '9') || s[n] == '_'))
        ++n;
    return n;
}

}  // namespace

CollationSwitchFilter::CollationSwitchFilter(std::string name)
    : prefix_("ALTER DATABASE `" + name + "` CHARACTER SET ") {}

std::string CollationSwitchFilter::rewrite(std::string_view line) const {
    if (line.substr(0, prefix_.size()) != prefix_) return std::string(line);
    std::string_view rest = line.substr(prefix_.size());
    const std::size_t cs = word_length(rest);
    constexpr std::string_view collate = " COLLATE ";
    if (cs == 0 || rest.substr(cs, collate.size()) != collate) return std::string(line);
    const std::size_t co = word_length(rest.substr(cs + collate.size()));
    const std::string_view tail = rest.substr(cs + collate.size() + co);
    if (co == 0 || (tail != " ;" && tail != " ;;")) return std::string(line);
    return "ALTER DATABASE CHARACTER SET " + std::string(rest);
}

void CollationSwitchFilter::feed(std::string_view in, std::string& out) {
    while (!in.empty()) {
        if (holding_) {
            const std::size_t nl = in.find('\n');
            const std::size_t take = nl == std::string_view::npos ? in.size() : nl;
            held_.append(in.substr(0, take));
            const std::size_t common = std::min(held_.size(), prefix_.size());
            if (held_.compare(0, common, prefix_, 0, common) != 0 || held_.size() > kMaxHeld) {
                // Not one of these: the line goes through as it is.
                out += held_;
                held_.clear();
                holding_ = false;
                line_start_ = false;
                in.remove_prefix(take);
                continue;
            }
            if (nl == std::string_view::npos) return;  // the line goes on in the next chunk
            out += rewrite(held_);
            out += '\n';
            held_.clear();
            holding_ = false;
            line_start_ = true;
            in.remove_prefix(nl + 1);
        } else if (line_start_ && in.front() == prefix_.front()) {
            holding_ = true;
        } else {
            const std::size_t nl = in.find('\n');
            if (nl == std::string_view::npos) {
                out.append(in);
                line_start_ = false;
                return;
            }
            out.append(in.substr(0, nl + 1));
            line_start_ = true;
            in.remove_prefix(nl + 1);
        }
    }
}

void CollationSwitchFilter::finish(std::string& out) {
    if (holding_) out += rewrite(held_);
    held_.clear();
    holding_ = false;
    line_start_ = true;
}

}  // namespace bartl
