// libFuzzer target: bartl::Marker::from_json and bartl::Intent::from_json
// (src/core/marker.hpp): the state marker (commit point) and the intent record (licence to
// delete half-done data). Every input is tried as both.
// Contract checked: throws only std::invalid_argument; a parsed record (of format 1 or 2) is
// held as format 2 (written as format 1 while it has no state ID); an intent's op is init, restore or migrate; a parsed record serialises to
// JSON that parses back to the same fields.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "core/marker.hpp"
#include "fuzz_common.hpp"

using bartl::Intent;
using bartl::Marker;
using bartl_fuzz::fail;

namespace {

bool same(const Marker& a, const Marker& b) {
    if (a.format != b.format || a.app != b.app || a.version != b.version || a.origin != b.origin ||
        a.state_id != b.state_id || a.components.size() != b.components.size() ||
        a.migrations.size() != b.migrations.size() || a.history.size() != b.history.size() ||
        a.writer.store_id != b.writer.store_id || a.writer.generation != b.writer.generation ||
        a.writer.deferred != b.writer.deferred)
        return false;
    for (std::size_t i = 0; i < a.components.size(); ++i) {
        const auto &x = a.components[i], &y = b.components[i];
        if (x.kind != y.kind || x.name != y.name || x.binding != y.binding || x.mount_point != y.mount_point ||
            x.device != y.device || x.inode != y.inode)
            return false;
    }
    for (std::size_t i = 0; i < a.migrations.size(); ++i) {
        const auto &x = a.migrations[i], &y = b.migrations[i];
        if (x.name != y.name || x.sha256 != y.sha256 || x.time != y.time || x.engine != y.engine) return false;
    }
    for (std::size_t i = 0; i < a.history.size(); ++i) {
        const auto &x = a.history[i], &y = b.history[i];
        if (x.time != y.time || x.event != y.event || x.from != y.from || x.to != y.to || x.detail != y.detail)
            return false;
    }
    return true;
}

bool same(const Intent& a, const Intent& b) {
    return a.format == b.format && a.op == b.op && a.started == b.started && a.pid == b.pid &&
           a.staging == b.staging && a.targets == b.targets && a.backup_id == b.backup_id && a.from == b.from &&
           a.to == b.to && a.state_id == b.state_id && a.pre_migration_backup == b.pre_migration_backup;
}

template <class T>
void check(const std::string& text, const char* api) {
    T v;
    try {
        v = T::from_json(text);
    } catch (const std::invalid_argument&) {
        return;
    } catch (const std::exception& e) {
        bartl_fuzz::unexpected(api, e);
        return;
    }
    if (v.format != 2) fail(std::string(api) + " holds format " + std::to_string(v.format));
    std::string json;
    try {
        json = v.to_json();
    } catch (const std::exception& e) {
        fail(std::string(api) + ": to_json() of a parsed record throws: " + e.what());
    }
    T again;
    try {
        again = T::from_json(json);
    } catch (const std::exception& e) {
        fail(std::string(api) + ": to_json() output does not parse back: " + e.what() + "\n" + json);
    }
    if (!same(v, again)) fail(std::string(api) + ": round trip changed a field");
    if (again.to_json() != json) fail(std::string(api) + ": JSON is not stable under a round trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    check<Marker>(text, "Marker::from_json");
    check<Intent>(text, "Intent::from_json");
    try {
        const Intent in = Intent::from_json(text);
        if (in.op != "init" && in.op != "restore" && in.op != "migrate") fail("intent with unknown op accepted");
    } catch (const std::exception&) {
        // rejected; which exception types may escape is checked above
    }
    return 0;
}
