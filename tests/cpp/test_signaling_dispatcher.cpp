// SignalingDispatcher on its own: stop() delivers what is queued and joins;
// abandon() waits for no delivery in progress and drops what is queued, and
// the thread it lets go still finishes that delivery.
//
// No framework: checks.h prints each check and "N passed, M failed"; exit
// code 0 only when everything passed.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "checks.h"
#include "engine/signaling_dispatcher.h"

using namespace std::chrono_literals;
using sinkcast::SignalingDispatcher;
using sinkcast::SignalingMessage;

using sinkcast_tests::check;
using sinkcast_tests::wait_until;

namespace {

SignalingMessage message(const std::string& type) { return SignalingMessage{"s", type, "", nullptr}; }

// A delivery that can be held inside the callback, as an application's
// callback waiting for a lock would be.
struct HeldDelivery {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::string> delivered;
  bool inside = false;
  bool released = false;
  std::atomic<int> returned{0};

  void deliver(const SignalingMessage& m) {
    std::unique_lock<std::mutex> lock(mutex);
    inside = true;
    changed.notify_all();
    changed.wait(lock, [this] { return released; });
    delivered.push_back(m.type);
    lock.unlock();
    returned.fetch_add(1);
  }
  bool wait_inside() {
    std::unique_lock<std::mutex> lock(mutex);
    return changed.wait_for(lock, 5s, [this] { return inside; });
  }
  void release() {
    std::lock_guard<std::mutex> lock(mutex);
    released = true;
    changed.notify_all();
  }
};

void test_stop_delivers_what_is_queued() {
  std::printf("stop()\n");
  auto held = std::make_shared<HeldDelivery>();
  held->release();
  SignalingDispatcher dispatcher([held](const SignalingMessage& m) { held->deliver(m); });
  for (const char* type : {"offer", "candidate", "bye"}) dispatcher.post(message(type));
  dispatcher.stop();
  check(held->delivered == std::vector<std::string>{"offer", "candidate", "bye"},
        "everything queued is delivered, in order, before stop() returns");
  dispatcher.post(message("late"));
  check(held->delivered.size() == 3, "a message posted after stop() is dropped");
}

void test_abandon_leaves_a_delivery_in_progress() {
  std::printf("abandon()\n");
  auto held = std::make_shared<HeldDelivery>();
  {
    SignalingDispatcher dispatcher([held](const SignalingMessage& m) { held->deliver(m); });
    dispatcher.post(message("offer"));
    check(held->wait_inside(), "the first delivery is in progress (held)");
    dispatcher.post(message("bye"));
    const auto start = std::chrono::steady_clock::now();
    dispatcher.abandon();
    check(std::chrono::steady_clock::now() - start < 2s, "abandon() returns with a delivery still held");
    check(held->returned.load() == 0, "the held delivery has not returned yet");
    check(SignalingDispatcher::let_go_running() == 1, "the thread counts as let go");
    dispatcher.stop();  // and then the destructor: neither may wait for it either
  }
  check(held->returned.load() == 0, "destroying the dispatcher did not wait for it either");
  held->release();
  check(wait_until([&] { return held->returned.load() == 1; }, 5s), "the let-go thread finishes the held delivery");
  check(wait_until([] { return SignalingDispatcher::let_go_running() == 0; }, 5s), "and then no longer counts");
  std::this_thread::sleep_for(50ms);
  std::lock_guard<std::mutex> lock(held->mutex);
  check(held->delivered == std::vector<std::string>{"offer"}, "what was queued behind it is dropped");
}

void test_abandon_when_idle_joins() {
  std::printf("abandon() while idle\n");
  auto held = std::make_shared<HeldDelivery>();
  held->release();
  SignalingDispatcher dispatcher([held](const SignalingMessage& m) { held->deliver(m); });
  dispatcher.post(message("offer"));
  check(wait_until([&] { return held->returned.load() == 1 && dispatcher.backlog() == 0; }, 5s),
        "the one message is delivered");
  std::this_thread::sleep_for(100ms);  // back to waiting for the next message
  dispatcher.abandon();
  check(SignalingDispatcher::let_go_running() == 0, "an idle thread is joined, not let go");
  dispatcher.post(message("late"));
  std::this_thread::sleep_for(20ms);
  check(held->returned.load() == 1, "nothing is delivered after abandon()");
}

}  // namespace

int main() {
  // A wrong abandon() would wait for the held delivery for ever: fail instead.
  std::thread([] {
    std::this_thread::sleep_for(60s);
    std::printf("  FAIL  still running after 60 s: something waited for a held delivery\n");
    std::fflush(stdout);
    std::_Exit(1);
  }).detach();
  test_stop_delivers_what_is_queued();
  test_abandon_leaves_a_delivery_in_progress();
  test_abandon_when_idle_joins();
  return sinkcast_tests::checks_summary();
}
