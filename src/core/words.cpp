#include "core/words.hpp"

#include <fmt/format.h>

namespace bartl {

std::string count_noun(unsigned long long n, std::string_view singular, std::string_view plural) {
    return fmt::format("{} {}", n, n == 1 ? singular : plural);
}

}  // namespace bartl
