#include "state/database.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "core/error.hpp"
#include "state/database_impl.hpp"
#include "util/fs.hpp"
#include "util/sha256.hpp"

namespace bartl {

// Defined by BARTL_DB_CLIENT in each type's file.
namespace pq { void load(); }
namespace my { void load(); }
namespace sq { void load(); }

void load_database_clients(const Config& config) {
    for (std::size_t i = 0; i < config.databases.size(); ++i) {
        try {
            switch (config.databases[i].type) {
            case Database::Type::postgresql: pq::load(); break;
            case Database::Type::mariadb: my::load(); break;
            case Database::Type::sqlite: sq::load(); break;
            }
        } catch (const ConfigError& e) {
            throw ConfigError(fmt::format("{}: {}", config.where(fmt::format("[state] databases[{}]", i)), e.what()));
        }
    }
}

void load_client_library(const char* soname, const char* package, const char* type, std::span<const DlSymbol> symbols) {
    try {
        dlopen_symbols(soname, symbols);
    } catch (const RuntimeError& e) {
        throw ConfigError(fmt::format("[[state.databases]] declares a {} database, which needs {}: {} (Debian: "
                                      "apt-get install {})",
                                      type, soname, e.what(), package));
    }
}

ChildStream start_tool(ChildStreamSpec spec, const char* package) {
    try {
        return ChildStream(std::move(spec));
    } catch (const RuntimeError& e) {
        throw RuntimeError(fmt::format("{} (Debian: apt-get install {})", e.what(), package));
    }
}

ChildDump::ChildDump(ChildStreamSpec spec, int secret_fd, const char* package) try
    : secret_fd_(secret_fd), child_(start_tool(std::move(spec), package)) {
} catch (...) {
    if (secret_fd >= 0) ::close(secret_fd);
}

ChildDump::~ChildDump() {
    if (secret_fd_ >= 0) ::close(secret_fd_);
}

ChildLoader::ChildLoader(ChildStreamSpec spec, int secret_fd, const char* package) try
    : secret_fd_(secret_fd), child_(start_tool(std::move(spec), package)) {
} catch (...) {
    if (secret_fd >= 0) ::close(secret_fd);
}

ChildLoader::~ChildLoader() {
    if (secret_fd_ >= 0) ::close(secret_fd_);
}

int secret_file(const char* name, const std::string& content) {
    const int fd = memory_file(name, content);
    if (::fchmod(fd, 0600) != 0) {
        const int e = errno;
        ::close(fd);
        throw RuntimeError(fmt::format("chmod memfd {}: {}", name, std::strerror(e)));
    }
    return fd;
}

std::string staging_database_name(const std::string& name, std::size_t max_length) {
    constexpr std::string_view suffix = "__bartl_restore";
    if (name.size() + suffix.size() <= max_length) return name + std::string(suffix);
    Sha256 h;
    h.update(name.data(), name.size());
    const std::string hash = h.hex().substr(0, 8);
    return name.substr(0, max_length - suffix.size() - hash.size() - 1) + "_" + hash + std::string(suffix);
}

ComponentObservation DatabaseComponent::observe(const ComponentRecord* recorded, const std::string& state_id) const {
    return judge_database(id(), inspect(), recorded != nullptr, state_id);
}

bool DatabaseComponent::holds_data() const {
    const auto f = inspect();
    return f.exists && f.holds_data;
}

void DatabaseComponent::prepare_staging(const Owner& owner) const {
    const auto f = inspect();
    // Observe judged it missing or empty; a table since then is someone else's write.
    if (f.exists && f.holds_data)
        throw RuntimeError(fmt::format("{} holds tables now: refusing to initialise it", id()));
    create(owner);
}

ComponentRecord DatabaseComponent::bind_live(const std::string& state_id, const Owner& owner) const {
    create(owner);
    stamp(state_id);
    return record();
}

ComponentRecord DatabaseComponent::record() const {
    ComponentRecord r;
    r.kind = kind();
    r.name = name();
    r.binding = binding();
    return r;
}

std::unique_ptr<DatabaseComponent> make_database_component(const Database& db) {
    switch (db.type) {
    case Database::Type::postgresql: return make_postgresql_component(db);
    case Database::Type::mariadb: return make_mariadb_component(db);
    case Database::Type::sqlite: return make_sqlite_component(db);
    }
    throw std::logic_error("unknown database type");
}

std::string database_password(const Database& db) {
    if (db.password_credential.empty()) return "";
    const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
    if (!dir || !*dir)
        throw RuntimeError(fmt::format("{}:{}: password_credential \"{}\" is set but there is no "
                                       "$CREDENTIALS_DIRECTORY (give the unit LoadCredential={}:FILE)",
                                       db.type_name(), db.name, db.password_credential, db.password_credential));
    const auto path = std::filesystem::path(dir) / db.password_credential;
    auto s = fs::read_file(path);
    if (!s)
        throw RuntimeError(fmt::format("{}:{}: credential {} is missing", db.type_name(), db.name, path.string()));
    while (!s->empty() && (s->back() == '\n' || s->back() == '\r')) s->pop_back();
    return *s;
}

std::map<std::string, std::string> database_env(const std::vector<Database>& dbs) {
    std::map<std::string, std::string> env;
    for (const auto& db : dbs) {
        const std::string p = "BARTL_DB_" + db.env_name() + "_";
        env[p + "TYPE"] = db.type_name();
        env[p + "NAME"] = db.name;
        switch (db.type) {
        case Database::Type::postgresql:
            env[p + "CONNECTION"] = db.connection.empty() ? "dbname=" + db.name : db.connection + " dbname=" + db.name;
            break;
        case Database::Type::mariadb:
            for (const char* key : {"socket", "user", "host", "port"}) {
                const auto v = db.connection_value(key);
                std::string upper;
                for (const char* c = key; *c; ++c) upper += char(*c - 'a' + 'A');
                if (!v.empty()) env[p + upper] = v;
            }
            break;
        case Database::Type::sqlite: env[p + "PATH"] = db.path.string(); break;
        }
    }
    return env;
}

}  // namespace bartl
