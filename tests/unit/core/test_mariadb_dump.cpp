// The collation switches of mariadb-dump's output (core/mariadb_dump.hpp).
#include <catch2/catch.hpp>

#include "core/mariadb_dump.hpp"

using namespace bartl;

namespace {

/// `in` through a fresh filter for `name`, fed in chunks of `chunk` bytes.
std::string filtered(const std::string& in, std::size_t chunk, const std::string& name = "notes") {
    CollationSwitchFilter f(name);
    std::string out;
    for (std::size_t i = 0; i < in.size(); i += chunk) f.feed(std::string_view(in).substr(i, chunk), out);
    f.finish(out);
    return out;
}

/// `in` split once at every position: every split gives `want`, and so does one byte at a time.
void check_every_split(const std::string& in, const std::string& want) {
    CHECK(filtered(in, 1) == want);
    CHECK(filtered(in, in.size() + 1) == want);
    for (std::size_t at = 0; at <= in.size(); ++at) {
        CollationSwitchFilter f("notes");
        std::string out;
        f.feed(std::string_view(in).substr(0, at), out);
        f.feed(std::string_view(in).substr(at), out);
        f.finish(out);
        INFO("split at " << at);
        CHECK(out == want);
    }
}

}  // namespace

TEST_CASE("the collation switches around a routine lose the database's name") {
    // What mariadb-dump 10.11 writes around a function created under another collation.
    const std::string dump =
        "/*!50003 SET sql_mode = '' */ ;\n"
        "ALTER DATABASE `notes` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin ;\n"
        "DELIMITER ;;\n"
        "CREATE DEFINER=`root`@`localhost` FUNCTION `f`() RETURNS int(11)\n"
        "RETURN 1 ;;\n"
        "DELIMITER ;\n"
        "ALTER DATABASE `notes` CHARACTER SET latin1 COLLATE latin1_swedish_ci ;;\n";
    const std::string want =
        "/*!50003 SET sql_mode = '' */ ;\n"
        "ALTER DATABASE CHARACTER SET utf8mb4 COLLATE utf8mb4_bin ;\n"
        "DELIMITER ;;\n"
        "CREATE DEFINER=`root`@`localhost` FUNCTION `f`() RETURNS int(11)\n"
        "RETURN 1 ;;\n"
        "DELIMITER ;\n"
        "ALTER DATABASE CHARACTER SET latin1 COLLATE latin1_swedish_ci ;;\n";
    check_every_split(dump, want);
}

TEST_CASE("everything else passes unchanged, in any chunks") {
    const std::string dump =
        "INSERT INTO `t` VALUES (1,'ALTER DATABASE `notes` CHARACTER SET x COLLATE y ;'),(2,'a\\nb');\n"
        "ALTER DATABASE `other` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin ;\n"
        "ALTER DATABASE `notes` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;\n"
        "ALTER DATABASE `notes` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin ; -- more\n"
        " ALTER DATABASE `notes` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin ;\n"
        "ALTER DATABASE `notes` CHARACTER SET  COLLATE utf8mb4_bin ;\n"
        "ALTER DATABASE `notes` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin ;\r\n"
        "ALTER DATABASE `notes2` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin ;\n"
        "ALTER TABLE `t` DISABLE KEYS;\n"
        "A\n"
        "\n"
        "AL";
    check_every_split(dump, dump);
}

TEST_CASE("a last line without a newline is rewritten at the end") {
    check_every_split("ALTER DATABASE `notes` CHARACTER SET a COLLATE b ;",
                      "ALTER DATABASE CHARACTER SET a COLLATE b ;");
}

TEST_CASE("a long line that starts like a switch is not held past the limit") {
    const std::string line = "ALTER DATABASE `notes` CHARACTER SET utf8mb4 COLLATE " +
                             std::string(CollationSwitchFilter::kMaxHeld, 'x') + " ;\n";
    CHECK(filtered(line + line, 1) == line + line);
    CHECK(filtered(line, 7) == line);
    CollationSwitchFilter f("notes");
    std::string out;
    f.feed(line.substr(0, CollationSwitchFilter::kMaxHeld + 10), out);
    CHECK(out == line.substr(0, CollationSwitchFilter::kMaxHeld + 10));  // given back, not held
}

TEST_CASE("the name is the declared one, with its own characters") {
    CHECK(filtered("ALTER DATABASE `my-app_2` CHARACTER SET utf8mb3 COLLATE utf8mb3_general_ci ;\n", 3, "my-app_2") ==
          "ALTER DATABASE CHARACTER SET utf8mb3 COLLATE utf8mb3_general_ci ;\n");
    CollationSwitchFilter f("notes");
    CHECK(f.rewrite("ALTER DATABASE `notes` CHARACTER SET a COLLATE b ;") == "ALTER DATABASE CHARACTER SET a COLLATE b ;");
    CHECK(f.rewrite("ALTER DATABASE `notes` CHARACTER SET a COLLATE b") == "ALTER DATABASE `notes` CHARACTER SET a COLLATE b");
}
