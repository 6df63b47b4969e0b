#include "engine/task_thread.h"

#include "engine/thread_name.h"

namespace sinkcast {

TaskThread::TaskThread(const std::string& name) {
    thread_ = std::thread([this] { run(); });
    name_thread(thread_, name);
}

TaskThread::~TaskThread() { stop(); }

void TaskThread::post_at(Clock::time_point when, Task task) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_) return;
        tasks_.emplace(when, std::move(task));
    }
    wake_.notify_one();
}

void TaskThread::stop() {
    std::multimap<Clock::time_point, Task> dropped;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
        dropped.swap(tasks_);  // their captures are destroyed below, outside the lock
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void TaskThread::run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
        if (tasks_.empty()) {
            wake_.wait(lock);
            continue;
        }
        const auto first = tasks_.begin();
        if (first->first > Clock::now()) {
            wake_.wait_until(lock, first->first);  // or an earlier task, or stop()
            continue;
        }
        Task task = std::move(first->second);
        tasks_.erase(first);
        lock.unlock();
        try {
            task();
        } catch (...) {
        }
        task = nullptr;  // its captures go before the lock is taken again
        lock.lock();
    }
}

}  // namespace sinkcast
