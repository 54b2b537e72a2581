#include "core/store_identity.hpp"

#include <limits>

#include "core/json_read.hpp"
#include "core/marker.hpp"

namespace bartl {

std::string StoreIdentity::to_json() const {
    nlohmann::ordered_json j;
    j["format"] = format;
    j["store_id"] = store_id;
    j["app"] = app;
    j["created"] = created;
    j["created_by"] = created_by;
    if (writer)
        j["writer"] = {{"state_id", writer->state_id}, {"host", writer->host}, {"instance", writer->instance},
                       {"generation", writer->generation}, {"since", writer->since}};
    else
        j["writer"] = nullptr;
    return j.dump(2) + "\n";
}

StoreIdentity StoreIdentity::from_json(const std::string& text) {
    const auto j = json_read::Object::parse("store identity " + std::string(kStoreIdentityName), text);
    StoreIdentity s;
    s.format = j.format(1, 1);
    s.store_id = j.string("store_id");
    if (!is_state_id(s.store_id)) j.fail("store_id", "must be 32 lower-case hex digits, not \"" + s.store_id + "\"");
    s.app = j.string("app");
    if (s.app.empty()) j.fail("app", "must not be empty");
    s.created = j.string("created");
    s.created_by = j.string("created_by");
    if (!j.member("writer").is_null()) {
        const auto w = j.object("writer");
        StoreWriter wr;
        wr.state_id = w.string("state_id");
        if (!is_state_id(wr.state_id)) w.fail("state_id", "must be 32 lower-case hex digits");
        wr.host = w.string("host");
        wr.instance = w.string("instance");
        wr.generation = w.unsigned_integer("generation");
        if (wr.generation == 0) w.fail("generation", "must be at least 1");
        wr.since = w.string("since");
        s.writer = wr;
    }
    return s;
}

}  // namespace bartl
