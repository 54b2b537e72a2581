// Looking entries up in the user and group databases (getpwnam_r(3) and its kin).
#pragma once

#include <cerrno>
#include <vector>

namespace bartl {

/// Calls `lookup(&entry, buf, size, &result)` - getpwnam_r(3), getpwuid_r(3), getgrnam_r(3)
/// or getgrgid_r(3) bound to a key - with `buf` grown (up to 1 MiB) while the entry does not
/// fit. True when the database holds the entry; its strings point into `buf`.
template <typename Entry, typename Lookup>
bool lookup_entry(Lookup lookup, Entry& entry, std::vector<char>& buf) {
    buf.resize(1024);
    for (;;) {
        Entry* result = nullptr;
        const int rc = lookup(&entry, buf.data(), buf.size(), &result);
        if (rc == ERANGE && buf.size() < (1u << 20)) {
            buf.resize(buf.size() * 2);
            continue;
        }
        return rc == 0 && result != nullptr;
    }
}

}  // namespace bartl
