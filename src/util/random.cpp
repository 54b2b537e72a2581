#include "util/random.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "core/error.hpp"

namespace bartl {

std::string random_hex(std::size_t bytes) {
    std::vector<unsigned char> b(bytes);
    std::size_t got = 0;
    while (got < bytes) {
        ssize_t n = ::getrandom(b.data() + got, bytes - got, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw RuntimeError(fmt::format("getrandom: {}", std::strerror(errno)));
        }
        got += static_cast<std::size_t>(n);
    }
    std::string s;
    s.reserve(bytes * 2);
    for (unsigned char c : b) s += fmt::format("{:02x}", c);
    return s;
}

}  // namespace bartl
