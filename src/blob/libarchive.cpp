#include "blob/libarchive.hpp"

#include <array>
#include <mutex>

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
