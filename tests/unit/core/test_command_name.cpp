// command_name(): what a command's journal lines and messages are named after.
#include <catch2/catch.hpp>

#include "core/command_name.hpp"

using namespace bartl;
using V = std::vector<std::string>;

TEST_CASE("command_name: a program is named by its base name", "[core]") {
    CHECK(command_name(V{"/usr/bin/redis-server", "/etc/redis/redis.conf"}) == "redis-server");
    CHECK(command_name(V{"radicale"}) == "radicale");
    CHECK(command_name(V{"/opt/app/bin/start"}, "app") == "start");
    CHECK(command_name(V{}) == "");
    CHECK(command_name(V{}, "notes") == "");
}

TEST_CASE("command_name: an interpreter is named by the script it runs", "[core]") {
    CHECK(command_name(V{"/usr/bin/python3", "/src/examples/notes/engine/1.0.0/notes.py", "--port", "8080"}) ==
          "notes.py");
    CHECK(command_name(V{"/usr/bin/python3", "-u", "-B", "/opt/notes.py"}) == "notes.py");
    CHECK(command_name(V{"python3.11", "-W", "ignore", "-X", "dev", "serve.py"}) == "serve.py");
    CHECK(command_name(V{"python3", "-Wignore", "serve.py"}) == "serve.py");
    CHECK(command_name(V{"/usr/bin/python3", "-m", "http.server", "8000"}) == "http.server");
    CHECK(command_name(V{"/bin/sh", "/usr/share/app/bartl/init"}) == "init");
    CHECK(command_name(V{"/bin/sh", "-e", "-x", "/opt/migrate.sh"}) == "migrate.sh");
    CHECK(command_name(V{"/bin/bash", "-o", "pipefail", "+x", "run.sh"}) == "run.sh");
    CHECK(command_name(V{"/usr/bin/perl", "-w", "-I/usr/share/perl5", "-Mstrict", "app.pl"}) == "app.pl");
    CHECK(command_name(V{"/usr/bin/ruby", "-rjson", "-I/usr/share/lib", "app.rb"}) == "app.rb");
    CHECK(command_name(V{"/usr/bin/node", "--require", "dotenv/config", "/srv/app/server.js"}) == "server.js");
    CHECK(command_name(V{"/usr/bin/ruby3.1", "app.rb"}) == "app.rb");
    CHECK(command_name(V{"/bin/sh", "--", "-weird-name.sh"}) == "-weird-name.sh");
}

TEST_CASE("command_name: an option's value is not taken for the script", "[core]") {
    // Python reads a cluster's letters up to one that takes a value: the rest, or the next argument.
    CHECK(command_name(V{"/usr/bin/python3", "-mcalendar"}, "notes") == "calendar");
    CHECK(command_name(V{"/usr/bin/python3", "-mhttp.server", "8000"}) == "http.server");
    CHECK(command_name(V{"/usr/bin/python3", "-um", "http.server", "8000"}) == "http.server");
    CHECK(command_name(V{"/usr/bin/python3", "-uW", "ignore", "/opt/app.py"}) == "app.py");
    CHECK(command_name(V{"/usr/bin/python3", "-X", "dev", "-uc", "pass"}, "notes") == "notes");
    // perl and ruby take -I (ruby also -r) with the value as the next argument too.
    CHECK(command_name(V{"/usr/bin/perl", "-I", "/opt/app/lib", "/opt/app/app.pl"}) == "app.pl");
    CHECK(command_name(V{"/usr/bin/ruby", "-r", "json", "-I", "lib", "app.rb"}) == "app.rb");
}

TEST_CASE("command_name: env is looked through, variables and options skipped", "[core]") {
    CHECK(command_name(V{"/usr/bin/env", "-i", "A=1", "B=2", "/usr/bin/node", "app.js"}) == "app.js");
    CHECK(command_name(V{"/usr/bin/env", "-u", "HOME", "LANG=C", "/usr/sbin/nginx", "-g", "daemon off;"}) == "nginx");
    CHECK(command_name(V{"env", "PYTHONPATH=/opt", "python3", "-m", "app"}) == "app");
    CHECK(command_name(V{"/usr/bin/env", "A=1"}, "notes") == "notes");
    CHECK(command_name(V{"/usr/bin/env"}) == "env");
}

TEST_CASE("command_name: inline code or no script names the app, else the interpreter", "[core]") {
    const V sh_c{"/bin/sh", "-c", "echo starting; exec /usr/bin/python3 notes.py"};
    CHECK(command_name(sh_c, "notes") == "notes");
    CHECK(command_name(sh_c) == "sh");
    CHECK(command_name(V{"/bin/sh", "-ec", "true"}, "notes") == "notes");
    CHECK(command_name(V{"/usr/bin/python3", "-c", "import app; app.main()"}, "notes") == "notes");
    CHECK(command_name(V{"/usr/bin/python3", "-Sc", "pass"}) == "python3");
    CHECK(command_name(V{"/usr/bin/perl", "-e", "print 1"}, "tool") == "tool");
    CHECK(command_name(V{"/usr/bin/perl", "-ne", "print"}) == "perl");
    CHECK(command_name(V{"node", "--eval", "1"}, "web") == "web");
    CHECK(command_name(V{"/usr/bin/python3"}, "notes") == "notes");
    CHECK(command_name(V{"/usr/bin/python3", "-"}, "notes") == "notes");
    CHECK(command_name(V{"/usr/bin/python3", "-m"}, "notes") == "notes");
    CHECK(command_name(V{"/usr/bin/python3", "-u"}) == "python3");
}

TEST_CASE("is_interpreter: script interpreters, with or without a version", "[core]") {
    for (const char* name : {"sh", "bash", "dash", "zsh", "ksh", "env", "node", "nodejs", "tclsh", "python", "python3",
                             "python3.11", "perl", "perl5.36", "ruby", "ruby3.1", "php", "php8.2", "lua", "lua5.4"})
        CHECK(is_interpreter(name));
    for (const char* name : {"redis-server", "pythonista", "perl-app", "shell", "nginx", "python3-config", "", "bashful"})
        CHECK_FALSE(is_interpreter(name));
}
