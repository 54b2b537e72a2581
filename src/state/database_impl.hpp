// Shared by the database component implementations (state/database.hpp), not by their users.
#pragma once

#include <memory>
#include <mutex>
#include <span>

#include "config/config.hpp"
#include "util/dlopen.hpp"

namespace bartl {

class DatabaseComponent;

/// dlopen_symbols() for a database client library; a library that is not there is a
/// ConfigError (exit 78: retrying cannot help) naming the `type` that needs it and the Debian
/// `package` that ships it.
void load_client_library(const char* soname, const char* package, const char* type, std::span<const DlSymbol> symbols);

/// Defines, in the current namespace, one function pointer per name in the X-macro list
/// FUNCTIONS (typed from the library's header) and load(), which resolves them all once with
/// load_client_library(SONAME, PACKAGE, TYPE).
#define BARTL_DB_CLIENT(FUNCTIONS, SONAME, PACKAGE, TYPE)                                       \
    FUNCTIONS(BARTL_DB_CLIENT_DEFINE)                                                            \
    void load() {                                                                                \
        static std::once_flag once;                                                              \
        std::call_once(once, [] {                                                                \
            const ::bartl::DlSymbol symbols[] = {FUNCTIONS(BARTL_DB_CLIENT_SYMBOL)};             \
            ::bartl::load_client_library(SONAME, PACKAGE, TYPE, symbols);                        \
        });                                                                                      \
    }
#define BARTL_DB_CLIENT_DEFINE(name) decltype(&::name) name = nullptr;
#define BARTL_DB_CLIENT_SYMBOL(name) ::bartl::DlSymbol{reinterpret_cast<void**>(&name), #name},

/// The component of a [[state.databases]] entry of that type (postgresql.cpp, mariadb.cpp,
/// sqlite.cpp); nothing is loaded or connected until it is first asked.
std::unique_ptr<DatabaseComponent> make_postgresql_component(const Database& db);
std::unique_ptr<DatabaseComponent> make_mariadb_component(const Database& db);
std::unique_ptr<DatabaseComponent> make_sqlite_component(const Database& db);

}  // namespace bartl
