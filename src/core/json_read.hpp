// Strict reading of the JSON files bartl writes (state marker, intent record, backup
// manifests, the store identity). Every reader names the file kind and the key path in its
// errors ("state marker: key \"components[1].name\" must be a string, not number"), because
// a marker or manifest that parses decides what is served or restored: a guessed default
// there could destroy data. Unknown extra keys are ignored, so a newer bartl may add fields
// within a format. Pure: no I/O.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bartl::json_read {

using nlohmann::json;

/// A JSON object and where it sits, for error messages: `what` is the document
/// ("state marker"), `path` the key path to this object ("" at the top, "components[1].").
class Object {
public:
    /// Parses `text`, which must hold a JSON object. Throws std::invalid_argument
    /// "<what>: not valid JSON: ..." or "<what>: expected a JSON object at the top level".
    static Object parse(const std::string& what, const std::string& text);
    Object(std::string what, std::string path, const json& value);

    /// True when `key` is present (null counts as present).
    bool has(const std::string& key) const;
    /// The member `key`; throws std::invalid_argument "... is missing" when absent.
    const json& member(const std::string& key) const;

    std::string string(const std::string& key) const;
    std::optional<std::string> optional_string(const std::string& key) const;  ///< absent or null -> nullopt
    std::int64_t integer(const std::string& key, std::int64_t min, std::int64_t max) const;
    std::uint64_t unsigned_integer(const std::string& key) const;  ///< a non-negative integer
    bool boolean(const std::string& key) const;
    std::vector<std::string> strings(const std::string& key) const;
    /// The member `key` as an object (throws when it is not one).
    Object object(const std::string& key) const;
    /// The member `key` as an array of objects.
    std::vector<Object> objects(const std::string& key) const;
    /// Requires "format" to be an integer in [min, max]; returns it. Throws naming both.
    int format(int min, int max) const;

    /// Throws std::invalid_argument "<what>: key \"<path><key>\" <problem>".
    [[noreturn]] void fail(const std::string& key, const std::string& problem) const;

    const json& value() const noexcept { return *value_; }

private:
    std::string what_;
    std::string path_;
    const json* value_;
    std::shared_ptr<const json> owned_;  ///< the parsed document, when this is its top
};

}  // namespace bartl::json_read
