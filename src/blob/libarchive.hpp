// libarchive, loaded on first use (util/dlopen.hpp): every function the tar stages call, as a
// pointer of the same type in namespace bartl::la. Call la::load() before any of them. Also
// the small helpers both tar stages share: owning handles, error text, raw-byte names.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <locale.h>

#include <memory>
#include <string>
#include <string_view>

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

namespace bartl {

struct LaReadFree {
    void operator()(archive* a) const noexcept { la::archive_read_free(a); }
};
struct LaWriteFree {
    void operator()(archive* a) const noexcept { la::archive_write_free(a); }
};
struct LaEntryFree {
    void operator()(archive_entry* e) const noexcept { la::archive_entry_free(e); }
};
/// Owning handles of libarchive objects.
using ReadArchive = std::unique_ptr<archive, LaReadFree>;
using WriteArchive = std::unique_ptr<archive, LaWriteFree>;
using Entry = std::unique_ptr<archive_entry, LaEntryFree>;

/// libarchive's last error message on `a` ("unknown libarchive error" when it has none).
std::string la_error(archive* a);

/// Removes the extended attribute `name` from entry `e` (libarchive has no call for one),
/// keeping the others in order. Returns whether it was there.
bool drop_xattr(archive_entry* e, std::string_view name);

/// Makes libarchive handle names as raw bytes on this thread, whatever the process locale
/// (uselocale(3) with the C locale; other threads of bartld are not affected). Linux names
/// are bytes, and restoring them must give the same bytes: an ASCII name needs no pax
/// header at all, and any other name cannot be converted from the C locale, so libarchive
/// stores it as it is with `hdrcharset=BINARY` for that entry, which readers (libarchive,
/// GNU tar) restore byte for byte. The alternative, UTF-8 `path` records, is read back
/// through libarchive's UTF-8 conversion, which normalises to NFC: a name written in NFD
/// (macOS, Samba) would come back with other bytes, and an NFC and an NFD name side by
/// side would collide.
class RawNames {
public:
    RawNames();
    ~RawNames();
    RawNames(const RawNames&) = delete;
    RawNames& operator=(const RawNames&) = delete;

private:
    locale_t loc_;
    locale_t old_ = static_cast<locale_t>(nullptr);
};

}  // namespace bartl
