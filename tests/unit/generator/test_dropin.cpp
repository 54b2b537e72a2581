// The drop-ins bartl-generator writes (src/generator/dropin.hpp, bartl-generator(8)): what a
// configuration needs in the unit, and the unit file text that says it. Configurations are
// parsed by the real config parser; whole drop-ins are compared, since their text is what
// systemd reads.
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

#include "config/config.hpp"
#include "core/error.hpp"
#include "generator/dropin.hpp"

using namespace bartl;
namespace fs = std::filesystem;

namespace {

const UnitTarget notes_unit{"bartld@notes.service", "/var/lib/bartl/notes"};
const fs::path helper = "/usr/libexec/bartl/bartl-prepare-dirs";

// As bartl-generator loads it: [app] user and group as written, not looked up.
Config config(const std::string& state_and_backup, const std::string& app = "") {
    return parse_config("[app]\nname = \"notes\"\nversion = \"1.0.0\"\n" + app + state_and_backup, "notes.toml", "notes",
                        {.resolve_users = false});
}

// The drop-in without its last line, the fingerprint (tested on its own below), which must
// be there and be the needs' own.
std::string dropin(const std::string& state_and_backup, const std::string& app = "") {
    const UnitNeeds needs = unit_needs(config(state_and_backup, app), notes_unit);
    std::string text = render_dropin(needs, "/etc/bartl/notes.toml", helper);
    const std::string last = std::string(kSandboxEnv) + "=" + sandbox_fingerprint(needs) + "\n";
    REQUIRE(text.ends_with("\nEnvironment=" + last));
    text.resize(text.size() - last.size() - std::string("Environment=").size());
    return text;
}

const std::string header =
    "# Written by bartl-generator(8) from /etc/bartl/notes.toml at boot and at each \"systemctl daemon-reload\";\n"
    "# edits here are lost. Settings of your own belong in a drop-in of their own.\n";

}  // namespace

TEST_CASE("the appliance's configuration: its state's parent, its store, mounts for both") {
    CHECK(dropin("[state]\npaths = [\"/var/lib/notes/data\"]\n[backup]\nstore = \"file:///var/backups/bartl/notes\"\n") ==
          header +
              "\n[Unit]\n"
              "RequiresMountsFor=/var/backups/bartl/notes\n"
              "RequiresMountsFor=/var/lib/notes/data\n"
              "\n[Service]\n"
              "ExecStartPre=+/usr/libexec/bartl/bartl-prepare-dirs --mode=0755 /var/lib/notes\n"
              "ReadWritePaths=-/var/backups/bartl/notes\n"
              "ReadWritePaths=-/var/lib/notes\n");
}

TEST_CASE("the app's group owns the state's parents, closed to others") {
    const std::string state = "[state]\npaths = [\"/var/lib/notes/data\"]\n";
    const std::string tail = " /var/lib/notes\nReadWritePaths=-/var/lib/notes\n";
    const std::string head = header + "\n[Unit]\nRequiresMountsFor=/var/lib/notes/data\n\n[Service]\n"
                             "ExecStartPre=+/usr/libexec/bartl/bartl-prepare-dirs --mode=0750 ";
    CHECK(dropin(state, "user = \"notes\"\ngroup = \"www-data\"\n") == head + "--group=www-data" + tail);
    // Without [app] group, the user's primary group, looked up at start.
    CHECK(dropin(state, "user = \"notes\"\n") == head + "--group-of=notes" + tail);
    CHECK(dropin(state, "user = \"4711\"\n") == head + "--group-of=4711" + tail);
    // Never looked up here: a user this host does not know yet is no error.
    CHECK_NOTHROW(dropin(state, "user = \"no-such-user-on-this-host\"\n"));
}

TEST_CASE("no store: only the state") {
    const auto n = unit_needs(config("[state]\npaths = [\"/srv/notes/data\"]\n"), notes_unit);
    CHECK(n.read_write == std::vector<fs::path>{"/srv/notes"});
    CHECK(n.mounts == std::vector<fs::path>{"/srv/notes/data"});
    CHECK(n.state_parents == std::vector<fs::path>{"/srv/notes"});
    CHECK(n.private_dirs.empty());
    CHECK_FALSE(n.network);
    CHECK(n.warnings.empty());
}

TEST_CASE("remote stores want the network, and need no path") {
    for (const std::string store : {"s3://bucket/notes", "sftp://backup.example.org/srv/notes"}) {
        INFO(store);
        const auto n = unit_needs(config("[state]\npaths = [\"/var/lib/notes/data\"]\n[backup]\nstore = \"" + store + "\"\n"),
                                  notes_unit);
        CHECK(n.network);
        CHECK(n.read_write == std::vector<fs::path>{"/var/lib/notes"});
        CHECK(n.mounts == std::vector<fs::path>{"/var/lib/notes/data"});
    }
    CHECK(dropin("[state]\npaths = [\"/var/lib/notes/data\"]\n[backup]\nstore = \"s3://bucket/notes\"\n") ==
          header +
              "\n[Unit]\n"
              "Wants=network-online.target\n"
              "After=network-online.target\n"
              "RequiresMountsFor=/var/lib/notes/data\n"
              "\n[Service]\n"
              "ExecStartPre=+/usr/libexec/bartl/bartl-prepare-dirs --mode=0755 /var/lib/notes\n"
              "ReadWritePaths=-/var/lib/notes\n");
}

TEST_CASE("a local file store never wants the network") {
    const auto n = unit_needs(config("[state]\npaths = [\"/var/lib/notes/data\"]\n[backup]\nstore = \"file:///mnt/backup/notes\"\n"),
                              notes_unit);
    CHECK_FALSE(n.network);
    CHECK(n.read_write == std::vector<fs::path>{"/mnt/backup/notes", "/var/lib/notes"});
    // The store is opened and waited for, never created: missing reads as "not mounted".
    CHECK(n.state_parents == std::vector<fs::path>{"/var/lib/notes"});
}

TEST_CASE("a bartl_dir outside the unit's StateDirectory= is opened, mounted and created closed") {
    CHECK(dropin("[state]\npaths = [\"/srv/notes/data\"]\nbartl_dir = \"/srv/notes/bartl\"\n") ==
          header +
              "\n[Unit]\n"
              "RequiresMountsFor=/srv/notes/bartl\n"
              "RequiresMountsFor=/srv/notes/data\n"
              "\n[Service]\n"
              "ExecStartPre=+/usr/libexec/bartl/bartl-prepare-dirs --mode=0755 /srv/notes\n"
              "ExecStartPre=+/usr/libexec/bartl/bartl-prepare-dirs --mode=0750 /srv/notes/bartl\n"
              // /srv/notes covers /srv/notes/bartl.
              "ReadWritePaths=-/srv/notes\n");
}

TEST_CASE("the default bartl_dir is the StateDirectory= systemd creates itself") {
    const auto n = unit_needs(config("[state]\npaths = [\"/var/lib/notes/data\"]\n"), notes_unit);
    CHECK(n.private_dirs.empty());
    CHECK(std::find(n.read_write.begin(), n.read_write.end(), fs::path("/var/lib/bartl/notes")) == n.read_write.end());
    // bartld.service: StateDirectory=bartl, and bartl_dir /var/lib/bartl/APP inside it.
    const auto single = unit_needs(parse_config("[app]\nname = \"notes\"\nversion = \"1.0.0\"\n[state]\npaths = "
                                                "[\"/var/lib/notes/data\"]\n",
                                                "bartl.toml"),
                                   {"bartld.service", "/var/lib/bartl"});
    CHECK(single.private_dirs.empty());
    CHECK(single.mounts == std::vector<fs::path>{"/var/lib/notes/data"});
}

TEST_CASE("a state path whose parent lies in the StateDirectory= needs nothing for it") {
    const auto n = unit_needs(config("[state]\npaths = [\"/var/lib/bartl/notes/data\"]\nbartl_dir = \"/srv/nb\"\n"),
                              notes_unit);
    CHECK(n.read_write == std::vector<fs::path>{"/srv/nb"});
    CHECK(n.state_parents.empty());
    CHECK(n.mounts == std::vector<fs::path>{"/srv/nb", "/var/lib/bartl/notes/data"});
}

TEST_CASE("several state paths: one entry per parent, nested ones covered by the outer") {
    const auto n = unit_needs(config("[state]\npaths = [\"/srv/notes/media\", \"/srv/notes/data\", "
                                     "\"/srv/notes/cache/thumbs\", \"/var/lib/notes/db\"]\n"),
                              notes_unit);
    CHECK(n.read_write == std::vector<fs::path>{"/srv/notes", "/var/lib/notes"});
    // Both levels are created for the app (outer first), since both lead to its state.
    CHECK(n.state_parents == std::vector<fs::path>{"/srv/notes", "/srv/notes/cache", "/var/lib/notes"});
    CHECK(n.mounts == std::vector<fs::path>{"/srv/notes/cache/thumbs", "/srv/notes/data", "/srv/notes/media",
                                            "/var/lib/notes/db"});
}

TEST_CASE("a state path directly in / is named in a warning, not opened") {
    const auto n = unit_needs(config("[state]\npaths = [\"/var/lib/notes/data\", \"/notes\"]\n"), notes_unit);
    CHECK(n.read_write == std::vector<fs::path>{"/var/lib/notes"});
    CHECK(n.mounts == std::vector<fs::path>{"/notes", "/var/lib/notes/data"});
    REQUIRE(n.warnings.size() == 1);
    CHECK(n.warnings[0] ==
          "notes.toml:5:33: [state] paths[1] \"/notes\" lies directly in /, which the unit cannot open for writing; "
          "move it one level down, e.g. to /srv/notes");
}

TEST_CASE("state the sandbox hides or empties is named in a warning, not opened") {
    const auto n = unit_needs(config("[state]\npaths = [\"/home/ann/notes\", \"/tmp/cache\", \"/var/tmp/x/y\", "
                                     "\"/root/n\", \"/run/user/0/n\", \"/homestead/n\"]\n"),
                              notes_unit);
    CHECK(n.read_write == std::vector<fs::path>{"/homestead"});
    REQUIRE(n.warnings.size() == 5);
    CHECK(n.warnings[0] == "notes.toml:5:10: [state] paths[0] \"/home/ann/notes\" lies under /home, which the unit "
                           "cannot see (ProtectHome=yes); move it, e.g. to /srv/notes");
    CHECK(n.warnings[1].find("\"/tmp/cache\" lies under /tmp, which the unit gets empty at every start "
                             "(PrivateTmp=yes)") != std::string::npos);
    CHECK(n.warnings[2].find("under /var/tmp,") != std::string::npos);
    CHECK(n.warnings[3].find("under /root,") != std::string::npos);
    CHECK(n.warnings[4].find("under /run/user,") != std::string::npos);
}

TEST_CASE("paths with spaces, quotes, backslashes, % and $ reach systemd as written") {
    CHECK(dropin("[state]\npaths = ['/srv/my notes/100% \"da$h\\x/data']\n[backup]\nstore = \"file:///mnt/b%20k\"\n") ==
          header +
              "\n[Unit]\n"
              "RequiresMountsFor=\"/mnt/b k\"\n"
              "RequiresMountsFor=\"/srv/my notes/100%% \\\"da$h\\\\x/data\"\n"
              "\n[Service]\n"
              "ExecStartPre=+/usr/libexec/bartl/bartl-prepare-dirs --mode=0755 \"/srv/my notes/100%% "
              "\\\"da$$h\\\\x\"\n"
              "ReadWritePaths=\"-/mnt/b k\"\n"
              "ReadWritePaths=\"-/srv/my notes/100%% \\\"da$h\\\\x\"\n");
}

TEST_CASE("unit_word") {
    CHECK(unit_word("/var/lib/notes") == "/var/lib/notes");
    CHECK(unit_word("-/a_b.c+d:e,f@g=h~i") == "-/a_b.c+d:e,f@g=h~i");
    CHECK(unit_word("/a b") == "\"/a b\"");
    CHECK(unit_word("/a'b") == "\"/a'b\"");
    CHECK(unit_word("/a\"b") == "\"/a\\\"b\"");
    CHECK(unit_word("/a\\b") == "\"/a\\\\b\"");
    CHECK(unit_word("/50%") == "\"/50%%\"");
    CHECK(unit_word("/$HOME") == "\"/$HOME\"");
    CHECK(unit_word("/$HOME", true) == "\"/$$HOME\"");
    CHECK(unit_word("/caf\xc3\xa9") == "\"/caf\xc3\xa9\"");
    CHECK(unit_word("") == "\"\"");
    CHECK_THROWS_WITH(unit_word("/a\nb"),
                      "\"/a\\x0ab\" holds a control character, which no unit file line can carry");
    CHECK_THROWS_AS(unit_word("/a\x7f"), std::invalid_argument);
    CHECK_THROWS_AS(unit_word("/a\tb"), std::invalid_argument);
}

TEST_CASE("a path no unit file line can carry is refused, not written") {
    const auto n = unit_needs(config("[state]\npaths = [\"/srv/a\\nb/data\"]\n"), notes_unit);
    CHECK_THROWS_AS(render_dropin(n, "/etc/bartl/notes.toml", helper), std::invalid_argument);
}

TEST_CASE("services the state lives in are wanted and ordered before") {
    UnitNeeds n = unit_needs(config("[state]\npaths = [\"/var/lib/notes/data\"]\n"), notes_unit);
    n.services = {"postgresql.service"};
    CHECK(render_dropin(n, "/etc/bartl/notes.toml", helper) ==
          header +
              "\n[Unit]\n"
              "Wants=postgresql.service\n"
              "After=postgresql.service\n"
              "RequiresMountsFor=/var/lib/notes/data\n"
              "\n[Service]\n"
              "ExecStartPre=+/usr/libexec/bartl/bartl-prepare-dirs --mode=0755 /var/lib/notes\n"
              "ReadWritePaths=-/var/lib/notes\n"
              "Environment=BARTL_SANDBOX_FINGERPRINT=" + sandbox_fingerprint(n) + "\n");
}

TEST_CASE("a file store URL that names no directory is a configuration error") {
    CHECK_THROWS_AS(unit_needs(config("[state]\npaths = [\"/var/lib/notes/data\"]\n[backup]\nstore = \"file:///x%zz\"\n"),
                               notes_unit),
                    ConfigError);
}

TEST_CASE("the sandbox fingerprint changes with everything the drop-in grants, and only with that") {
    const std::string base = "[state]\npaths = [\"/srv/notes/data\"]\n[backup]\nstore = \"file:///var/backups/notes\"\n";
    const auto fp = [](const std::string& state_and_backup, const std::string& app = "") {
        return sandbox_fingerprint(unit_needs(config(state_and_backup, app), notes_unit));
    };
    const std::string f = fp(base);
    CHECK(f.size() == 16);
    CHECK(f.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(fp(base) == f);  // stable
    // Not granted by the drop-in: the schedule, retention, hooks.
    CHECK(fp(base + "interval = \"1h\"\nkeep_last = 3\n") == f);
    // Granted: each of these changes it.
    CHECK(fp("[state]\npaths = [\"/srv/notes/db\"]\n[backup]\nstore = \"file:///var/backups/notes\"\n") != f);
    CHECK(fp("[state]\npaths = [\"/srv/notes/data\", \"/srv/other/x\"]\n[backup]\nstore = \"file:///var/backups/notes\"\n") != f);
    CHECK(fp("[state]\npaths = [\"/srv/notes/data\"]\n[backup]\nstore = \"file:///mnt/backups\"\n") != f);
    CHECK(fp("[state]\npaths = [\"/srv/notes/data\"]\n[backup]\nstore = \"s3://bucket/notes\"\n") != f);
    CHECK(fp("[state]\npaths = [\"/srv/notes/data\"]\nbartl_dir = \"/srv/bartl\"\n[backup]\nstore = \"file:///var/backups/notes\"\n") != f);
    CHECK(fp(base, "user = \"notes\"\n") != f);
    CHECK(fp(base, "user = \"notes\"\ngroup = \"www-data\"\n") != fp(base, "user = \"notes\"\n"));
    // Length framing: moving a character between two items is a different fingerprint.
    UnitNeeds a, b;
    a.user = "ab";
    a.group = "c";
    b.user = "a";
    b.group = "bc";
    CHECK(sandbox_fingerprint(a) != sandbox_fingerprint(b));
}

TEST_CASE("bartld refuses to run in a unit whose drop-in was written for another configuration") {
    const std::string base = "[state]\npaths = [\"/srv/notes/data\"]\n[backup]\nstore = \"file:///var/backups/notes\"\n";
    const Config then = config(base);
    const std::string written = sandbox_fingerprint(unit_needs(then, notes_unit));
    // Not started by a generated unit: nothing to check.
    CHECK_NOTHROW(check_sandbox_fits(then, "", notes_unit.state_directory, notes_unit.unit));
    CHECK_NOTHROW(check_sandbox_fits(then, written, notes_unit.state_directory, notes_unit.unit));
    CHECK_NOTHROW(check_sandbox_fits(config(base + "keep_last = 2\n"), written, notes_unit.state_directory,
                                     notes_unit.unit));
    const Config now = config("[state]\npaths = [\"/srv/notes/data\", \"/srv/notes2/data\"]\n[backup]\nstore = "
                              "\"file:///var/backups/notes\"\n");
    try {
        check_sandbox_fits(now, written, notes_unit.state_directory, notes_unit.unit);
        FAIL("no error");
    } catch (const ConfigError& e) {
        const std::string what = e.what();
        CHECK(what.starts_with(then.file.string() + ": bartld@notes.service was set up by bartl-generator(8)"));
        CHECK(what.find("systemctl daemon-reload") != std::string::npos);
        CHECK(static_cast<int>(e.exit_code()) == 78);
    }
}

TEST_CASE("declared databases: local servers wanted and ordered before, a remote one waits for the network, "
          "a SQLite file's directory opened") {
    const std::string state = "[state]\npaths = [\"/var/lib/notes/data\"]\n"
                              "[[state.databases]]\ntype = \"postgresql\"\nname = \"notes\"\n"
                              "connection = \"host=/run/postgresql user=notes\"\n"
                              "[[state.databases]]\ntype = \"mariadb\"\nname = \"cache\"\n"
                              "connection = \"socket=/run/mysqld/mysqld.sock user=notes\"\n"
                              "[[state.databases]]\ntype = \"postgresql\"\nname = \"other\"\nconnection = \"\"\n"
                              "[[state.databases]]\ntype = \"sqlite\"\nname = \"search\"\n"
                              "path = \"/srv/notes-search/index.db\"\n";
    CHECK(dropin(state) == header +
                               "\n[Unit]\n"
                               "Wants=mariadb.service\n"
                               "After=mariadb.service\n"
                               "Wants=postgresql.service\n"
                               "After=postgresql.service\n"
                               "RequiresMountsFor=/srv/notes-search\n"
                               "RequiresMountsFor=/var/lib/notes/data\n"
                               "\n[Service]\n"
                               "ExecStartPre=+/usr/libexec/bartl/bartl-prepare-dirs --mode=0755 /var/lib/notes\n"
                               "ReadWritePaths=-/srv/notes-search\n"
                               "ReadWritePaths=-/var/lib/notes\n");
    const auto remote = unit_needs(config("[state]\npaths = [\"/var/lib/notes/data\"]\n[[state.databases]]\n"
                                          "type = \"postgresql\"\nname = \"notes\"\n"
                                          "connection = \"host=db.example.org user=notes\"\n"),
                                   notes_unit);
    CHECK(remote.network);
    CHECK(remote.services.empty());
    const auto hidden = unit_needs(config("[state]\npaths = [\"/var/lib/notes/data\"]\n[[state.databases]]\n"
                                          "type = \"sqlite\"\nname = \"n\"\npath = \"/home/notes/n.db\"\n"),
                                   notes_unit);
    REQUIRE(hidden.warnings.size() == 1);
    CHECK(hidden.warnings[0] == "notes.toml:6:1: [[state.databases]] path \"/home/notes/n.db\" lies under /home, "
                                "which the unit cannot see (ProtectHome=yes); move it, e.g. to /srv/n.db");
}

TEST_CASE("bartld, which resolves [app] user, computes the fingerprint bartl-generator wrote without") {
    // bartl-generator loads the file without the user database, bartld with it: the user's
    // primary group filled in, a numeric UID turned into its name. Neither may change the
    // fingerprint, or every instance with [app] user fails at start with exit 78.
    const std::string base = "[state]\npaths = [\"/srv/notes/data\"]\n[backup]\nstore = \"file:///var/backups/notes\"\n";
    for (const std::string app : {"user = \"root\"\n", "user = \"0\"\n", "user = \"root\"\ngroup = \"0\"\n"}) {
        INFO(app);
        const Config unresolved = config(base, app);
        const Config resolved = parse_config("[app]\nname = \"notes\"\nversion = \"1.0.0\"\n" + app + base, "notes.toml",
                                             "notes", {.resolve_users = true});
        REQUIRE(resolved.run_as);
        CHECK(resolved.run_as->user == "root");
        const std::string written = sandbox_fingerprint(unit_needs(unresolved, notes_unit));
        CHECK(sandbox_fingerprint(unit_needs(resolved, notes_unit)) == written);
        CHECK_NOTHROW(check_sandbox_fits(resolved, written, notes_unit.state_directory, notes_unit.unit));
    }
}
