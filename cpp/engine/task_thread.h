// One thread that runs the engine's own deferred work: reaping a listener
// whose peer failed, and checking that a new listener connected in time.
// It is not the signaling dispatcher: that one waits on the application's
// callback, and a slow or blocked callback must not keep a dead listener
// listed, or its socket open.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace sinkcast {

class TaskThread {
public:
    using Task = std::function<void()>;
    using Clock = std::chrono::steady_clock;

    explicit TaskThread(const std::string& name);
    ~TaskThread();  // stop()
    TaskThread(const TaskThread&) = delete;
    TaskThread& operator=(const TaskThread&) = delete;

    // Tasks run one at a time, in the order of their times (then of posting).
    // An exception from a task is swallowed. After stop() nothing is queued.
    void post(Task task) { post_at(Clock::now(), std::move(task)); }
    void post_at(Clock::time_point when, Task task);

    // Waits for a running task, drops the ones not started, joins. Idempotent.
    // Never call it from a task, nor while holding a lock a task takes.
    void stop();

private:
    void run();

    std::mutex mutex_;
    std::condition_variable wake_;
    std::multimap<Clock::time_point, Task> tasks_;  // guarded by mutex_; equal times keep posting order
    bool stopping_ = false;                         // guarded by mutex_
    std::thread thread_;
};

}  // namespace sinkcast
