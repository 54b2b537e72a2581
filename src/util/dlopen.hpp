// Libraries only some code paths need are loaded on their first use with dlopen(3), so the
// reboot path maps and relocates less (systemd's dlopen-util pattern): libarchive (with
// libxml2, ICU, nettle, ...) only when a backup or restore runs.
#pragma once

#include <span>

namespace bartl {

/// One function to resolve: where to store it, and its name.
struct DlSymbol {
    void** target;
    const char* name;
};

/// dlopen(3)s `soname` (RTLD_NOW, never unloaded) and stores each symbol's address. Throws
/// RuntimeError "cannot load SONAME: ..." or "SONAME has no SYMBOL" (then no target is
/// written). Not thread-safe by itself: callers wrap it in std::call_once.
void dlopen_symbols(const char* soname, std::span<const DlSymbol> symbols);

}  // namespace bartl
