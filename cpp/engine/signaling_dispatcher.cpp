#include "engine/signaling_dispatcher.h"

#include "engine/thread_name.h"

namespace sinkcast {

namespace {
std::atomic<int> g_let_go_running{0};
}  // namespace

int SignalingDispatcher::let_go_running() { return g_let_go_running.load(std::memory_order_acquire); }

SignalingDispatcher::SignalingDispatcher(std::function<void(const SignalingMessage&)> deliver)
    : state_(std::make_shared<State>()) {
    state_->deliver = std::move(deliver);
    thread_ = std::thread([state = state_]() mutable {
        const bool let_go = run(state);
        state.reset();  // the last of State may go here: after this the thread runs nothing of it
        if (let_go) g_let_go_running.fetch_sub(1, std::memory_order_acq_rel);
    });
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
    if (!thread_.joinable()) return;  // joined or let go already
    bool delivering = false;
    {
        std::lock_guard<std::mutex> lock(state_->mutex);
        state_->stopping = true;
        state_->queue.clear();
        delivering = state_->delivering;
        if (delivering) {  // once only: afterwards the thread is not joinable
            state_->let_go = true;
            g_let_go_running.fetch_add(1, std::memory_order_acq_rel);
        }
    }
    state_->wake.notify_all();
    // Idle, it ends at once (its queue is empty and it is stopping): joined,
    // so its end is certain. Busy, it ends after the delivery: let go. On the
    // dispatcher thread itself (a collection inside a callback) it is busy,
    // and let go too, so that no later destructor joins it.
    if (delivering) {
        thread_.detach();
    } else {
        thread_.join();
    }
}

bool SignalingDispatcher::run(const std::shared_ptr<State>& state) {
    std::unique_lock<std::mutex> lock(state->mutex);
    for (;;) {
        state->wake.wait(lock, [&] { return state->stopping || !state->queue.empty(); });
        if (state->queue.empty()) return state->let_go;  // stopping and drained
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
