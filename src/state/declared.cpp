#include "state/declared.hpp"

#include "state/database.hpp"
#include "state/directory.hpp"

namespace bartl {

std::vector<std::unique_ptr<Component>> declared_components(const Config& config) {
    std::vector<std::unique_ptr<Component>> out;
    for (const auto& p : config.state_paths) out.push_back(std::make_unique<DirectoryComponent>(p));
    for (const auto& d : config.databases) out.push_back(make_database_component(d));
    return out;
}

std::string component_list(const std::vector<const Component*>& components) {
    std::string s;
    for (const auto* c : components) s += (s.empty() ? "" : ", ") + c->id();
    return s;
}

}  // namespace bartl
