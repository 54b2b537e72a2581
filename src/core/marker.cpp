// Marker and intent (de)serialisation. Reading is strict: every key bartl
// writes must be present with its type, because a marker that parses is the
// commit point (invariant 1) and an intent licenses deleting data
// (invariant 2); guessing a default there could destroy data. Unknown extra
// keys are ignored so that a newer bartl may add fields within format 1.
#include "core/marker.hpp"

#include <limits>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace bartl {
namespace {

using nlohmann::json;

constexpr int kFormat = 1;

[[noreturn]] void bad(const std::string& what, const std::string& key, const std::string& problem) {
    throw std::invalid_argument(what + ": key \"" + key + "\" " + problem);
}

json parse_object(const std::string& what, const std::string& text) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {  // parse_error, and out_of_range for 1e999
        throw std::invalid_argument(what + ": not valid JSON: " + e.what());
    }
    if (!j.is_object()) throw std::invalid_argument(what + ": expected a JSON object at the top level");
    return j;
}

const json& field(const std::string& what, const json& obj, const std::string& key) {
    const auto it = obj.find(key);
    if (it == obj.end()) bad(what, key, "is missing");
    return *it;
}

std::string get_string(const std::string& what, const json& obj, const std::string& key) {
    const json& v = field(what, obj, key);
    if (!v.is_string()) bad(what, key, std::string("must be a string, not ") + v.type_name());
    return v.get<std::string>();
}

int get_int(const std::string& what, const json& obj, const std::string& key) {
    const json& v = field(what, obj, key);
    if (!v.is_number_integer()) bad(what, key, std::string("must be an integer, not ") + v.type_name());
    // Unsigned values above INT64_MAX are stored as number_unsigned; is_number_integer covers both.
    if (v.is_number_unsigned() ? v.get<std::uint64_t>() > std::uint64_t(std::numeric_limits<int>::max())
                               : (v.get<std::int64_t>() < std::numeric_limits<int>::min() ||
                                  v.get<std::int64_t>() > std::numeric_limits<int>::max()))
        bad(what, key, "is out of range");
    return v.get<int>();
}

std::vector<std::string> get_strings(const std::string& what, const json& obj, const std::string& key) {
    const json& v = field(what, obj, key);
    if (!v.is_array()) bad(what, key, std::string("must be an array of strings, not ") + v.type_name());
    std::vector<std::string> out;
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (!v[i].is_string())
            bad(what, key + "[" + std::to_string(i) + "]", std::string("must be a string, not ") + v[i].type_name());
        out.push_back(v[i].get<std::string>());
    }
    return out;
}

void check_format(const std::string& what, const json& obj) {
    const int f = get_int(what, obj, "format");
    if (f != kFormat)
        throw std::invalid_argument(what + ": unsupported format " + std::to_string(f) + " (this bartl reads format " +
                                    std::to_string(kFormat) + ")");
}

}  // namespace

std::string Marker::to_json() const {
    json h = json::array();
    for (const auto& e : history)
        h.push_back({{"time", e.time}, {"event", e.event}, {"from", e.from}, {"to", e.to}, {"detail", e.detail}});
    const json j = {{"format", format},           {"app", app},
                    {"version", version},         {"origin", origin},
                    {"state_paths", state_paths}, {"history", h}};
    return j.dump(2) + "\n";
}

Marker Marker::from_json(const std::string& text) {
    const std::string what = "state marker";
    const json j = parse_object(what, text);
    check_format(what, j);
    Marker m;
    m.format = kFormat;
    m.app = get_string(what, j, "app");
    m.version = get_string(what, j, "version");
    m.origin = get_string(what, j, "origin");
    m.state_paths = get_strings(what, j, "state_paths");
    const json& h = field(what, j, "history");
    if (!h.is_array()) bad(what, "history", std::string("must be an array, not ") + h.type_name());
    for (std::size_t i = 0; i < h.size(); ++i) {
        const std::string where = what + " history[" + std::to_string(i) + "]";
        if (!h[i].is_object()) throw std::invalid_argument(where + ": must be an object, not " + h[i].type_name());
        m.history.push_back({get_string(where, h[i], "time"), get_string(where, h[i], "event"),
                             get_string(where, h[i], "from"), get_string(where, h[i], "to"),
                             get_string(where, h[i], "detail")});
    }
    return m;
}

std::string Intent::to_json() const {
    const json j = {{"format", format},   {"op", op},       {"started", started},     {"pid", pid},
                    {"staging", staging}, {"targets", targets}, {"backup_id", backup_id}, {"from", from},
                    {"to", to}};
    return j.dump(2) + "\n";
}

Intent Intent::from_json(const std::string& text) {
    const std::string what = "intent record";
    const json j = parse_object(what, text);
    check_format(what, j);
    Intent in;
    in.format = kFormat;
    in.op = get_string(what, j, "op");
    // Cleaning up depends on the op, so an op this bartl does not know is not guessed at.
    if (in.op != "init" && in.op != "restore" && in.op != "migrate")
        bad(what, "op", "has unknown value \"" + in.op + "\" (expected init, restore or migrate)");
    in.started = get_string(what, j, "started");
    in.pid = get_int(what, j, "pid");
    in.staging = get_strings(what, j, "staging");
    in.targets = get_strings(what, j, "targets");
    in.backup_id = get_string(what, j, "backup_id");
    in.from = get_string(what, j, "from");
    in.to = get_string(what, j, "to");
    return in;
}

}  // namespace bartl
