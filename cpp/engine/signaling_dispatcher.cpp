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

void SignalingDispatcher::post_task(Task task) {
    {
        std::lock_guard<std::mutex> lock(state_->mutex);
        if (state_->stopping) return;
        state_->queue.emplace_back(std::move(task));
    }
    state_->wake.notify_one();
}

void SignalingDispatcher::post_task_at(std::chrono::steady_clock::time_point when, Task task) {
    {
        std::lock_guard<std::mutex> lock(state_->mutex);
        if (state_->stopping) return;
        state_->timed.emplace(when, std::move(task));
    }
    state_->wake.notify_one();
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

void SignalingDispatcher::run(const std::shared_ptr<State>& state) {
    std::unique_lock<std::mutex> lock(state->mutex);
    for (;;) {
        // Due timed tasks join the queue behind what is already in it.
        while (!state->stopping && !state->timed.empty() &&
               state->timed.begin()->first <= std::chrono::steady_clock::now()) {
            state->queue.emplace_back(std::move(state->timed.begin()->second));
            state->timed.erase(state->timed.begin());
        }
        if (state->queue.empty()) {
            if (state->stopping) {
                state->timed.clear();  // never due now; their captures go with them
                return;
            }
            if (state->timed.empty())
                state->wake.wait(lock);
            else
                state->wake.wait_until(lock, state->timed.begin()->first);
            continue;
        }
        auto item = std::move(state->queue.front());
        state->queue.pop_front();
        lock.unlock();
        // Never let an exception escape into this thread (it would terminate the process).
        try {
            if (auto* message = std::get_if<SignalingMessage>(&item))
                state->deliver(*message);
            else
                std::get<Task>(item)();
        } catch (...) {
        }
        item = SignalingMessage{};  // release captured state before taking the lock again
        lock.lock();
    }
}

}  // namespace sinkcast
