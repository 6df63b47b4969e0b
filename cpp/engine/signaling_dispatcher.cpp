#include "engine/signaling_dispatcher.h"

#include "engine/thread_name.h"

namespace sinkcast {

SignalingDispatcher::SignalingDispatcher(std::function<void(const SignalingMessage&)> deliver)
    : state_(std::make_shared<State>()) {
    state_->deliver = std::move(deliver);
    thread_ = std::thread([state = state_] { run(state); });
    name_thread(thread_, "sinkcast signal");
    thread_id_ = thread_.get_id();
}

SignalingDispatcher::~SignalingDispatcher() {
    stop();
    // Destroyed from its own thread: it cannot join itself; it finishes alone
    // on its own reference to State.
    if (thread_.joinable()) thread_.detach();
}

void SignalingDispatcher::post(SignalingMessage message) {
    {
        std::lock_guard<std::mutex> lock(state_->mutex);
        if (state_->stopping) return;
        state_->queue.emplace_back(std::move(message));
    }
    state_->wake.notify_one();
}

size_t SignalingDispatcher::backlog() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->queue.size();
}

void SignalingDispatcher::stop() {
    {
        std::lock_guard<std::mutex> lock(state_->mutex);
        state_->stopping = true;
        // From inside a callback nothing may be delivered after the caller's
        // shutdown() returns, so what is still queued is dropped, not drained.
        if (on_dispatcher_thread()) state_->queue.clear();
    }
    state_->wake.notify_all();
    if (on_dispatcher_thread()) return;
    if (thread_.joinable()) thread_.join();
}

void SignalingDispatcher::abandon() {
    bool delivering = false;
    {
        std::lock_guard<std::mutex> lock(state_->mutex);
        state_->stopping = true;
        state_->queue.clear();
        delivering = state_->delivering;
    }
    state_->wake.notify_all();
    if (on_dispatcher_thread() || !thread_.joinable()) return;
    // Idle, it ends at once (its queue is empty and it is stopping): joined,
    // so its end is certain. Busy, it ends after the delivery: let go.
    if (delivering) {
        thread_.detach();
    } else {
        thread_.join();
    }
}

void SignalingDispatcher::run(const std::shared_ptr<State>& state) {
    std::unique_lock<std::mutex> lock(state->mutex);
    for (;;) {
        state->wake.wait(lock, [&] { return state->stopping || !state->queue.empty(); });
        if (state->queue.empty()) return;  // stopping and drained
        auto item = std::move(state->queue.front());
        state->queue.pop_front();
        state->delivering = true;
        lock.unlock();
        // Never let an exception escape into this thread (it would terminate the process).
        try {
            state->deliver(item);
        } catch (...) {
        }
        item = SignalingMessage{};  // release the session it names before taking the lock again
        lock.lock();
        state->delivering = false;
    }
}

}  // namespace sinkcast
