// Hooks and migration scripts that cannot run are configuration errors found up front
// (ops/config_check.hpp; issue "observed facts" item 10 and "What to build" 8).
#include <catch2/catch.hpp>

#include "config/config.hpp"
#include "core/error.hpp"
#include "ops/config_check.hpp"
#include "../test_util.hpp"

using namespace bartl;
using namespace bartl::test;

TEST_CASE("programs: what exec would refuse is named", "[config-check]") {
    TempDir tmp;
    auto script = [&](const char* name, const std::string& body, unsigned mode = 0755) {
        write_file(tmp / name, body, mode);
        return program_problem(tmp / name);
    };
    CHECK_FALSE(script("ok.sh", "#!/bin/sh\necho hi\n"));
    CHECK_FALSE(script("args.sh", "#!/bin/sh -eu\necho hi\n"));
    CHECK_FALSE(script("env.sh", "#!/usr/bin/env sh\necho hi\n"));
    CHECK_FALSE(program_problem("/bin/true"));  // ELF
    CHECK(script("crlf.sh", "#!/bin/sh\r\necho hi\r\n").value_or("").find("CRLF") != std::string::npos);
    CHECK(script("none.sh", "echo hi\n").value_or("").find("#!") != std::string::npos);
    CHECK(script("interp.sh", "#!/usr/bin/no-such-python3\nprint(1)\n").value_or("").find("/usr/bin/no-such-python3") !=
          std::string::npos);
    CHECK(script("envmiss.sh", "#!/usr/bin/env no-such-tool-bartl\n").value_or("").find("not in PATH") !=
          std::string::npos);
    CHECK(script("noexec.sh", "#!/bin/sh\n", 0644).value_or("").find("not executable") != std::string::npos);
    CHECK(program_problem(tmp / "missing").value_or("").find("No such file") != std::string::npos);
    stdfs::create_directories(tmp / "dir");
    CHECK(program_problem(tmp / "dir").value_or("").find("not a regular file") != std::string::npos);
}

TEST_CASE("config check: the error names the key's position, the program and why", "[config-check]") {
    TempDir tmp;
    write_file(tmp / "init", "#!/bin/sh\r\ntrue\r\n", 0755);
    const std::string text = "[app]\nname = \"notes\"\nversion = \"1.0.0\"\n[state]\npaths = [\"" +
                             (tmp / "data").string() + "\"]\n[hooks]\ninit = [\"" + (tmp / "init").string() + "\"]\n";
    const auto c = parse_config(text, "notes.toml");
    CHECK_THROWS_AS(check_config_files(c), ConfigError);
    CHECK_THROWS_WITH(check_config_files(c), Catch::StartsWith("notes.toml:7:8: [hooks] init " + (tmp / "init").string()) &&
                                                 Catch::Contains("CRLF"));
    // Migrations: a stray file in the directory, or a script that cannot run.
    stdfs::create_directories(tmp / "mig");
    write_file(tmp / "mig" / "2.0.0_add-tags", "#!/bin/sh\ntrue\n", 0755);
    const std::string with_mig = "[app]\nname = \"notes\"\nversion = \"1.0.0\"\n[state]\npaths = [\"" +
                                 (tmp / "data").string() + "\"]\n[hooks]\nmigrations = \"" + (tmp / "mig").string() + "\"\n";
    CHECK_NOTHROW(check_config_files(parse_config(with_mig, "m.toml")));
    write_file(tmp / "mig" / "README", "notes about the scripts", 0644);
    CHECK_THROWS_WITH(check_config_files(parse_config(with_mig, "m.toml")),
                      Catch::StartsWith("m.toml:7:14:") && Catch::Contains("README is not named"));
    stdfs::remove(tmp / "mig" / "README");
    write_file(tmp / "mig" / "2.1.0", "no shebang\n", 0755);
    CHECK_THROWS_WITH(check_config_files(parse_config(with_mig, "m.toml")),
                      Catch::Contains("2.1.0 is neither a program"));
}
