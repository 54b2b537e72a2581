#include "util/cancel.hpp"

#include <atomic>
#include <mutex>

#include "core/error.hpp"

namespace bartl {

struct CancelToken::State {
    std::shared_ptr<State> parent;
    std::atomic<bool> flag{false};
    mutable std::mutex mutex;  // guards reason
    std::string reason;
    std::function<bool()> poll;
    std::string poll_reason;

    void set(const std::string& why) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!flag.exchange(true)) reason = why;
    }
    bool cancelled() {
        for (State* s = this; s; s = s->parent.get()) {
            if (s->flag.load()) return true;
            if (s->poll && s->poll()) {
                s->set(s->poll_reason);
                return true;
            }
        }
        return false;
    }
};

CancelToken::CancelToken() : state_(std::make_shared<State>()) {}
CancelToken::CancelToken(std::shared_ptr<State> state) : state_(std::move(state)) {}

CancelToken CancelToken::child() const {
    auto s = std::make_shared<State>();
    s->parent = state_;
    return CancelToken(std::move(s));
}

void CancelToken::cancel(const std::string& reason) const { state_->set(reason); }

bool CancelToken::cancelled() const { return state_->cancelled(); }

std::string CancelToken::reason() const {
    if (!cancelled()) return "";
    for (State* s = state_.get(); s; s = s->parent.get()) {
        if (!s->flag.load()) continue;
        std::lock_guard<std::mutex> lock(s->mutex);
        return s->reason;
    }
    return "";
}

void CancelToken::check(const std::string& what) const {
    if (cancelled()) throw StopRequested("stop requested: " + what + " (" + reason() + ")");
}

void CancelToken::set_poll(std::function<bool()> poll, std::string reason) const {
    state_->poll = std::move(poll);
    state_->poll_reason = std::move(reason);
}

const CancelToken& CancelToken::process() {
    static const CancelToken token;
    return token;
}

Deadline Deadline::after(std::chrono::steady_clock::duration timeout) {
    Deadline d;
    d.set_ = true;
    d.at_ = std::chrono::steady_clock::now() + timeout;
    return d;
}

bool Deadline::expired() const { return set_ && std::chrono::steady_clock::now() >= at_; }

std::chrono::steady_clock::duration Deadline::remaining() const {
    if (!set_) return std::chrono::hours(24 * 365);
    const auto left = at_ - std::chrono::steady_clock::now();
    return left > std::chrono::steady_clock::duration::zero() ? left : std::chrono::steady_clock::duration::zero();
}

Deadline Deadline::earliest(const Deadline& other) const {
    if (!set_) return other;
    if (!other.set_) return *this;
    return at_ <= other.at_ ? *this : other;
}

Context Context::with_timeout(std::chrono::steady_clock::duration timeout) const {
    Context c = *this;
    c.deadline = deadline.earliest(Deadline::after(timeout));
    return c;
}

Context Context::child() const {
    Context c = *this;
    c.cancel = cancel.child();
    return c;
}

void Context::check(const std::string& what) const {
    cancel.check(what);
    if (deadline.expired()) throw RuntimeError(what + ": deadline passed");
}

}  // namespace bartl
