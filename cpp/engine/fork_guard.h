// fork() copies only the thread that calls it. An engine made before a fork()
// has threads (its clocks, its dispatcher, its task thread, libdatachannel's
// pool, libjuice's poll thread) that run only in the parent. In the child such
// an engine must not be used, and must not be torn down either: joining a
// thread the child does not have crashes, and a lock that one of those threads
// held at the fork stays locked in the child for good.
//
// The fork generation tells the processes apart: it counts the fork()s between
// the process that loaded the engine and this one (a pthread_atfork handler
// adds one in each child).
#pragma once

#include <cstdint>
#include <sys/types.h>

namespace sinkcast {

uint64_t fork_generation();

// libdatachannel starts its threads with the first peer connection, once per
// process, and never again. Call before making a peer connection: records
// that WebRTC runs in this process, or throws LocalResourceError if it was
// started in a process this one was forked from (its threads are not here, so
// a new peer connection would wait for them forever).
void claim_webrtc_for_this_process();

}  // namespace sinkcast
