#include "engine/signaling_dispatcher.h"

namespace sinkcast {

SignalingDispatcher::SignalingDispatcher(std::function<void(const SignalingMessage&)> deliver)
    : deliver_(std::move(deliver)) {
    thread_ = std::thread([this] { run(); });
    thread_id_ = thread_.get_id();
}

SignalingDispatcher::~SignalingDispatcher() {
    stop();
    // Destroyed from its own thread (a callback dropped the last engine
    // reference): the thread cannot join itself, let it finish alone.
    if (thread_.joinable()) thread_.detach();
}

void SignalingDispatcher::post(SignalingMessage message) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_) return;
        queue_.emplace_back(std::move(message));
    }
    wake_.notify_one();
}

void SignalingDispatcher::post_task(Task task) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_) return;
        queue_.emplace_back(std::move(task));
    }
    wake_.notify_one();
}

size_t SignalingDispatcher::queued() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return queue_.size();
}

void SignalingDispatcher::stop() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
        // From inside a callback nothing may be delivered after the caller's
        // shutdown() returns, so what is still queued is dropped, not drained.
        if (on_dispatcher_thread()) queue_.clear();
    }
    wake_.notify_all();
    if (on_dispatcher_thread()) return;
    if (thread_.joinable()) thread_.join();
}

void SignalingDispatcher::run() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping and drained
        auto item = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();
        // Never let an exception escape into this thread (it would terminate the process).
        try {
            if (auto* message = std::get_if<SignalingMessage>(&item))
                deliver_(*message);
            else
                std::get<Task>(item)();
        } catch (...) {
        }
        item = SignalingMessage{};  // release captured state before taking the lock again
        lock.lock();
    }
}

}  // namespace sinkcast
