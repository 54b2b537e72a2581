#include "core/last_run.hpp"

namespace bartl {

bool LastRunScan::add(const RunEntry& e) {
    if (!started_) {
        started_ = true;
        last_.run = e.run;
    } else if (e.run != last_.run) {
        return false;
    }
    if (!last_.decision && e.decision) {
        last_.decision = *e.decision;
        last_.decision_time = e.time;
    }
    if (!last_.error && e.priority <= 3 && e.identifier == "bartld") {
        last_.error = e.message;
        last_.error_time = e.time;
    }
    return !(last_.decision && last_.error);
}

}  // namespace bartl
