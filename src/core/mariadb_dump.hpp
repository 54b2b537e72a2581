// Pure logic over the SQL text of mariadb-dump (bartl.toml(5) "DATABASES").
#pragma once

#include <string>
#include <string_view>

namespace bartl {

/// Rewrites, in a stream of mariadb-dump's output for one database NAME, the statements by
/// which it switches NAME's default collation around a routine, trigger or event whose
/// Database Collation is not the database's default any more (mariadb-dump's
/// switch_db_collation and restore_db_collation): a line that is exactly
/// "ALTER DATABASE `NAME` CHARACTER SET CS COLLATE CO ;" (or ";;" inside a DELIMITER ;;
/// section) becomes "ALTER DATABASE CHARACTER SET CS COLLATE CO ;", which applies to the
/// database the dump is loaded into, as the dump meant for the database it came from (a
/// restore loads it into NAME__bartl_restore, where the named statement would alter, or fail
/// on, the live NAME). Nothing else changes: mariadb-dump escapes the newlines of data, so a
/// data row never starts a line with such a statement. Bytes go through in order; a line is
/// held only while it can still be one of these (at most kMaxHeld bytes).
class CollationSwitchFilter {
public:
    /// The longest line held back to be matched; a longer one passes unchanged.
    static constexpr std::size_t kMaxHeld = 512;

    /// `name`: the database's name as mariadb-dump quotes it, without the backquotes.
    explicit CollationSwitchFilter(std::string name);

    /// Appends to `out` what `in` gives so far (a line that may still be rewritten is held).
    void feed(std::string_view in, std::string& out);
    /// At the end of the stream: appends what is held.
    void finish(std::string& out);

    /// `line` (without its '\n') rewritten when it is such a statement, else unchanged.
    std::string rewrite(std::string_view line) const;

private:
    std::string prefix_;  ///< "ALTER DATABASE `NAME` CHARACTER SET "
    std::string held_;
    bool line_start_ = true;
    bool holding_ = false;
};

}  // namespace bartl
