// Where a bartld lives on the bus: the well-known name derived from its instance name, and
// the object path (dbus/app.bartl.Instance1.xml, "Bus name"). Shared by bartld and bartlctl.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace bartl::bus {

/// Interface name, also the prefix of every instance's bus name.
inline constexpr const char* interface_name = "app.bartl.Instance1";
/// Object path of the one object each bartld exports.
inline constexpr const char* object_path = "/app/bartl/Instance1";

/// Escapes an instance name into one bus-name element: every byte that is not a-z, or a digit
/// that is not first, becomes '_' and two lower-case hex digits ("notes-eu" -> "notes_2deu",
/// "2nd" -> "_32nd", "a_b" -> "a_5fb"). Total: any input gives a valid element ("" -> "_").
std::string escape_element(std::string_view instance);

/// Reverses escape_element(). std::nullopt when `element` is not an escape_element() output
/// (a '_' not followed by two lower-case hex digits, or a byte escape_element() keeps escaped).
std::optional<std::string> unescape_element(std::string_view element);

/// "app.bartl.Instance1." + escape_element(instance).
std::string bus_name(std::string_view instance);

/// The instance a bus name belongs to, or std::nullopt when `name` is not a bartl instance
/// name (wrong prefix or bad escaping).
std::optional<std::string> instance_of(std::string_view name);

}  // namespace bartl::bus
