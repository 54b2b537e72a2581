#include "util/host.hpp"

#include <unistd.h>

namespace bartl {

std::string host_name() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "unknown";
    return buf;
}

}  // namespace bartl
