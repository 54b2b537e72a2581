// Shared by the database component implementations (state/database.hpp), not by their users.
#pragma once

#include <memory>
#include <mutex>
#include <span>

#include "config/config.hpp"
#include "state/database.hpp"
#include "util/child_stream.hpp"
#include "util/dlopen.hpp"

namespace bartl {

/// A dump tool (pg_dump, mariadb-dump) as the source of a streamed section; `secret_fd`, when
/// not -1, is an in-memory file handed to the child (spec.fds) and closed with the stream. A
/// tool that cannot be started is a RuntimeError naming the Debian `package` that ships it.
class ChildDump final : public ByteSource {
public:
    ChildDump(ChildStreamSpec spec, int secret_fd, const char* package);
    ~ChildDump() override;
    std::size_t read(void* data, std::size_t n) override { return child_.read(data, n, nullptr); }

private:
    int secret_fd_;
    ChildStream child_;
};

/// A restore tool (pg_restore, the mariadb client) fed a section on its stdin; the arguments
/// as ChildDump's.
class ChildLoader final : public DumpLoader {
public:
    ChildLoader(ChildStreamSpec spec, int secret_fd, const char* package);
    ~ChildLoader() override;
    void write(const void* data, std::size_t n) override { child_.write(data, n, nullptr); }
    void finish() override { child_.finish(nullptr); }

private:
    int secret_fd_;
    ChildStream child_;
};

/// ChildStream(spec), a failure to start it naming `package`. Throws RuntimeError.
ChildStream start_tool(ChildStreamSpec spec, const char* package);

/// memory_file() holding `content`, readable by its owner only (option and password files
/// are ignored when others may write them). Throws RuntimeError.
int secret_file(const char* name, const std::string& content);

/// The name of the database a restore of `name` loads into before the swap: NAME__bartl_restore,
/// or, when that exceeds `max_length` (63 for PostgreSQL, 64 for MariaDB), a prefix of NAME with
/// a hash of all of it, so two long names never share a staging database.
std::string staging_database_name(const std::string& name, std::size_t max_length);

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
