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

}  // namespace bartl
