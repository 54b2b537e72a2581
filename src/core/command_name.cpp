#include "core/command_name.hpp"

#include <algorithm>
#include <array>
#include <optional>

namespace bartl {
namespace {

std::string_view base_of(std::string_view path) {
    const auto slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

bool is_shell(std::string_view p) { return p == "sh" || p == "bash" || p == "dash" || p == "zsh" || p == "ksh"; }

/// Options of `interpreter` that take the next argument as their value (not a script).
bool takes_value(std::string_view interpreter, std::string_view option) {
    if (interpreter.starts_with("python")) return option == "--check-hash-based-pycs";  // clusters: python_cluster()
    if (interpreter.starts_with("perl")) return option == "-I";
    if (interpreter.starts_with("ruby")) return option == "-I" || option == "-r";
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
    if (interpreter.starts_with("perl") || interpreter.starts_with("ruby"))  // "-I/usr/share/perl5": a value
        return !option.starts_with("-I") && !option.starts_with("-M") && !option.starts_with("-r") && in_cluster("eE");
    if (interpreter == "node" || interpreter == "nodejs")
        return option == "-e" || option == "--eval" || option == "-p" || option == "--print";
    if (interpreter.starts_with("php")) return option == "-r";
    if (interpreter.starts_with("lua")) return option == "-e";
    return false;
}

/// What a cluster of python's one-letter options ("-u", "-uc", "-mhttp.server", "-W ignore")
/// says: inline code, a module (attached or the next argument), or how many arguments it
/// spans. Python reads its letters up to the first that takes a value (c, m, W, X), which
/// takes the rest of the cluster or, when nothing is left, the next argument.
struct PythonCluster {
    bool inline_code = false;
    std::optional<std::string> module;  ///< -m's value; "" when -m is the last argument
    bool takes_next = false;            ///< the next argument is the cluster's value
};

PythonCluster python_cluster(std::string_view option, const std::string* next) {
    PythonCluster c;
    for (std::size_t k = 1; k < option.size(); ++k) {
        const char letter = option[k];
        const bool last = k + 1 == option.size();
        if (letter == 'c') {
            c.inline_code = true;
            return c;
        }
        if (letter == 'm') {
            c.module = !last ? std::string(option.substr(k + 1)) : next ? *next : std::string();
            return c;
        }
        if (letter == 'W' || letter == 'X') {
            c.takes_next = last;
            return c;
        }
    }
    return c;
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
            if (program.starts_with("python") && a[0] == '-' && a[1] != '-') {
                const auto c = python_cluster(a, j + 1 < argv.size() ? &argv[j + 1] : nullptr);
                if (c.inline_code) return no_script();
                if (c.module) return c.module->empty() ? no_script() : *c.module;
                if (c.takes_next) ++j;
                continue;
            }
            if (inline_code(program, a)) return no_script();
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
