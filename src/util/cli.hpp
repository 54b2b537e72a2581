// Command-line parsing shared by bartld and bartlctl (CLI11), with bartl(7)'s exit codes.
#pragma once

#include <optional>

#include <CLI/CLI.hpp>

#include "core/error.hpp"

namespace bartl {

/// Parses argv into `cli`. Returns std::nullopt to go on, or the exit code to end with at
/// once: 0 after --help/--version (printed by CLI11), 64 (EX_USAGE) after a parse error
/// (CLI11 prints it with a pointer to --help).
inline std::optional<int> parse_command_line(CLI::App& cli, int argc, char** argv) {
    try {
        cli.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return cli.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return cli.exit(e);
    } catch (const CLI::ParseError& e) {
        cli.exit(e);
        return static_cast<int>(ExitCode::usage);
    }
    return std::nullopt;
}

}  // namespace bartl
