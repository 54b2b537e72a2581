#include "core/command_name.hpp"

#include <algorithm>
#include <array>

namespace bartl {
namespace {

std::string_view base_of(std::string_view path) {
    const auto slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

bool is_shell(std::string_view p) { return p == "sh" || p == "bash" || p == "dash" || p == "zsh" || p == "ksh"; }

/// Options of `interpreter` that take the next argument as their value (not a script).
bool takes_value(std::string_view interpreter, std::string_view option) {
    if (interpreter.starts_with("python")) return option == "-W" || option == "-X" || option == "--check-hash-based-pycs";
    if (interpreter == "node" || interpreter == "nodejs") return option == "-r" || option == "--require";
    if (interpreter == "env") return option == "-u" || option == "--unset" || option == "-C" || option == "--chdir";
    if (is_shell(interpreter)) return option == "-o" || option == "-O" || option == "+o" || option == "+O";
    return false;
}

/// True when `option` makes `interpreter` run code given on the command line, not a script.
bool inline_code(std::string_view interpreter, std::string_view option) {
    const bool cluster = option.size() >= 2 && option[0] == '-' && option[1] != '-';
    const auto in_cluster = [&](std::string_view letters) {
        return cluster && option.find_first_of(letters, 1) != std::string_view::npos;
    };
    if (is_shell(interpreter)) return in_cluster("c");  // "-ec": errexit and a command string
    if (interpreter.starts_with("python"))  // "-Wdefault", "-Xdev": a value, not letters
        return !option.starts_with("-W") && !option.starts_with("-X") && in_cluster("c");
    if (interpreter.starts_with("perl") || interpreter.starts_with("ruby"))  // "-I/usr/share/perl5": a value
        return !option.starts_with("-I") && !option.starts_with("-M") && !option.starts_with("-r") && in_cluster("eE");
    if (interpreter == "node" || interpreter == "nodejs")
        return option == "-e" || option == "--eval" || option == "-p" || option == "--print";
    if (interpreter.starts_with("php")) return option == "-r";
    if (interpreter.starts_with("lua")) return option == "-e";
    return false;
}

}  // namespace

bool is_interpreter(std::string_view base) {
    static constexpr std::array plain{"sh", "bash", "dash", "zsh", "ksh", "env", "node", "nodejs", "tclsh"};
    if (std::find(plain.begin(), plain.end(), base) != plain.end()) return true;
    for (std::string_view family : {"python", "perl", "ruby", "php", "lua"}) {
        if (!base.starts_with(family)) continue;
        const auto version = base.substr(family.size());
        return std::all_of(version.begin(), version.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
    }
    return false;
}

std::string command_name(const std::vector<std::string>& argv, std::string_view inline_name) {
    std::size_t i = 0;
    while (i < argv.size()) {
        const std::string_view program = base_of(argv[i]);
        if (!is_interpreter(program)) return std::string(program);
        const auto no_script = [&] { return std::string(inline_name.empty() ? program : inline_name); };
        std::size_t j = i + 1;
        for (; j < argv.size(); ++j) {
            const std::string_view a = argv[j];
            if (a == "--") {
                ++j;
                break;
            }
            if (program == "env" && a.find('=') != std::string_view::npos && !a.starts_with("-")) continue;
            const bool option = a.size() > 1 && (a[0] == '-' || (a[0] == '+' && is_shell(program)));
            if (!option) break;
            if (inline_code(program, a)) return no_script();
            if (program.starts_with("python") && a == "-m") {
                if (j + 1 < argv.size()) return argv[j + 1];
                return no_script();
            }
            if (takes_value(program, a)) ++j;
        }
        if (j >= argv.size() || argv[j] == "-") return no_script();
        if (program == "env") {
            i = j;  // the command env runs, itself perhaps an interpreter
            continue;
        }
        return std::string(base_of(argv[j]));
    }
    return {};
}

}  // namespace bartl
