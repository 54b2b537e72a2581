#include "core/json_read.hpp"

#include <limits>
#include <stdexcept>

namespace bartl::json_read {

Object Object::parse(const std::string& what, const std::string& text) {
    auto doc = std::make_shared<json>();
    try {
        *doc = json::parse(text);
    } catch (const json::exception& e) {  // parse_error, and out_of_range for 1e999
        throw std::invalid_argument(what + ": not valid JSON: " + e.what());
    }
    if (!doc->is_object()) throw std::invalid_argument(what + ": expected a JSON object at the top level");
    Object o(what, "", *doc);
    o.owned_ = std::move(doc);
    return o;
}

Object::Object(std::string what, std::string path, const json& value)
    : what_(std::move(what)), path_(std::move(path)), value_(&value) {}

void Object::fail(const std::string& key, const std::string& problem) const {
    throw std::invalid_argument(what_ + ": key \"" + path_ + key + "\" " + problem);
}

bool Object::has(const std::string& key) const { return value_->contains(key); }

const json& Object::member(const std::string& key) const {
    const auto it = value_->find(key);
    if (it == value_->end()) fail(key, "is missing");
    return *it;
}

std::string Object::string(const std::string& key) const {
    const json& v = member(key);
    if (!v.is_string()) fail(key, std::string("must be a string, not ") + v.type_name());
    return v.get<std::string>();
}

std::optional<std::string> Object::optional_string(const std::string& key) const {
    if (!has(key) || member(key).is_null()) return std::nullopt;
    return string(key);
}

std::int64_t Object::integer(const std::string& key, std::int64_t min, std::int64_t max) const {
    const json& v = member(key);
    if (!v.is_number_integer()) fail(key, std::string("must be an integer, not ") + v.type_name());
    // Values above INT64_MAX are stored as number_unsigned.
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
        fail(key, "is out of range");
    const auto n = v.get<std::int64_t>();
    if (n < min || n > max) fail(key, "is out of range (" + std::to_string(n) + ")");
    return n;
}

std::uint64_t Object::unsigned_integer(const std::string& key) const {
    const json& v = member(key);
    // A JSON 0 parses as unsigned; a negative or fractional number is a real error.
    if (!v.is_number_unsigned() && (!v.is_number_integer() || v.get<std::int64_t>() < 0))
        fail(key, "must be a non-negative integer, not " + v.dump());
    return v.get<std::uint64_t>();
}

bool Object::boolean(const std::string& key) const {
    const json& v = member(key);
    if (!v.is_boolean()) fail(key, std::string("must be true or false, not ") + v.type_name());
    return v.get<bool>();
}

std::vector<std::string> Object::strings(const std::string& key) const {
    const json& v = member(key);
    if (!v.is_array()) fail(key, std::string("must be an array of strings, not ") + v.type_name());
    std::vector<std::string> out;
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (!v[i].is_string())
            fail(key + "[" + std::to_string(i) + "]", std::string("must be a string, not ") + v[i].type_name());
        out.push_back(v[i].get<std::string>());
    }
    return out;
}

Object Object::object(const std::string& key) const {
    const json& v = member(key);
    if (!v.is_object()) fail(key, std::string("must be an object, not ") + v.type_name());
    Object o(what_, path_ + key + ".", v);
    o.owned_ = owned_;
    return o;
}

std::vector<Object> Object::objects(const std::string& key) const {
    const json& v = member(key);
    if (!v.is_array()) fail(key, std::string("must be an array, not ") + v.type_name());
    std::vector<Object> out;
    for (std::size_t i = 0; i < v.size(); ++i) {
        const std::string at = key + "[" + std::to_string(i) + "]";
        if (!v[i].is_object()) fail(at, std::string("must be an object, not ") + v[i].type_name());
        Object o(what_, path_ + at + ".", v[i]);
        o.owned_ = owned_;
        out.push_back(std::move(o));
    }
    return out;
}

int Object::format(int min, int max) const {
    const json& v = member("format");
    if (!v.is_number_integer()) fail("format", std::string("must be an integer, not ") + v.type_name());
    const auto f = v.get<std::int64_t>();
    if (f < min || f > max)
        throw std::invalid_argument(what_ + ": unsupported format " + v.dump() + " (this bartl reads format " +
                                    (min == max ? std::to_string(min)
                                                : std::to_string(min) + " to " + std::to_string(max)) +
                                    ")");
    return static_cast<int>(f);
}

}  // namespace bartl::json_read
