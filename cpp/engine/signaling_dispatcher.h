// The one engine thread that delivers signaling messages to the application
// (Python). libdatachannel's threads only ever enqueue here, so they never
// wait on the application, and messages keep the order in which they were
// posted (so per listener, too). The engine's own deferred work (reaping a
// listener) runs elsewhere (TaskThread): a slow application must not delay it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace sinkcast {

// Where a listener session stands, read when its queued messages are delivered.
// A target can be reused: a new offer, or a new request_offer, replaces the
// session on it. Without this, messages the old session had queued (its
// offer, candidates, a bye for a failed peer) would reach the application
// after the new session opened, under the same target, and pass for its own.
//
// A session is Opening until the call that opens it (an offer, a
// request_offer) has succeeded or failed. libdatachannel can already hand
// over its description on another thread while that call goes on, and the
// call can still fail after that (no socket left for ICE, say): such a
// session never existed for the application, so its messages wait at the
// dispatcher until the call is settled, and are then dropped or delivered.
// The session that call would replace is Pending meanwhile: its messages wait
// too, and go out after all if the new one fails, since then nothing changed.
struct SessionLife {
    enum State : int {
        Opening,     // the opening call has not returned: its messages wait
        Open,        // everything it sends is delivered
        Closed,      // the engine closed it: only its bye still goes out
        Superseded,  // the application closed or replaced it, or it never opened: nothing more goes out
        Pending,     // a call that would replace it has not returned: its messages wait
    };
    std::atomic<int> state{Opening};

    void settle(State s) {
        state.store(s, std::memory_order_release);
        state.notify_all();
    }
    // Puts it on hold while a call may replace it; returns what to restore.
    State hold() { return static_cast<State>(state.exchange(Pending, std::memory_order_acq_rel)); }

    bool undecided() const {
        const int s = state.load(std::memory_order_acquire);
        return s == Opening || s == Pending;
    }
    // Returns once the session is neither Opening nor Pending. The call that
    // decides holds no lock the dispatcher takes and never waits for the
    // dispatcher, so this wait ends when that call returns.
    void wait_until_settled() const {
        for (int s = state.load(std::memory_order_acquire); s == Opening || s == Pending;
             s = state.load(std::memory_order_acquire))
            state.wait(s, std::memory_order_acquire);
    }

    bool delivers(const std::string& type) const {
        const int s = state.load(std::memory_order_acquire);
        return s == Open || (s == Closed && type == "bye");
    }
};

struct SignalingMessage {
    std::string target;  // "sink" or "sink/listener", exactly as the session was opened
    std::string type;    // offer | answer | candidate | bye
    std::string message;
    // The session that sent it; the message is dropped at delivery unless its
    // session still delivers it (SessionLife::delivers).
    std::shared_ptr<const SessionLife> session;

    // Its session was closed or replaced since it was posted: drop it.
    bool stale() const { return session && !session->delivers(type); }
};

// Receives the engine's outgoing signaling messages on the dispatcher thread.
class SignalingHandler {
public:
    virtual ~SignalingHandler() = default;
    virtual void deliver(const SignalingMessage& message) = 0;
};

class SignalingDispatcher {
public:
    // `deliver` is called on the dispatcher thread for every posted message.
    explicit SignalingDispatcher(std::function<void(const SignalingMessage&)> deliver);
    ~SignalingDispatcher();

    void post(SignalingMessage message);  // never blocks for long; after stop() it is dropped

    // Runs everything already queued, then joins the thread. Idempotent.
    // Called on the dispatcher thread itself (from inside a callback) it drops
    // what is queued and lets the thread finish after the current item.
    void stop();

    // For a caller that must not wait for the application (the cycle
    // collector's thread may hold a lock the callback is waiting for): what is
    // queued is dropped, and a delivery in progress is not waited for. The
    // thread is let go and finishes it alone, on its own reference to State.
    // Idempotent; stop() afterwards does nothing more.
    void abandon();

    // Threads let go by abandon() and still finishing their delivery, in the
    // whole process: the interpreter-exit hook waits for them.
    static int let_go_running();

    bool on_dispatcher_thread() const { return std::this_thread::get_id() == thread_id_; }

    // Messages posted and not yet handed to `deliver` (the one being delivered
    // is not counted): what a slow callback has let pile up.
    size_t backlog() const;

private:
    // The thread owns a reference to this state, so the dispatcher may even be
    // destroyed from its own thread (a callback dropped the last reference to
    // the engine): the thread then finishes alone, touching only State.
    struct State {
        std::function<void(const SignalingMessage&)> deliver;
        std::mutex mutex;
        std::condition_variable wake;
        std::deque<SignalingMessage> queue;
        bool stopping = false;
        bool delivering = false;  // an item is out of the queue and in deliver()
        bool let_go = false;      // abandon() detached the thread: it counts in let_go_running()
    };
    // Delivers until stopped and drained; returns whether abandon() let the thread go.
    static bool run(const std::shared_ptr<State>& state);

    std::shared_ptr<State> state_;
    std::thread thread_;
    std::thread::id thread_id_;
};

}  // namespace sinkcast
