#pragma once

// Names an engine thread, so `top -H`, perf and /proc/<pid>/task/*/comm tell
// the engine's threads apart from Python's and libdatachannel's ("juice poll",
// "RTC worker", ...). Called by the thread's creator right after it starts the
// thread, so the name is there by the time the creating call returns. Linux
// keeps at most 15 characters; longer names are cut.

#include <string>
#include <thread>

#if defined(__linux__)
#include <pthread.h>
#endif

namespace sinkcast {

inline void name_thread(std::thread& thread, const std::string& name) {
#if defined(__linux__)
    ::pthread_setname_np(thread.native_handle(), name.substr(0, 15).c_str());
#else
    (void)thread;
    (void)name;
#endif
}

}  // namespace sinkcast
