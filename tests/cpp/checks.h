// What the C++ tests share instead of a framework: check() prints one result
// and counts it, wait_until() polls a condition another thread makes true,
// and checks_summary() prints "N passed, M failed" and gives main()'s exit
// code (0 only when everything passed).
#pragma once

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>

namespace sinkcast_tests {

inline int g_passed = 0;
inline int g_failed = 0;

inline void check(bool ok, const std::string& what) {
  (ok ? g_passed : g_failed) += 1;
  std::printf("  %s  %s\n", ok ? "ok  " : "FAIL", what.c_str());
  std::fflush(stdout);
}

inline bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

inline int checks_summary() {
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}

}  // namespace sinkcast_tests
