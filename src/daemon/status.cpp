#include "daemon/status.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <sys/eventfd.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ops/backup.hpp"

namespace bartl {

std::uint64_t realtime_usec() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
}

Status::Status() {
    trigger_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (trigger_fd_ < 0) throw RuntimeError(fmt::format("eventfd for backup requests: {}", std::strerror(errno)));
    s_.phase_since = realtime_usec();
}

Status::~Status() {
    if (trigger_fd_ >= 0) ::close(trigger_fd_);
}

StatusSnapshot Status::snapshot() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return s_;
}

void Status::notify() {
    std::lock_guard<std::mutex> lock(listener_mutex_);
    if (listener_) listener_->status_changed();
}

void Status::update(const std::function<void(StatusSnapshot&)>& change) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        change(s_);
    }
    notify();
}

void Status::set_phase(Phase p) {
    update([p](StatusSnapshot& s) {
        const std::string name = phase_name(p);
        if (s.phase == name) return;
        s.phase = name;
        s.phase_since = realtime_usec();
        if (p == Phase::serving && s.serving_since == 0) s.serving_since = s.phase_since;
    });
}

void Status::set_store_problem(const std::string& error, bool writes) {
    update([&](StatusSnapshot& s) {
        if (s.store_problem.empty()) s.store_problem_since = realtime_usec();
        s.store_problem = error;
        store_problem_writes_ = writes;
    });
}

void Status::clear_store_problem(bool wrote) {
    update([&](StatusSnapshot& s) {
        // A read-only store answers the fence watch's reads: that is no sign it takes a backup.
        if (s.store_problem.empty() || (store_problem_writes_ && !wrote)) return;
        s.store_problem.clear();
        s.store_problem_since = 0;
        store_problem_writes_ = false;
    });
}

void Status::set_listener(StatusListener* listener) {
    std::lock_guard<std::mutex> lock(listener_mutex_);
    listener_ = listener;
}

std::string Status::request_backup() {
    std::string id;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!s_.backup_job.empty()) return s_.backup_job;
        if (!requested_.empty()) return requested_;
        if (s_.store.empty())
            throw StoreUnavailable(fmt::format("instance {} has no [backup] store configured", s_.instance));
        if (s_.phase != phase_name(Phase::serving))
            throw NotServingError(fmt::format("instance {} is {}, not serving: backups start once the state is "
                                              "ready", s_.instance, s_.phase));
        requested_ = id = new_backup_id();
    }
    std::uint64_t one = 1;
    (void)!::write(trigger_fd_, &one, sizeof one);
    return id;
}

bool Status::take_request() {
    std::uint64_t v;
    (void)!::read(trigger_fd_, &v, sizeof v);
    std::lock_guard<std::mutex> lock(mutex_);
    return !requested_.empty();
}

std::string Status::begin_backup(const std::string& scheduled_id, bool* requested) {
    std::string id;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (requested) *requested = !requested_.empty();
        id = requested_.empty() ? scheduled_id : requested_;
        requested_.clear();
        s_.backup_job = id;
        s_.next_backup = 0;
        s_.phase = phase_name(Phase::backing_up);
        s_.phase_since = realtime_usec();
        estimate_ = s_.last_backup.bytes;
    }
    notify();
    backup_progress(0);
    return id;
}

void Status::backup_progress(std::uint64_t done) {
    std::string id;
    std::uint64_t estimate;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        id = s_.backup_job;
        estimate = estimate_;
    }
    if (id.empty()) return;
    std::lock_guard<std::mutex> lock(listener_mutex_);
    if (listener_) listener_->backup_progress(id, done, estimate);
}

void Status::end_backup(const BackupOutcome& outcome, std::uint64_t next_backup) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        s_.last_backup = outcome;
        (outcome.result == "success" ? s_.last_success : s_.last_failure) = outcome;
        s_.backup_job.clear();
        s_.next_backup = next_backup;
        if (s_.phase == phase_name(Phase::backing_up)) {
            s_.phase = phase_name(Phase::serving);
            s_.phase_since = realtime_usec();
        }
    }
    notify();
    std::lock_guard<std::mutex> lock(listener_mutex_);
    if (listener_) listener_->backup_finished(outcome.id, outcome.result, outcome.error);
}

}  // namespace bartl
