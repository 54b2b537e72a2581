// The name a command's lines and messages go by. Pure.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace bartl {

/// True for the base name of a script interpreter: sh, bash, dash, zsh, ksh, env, node,
/// nodejs, tclsh, and python, perl, ruby, php, lua with or without a version ("python3.11").
bool is_interpreter(std::string_view base_name);

/// What a command runs, by name, for SYSLOG_IDENTIFIER= and messages: the base name of
/// argv[0], except that for an interpreter it is the base name of the script it runs
/// (`/usr/bin/python3 -u /opt/notes/notes.py` -> "notes.py"; `python3 -m http.server` ->
/// "http.server"; `env -i A=1 /usr/bin/node app.js` -> "app.js"). Inline code (`-c`, `-e`,
/// `--eval`) or no script at all names no script: then `inline_name` when not empty (the app's
/// name, bartl.toml(5) "[app]"), else the interpreter's base name. "" for an empty argv.
std::string command_name(const std::vector<std::string>& argv, std::string_view inline_name = {});

}  // namespace bartl
