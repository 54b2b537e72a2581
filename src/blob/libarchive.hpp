// libarchive, loaded on first use (util/dlopen.hpp): every function blob.cpp calls, as a pointer
// of the same type in namespace bartl::la. Call la::load() before any of them.
#pragma once

#include <archive.h>
#include <archive_entry.h>

// X(name) for each libarchive function bartl uses.
#define BARTL_LIBARCHIVE_FUNCTIONS(X) \
    X(archive_read_open_FILE) \
    X(archive_write_open_FILE) \
    X(archive_entry_clear) \
    X(archive_entry_filetype) \
    X(archive_entry_free) \
    X(archive_entry_hardlink) \
    X(archive_entry_linkify) \
    X(archive_entry_linkresolver_free) \
    X(archive_entry_linkresolver_new) \
    X(archive_entry_linkresolver_set_strategy) \
    X(archive_entry_mtime) \
    X(archive_entry_mtime_is_set) \
    X(archive_entry_mtime_nsec) \
    X(archive_entry_new) \
    X(archive_entry_pathname) \
    X(archive_entry_perm) \
    X(archive_entry_set_filetype) \
    X(archive_entry_set_hardlink) \
    X(archive_entry_set_mtime) \
    X(archive_entry_set_pathname) \
    X(archive_entry_set_perm) \
    X(archive_entry_set_size) \
    X(archive_entry_size) \
    X(archive_entry_sourcepath) \
    X(archive_entry_symlink) \
    X(archive_entry_xattr_add_entry) \
    X(archive_entry_xattr_clear) \
    X(archive_entry_xattr_count) \
    X(archive_entry_xattr_next) \
    X(archive_entry_xattr_reset) \
    X(archive_errno) \
    X(archive_error_string) \
    X(archive_read_close) \
    X(archive_read_data) \
    X(archive_read_data_block) \
    X(archive_read_disk_can_descend) \
    X(archive_read_disk_descend) \
    X(archive_read_disk_new) \
    X(archive_read_disk_open) \
    X(archive_read_disk_set_standard_lookup) \
    X(archive_read_disk_set_symlink_physical) \
    X(archive_read_free) \
    X(archive_read_new) \
    X(archive_read_next_header) \
    X(archive_read_next_header2) \
    X(archive_read_open) \
    X(archive_read_support_filter_zstd) \
    X(archive_read_support_format_raw) \
    X(archive_read_support_format_tar) \
    X(archive_set_error) \
    X(archive_write_close) \
    X(archive_write_data) \
    X(archive_write_data_block) \
    X(archive_write_disk_new) \
    X(archive_write_disk_set_options) \
    X(archive_write_disk_set_standard_lookup) \
    X(archive_write_finish_entry) \
    X(archive_write_free) \
    X(archive_write_header) \
    X(archive_write_new) \
    X(archive_write_open) \
    X(archive_write_set_bytes_in_last_block) \
    X(archive_write_set_bytes_per_block) \
    X(archive_write_set_format_pax_restricted)

namespace bartl::la {

/// Loads libarchive once per process (thread-safe) and resolves the functions below. Throws
/// RuntimeError naming the library when it cannot be loaded.
void load();

#define BARTL_LA_DECLARE(name) extern decltype(&::name) name;
BARTL_LIBARCHIVE_FUNCTIONS(BARTL_LA_DECLARE)
#undef BARTL_LA_DECLARE

}  // namespace bartl::la
