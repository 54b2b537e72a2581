#include "state/db_judge.hpp"

#include <fmt/format.h>

namespace bartl {

ComponentObservation judge_database(const std::string& id, const DatabaseFacts& facts, bool recorded,
                                    const std::string& state_id) {
    ComponentObservation o;
    o.carried_id = facts.exists ? facts.carried_id : "";
    if (!state_id.empty() && o.carried_id == state_id) {
        o.finding = ComponentFinding::ours;
        o.detail = fmt::format("{}: carries state ID {}", id, state_id);
        return o;
    }
    const std::string carried = o.carried_id.empty() ? "no state ID" : "state ID " + o.carried_id;
    if (facts.exists && facts.holds_data) {
        o.finding = ComponentFinding::foreign;
        o.detail = state_id.empty()
                       ? fmt::format("{} holds tables ({}) and there is no marker", id, carried)
                       : fmt::format("{} holds tables with {}, not the marker's state ID {}", id, carried, state_id);
        return o;
    }
    const char* how = facts.exists ? "exists with no tables" : "does not exist";
    if (!recorded) {
        o.finding = ComponentFinding::fresh;
        o.detail = fmt::format("{} {}", id, how);
        return o;
    }
    o.finding = ComponentFinding::lost;
    o.detail = fmt::format("{} {} ({}): state lost", id, how, carried);
    return o;
}

}  // namespace bartl
