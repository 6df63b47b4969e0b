// SCTP's timers, run only while SCTP is in use.
//
// Why: libdatachannel calls usrsctp_init() at its first PeerConnection, and
// usrsctp then starts a thread ("SCTP timer") that wakes every 10 ms for as long
// as any peer exists, to run SCTP's retransmission and SACK timers. SCTP only
// carries data channels. sinkcast streams audio, so most of its peers never
// open an SCTP association, and that thread was 2.5 of the 14.5 ms/s a
// one-listener server spent (benchmarks/README.md, fourteenth session).
//
// How: the link wraps four usrsctp calls (see cpp/CMakeLists.txt):
//   - usrsctp_init starts usrsctp without its threads (usrsctp_init_nothreads;
//     libdatachannel only uses AF_CONN sockets, so the receive threads for raw
//     sockets it also skips were unused);
//   - usrsctp_socket and usrsctp_close, which libdatachannel calls once per
//     peer that negotiated a data channel, count the open SCTP sockets. The
//     first one starts our own 10 ms timer thread ("sinkcast sctp"), which
//     ends once no socket has been open for kLinger: closing a socket aborts
//     its association, and the timers that free it run within milliseconds;
//   - usrsctp_finish, which libdatachannel retries every 100 ms at its global
//     cleanup until the last association is freed, keeps the thread running
//     while it fails, and no tick runs during or after a successful one.
//     (That cleanup only runs at rtc::Cleanup(), which sinkcast never calls:
//     libdatachannel keeps its global token until then. Handled all the same.)
// If the thread cannot be started, the socket is refused: an association
// without timers would stall, while a refused one fails that peer's data
// channel only.
// A process whose peers never negotiate a data channel never ticks at all.
// This file is only built when the bundled static libdatachannel is linked.

#include <usrsctp.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>

#include "engine/thread_name.h"

extern "C" {
struct socket* __real_usrsctp_socket(int domain, int type, int protocol,
                                     int (*receive_cb)(struct socket* sock, union sctp_sockstore addr, void* data,
                                                       size_t datalen, struct sctp_rcvinfo, int flags, void* ulp_info),
                                     int (*send_cb)(struct socket* sock, uint32_t sb_free, void* ulp_info),
                                     uint32_t sb_threshold, void* ulp_info);
void __real_usrsctp_close(struct socket* sock);
int __real_usrsctp_finish(void);
}

namespace sinkcast {
namespace {

using Clock = std::chrono::steady_clock;

class SctpTimerThread {
public:
    static SctpTimerThread& instance() {
        // Never destroyed: a data-channel peer may still be open at exit, and
        // destroying a joinable std::thread would terminate the process.
        static SctpTimerThread* timer = new SctpTimerThread;
        return *timer;
    }

    void on_init() {
        std::lock_guard<std::mutex> tick(tick_mutex_);
        usrsctp_alive_ = true;
    }

    // False, with nothing counted, when the timer thread cannot be started.
    bool on_socket_opened() {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!run_locked()) return false;
        ++open_sockets_;
        return true;
    }

    void on_socket_closed() {
        std::lock_guard<std::mutex> lock(mutex_);
        if (open_sockets_ > 0) --open_sockets_;  // a socket usrsctp made itself (accept) was never counted
        keep_until_ = Clock::now() + kLinger;
    }

    int finish() {
        int result;
        {
            std::lock_guard<std::mutex> tick(tick_mutex_);
            result = __real_usrsctp_finish();
            if (result == 0) usrsctp_alive_ = false;
        }
        if (result != 0) {
            // Associations are still being freed, by timers: keep ticking.
            std::lock_guard<std::mutex> lock(mutex_);
            keep_until_ = Clock::now() + kLinger;
            run_locked();  // if no thread can start now, libdatachannel's next retry tries again
        }
        return result;
    }

private:
    static constexpr auto kTick = std::chrono::milliseconds(10);  // usrsctp's own thread's interval
    static constexpr auto kLinger = std::chrono::seconds(5);

    bool run_locked() noexcept {
        if (running_) return true;
        try {
            if (thread_.joinable()) thread_.join();  // it has ended: it cleared running_ on its way out
            thread_ = std::thread([this] { run(); });
        } catch (...) {  // std::system_error (EAGAIN): no thread, and running_ stays false
            return false;
        }
        running_ = true;  // the new thread reads it only under mutex_, held here
        name_thread(thread_, "sinkcast sctp");
        return true;
    }

    void run() {
        auto last = Clock::now();
        for (;;) {
            std::this_thread::sleep_until(last + kTick);
            {
                std::lock_guard<std::mutex> lock(mutex_);
                if (open_sockets_ == 0 && Clock::now() >= keep_until_) {
                    running_ = false;
                    return;
                }
            }
            // Whole milliseconds since the last tick; the remainder carries over.
            const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - last);
            last += elapsed;
            std::lock_guard<std::mutex> tick(tick_mutex_);
            if (usrsctp_alive_) usrsctp_handle_timers(static_cast<std::uint32_t>(elapsed.count()));
        }
    }

    std::mutex mutex_;  // guards the four below
    std::thread thread_;
    bool running_ = false;
    int open_sockets_ = 0;
    Clock::time_point keep_until_{};
    std::mutex tick_mutex_;  // held by each tick and by usrsctp_finish; guards usrsctp_alive_
    bool usrsctp_alive_ = false;
};

}  // namespace
}  // namespace sinkcast

extern "C" {

void __wrap_usrsctp_init(uint16_t port, int (*conn_output)(void* addr, void* buffer, size_t length, uint8_t tos,
                                                          uint8_t set_df),
                         void (*debug_printf)(const char* format, ...)) {
    usrsctp_init_nothreads(port, conn_output, debug_printf);
    sinkcast::SctpTimerThread::instance().on_init();
}

struct socket* __wrap_usrsctp_socket(int domain, int type, int protocol,
                                     int (*receive_cb)(struct socket* sock, union sctp_sockstore addr, void* data,
                                                       size_t datalen, struct sctp_rcvinfo, int flags, void* ulp_info),
                                     int (*send_cb)(struct socket* sock, uint32_t sb_free, void* ulp_info),
                                     uint32_t sb_threshold, void* ulp_info) {
    struct socket* sock = __real_usrsctp_socket(domain, type, protocol, receive_cb, send_cb, sb_threshold, ulp_info);
    if (sock != nullptr && !sinkcast::SctpTimerThread::instance().on_socket_opened()) {
        // An association without timers would stall later; fail this one now
        // (libdatachannel reports "Could not create SCTP socket").
        __real_usrsctp_close(sock);
        errno = EAGAIN;
        return nullptr;
    }
    return sock;
}

void __wrap_usrsctp_close(struct socket* sock) {
    __real_usrsctp_close(sock);
    if (sock != nullptr) sinkcast::SctpTimerThread::instance().on_socket_closed();
}

int __wrap_usrsctp_finish(void) { return sinkcast::SctpTimerThread::instance().finish(); }

}  // extern "C"
