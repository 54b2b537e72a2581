#include "core/last_run.hpp"

namespace bartl {

LastRun last_run(const RunLookups& found) {
    LastRun last;
    if (!found.newest || found.newest->identifier != "bartld") return last;
    last.run = found.newest->run;
    if (const auto& d = found.decision; d && d->run == last.run && d->decision) {
        last.decision = *d->decision;
        last.decision_time = d->time;
    }
    if (const auto& e = found.error; e && e->run == last.run && e->priority <= 3 && e->identifier == "bartld") {
        last.error = e->message;
        last.error_time = e->time;
    }
    return last;
}

}  // namespace bartl
