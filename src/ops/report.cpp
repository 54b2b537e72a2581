#include "ops/report.hpp"

#include <fmt/format.h>

namespace bartl {

const char* phase_name(Phase p) noexcept {
    switch (p) {
    case Phase::deciding: return "deciding";
    case Phase::initializing: return "initializing";
    case Phase::restoring: return "restoring";
    case Phase::migrating: return "migrating";
    case Phase::serving: return "serving";
    case Phase::backing_up: return "backing-up";
    case Phase::stopping: return "stopping";
    case Phase::failed: return "failed";
    }
    return "unknown";
}

std::string format_bytes(unsigned long long bytes) {
    static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    if (bytes < 1024) return fmt::format("{} B", bytes);
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        ++u;
    }
    return v < 10 ? fmt::format("{:.1f} {}", v, units[u]) : fmt::format("{:.0f} {}", v, units[u]);
}

}  // namespace bartl
