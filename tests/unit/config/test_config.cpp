// bartl.toml loading and validation (src/config/config.hpp, bartl(7) "Configuration").
// Error tests compare whole messages: the FILE:LINE:COLUMN prefix and the wording are what
// the operator sees, so they are part of the contract.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <string>

#include "bartl_build_config.h"
#include "config/config.hpp"
#include "core/error.hpp"

using namespace bartl;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const fs::path fixtures = BARTL_CONFIG_FIXTURES;

// The ConfigError message parse_config throws for `text` (source name "notes.toml"), or ""
// when the text is accepted.
std::string error_of(const std::string& text) {
    try {
        parse_config(text, "notes.toml");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

// A valid [app] + [state] head; tests append a table to check one key at a known line.
const std::string head = R"([app]
name = "notes"
version = "1.0.0"
exec = ["/usr/bin/notes"]
[state]
paths = ["/var/lib/notes"]
)";  // 6 lines: the next line is line 7

// A temporary directory removed at scope exit.
struct TempDir {
    fs::path path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "bartl-config-test-XXXXXX").string();
        REQUIRE(mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() { fs::remove_all(path); }
};

}  // namespace

// ---- valid configurations -------------------------------------------------------------

TEST_CASE("a config with every key loads into every field", "[config]") {
    const fs::path file = fixtures / "full.toml";
    const Config c = load_config(file);

    CHECK(c.file == file);
    CHECK(c.instance == "notes");
    CHECK(c.app_name == "notes");
    CHECK(!c.version);
    CHECK(!c.version_file);
    CHECK(c.version_command == std::vector<std::string>{"/usr/bin/notes", "--version"});
    CHECK(c.version_pattern == "notes v([0-9][^ ]*)");
    CHECK(c.version_command_timeout == 15s);
    CHECK(c.exec == std::vector<std::string>{"/usr/bin/notes", "--db", "/var/lib/notes/notes.db", ""});
    REQUIRE(c.run_as);
    CHECK(c.run_as->user == "nobody");
    CHECK(c.run_as->uid == 65534);
    CHECK(c.run_as->group == "nogroup");
    CHECK(c.run_as->gid == 65534);
    CHECK(c.run_as->home == "/nonexistent");
    CHECK(c.run_as->where == file.string() + ":9:8");
    CHECK(c.environment == std::map<std::string, std::string>{{"LANG", "C.UTF-8"}, {"NOTES_MODE", "production"}});
    REQUIRE(c.working_directory);
    CHECK(*c.working_directory == "/var/lib/notes");
    CHECK(c.ready.kind == Readiness::Kind::command);
    CHECK(c.ready.command == std::vector<std::string>{"/usr/bin/notes", "--ping"});
    CHECK(c.ready.interval == 250ms);
    CHECK(c.ready_timeout == 2min);
    CHECK(c.stop_timeout == 45s);

    CHECK(c.state_paths == std::vector<fs::path>{"/var/lib/notes", "/srv/notes-media"});
    CHECK(c.bartl_dir == "/var/lib/bartl-state/notes");
    REQUIRE(c.databases.size() == 2);
    CHECK(c.databases[0].type == Database::Type::postgresql);
    CHECK(c.databases[0].password_credential == "notes-db-password");
    CHECK(c.databases[1].path == "/var/lib/notes-search/index.db");

    CHECK(c.hook_init == std::vector<std::string>{"/usr/lib/notes/bartl/init", "--fresh"});
    REQUIRE(c.migrations_dir);
    CHECK(*c.migrations_dir == "/usr/lib/notes/bartl/migrations");
    CHECK(c.hook_pre_backup == std::vector<std::string>{"/usr/lib/notes/bartl/pre-backup"});
    CHECK(c.hook_post_backup == std::vector<std::string>{"/usr/lib/notes/bartl/post-backup"});
    CHECK(c.hook_post_restore == std::vector<std::string>{"/usr/lib/notes/bartl/post-restore"});
    CHECK(c.hook_timeout == 2h);

    CHECK(c.store == "s3://notes-backups/prod/notes");
    CHECK(c.interval == 6h);
    CHECK(c.fence_check == 1min);
    CHECK(c.before_migrate == false);
    CHECK(c.consistency == Config::Consistency::stop);
    CHECK(c.compression_level == 19);
    CHECK(c.compression_threads == 4);
    CHECK(c.backup_nice == 15);
    CHECK(c.retention.keep_last == 3);
    CHECK(c.retention.keep_daily == 10);
    CHECK(c.retention.keep_weekly == 0);
    CHECK(c.retention.keep_monthly == 24);
    CHECK(c.encrypt_to.size() == 2);
    CHECK(c.encrypt_to_file == fs::path("/etc/bartl/notes.recipients"));
    CHECK(c.identity_file == fs::path("/root/notes-age.key"));
    CHECK(c.signing_key_file == fs::path("/etc/bartl/notes-signing"));
    CHECK(c.trusted_keys.size() == 1);
    CHECK(c.trusted_keys_file == fs::path("/etc/bartl/notes.allowed_signers"));
}

TEST_CASE("a minimal config gets the documented defaults", "[config]") {
    const Config c = load_config(fixtures / "minimal.toml");
    CHECK(c.app_name == "notes");
    CHECK(c.instance == "notes");
    CHECK(*c.version == "1.0.0");
    CHECK(c.version_command_timeout == 10s);
    CHECK(c.exec.empty());
    CHECK(c.environment.empty());
    CHECK(!c.working_directory);
    CHECK(c.ready.kind == Readiness::Kind::started);
    CHECK(c.ready.interval == 500ms);
    CHECK(!c.run_as);
    CHECK(!c.version_pattern);
    CHECK(c.ready_timeout == 90s);
    CHECK(c.stop_timeout == 30s);
    CHECK(c.state_paths == std::vector<fs::path>{"/var/lib/notes"});
    CHECK(c.bartl_dir == "/var/lib/bartl/notes");
    CHECK(c.hook_init.empty());
    CHECK(!c.migrations_dir);
    CHECK(c.hook_pre_backup.empty());
    CHECK(c.hook_post_backup.empty());
    CHECK(c.hook_post_restore.empty());
    CHECK(c.hook_timeout == 1h);
    CHECK(c.store.empty());
    CHECK(c.interval == 24h);
    CHECK(c.fence_check == 5min);
    CHECK(c.before_migrate == true);
    CHECK(c.consistency == Config::Consistency::live);
    CHECK(c.compression_level == 3);
    CHECK(c.backup_nice == 10);
    CHECK(c.compression_threads == 0);
    CHECK(c.retention.keep_last == 7);
    CHECK(c.retention.keep_daily == 7);
    CHECK(c.retention.keep_weekly == 4);
    CHECK(c.retention.keep_monthly == 12);
}

TEST_CASE("the example from bartl(7) is valid", "[config]") {
    const Config c = load_config(fixtures / "design-example.toml");
    CHECK(c.ready.kind == Readiness::Kind::notify);
    CHECK(c.store == "file:///var/backups/bartl/notes");
    CHECK(c.hook_pre_backup.empty());  // [] means no hook
    CHECK(c.compression_level == 3);
}

TEST_CASE("the instance name overrides app.name and moves bartl_dir", "[config]") {
    const Config c = load_config(fixtures / "minimal.toml", "notes-staging");
    CHECK(c.instance == "notes-staging");
    CHECK(c.app_name == "notes");
    CHECK(c.bartl_dir == "/var/lib/bartl/notes-staging");
    CHECK_THROWS_AS(load_config(fixtures / "minimal.toml", "Notes"), UsageError);
}

TEST_CASE("the other version sources, readiness forms and store schemes parse", "[config]") {
    Config c = parse_config(R"([app]
name = "n0_x-y"
version_command = ["/usr/bin/notes", "--version"]
version_timeout = "0"
exec = ["/usr/bin/notes"]
ready = "tcp://[::1]:5432"
[state]
paths = ["/a/b", "/a/bc", "/c"]
[hooks]
timeout = "0"
[backup]
store = "sftp://backup@host.example:2222/srv/backups"
compression = "zstd"
)",
                            "x.toml");
    CHECK(c.version_command == std::vector<std::string>{"/usr/bin/notes", "--version"});
    CHECK(c.version_command_timeout == 0ms);
    CHECK(c.ready.kind == Readiness::Kind::tcp);
    CHECK(c.ready.host == "::1");
    CHECK(c.ready.port == 5432);
    CHECK(c.hook_timeout == 0ms);
    CHECK(c.compression_level == 3);
    CHECK(c.compression_threads == 0);
    CHECK(c.file.empty());

    c = parse_config(R"([app]
name = "n"
version_file = "/usr/share/n/VERSION"
exec = ["/usr/bin/n"]
ready = "http://localhost"
[state]
paths = ["/var/lib/n"]
[backup]
store = ""
compression = "zstd:7"
)",
                     "x.toml");
    CHECK(*c.version_file == "/usr/share/n/VERSION");
    CHECK(c.ready.kind == Readiness::Kind::http);
    CHECK(c.ready.host == "localhost");
    CHECK(c.ready.port == 80);
    CHECK(c.ready.path == "/");
    CHECK(c.store.empty());
    CHECK(c.compression_level == 7);

    c = parse_config("[app]\nname = \"n\"\nversion = \"1.0.0\"\nexec = [\"/n\"]\nready = \"http://h:81?ok\"\n"
                     "[state]\npaths = [\"/n\"]\n",
                     "x.toml");
    CHECK(c.ready.port == 81);
    CHECK(c.ready.path == "/?ok");

    c = parse_config(R"([app]
name = "notes"
version = "2.1.0-rc.1+build.7"
exec = ["/usr/bin/notes"]
ready = "http://127.0.0.1:8080/healthz?full=1"
[state]
paths = ["/var/lib/notes"]
)",
                     "x.toml");
    CHECK(*c.version == "2.1.0-rc.1+build.7");
    CHECK(c.ready.kind == Readiness::Kind::http);
    CHECK(c.ready.host == "127.0.0.1");
    CHECK(c.ready.port == 8080);
    CHECK(c.ready.path == "/healthz?full=1");
    CHECK(c.ready.url == "http://127.0.0.1:8080/healthz?full=1");

    // A version file with a pattern; ready_interval has its default.
    c = parse_config(R"([app]
name = "n"
version_file = "/usr/share/n/VERSION"
version_pattern = "^version=(.+)$"
exec = ["/usr/bin/n"]
ready = "command"
ready_command = ["/usr/bin/n-ping"]
[state]
paths = ["/var/lib/n"]
)",
                     "x.toml");
    CHECK(c.version_pattern == "^version=(.+)$");
    CHECK(c.ready.kind == Readiness::Kind::command);
    CHECK(c.ready.interval == 500ms);
}

TEST_CASE("[app] user and group are resolved in the user database", "[config]") {
    const std::string app = "[app]\nname = \"notes\"\nversion = \"1.0.0\"\nexec = [\"/bin/x\"]\n";  // user on line 5
    const std::string state = "[state]\npaths = [\"/var/lib/notes\"]\n";
    // The group defaults to the user's primary group; the supplementary groups come along.
    Config c = parse_config(app + "user = \"root\"\n" + state, "notes.toml");
    REQUIRE(c.run_as);
    CHECK(c.run_as->uid == 0);
    CHECK(c.run_as->gid == 0);
    CHECK(c.run_as->group == "root");
    CHECK(c.run_as->home == "/root");
    CHECK(std::find(c.run_as->groups.begin(), c.run_as->groups.end(), gid_t(0)) != c.run_as->groups.end());
    CHECK(c.run_as->where == "notes.toml:5:8");
    // Numeric ids, as systemd's User= and Group= take them.
    c = parse_config(app + "user = \"65534\"\ngroup = \"0\"\n" + state, "notes.toml");
    CHECK(c.run_as->user == "nobody");
    CHECK(c.run_as->uid == 65534);
    CHECK(c.run_as->gid == 0);
    CHECK(c.run_as->group == "root");
    CHECK(std::find(c.run_as->groups.begin(), c.run_as->groups.end(), gid_t(0)) != c.run_as->groups.end());
}

TEST_CASE("without resolve_users, [app] user and group stay names as written", "[config]") {
    // bartl-generator's way: it runs before the user database may be asked.
    const std::string app = "[app]\nname = \"notes\"\nversion = \"1.0.0\"\nexec = [\"/bin/x\"]\n";  // user on line 5
    const std::string state = "[state]\npaths = [\"/var/lib/notes\"]\n";
    const LoadOptions names{.resolve_users = false};
    Config c = parse_config(app + "user = \"no-such-user-here\"\n" + state, "notes.toml", "", names);
    REQUIRE(c.run_as);
    CHECK(c.run_as->user == "no-such-user-here");
    CHECK(c.run_as->group == "");
    CHECK(c.run_as->where == "notes.toml:5:8");
    CHECK(c.run_as->groups.empty());
    c = parse_config(app + "user = \"65534\"\ngroup = \"www\"\n" + state, "notes.toml", "", names);
    CHECK((c.run_as->user == "65534" && c.run_as->group == "www"));
    // What needs no lookup is still checked.
    CHECK_THROWS_WITH(parse_config(app + "group = \"www\"\n" + state, "notes.toml", "", names),
                      "notes.toml:5:9: [app] group is set but [app] user is not; name the user too");
    // The default resolves, and so refuses the unknown user.
    CHECK_THROWS_AS(parse_config(app + "user = \"no-such-user-here\"\n" + state, "notes.toml"), ConfigError);
}

TEST_CASE("instance_config_path names /etc/bartl/NAME.toml and rejects bad names", "[config]") {
    CHECK(instance_config_path("notes") == fs::path(BARTL_SYSCONFDIR) / "bartl" / "notes.toml");
    CHECK_THROWS_AS(instance_config_path(""), UsageError);
    CHECK_THROWS_AS(instance_config_path("../etc/passwd"), UsageError);
    CHECK_THROWS_AS(instance_config_path("notes@1"), UsageError);
    CHECK_THROWS_AS(instance_config_path(std::string(65, 'a')), UsageError);
    CHECK(instance_config_path(std::string(64, 'a')).filename() == std::string(64, 'a') + ".toml");
    try {
        instance_config_path("Notes");
        FAIL("no UsageError");
    } catch (const UsageError& e) {
        CHECK(std::string(e.what()) ==
              "invalid instance name \"Notes\": use lowercase letters, digits, '_' and '-', starting with a letter "
              "or digit, at most 64 characters");
    }
}

// ---- reading files ----------------------------------------------------------------------

TEST_CASE("load_config names the file it cannot read and why", "[config]") {
    TempDir dir;
    const fs::path missing = dir.path / "absent.toml";
    try {
        load_config(missing);
        FAIL("no ConfigError");
    } catch (const ConfigError& e) {
        CHECK(std::string(e.what()) == missing.string() + ": cannot read: No such file or directory");
        CHECK(e.exit_code() == ExitCode::config);
    }
    try {
        load_config(dir.path);
        FAIL("no ConfigError");
    } catch (const ConfigError& e) {
        CHECK(std::string(e.what()) == dir.path.string() + ": cannot read: Is a directory");
    }
}

TEST_CASE("errors in a file carry its path, line and column", "[config]") {
    TempDir dir;
    const fs::path file = dir.path / "notes.toml";
    std::ofstream(file) << "[app]\nname = \"notes\"\nversion = \"1.0.0\"\n\n[backup]\nintervall = \"1h\"\n";
    try {
        load_config(file);
        FAIL("no ConfigError");
    } catch (const ConfigError& e) {
        CHECK(std::string(e.what()) ==
              file.string() + ":6:1: unknown key 'intervall' in [backup]; did you mean 'interval'?");
    }
}

// ---- one test per kind of bad input -------------------------------------------------------

TEST_CASE("TOML syntax errors keep toml++'s position and description", "[config][errors]") {
    const std::string e = error_of("[app]\nname = \"notes\nversion = \"1.0.0\"\n");
    CHECK_THAT(e, Catch::StartsWith("notes.toml:2:"));
    CHECK_THAT(e, Catch::Contains("string"));
    CHECK(error_of("[app]\nname = \"a\"\nname = \"b\"\n").rfind("notes.toml:3:", 0) == 0);
}

TEST_CASE("unknown keys and tables are rejected with the nearest known name", "[config][errors]") {
    CHECK(error_of(head + "[backup]\nintervall = \"1h\"\n") ==
          "notes.toml:8:1: unknown key 'intervall' in [backup]; did you mean 'interval'?");
    CHECK(error_of(head + "[backup]\n  kep_last = 1\n") ==
          "notes.toml:8:3: unknown key 'kep_last' in [backup]; did you mean 'keep_last'?");
    CHECK(error_of(head + "[hooks]\npre_backpu = []\n") ==
          "notes.toml:8:1: unknown key 'pre_backpu' in [hooks]; did you mean 'pre_backup'?");
    CHECK(error_of(head + "[hooks]\nfoo = 1\n") ==
          "notes.toml:8:1: unknown key 'foo' in [hooks]; known keys: init, init_component, migrations, pre_backup, "
          "post_backup, post_restore, timeout");
    // A key of another table says where it belongs.
    CHECK(error_of(head + "[hooks]\ninterval = \"1h\"\n") ==
          "notes.toml:8:1: unknown key 'interval' in [hooks]; it belongs in [backup]");
    CHECK(error_of(head + "[bakup]\n") == "notes.toml:7:2: unknown table [bakup]; did you mean [backup]?");
    CHECK(error_of(head + "[logging]\n") ==
          "notes.toml:7:2: unknown table [logging]; bartl.toml has [app], [state], [hooks], [backup] and [store]");
    CHECK(error_of("store = \"file:///b\"\n" + head) ==
          "notes.toml:1:1: key 'store' is outside any table; it belongs in [backup]");
    CHECK(error_of(head + "[app.extra]\n") ==
          "notes.toml:7:6: unknown key 'extra' in [app]; known keys: name, "
          "version, version_file, version_command, version_timeout, version_pattern, exec, user, group, "
          "environment, working_directory, ready, ready_command, ready_interval, ready_timeout, stop_timeout");
}

TEST_CASE("wrong value types name the key, the expected and the actual type", "[config][errors]") {
    CHECK(error_of("[app]\nname = \"notes\"\nversion = \"1.0.0\"\nexec = 5\n") ==
          "notes.toml:4:8: [app] exec must be an array of strings, got integer");
    CHECK(error_of("[app]\nname = \"notes\"\nversion = \"1.0.0\"\nexec = [\"/bin/x\", 5]\n") ==
          "notes.toml:4:19: [app] exec must be an array of strings, got integer at index 1");
    CHECK(error_of("[app]\nname = 7\n") == "notes.toml:2:8: [app] name must be a string, got integer");
    CHECK(error_of(head + "[backup]\nbefore_migrate = \"yes\"\n") ==
          "notes.toml:8:18: [backup] before_migrate must be a boolean (true or false), got string");
    CHECK(error_of(head + "[backup]\nkeep_last = -1\n") ==
          "notes.toml:8:13: [backup] keep_last must be a non-negative integer, got -1");
    CHECK(error_of(head + "[backup]\nnice = 20\n") ==
          "notes.toml:8:8: [backup] nice must be 0 to 19 (added to bartld's niceness for backups), got 20");
    CHECK(error_of(head + "[backup]\nnice = -5\n") ==
          "notes.toml:8:8: [backup] nice must be a non-negative integer, got -5");
    CHECK(error_of(head + "[backup]\nkeep_daily = 1.5\n") ==
          "notes.toml:8:14: [backup] keep_daily must be a non-negative integer, got float");
    CHECK(error_of(head + "[backup]\ninterval = 3600\n") ==
          "notes.toml:8:12: [backup] interval must be a duration string such as \"90s\", \"5m\" or \"1h30m\", got "
          "integer");
    CHECK(error_of("[[app]]\nname = \"x\"\n") == "notes.toml:1:1: [app] must be a table, got array");
    CHECK(error_of("[app]\nname = \"notes\"\nversion = \"1.0.0\"\nenvironment = [\"A=1\"]\n") ==
          "notes.toml:4:15: [app] environment must be a table of strings, got array");
    CHECK(error_of("[app]\nname = \"notes\"\nversion = \"1.0.0\"\nenvironment = { A = 1 }\n") ==
          "notes.toml:4:21: [app] environment.A must be a string, got integer");
    CHECK(error_of(head + "[backup]\nconsistency = \"sometimes\"\n") ==
          "notes.toml:8:15: [backup] consistency must be \"live\" or \"stop\", got \"sometimes\"");
}

TEST_CASE("relative paths are rejected wherever a path is expected", "[config][errors]") {
    CHECK(error_of("[app]\nname = \"notes\"\nversion_file = \"VERSION\"\n") ==
          "notes.toml:3:16: [app] version_file must be an absolute path, got \"VERSION\"");
    CHECK(error_of(head + "[hooks]\nmigrations = \"migrations\"\n") ==
          "notes.toml:8:14: [hooks] migrations must be an absolute path, got \"migrations\"");
    CHECK(error_of("[app]\nname = \"notes\"\nversion = \"1.0.0\"\nworking_directory = \"./\"\n") ==
          "notes.toml:4:21: [app] working_directory must be an absolute path, got \"./\"");
    CHECK(error_of("[app]\nname = \"notes\"\nversion = \"1.0.0\"\n[state]\npaths = [\"/a\"]\nbartl_dir = \"\"\n") ==
          "notes.toml:6:13: [state] bartl_dir must be an absolute path, got \"\"");
    CHECK(error_of("[app]\nname = \"notes\"\nversion = \"1.0.0\"\n[state]\npaths = [\"/a\", \"var/lib\"]\n") ==
          "notes.toml:5:16: [state] paths[1] must be an absolute path, got \"var/lib\"");
    CHECK(error_of(head + "[hooks]\ninit = [\"init.sh\"]\n") ==
          "notes.toml:8:9: [hooks] init: the program must be an absolute path, got \"init.sh\"");
    CHECK(error_of("[app]\nname = \"notes\"\nversion = \"1.0.0\"\nexec = [\"notes\"]\n") ==
          "notes.toml:4:9: [app] exec: the program must be an absolute path, got \"notes\"");
}

TEST_CASE("state paths must be normalised, distinct and not nested", "[config][errors]") {
    const std::string app = "[app]\nname = \"notes\"\nversion = \"1.0.0\"\n[state]\n";  // paths on line 5
    CHECK(error_of(app + "paths = [\"/var/lib/notes/\"]\n") ==
          "notes.toml:5:10: [state] paths[0] \"/var/lib/notes/\" must not end in '/' (write \"/var/lib/notes\")");
    CHECK(error_of(app + "paths = [\"/var/lib/../notes\"]\n") ==
          "notes.toml:5:10: [state] paths[0] \"/var/lib/../notes\" must not contain '..'");
    CHECK(error_of(app + "paths = [\"/var//lib/./notes\"]\n") ==
          "notes.toml:5:10: [state] paths[0] \"/var//lib/./notes\" is not normalised (write \"/var/lib/notes\")");
    CHECK(error_of(app + "paths = [\"/\"]\n") == "notes.toml:5:10: [state] paths[0] must not be the root directory");
    CHECK(error_of(app + "paths = [\"/a\", \"/b\", \"/a\"]\n") ==
          "notes.toml:5:22: [state] paths[2] \"/a\" is listed twice (also paths[0])");
    CHECK(error_of(app + "paths = [\"/srv/a\", \"/srv/a/db\"]\n") ==
          "notes.toml:5:20: [state] paths[1] \"/srv/a/db\" is inside paths[0] \"/srv/a\"; list only the outer "
          "directory");
    CHECK(error_of(app + "paths = [\"/srv/a/db\", \"/srv/a\"]\n") ==
          "notes.toml:5:23: [state] paths[1] \"/srv/a\" contains paths[0] \"/srv/a/db\"; list only the outer "
          "directory");
    CHECK(error_of(app + "paths = []\n") == "notes.toml:5:9: [state] paths must name at least one directory");
    // bartl's own directory (marker, intent, lock) must survive a restore of the state.
    CHECK(error_of(app + "paths = [\"/var/lib\"]\n") ==
          "notes.toml:5:10: [state] paths[0] \"/var/lib\" overlaps bartl's own directory /var/lib/bartl/notes; set "
          "[state] bartl_dir to a directory outside the declared state");
    CHECK(error_of(app + "paths = [\"/srv/a\"]\nbartl_dir = \"/srv/a/.bartl\"\n") ==
          "notes.toml:6:13: [state] bartl_dir \"/srv/a/.bartl\" overlaps [state] paths[0] \"/srv/a\"; bartl's own "
          "directory must lie outside the declared state");
    CHECK(error_of(app + "paths = [\"/srv/a/db\"]\nbartl_dir = \"/srv/a/\"\n") ==
          "notes.toml:6:13: [state] bartl_dir \"/srv/a\" overlaps [state] paths[0] \"/srv/a/db\"; bartl's own "
          "directory must lie outside the declared state");
    CHECK(parse_config(app + "paths = [\"/srv/a\"]\nbartl_dir = \"/srv//b/\"\n", "x").bartl_dir == "/srv/b");
}

TEST_CASE("app and instance names are checked", "[config][errors]") {
    const std::string rule =
        "use lowercase letters, digits, '_' and '-', starting with a letter or digit, at most 64 characters";
    CHECK(error_of("[app]\nname = \"Notes\"\n") == "notes.toml:2:8: [app] name \"Notes\" is not a valid name: " + rule);
    CHECK(error_of("[app]\nname = \"-notes\"\n") ==
          "notes.toml:2:8: [app] name \"-notes\" is not a valid name: " + rule);
    CHECK(error_of("[app]\nname = \"" + std::string(65, 'n') + "\"\n").rfind("notes.toml:2:8: [app] name ", 0) == 0);
    CHECK(error_of("[app]\nname = \"\"\n") == "notes.toml:2:8: [app] name \"\" is not a valid name: " + rule);
    CHECK_THROWS_AS(parse_config(head, "notes.toml", "a/b"), UsageError);
}

TEST_CASE("missing required keys point at their table or at 1:1", "[config][errors]") {
    CHECK(error_of("[app]\nversion = \"1.0.0\"\n") == "notes.toml:1:1: [app] name is required");
    CHECK(error_of("# comment\n\n[app]\nversion = \"1.0.0\"\n") == "notes.toml:3:1: [app] name is required");
    CHECK(error_of("") == "notes.toml:1:1: [app] table is missing; it needs at least name and version");
    CHECK(error_of("[app]\nname = \"notes\"\n") ==
          "notes.toml:1:1: [app] version is required: set one of version, version_file or version_command");
    CHECK(error_of("[app]\nname = \"notes\"\nversion = \"1.0.0\"\n") ==
          "notes.toml:1:1: [state] paths is required: the absolute directories that hold the app's state");
    CHECK(error_of("[app]\nname = \"notes\"\nversion = \"1.0.0\"\n[state]\n") ==
          "notes.toml:4:1: [state] paths is required: the absolute directories that hold the app's state");
}

TEST_CASE("exactly one version source is allowed", "[config][errors]") {
    CHECK(error_of("[app]\nname = \"notes\"\nversion = \"1.0.0\"\nversion_file = \"/usr/share/notes/VERSION\"\n") ==
          "notes.toml:4:16: two version sources: [app] version and [app] version_file; keep exactly one");
    CHECK(error_of("[app]\nname = \"notes\"\nversion_command = [\"/bin/v\"]\nversion = \"1.0.0\"\n"
                   "version_file = \"/v\"\n") ==
          "notes.toml:4:11: three version sources: [app] version_command, [app] version and [app] version_file; "
          "keep exactly one");
    CHECK(error_of("[app]\nname = \"notes\"\nversion_command = []\n") ==
          "notes.toml:3:19: [app] version_command must not be empty");
}

TEST_CASE("a literal version must be SemVer", "[config][errors]") {
    // The reason comes from Version::parse (tested with semver); here: position, key and text.
    const std::string e = error_of("[app]\nname = \"notes\"\nversion = \"2.1\"\n");
    CHECK_THAT(e, Catch::StartsWith("notes.toml:3:11: [app] version: ") && Catch::Contains("\"2.1\""));
    CHECK_THAT(error_of("[app]\nname = \"notes\"\nversion = \"v1.0.0\"\n"),
               Catch::StartsWith("notes.toml:3:11: [app] version: ") && Catch::Contains("\"v1.0.0\""));
    CHECK_THAT(error_of("[app]\nname = \"notes\"\nversion = \"1.0.0-\"\n"),
               Catch::StartsWith("notes.toml:3:11: [app] version: "));
}

TEST_CASE("bad durations carry parse_duration's explanation", "[config][errors]") {
    CHECK(error_of("[app]\nname = \"notes\"\nversion = \"1.0.0\"\nexec = [\"/bin/x\"]\nready_timeout = \"1.5m\"\n") ==
          "notes.toml:5:17: [app] ready_timeout: invalid duration \"1.5m\": fractions are not allowed (write "
          "\"1h30m\", not \"1.5h\")");
    CHECK(error_of(head + "[backup]\ninterval = \"5x\"\n") ==
          "notes.toml:8:12: [backup] interval: invalid duration \"5x\": unknown unit \"x\" (units: ms, s, m, h, d, w)");
    CHECK(error_of(head + "[backup]\ninterval = \"0\"\n") ==
          "notes.toml:8:12: [backup] interval must be longer than 0");
    CHECK(error_of(head + "[hooks]\ntimeout = \"-1h\"\n") ==
          "notes.toml:8:11: [hooks] timeout: invalid duration \"-1h\": negative durations are not allowed");
}

TEST_CASE("readiness must be a known form with a valid host and port", "[config][errors]") {
    const std::string app = "[app]\nname = \"notes\"\nversion = \"1.0.0\"\nexec = [\"/bin/x\"]\n";  // ready on line 5
    const std::string forms =
        "must be \"notify\", \"started\", \"tcp://HOST:PORT\", \"http://HOST:PORT/PATH\" or \"command\", got ";
    CHECK(error_of(app + "ready = \"https://localhost/\"\n") ==
          "notes.toml:5:9: [app] ready " + forms + "\"https://localhost/\"");
    CHECK(error_of(app + "ready = \"ready\"\n") == "notes.toml:5:9: [app] ready " + forms + "\"ready\"");
    CHECK(error_of(app + "ready = \"tcp://localhost\"\n") ==
          "notes.toml:5:9: [app] ready \"tcp://localhost\": the port is missing (write tcp://HOST:PORT)");
    CHECK(error_of(app + "ready = \"tcp://localhost:99999\"\n") ==
          "notes.toml:5:9: [app] ready \"tcp://localhost:99999\": port \"99999\" is not a number from 1 to 65535");
    CHECK(error_of(app + "ready = \"tcp://:80\"\n") ==
          "notes.toml:5:9: [app] ready \"tcp://:80\": the host is missing");
    CHECK(error_of(app + "ready = \"tcp://h:80/x\"\n") ==
          "notes.toml:5:9: [app] ready \"tcp://h:80/x\": a tcp check takes no path (write tcp://HOST:PORT)");
    CHECK(error_of(app + "ready = \"http://h:x/\"\n") ==
          "notes.toml:5:9: [app] ready \"http://h:x/\": port \"x\" is not a number from 1 to 65535");
    CHECK(error_of("[app]\nname = \"notes\"\nversion = \"1.0.0\"\nready = \"notify\"\n") ==
          "notes.toml:4:9: [app] ready is set but [app] exec is not: a state-only instance has no app to wait for");
    CHECK(error_of(app + "ready = \"command\"\n") ==
          "notes.toml:5:9: [app] ready = \"command\" needs [app] ready_command, the probe whose exit status 0 means "
          "ready");
    CHECK(error_of(app + "ready = \"command\"\nready_command = []\n") ==
          "notes.toml:6:17: [app] ready_command must not be empty");
    CHECK(error_of(app + "ready = \"command\"\nready_command = [\"redis-cli\"]\n") ==
          "notes.toml:6:18: [app] ready_command: the program must be an absolute path, got \"redis-cli\"");
    CHECK(error_of(app + "ready = \"command\"\nready_command = [\"/bin/true\"]\nready_interval = \"0\"\n") ==
          "notes.toml:7:18: [app] ready_interval must be longer than 0");
    CHECK(error_of(app + "ready_command = [\"/bin/true\"]\n") ==
          "notes.toml:5:17: [app] ready_command is set but [app] ready is not \"command\"");
    CHECK(error_of(app + "ready = \"notify\"\nready_interval = \"1s\"\n") ==
          "notes.toml:6:18: [app] ready_interval is set but [app] ready is not \"command\"");
}

TEST_CASE("an unknown user or group is a config error at its position", "[config][errors]") {
    const std::string app = "[app]\nname = \"notes\"\nversion = \"1.0.0\"\nexec = [\"/bin/x\"]\n";  // user on line 5
    CHECK(error_of(app + "user = \"bartl-no-such-user\"\n") ==
          "notes.toml:5:8: [app] user \"bartl-no-such-user\" does not exist in the user database (create it, e.g. with "
          "a sysusers.d(5) entry, or fix the name)");
    CHECK(error_of(app + "user = \"\"\n") ==
          "notes.toml:5:8: [app] user \"\" does not exist in the user database (create it, e.g. with a sysusers.d(5) "
          "entry, or fix the name)");
    CHECK(error_of(app + "user = \"4000000001\"\n") ==
          "notes.toml:5:8: [app] user \"4000000001\" does not exist in the user database (create it, e.g. with a "
          "sysusers.d(5) entry, or fix the name)");
    CHECK(error_of(app + "user = \"root\"\ngroup = \"bartl-no-such-group\"\n") ==
          "notes.toml:6:9: [app] group \"bartl-no-such-group\" does not exist in the group database");
    CHECK(error_of(app + "group = \"root\"\n") ==
          "notes.toml:5:9: [app] group is set but [app] user is not; name the user too");
    CHECK(error_of(app + "user = 0\n") == "notes.toml:5:8: [app] user must be a string, got integer");
}

TEST_CASE("version_pattern must compile with exactly one capture group", "[config][errors]") {
    const std::string app = "[app]\nname = \"notes\"\nversion_command = [\"/bin/v\"]\n";  // pattern on line 4
    CHECK(error_of(app + "version_pattern = \"v=([0-9]\"\n") ==
          "notes.toml:4:19: [app] version_pattern \"v=([0-9]\" is not a POSIX extended regular expression: "
          "Unmatched ( or \\(");
    CHECK(error_of(app + "version_pattern = \"v=[0-9.]+\"\n") ==
          "notes.toml:4:19: [app] version_pattern \"v=[0-9.]+\" has 0 capture groups; it needs exactly one, around the "
          "version (e.g. \"v=([0-9][^ ]*)\")");
    CHECK(error_of(app + "version_pattern = \"(v)=([0-9.]+)\"\n") ==
          "notes.toml:4:19: [app] version_pattern \"(v)=([0-9.]+)\" has 2 capture groups; it needs exactly one, around "
          "the version (e.g. \"v=([0-9][^ ]*)\")");
    CHECK(error_of("[app]\nname = \"notes\"\nversion = \"1.0.0\"\nversion_pattern = \"(.*)\"\n") ==
          "notes.toml:4:19: [app] version_pattern applies to version_command or version_file, not to a literal [app] "
          "version");
    CHECK(error_of(app + "version_pattern = \"(v|version )[0-9.]+\"\n[state]\npaths = [\"/n\"]\n") == "");
}

TEST_CASE("VersionPattern picks the first group of the first match", "[config]") {
    const VersionPattern p("v=([0-9][^ ]*)");
    CHECK(p.groups() == 1);
    CHECK(p.first_group("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0") == "7.0.15");
    CHECK(p.first_group("v=1.0 and v=2.0") == "1.0");
    CHECK_FALSE(p.first_group("Redis server 7.0.15"));
    // Line anchors do not apply across lines: ^ is the start of the text only.
    const VersionPattern anchored("^version=([0-9.]+)");
    CHECK_FALSE(anchored.first_group("# CI\nversion=1.2.3\n"));
    CHECK(VersionPattern("(^|\n)version=([0-9.]+)").groups() == 2);
    CHECK(VersionPattern("version=([0-9.]+)").first_group("# CI\nversion=1.2.3\n") == "1.2.3");
    CHECK_THROWS_AS(VersionPattern("(unclosed"), std::invalid_argument);
}

TEST_CASE("compression must be zstd with a valid level and thread count", "[config][errors]") {
    const std::string hint = " (write \"zstd\", \"zstd:LEVEL\" or \"zstd:LEVEL:THREADS\")";
    CHECK(error_of(head + "[backup]\ncompression = \"gzip\"\n") ==
          "notes.toml:8:15: [backup] compression \"gzip\": unsupported algorithm \"gzip\"" + hint);
    CHECK(error_of(head + "[backup]\ncompression = \"zstd:20\"\n") ==
          "notes.toml:8:15: [backup] compression \"zstd:20\": level \"20\" is not a number from 1 to 19" + hint);
    CHECK(error_of(head + "[backup]\ncompression = \"zstd:0\"\n") ==
          "notes.toml:8:15: [backup] compression \"zstd:0\": level \"0\" is not a number from 1 to 19" + hint);
    CHECK(error_of(head + "[backup]\ncompression = \"zstd:\"\n") ==
          "notes.toml:8:15: [backup] compression \"zstd:\": level \"\" is not a number from 1 to 19" + hint);
    CHECK(error_of(head + "[backup]\ncompression = \"zstd:3:-1\"\n") ==
          "notes.toml:8:15: [backup] compression \"zstd:3:-1\": threads \"-1\" is not a number from 0 (one per "
          "core) to 256" +
              hint);
    CHECK(error_of(head + "[backup]\ncompression = \"zstd:3:2:1\"\n") ==
          "notes.toml:8:15: [backup] compression \"zstd:3:2:1\": too many parts" + hint);
}

TEST_CASE("the store must be file://, s3:// or sftp:// without secrets", "[config][errors]") {
    CHECK(error_of(head + "[backup]\nstore = \"http://backups.example/notes\"\n") ==
          "notes.toml:8:9: [backup] store \"http://backups.example/notes\" must start with file://, s3:// or sftp://");
    CHECK(error_of(head + "[backup]\nstore = \"/var/backups\"\n") ==
          "notes.toml:8:9: [backup] store \"/var/backups\" must start with file://, s3:// or sftp://");
    CHECK(error_of(head + "[backup]\nstore = \"file://var/backups\"\n") ==
          "notes.toml:8:9: [backup] store \"file://var/backups\": a file:// store needs an absolute path "
          "(file:///var/backups/...)");
    CHECK(error_of(head + "[backup]\nstore = \"s3:///prefix\"\n") ==
          "notes.toml:8:9: [backup] store \"s3:///prefix\": the bucket is missing");
    CHECK(error_of(head + "[backup]\nstore = \"sftp://me:hunter2@host/b\"\n") ==
          "notes.toml:8:9: [backup] store holds a password; store secrets in systemd credentials (LoadCredential=), "
          "not in the config file");
    CHECK(error_of(head + "[backup]\nstore = \"sftp://host:0/srv/b\"\n") ==
          "notes.toml:8:9: [backup] store URL \"sftp://host:0/srv/b\": port \"0\" is not a number from 1 to 65535 "
          "(expected sftp://[USER@]HOST[:PORT]/PATH)");
    CHECK(error_of(head + "[backup]\nstore = \"sftp://host/\"\n") ==
          "notes.toml:8:9: [backup] store URL \"sftp://host/\": the root directory cannot be a store "
          "(expected sftp://[USER@]HOST[:PORT]/PATH)");
}

TEST_CASE("[store], [store.s3] and [store.sftp]: remote store settings, checked", "[config][store]") {
    const std::string head = "[app]\nname = \"notes\"\nversion = \"1.0.0\"\n[state]\npaths = [\"/var/lib/notes/data\"]\n"
                             "[backup]\nstore = \"s3://notes-backups/prod\"\n";
    auto c = parse_config(head, "notes.toml");
    CHECK(c.store_settings.s3.region == "us-east-1");
    CHECK(c.store_settings.s3.part_size == 16u << 20);
    CHECK(c.store_settings.sftp.known_hosts == "/etc/ssh/ssh_known_hosts");
    c = parse_config(head + "[store]\ncall_timeout = \"5s\"\n[store.s3]\nendpoint = \"http://127.0.0.1:4568\"\n"
                            "path_style = true\npart_size = \"5MiB\"\nparts_in_flight = 2\n",
                     "notes.toml");
    CHECK(c.store_settings.call_timeout == std::chrono::seconds(5));
    CHECK(c.store_settings.s3.endpoint == "http://127.0.0.1:4568");
    CHECK(c.store_settings.s3.path_style);
    CHECK(c.store_settings.s3.part_size == 5u << 20);
    CHECK(c.store_settings.s3.parts_in_flight == 2);
    auto err = [&](const std::string& tail) {
        try {
            parse_config(head + tail, "notes.toml");
        } catch (const ConfigError& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    CHECK(err("[store.s3]\npart_size = \"1MiB\"\n") ==
          "notes.toml:9:13: [store.s3] part_size must be from 5MiB to 5GiB (S3's part limits)");
    CHECK(err("[store.s3]\npart_size = \"16 MB\"\n").find("is not a size") != std::string::npos);
    CHECK(err("[store.s3]\nendpoint = \"s3.example.com\"\n").find("must be an http:// or https:// URL") !=
          std::string::npos);
    CHECK(err("[store.s3]\nregion = \"EU Central\"\n").find("must be a region name") != std::string::npos);
    CHECK(err("[store.s3]\nparts_in_flight = 0\n").find("from 1 to 64") != std::string::npos);
    CHECK(err("[store.s3]\nendpont = \"http://x\"\n") ==
          "notes.toml:9:1: unknown key 'endpont' in [store.s3]; did you mean 'endpoint'?");
    CHECK(err("[store.sftp]\nknown_hosts = \"relative\"\n").find("must be an absolute path") != std::string::npos);
    CHECK(err("[store]\ns3 = 1\n").find("[store.s3] must be a table, got integer") != std::string::npos);
    CHECK(err("[store.ftp]\nx = 1\n").find("unknown key 'ftp' in [store]") != std::string::npos);
    // No profile named: AWS_PROFILE or "default" decide when the credentials are read.
    CHECK(parse_config(head, "notes.toml").store_settings.s3.profile.empty());
    CHECK(err("[store.s3]\nprofile = \"\"\n") ==
          "notes.toml:9:11: [store.s3] profile must not be empty (leave it out to take AWS_PROFILE from the "
          "environment, else \"default\")");
    CHECK(parse_config(head + "fence_check = \"0\"\n", "notes.toml").fence_check.count() == 0);
    CHECK(err("fence_check = \"often\"\n").find("notes.toml:8:15: [backup] fence_check") == 0);
}

// ---- [[state.databases]] --------------------------------------------------------------

TEST_CASE("[[state.databases]] entries load in order with their fields", "[config][databases]") {
    const auto c = parse_config(head + R"([[state.databases]]
type = "postgresql"
name = "notes"
connection = "host=/run/postgresql user=notes"
[[state.databases]]
type = "mariadb"
name = "notes-cache"
connection = "socket=/run/mysqld/mysqld.sock user=notes"
password_credential = "notes-db"
[[state.databases]]
type = "sqlite"
name = "search"
path = "/var/lib/notes-search/index.db"
)", "notes.toml");
    REQUIRE(c.databases.size() == 3);
    CHECK(c.databases[0].type == Database::Type::postgresql);
    CHECK(c.databases[0].name == "notes");
    CHECK(c.databases[0].connection == "host=/run/postgresql user=notes");
    CHECK(c.databases[0].where == "notes.toml:7:1");
    CHECK(c.databases[0].local());
    CHECK(c.databases[1].type == Database::Type::mariadb);
    CHECK(c.databases[1].type_name() == std::string("mariadb"));
    CHECK(c.databases[1].connection_value("socket") == "/run/mysqld/mysqld.sock");
    CHECK(c.databases[1].connection_value("user") == "notes");
    CHECK(c.databases[1].connection_value("host") == "");
    CHECK(c.databases[1].password_credential == "notes-db");
    CHECK(c.databases[1].env_name() == "NOTES_CACHE");
    CHECK(c.databases[1].local());
    CHECK(c.databases[2].type == Database::Type::sqlite);
    CHECK(c.databases[2].path == "/var/lib/notes-search/index.db");
    CHECK(c.where("[state] databases[2]") == "notes.toml:16:1");
    CHECK(parse_config(head, "notes.toml").databases.empty());
}

TEST_CASE("a database server is local on a socket or localhost, remote elsewhere", "[config][databases]") {
    auto pg = [](const std::string& conn) {
        Database d;
        d.type = Database::Type::postgresql;
        d.connection = conn;
        return d.local();
    };
    CHECK(pg(""));
    CHECK(pg("user=notes"));
    CHECK(pg("host=/run/postgresql"));
    CHECK(pg("host=localhost port=5433"));
    CHECK(pg("host=127.0.0.1"));
    CHECK(pg("hostaddr=::1"));
    CHECK(pg("host=/run/postgresql,localhost"));
    CHECK_FALSE(pg("host=db.example.org"));
    CHECK_FALSE(pg("host=/run/postgresql,db.example.org"));
    CHECK_FALSE(pg("host=localhost hostaddr=10.0.0.5"));
    Database my;
    my.type = Database::Type::mariadb;
    my.connection = "host=db.example.org user=notes";
    CHECK_FALSE(my.local());
    my.connection = "host=localhost user=notes";
    CHECK(my.local());
}

TEST_CASE("[[state.databases]] errors name FILE:LINE:COLUMN", "[config][databases][errors]") {
    const std::string db = "[[state.databases]]\n";  // line 7
    CHECK(error_of(head + "[state.databases]\ntype = \"sqlite\"\n") ==
          "notes.toml:7:1: [state] databases must be an array of tables ([[state.databases]]), got table");
    CHECK(error_of(head + db + "name = \"notes\"\npath = \"/var/lib/x.db\"\n") ==
          "notes.toml:7:1: [[state.databases]] type is required: \"postgresql\", \"mariadb\" or \"sqlite\"");
    CHECK(error_of(head + db + "type = \"mysql\"\nname = \"notes\"\n") ==
          "notes.toml:8:8: [[state.databases]] type \"mysql\" is not one of \"postgresql\", \"mariadb\", \"sqlite\"");
    CHECK(error_of(head + db + "type = \"sqlite\"\npath = \"/var/lib/x.db\"\n") ==
          "notes.toml:7:1: [[state.databases]] name is required: the database's name (sqlite: a label)");
    CHECK(error_of(head + db + "type = \"sqlite\"\nname = \"no tes\"\npath = \"/x.db\"\n") ==
          "notes.toml:9:8: [[state.databases]] name \"no tes\" is not a valid name: use letters, digits, '_' and "
          "'-', at most 63 characters");
    CHECK(error_of(head + db + "type = \"sqlite\"\nnmae = \"notes\"\n") ==
          "notes.toml:9:1: unknown key 'nmae' in [[state.databases]]; did you mean 'name'?");
    CHECK(error_of(head + db + "type = \"postgresql\"\nname = \"notes\"\n") ==
          "notes.toml:7:1: [[state.databases]] \"notes\" of type \"postgresql\" needs connection (a libpq conninfo "
          "such as \"host=/run/postgresql user=notes\")");
    CHECK(error_of(head + db + "type = \"mariadb\"\nname = \"notes\"\n") ==
          "notes.toml:7:1: [[state.databases]] \"notes\" of type \"mariadb\" needs connection (such as "
          "\"socket=/run/mysqld/mysqld.sock user=notes\")");
    CHECK(error_of(head + db + "type = \"sqlite\"\nname = \"notes\"\n") ==
          "notes.toml:7:1: [[state.databases]] \"notes\" of type \"sqlite\" needs path: the database file");
    CHECK(error_of(head + db + "type = \"sqlite\"\nname = \"notes\"\nconnection = \"user=x\"\n") ==
          "notes.toml:10:14: [[state.databases]] connection does not apply to type \"sqlite\"; set path");
    CHECK(error_of(head + db + "type = \"postgresql\"\nname = \"notes\"\npath = \"/x.db\"\nconnection = \"\"\n") ==
          "notes.toml:10:8: [[state.databases]] path applies to type \"sqlite\" only; a postgresql database is "
          "reached by connection");
    CHECK(error_of(head + db + "type = \"sqlite\"\nname = \"n\"\npath = \"/x.db\"\npassword_credential = \"p\"\n") ==
          "notes.toml:11:23: [[state.databases]] password_credential does not apply to type \"sqlite\"");
    CHECK(error_of(head + db + "type = \"postgresql\"\nname = \"n\"\nconnection = \"\"\npassword_credential = "
                               "\"a/b\"\n") ==
          "notes.toml:11:23: [[state.databases]] password_credential \"a/b\" is not a credential name (no '/')");
}

TEST_CASE("[[state.databases]] names are unique, also as BARTL_DB_ variables", "[config][databases][errors]") {
    const std::string two = head + R"([[state.databases]]
type = "sqlite"
name = "notes"
path = "/var/lib/a.db"
[[state.databases]]
type = "postgresql"
)";  // the second name is on line 13
    CHECK(error_of(two + "name = \"notes\"\nconnection = \"\"\n") ==
          "notes.toml:13:8: [[state.databases]] name \"notes\" is declared twice (also at notes.toml:7:1)");
    CHECK(error_of(two + "name = \"NOTES\"\nconnection = \"\"\n") ==
          "notes.toml:13:8: [[state.databases]] name \"NOTES\" and \"notes\" (at notes.toml:7:1) both give "
          "BARTL_DB_NOTES_*; rename one");
}

TEST_CASE("connection strings are checked before any server is asked", "[config][databases][errors]") {
    auto conn = [](const std::string& type, const std::string& text) {
        return error_of(head + "[[state.databases]]\ntype = \"" + type + "\"\nname = \"n\"\nconnection = \"" + text +
                        "\"\n");
    };
    const std::string at = "notes.toml:10:14: [[state.databases]] connection ";
    CHECK(conn("postgresql", "host=/run/postgresql dbname=other") ==
          at + "\"host=/run/postgresql dbname=other\": leave dbname out; the database is the entry's name");
    CHECK(conn("postgresql", "user=n password=secret") ==
          at + "\"user=n password=secret\": a password does not belong in the configuration; name a systemd "
               "credential in password_credential");
    CHECK(conn("postgresql", "postgresql://localhost/n") ==
          at + "\"postgresql://localhost/n\": write a conninfo string of KEY=VALUE words (\"host=/run/postgresql "
               "user=notes\"), not a URI");
    CHECK(conn("mariadb", "socket=/run/mysqld/mysqld.sock user=n password=x") ==
          at + "\"socket=/run/mysqld/mysqld.sock user=n password=x\": unknown key 'password' (keys: socket, user, "
               "host, port; the password comes from password_credential)");
    CHECK(conn("mariadb", "socket=run/mysqld.sock") ==
          at + "\"socket=run/mysqld.sock\": socket must be an absolute path, got \"run/mysqld.sock\"");
    CHECK(conn("mariadb", "host=db port=99999") == at + "\"host=db port=99999\": port must be 1..65535, got \"99999\"");
    CHECK(conn("mariadb", "user") ==
          at + "\"user\": \"user\" is not KEY=VALUE (keys: socket, user, host, port)");
    CHECK(conn("mariadb", "socket=/s host=db") == at + "\"socket=/s host=db\": set socket or host, not both");
    CHECK(conn("mariadb", "host=db port=3306 user=n") == "");
}

TEST_CASE("a SQLite path lies outside the state directories and bartl's own", "[config][databases][errors]") {
    auto path = [](const std::string& p) {
        return error_of(head + "[[state.databases]]\ntype = \"sqlite\"\nname = \"n\"\npath = \"" + p + "\"\n");
    };
    const std::string at = "notes.toml:10:8: [[state.databases]] path ";
    CHECK(path("/var/lib/notes-db/notes.db") == "");
    CHECK(path("notes.db") == at + "must be an absolute path, got \"notes.db\"");
    CHECK(path("/var/lib/x/../notes.db") == at + "\"/var/lib/x/../notes.db\" must be a normalised file name (no "
                                                 "'..', no trailing '/')");
    CHECK(path("/var/lib/db/") ==
          at + "\"/var/lib/db/\" must be a normalised file name (no '..', no trailing '/')");
    CHECK(path("/var/lib/notes/notes.db") ==
          at + "\"/var/lib/notes/notes.db\" is inside [state] paths[0] \"/var/lib/notes\": a live SQLite file must "
               "not be archived as a plain file; move it out of the state directory or drop this entry");
    CHECK(path("/var/lib/bartl/notes/x.db") == at + "\"/var/lib/bartl/notes/x.db\" is inside bartl's own directory "
                                                    "/var/lib/bartl/notes");
    CHECK(error_of(head + R"([[state.databases]]
type = "sqlite"
name = "a"
path = "/var/lib/x.db"
[[state.databases]]
type = "sqlite"
name = "b"
path = "/var/lib/x.db"
)") == "notes.toml:14:8: [[state.databases]] path \"/var/lib/x.db\" is declared twice (also \"a\" at notes.toml:7:1)");
}

TEST_CASE("[backup] encrypt_to, encrypt_to_file and identity_file", "[config][encryption]") {
    const auto c = parse_config(head + "[backup]\nencrypt_to = [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\", "
                                       "\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN host\"]\n"
                                       "encrypt_to_file = \"/etc/bartl/recipients\"\nidentity_file = \"/root/age.key\"\n",
                                "notes.toml");
    REQUIRE(c.encrypt_to.size() == 2);
    CHECK(c.encrypt_to[1].rfind("ssh-ed25519 AAAA", 0) == 0);
    CHECK(c.encrypt_to_file == fs::path("/etc/bartl/recipients"));
    CHECK(c.identity_file == fs::path("/root/age.key"));
    CHECK(c.encrypts());
    CHECK_FALSE(parse_config(head, "notes.toml").encrypts());
    CHECK(parse_config(head + "[backup]\nencrypt_to_file = \"/etc/r\"\n", "notes.toml").encrypts());

    CHECK(error_of(head + "[backup]\nencrypt_to = \"age1abc\"\n") ==
          "notes.toml:8:14: [backup] encrypt_to must be an array of age recipients, got string");
    CHECK(error_of(head + "[backup]\nencrypt_to = []\n") ==
          "notes.toml:8:14: [backup] encrypt_to is empty: list at least one recipient, or remove the key to store "
          "backups unencrypted");
    CHECK(error_of(head + "[backup]\nencrypt_to = [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\", 3]\n") ==
          "notes.toml:8:81: [backup] encrypt_to[1] must be a string, got integer");
    CHECK(error_of(head + "[backup]\nencrypt_to = [\"AGE-SECRET-KEY-1XYZ\"]\n") ==
          "notes.toml:8:15: [backup] encrypt_to[0] \"AGE-SECRET-KEY-1XYZ\" is not an age recipient (write \"age1...\" "
          "as age-keygen prints it, or an \"ssh-ed25519 AAAA...\" public key line)");
    CHECK(error_of(head + "[backup]\nidentity_file = \"age.key\"\n") ==
          "notes.toml:8:17: [backup] identity_file must be an absolute path, got \"age.key\"");
    CHECK(error_of(head + "[backup]\nencrypt_to_file = \"recipients\"\n") ==
          "notes.toml:8:19: [backup] encrypt_to_file must be an absolute path, got \"recipients\"");
}

TEST_CASE("[backup] signing_key_file, trusted_keys and trusted_keys_file", "[config][signing]") {
    const auto c = parse_config(head + "[backup]\nsigning_key_file = \"/etc/bartl/signing\"\n"
                                       "trusted_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN a\", "
                                       "\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN b\"]\n",
                                "notes.toml");
    CHECK(c.signing_key_file == fs::path("/etc/bartl/signing"));
    REQUIRE(c.trusted_keys.size() == 2);
    CHECK(c.where("[backup] trusted_keys[1]") == "notes.toml:9:103");
    CHECK(c.requires_signature());
    CHECK_FALSE(parse_config(head, "notes.toml").requires_signature());
    CHECK(parse_config(head + "[backup]\ntrusted_keys_file = \"/etc/k\"\n", "notes.toml").requires_signature());
    CHECK(error_of(head + "[backup]\ntrusted_keys = \"ssh-ed25519 AAAA\"\n") ==
          "notes.toml:8:16: [backup] trusted_keys must be an array of \"ssh-ed25519 AAAA... COMMENT\" public key "
          "lines, got string");
    CHECK(error_of(head + "[backup]\ntrusted_keys = []\n") ==
          "notes.toml:8:16: [backup] trusted_keys is empty: list at least one public key, or remove the key to "
          "restore unsigned backups");
    CHECK(error_of(head + "[backup]\ntrusted_keys = [1]\n") ==
          "notes.toml:8:17: [backup] trusted_keys[0] must be a string, got integer");
    CHECK(error_of(head + "[backup]\nsigning_key_file = \"key\"\n") ==
          "notes.toml:8:20: [backup] signing_key_file must be an absolute path, got \"key\"");
    CHECK(error_of(head + "[backup]\ntrusted_keys_file = \"keys\"\n") ==
          "notes.toml:8:21: [backup] trusted_keys_file must be an absolute path, got \"keys\"");
}

TEST_CASE("hints repeat how bartld named the instance: --config FILE or --instance NAME", "[config]") {
    const auto file = fixtures / "minimal.toml";
    const Config by_file = load_config(file);
    CHECK(by_file.named_by_file);
    CHECK(bartld_command(by_file) == "bartld --config " + file.string());
    CHECK(bartlctl_command(by_file, "restore-from", "1a2b3c4d") ==
          "bartlctl restore-from -c " + file.string() + " 1a2b3c4d");
    CHECK(bartlctl_command(by_file, "init-store") == "bartlctl init-store -c " + file.string());
    CHECK(init_store_commands(by_file) ==
          "`bartld --config " + file.string() + " --init-store` (or `bartlctl init-store -c " + file.string() + "`)");

    const Config by_name = load_config(file, "notes-eu");
    CHECK_FALSE(by_name.named_by_file);
    CHECK(bartld_command(by_name) == "bartld --instance notes-eu");
    CHECK(bartlctl_command(by_name, "adopt", "VERSION") == "bartlctl -i notes-eu adopt VERSION");
    CHECK(init_store_commands(by_name) == "`bartld --instance notes-eu --init-store` (or `bartlctl -i notes-eu init-store`)");

    // From text (no file): by instance name.
    const Config from_text = parse_config("[app]\nname = \"notes\"\nversion = \"1.0.0\"\n[state]\npaths = [\"/var/lib/notes\"]\n",
                                          "notes.toml");
    CHECK(bartld_command(from_text) == "bartld --instance notes");
}
