// libFuzzer target: bartl::parse_config (src/config/config.hpp), the TOML config loader.
// Contract checked: only ConfigError escapes, and its message starts "fuzz.toml:LINE:COLUMN: ";
// an accepted config satisfies bartl(7) "Configuration": a valid app name, exactly one
// version source (a literal one is SemVer), absolute normalised distinct non-nested state
// paths, bartl_dir absolute and outside them, positive timeouts, zstd level 1..19.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <regex>
#include <string>

#include "config/config.hpp"
#include "core/error.hpp"
#include "core/semver.hpp"
#include "fuzz_common.hpp"

using bartl_fuzz::fail;
namespace stdfs = std::filesystem;

namespace {

bool within(const stdfs::path& inner, const stdfs::path& outer) {
    return std::mismatch(outer.begin(), outer.end(), inner.begin(), inner.end()).first == outer.end();
}

void check_abs(const std::optional<stdfs::path>& p, const char* key) {
    if (p && !p->is_absolute()) fail(std::string(key) + " accepted as a relative path: " + p->string());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const std::regex message_re(R"(^fuzz\.toml:[0-9]+:[0-9]+: )");
    const std::string text(reinterpret_cast<const char*>(data), size);
    bartl::Config c;
    try {
        c = bartl::parse_config(text, "fuzz.toml");
    } catch (const bartl::ConfigError& e) {
        const std::string msg = e.what();
        if (!std::regex_search(msg.substr(0, 200), message_re))
            fail("ConfigError message lacks \"fuzz.toml:LINE:COLUMN: \": " + msg);
        return 0;
    } catch (const std::exception& e) {
        bartl_fuzz::unexpected("parse_config", e);
        return 0;
    }

    static const std::regex name_re("^[a-z0-9][a-z0-9_-]*$");
    if (c.app_name.empty() || c.app_name.size() > 64 || !std::regex_match(c.app_name, name_re))
        fail("invalid app name accepted: \"" + c.app_name + "\"");
    if (c.instance != c.app_name) fail("instance is not app.name");
    const int sources = int(c.version.has_value()) + int(c.version_file.has_value()) + int(!c.version_command.empty());
    if (sources != 1) fail("accepted " + std::to_string(sources) + " version sources");
    if (c.version && !bartl::Version::try_parse(*c.version)) fail("non-SemVer version accepted: " + *c.version);
    if (!c.version_command.empty() && !stdfs::path(c.version_command[0]).is_absolute())
        fail("relative version_command program accepted");
    check_abs(c.version_file, "[app] version_file");
    check_abs(c.working_directory, "[app] working_directory");
    check_abs(c.migrations_dir, "[hooks] migrations");
    if (!c.exec.empty() && !stdfs::path(c.exec[0]).is_absolute()) fail("relative exec program accepted");

    if (c.state_paths.empty()) fail("no state paths accepted");
    for (std::size_t i = 0; i < c.state_paths.size(); ++i) {
        const auto& p = c.state_paths[i];
        if (!p.is_absolute() || p.lexically_normal() != p || p == "/" || p.string().find('\0') != std::string::npos)
            fail("bad state path accepted: " + p.string());
        for (const auto& part : p)
            if (part == ".." || part == ".") fail("state path with a dot component accepted: " + p.string());
        for (std::size_t j = 0; j < c.state_paths.size(); ++j)
            if (i != j && within(p, c.state_paths[j]))
                fail("nested or repeated state paths accepted: " + p.string() + " in " + c.state_paths[j].string());
        if (within(c.bartl_dir, p) || within(p, c.bartl_dir))
            fail("bartl_dir " + c.bartl_dir.string() + " overlaps state path " + p.string());
    }
    if (!c.bartl_dir.is_absolute()) fail("relative bartl_dir accepted");

    using std::chrono::milliseconds;
    if (c.ready_timeout <= milliseconds(0) || c.stop_timeout <= milliseconds(0) || c.interval <= milliseconds(0))
        fail("non-positive timeout or interval accepted");
    if (c.version_command_timeout < milliseconds(0) || c.hook_timeout < milliseconds(0))
        fail("negative timeout accepted");
    if (c.compression_level < 1 || c.compression_level > 19)
        fail("compression level " + std::to_string(c.compression_level) + " accepted");
    if (c.compression_threads < 0) fail("negative compression threads accepted");
    if ((c.ready.kind == bartl::Readiness::Kind::tcp || c.ready.kind == bartl::Readiness::Kind::http) &&
        (c.ready.port <= 0 || c.ready.port > 65535 || c.ready.host.empty()))
        fail("tcp/http readiness without a valid host:port accepted");
    return 0;
}
