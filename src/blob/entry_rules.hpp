// Rules about archive entry names shared by the tar writer and the extractor: exclusion
// globs, safe symlink targets, and the names of streamed sections (db/NAME.NNNNNN).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bartl {

/// True when `rel` (a path relative to a state root, "a/b/temp-1.rdb") matches one of `globs`
/// ([backup] exclude): a glob without '/' matches the last name at any depth, one with '/'
/// matches the whole relative path (fnmatch(3), FNM_PATHNAME). Pure.
bool path_excluded(const std::string& rel, const std::vector<std::string>& globs);

/// Why a symlink with `target`, at `link_rel` (its path below a state root, "a/b/link"), may
/// not be restored: absolute, empty, climbing above the root, or ".." after a path component
/// (a chain through a link like "here -> ." could then climb out). std::nullopt when it is
/// fine. The tar writer refuses to back up such links; the extractor rejects them. Pure.
std::optional<std::string> symlink_target_problem(const std::string& target, const std::string& link_rel);

/// The parts of `s` between '/' ("a//b/" gives "a", "", "b", ""). Pure.
std::vector<std::string_view> split_path(std::string_view s);

/// "FIFO", "socket", "character device", "block device" for the file types a backup never
/// holds (AE_IF* / S_IF* values); nullptr for any other type.
const char* unsupported_kind(mode_t type);

/// Digits of a chunk number in a streamed section's entry names: 000000 to 999999, so the
/// shell's sorted glob (`cat db/notes.dump.*`) joins them in order.
inline constexpr std::size_t kChunkDigits = 6;
/// The most chunks one streamed section may have.
inline constexpr std::uint64_t kMaxChunks = 1000000;

/// Whether `section` may name a streamed section: 1 to 128 of [A-Za-z0-9._-], not starting
/// with '.'. ("notes.dump", "postgresql-notes.dump"). Pure.
bool valid_section_name(std::string_view section);

/// The archive entry of chunk `index` of `section`: "db/SECTION.000042". Pure.
std::string chunk_entry_name(const std::string& section, std::uint64_t index);

/// A parsed chunk entry name.
struct ChunkName {
    std::string section;
    std::uint64_t index = 0;
};

/// Parses "db/SECTION.NNNNNN" (exactly kChunkDigits digits, a valid section name);
/// std::nullopt for anything else. Pure.
std::optional<ChunkName> parse_chunk_entry_name(std::string_view name);

}  // namespace bartl
