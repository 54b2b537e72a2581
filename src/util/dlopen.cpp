#include "util/dlopen.hpp"

#include <dlfcn.h>

#include <vector>

#include <fmt/format.h>

#include "core/error.hpp"

namespace bartl {

void dlopen_symbols(const char* soname, std::span<const DlSymbol> symbols) {
    void* lib = ::dlopen(soname, RTLD_NOW | RTLD_NODELETE);
    if (lib == nullptr) {
        const char* why = ::dlerror();
        throw RuntimeError(fmt::format("cannot load {}: {} (is its package installed?)", soname, why ? why : "?"));
    }
    std::vector<void*> found;
    found.reserve(symbols.size());
    for (const auto& s : symbols) {
        ::dlerror();
        void* p = ::dlsym(lib, s.name);
        if (p == nullptr) throw RuntimeError(fmt::format("{} has no {} (an older version?)", soname, s.name));
        found.push_back(p);
    }
    for (std::size_t i = 0; i < symbols.size(); ++i) *symbols[i].target = found[i];
}

}  // namespace bartl
