// Where a state path should not sit: directly in a directory the whole system shares.
#pragma once

#include <filesystem>
#include <optional>

namespace bartl {

/// The parent of `state_path` when it is a directory the whole system shares (/, /var,
/// /var/lib, /srv, /opt, /home, /usr/local, /mnt, /media, /tmp, /var/tmp, ...): a staging
/// directory is built beside a state path and renamed into place, so the unit
/// (bartl-generator(8)) makes that parent writable to bartld — all of /var/lib for
/// /var/lib/notes. std::nullopt for a parent of its own (/var/lib/notes for
/// /var/lib/notes/data). Pure: compares the lexically normal paths only.
std::optional<std::filesystem::path> shared_parent_of_state_path(const std::filesystem::path& state_path);

}  // namespace bartl
