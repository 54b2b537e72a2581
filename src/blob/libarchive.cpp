#include "blob/libarchive.hpp"

#include <array>
#include <mutex>
#include <string>
#include <vector>

#include "bartl_build_config.h"
#include "util/dlopen.hpp"

namespace bartl::la {

#define BARTL_LA_DEFINE(name) decltype(&::name) name = nullptr;
BARTL_LIBARCHIVE_FUNCTIONS(BARTL_LA_DEFINE)
#undef BARTL_LA_DEFINE

void load() {
    static std::once_flag once;
    std::call_once(once, [] {
#define BARTL_LA_SYMBOL(name) DlSymbol{reinterpret_cast<void**>(&la::name), #name},
        const DlSymbol symbols[] = {BARTL_LIBARCHIVE_FUNCTIONS(BARTL_LA_SYMBOL)};
#undef BARTL_LA_SYMBOL
        dlopen_symbols(BARTL_LIBARCHIVE_SONAME, symbols);
    });
}

}  // namespace bartl::la

namespace bartl {

std::string la_error(archive* a) {
    const char* s = la::archive_error_string(a);
    return s != nullptr ? s : "unknown libarchive error";
}

bool drop_xattr(archive_entry* e, std::string_view name) {
    if (la::archive_entry_xattr_count(e) == 0) return false;
    struct Xattr {
        std::string name;
        std::string value;
    };
    std::vector<Xattr> keep;
    bool found = false;
    la::archive_entry_xattr_reset(e);
    const char* xname = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    while (la::archive_entry_xattr_next(e, &xname, &value, &size) == ARCHIVE_OK) {
        if (std::string_view(xname) == name) {
            found = true;
            continue;
        }
        keep.push_back({xname, std::string(static_cast<const char*>(value), size)});
    }
    if (!found) return false;
    la::archive_entry_xattr_clear(e);
    for (const auto& x : keep) la::archive_entry_xattr_add_entry(e, x.name.c_str(), x.value.data(), x.value.size());
    return true;
}

RawNames::RawNames() : loc_(::newlocale(LC_CTYPE_MASK, "C", static_cast<locale_t>(nullptr))) {
    if (loc_ != static_cast<locale_t>(nullptr)) old_ = ::uselocale(loc_);
}

RawNames::~RawNames() {
    if (loc_ == static_cast<locale_t>(nullptr)) return;
    ::uselocale(old_);
    ::freelocale(loc_);
}

}  // namespace bartl
