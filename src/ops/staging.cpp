#include "ops/staging.hpp"

#include <fmt/format.h>

#include "ops/instance.hpp"
#include "util/log.hpp"

namespace bartl {

void check_targets(const std::vector<const Component*>& components) {
    for (const auto* c : components) c->check_target();
}

std::vector<std::string> staging_strings(const std::vector<const Component*>& components) {
    std::vector<std::string> out;
    for (const auto* c : components)
        if (!c->staging_path().empty()) out.push_back(c->staging_path().string());  // a database builds in place
    return out;
}

std::vector<std::string> target_strings(const std::vector<const Component*>& components) {
    std::vector<std::string> out;
    // A directory by its path (as intents always named it), anything else by its id
    // ("postgresql:notes"): do_clean_partial() tells them apart by the leading '/'.
    for (const auto* c : components) out.push_back(c->tree() ? c->name() : c->id());
    return out;
}

void bind_sync_commit(const std::vector<const Component*>& components, const std::string& state_id) {
    for (const auto* c : components) c->bind_staging(state_id);
    // The renames below are only worth something if the staged files are on disk first.
    for (const auto* c : components) c->sync_staging();
    for (const auto* c : components) c->commit_staging();
}

void rollback_uncommitted(const Config& config, const std::vector<const Component*>& components) {
    try {
        for (const auto* c : components) c->discard_staging();
        for (const auto* c : components) c->remove_target();
        Instance(config).clear_intent();
    } catch (const std::exception& e) {
        // Whatever is left is still proven ours by the intent: the next start cleans it.
        log::warn(fmt::format("rollback incomplete ({}); the next start will clean up", e.what()));
    }
}

}  // namespace bartl
