// The components an instance's configuration declares.
#pragma once

#include <memory>
#include <vector>

#include "config/config.hpp"
#include "state/component.hpp"

namespace bartl {

/// The declared components of `config` in declaration order: one DirectoryComponent per
/// [state] paths entry, then one DatabaseComponent per [[state.databases]] entry.
std::vector<std::unique_ptr<Component>> declared_components(const Config& config);

/// The ids ("path:/var/lib/x") of `components`, comma-separated, for messages.
std::string component_list(const std::vector<const Component*>& components);

}  // namespace bartl
