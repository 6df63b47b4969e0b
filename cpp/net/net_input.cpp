#include "net/net_input.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "engine/thread_name.h"
#include "net/ip_address.h"

namespace sinkcast {

namespace {

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

NetInput::NetInput(int channels, const NetEndpoint& endpoint, size_t capacity_frames, size_t prebuffer_frames)
    : Source(channels), bind_address_(endpoint.bind_address), inner_(kEngineRate, channels, capacity_frames,
                                                                     prebuffer_frames) {
    if (endpoint.port < 0 || endpoint.port > 65535)
        throw std::invalid_argument("port must be 0 (any free port) to 65535, got " + std::to_string(endpoint.port));
    SocketAddress addr;
    if (!parse_ip_address(endpoint.bind_address, static_cast<uint16_t>(endpoint.port), addr))
        throw std::invalid_argument("bind_address must be a numeric IPv4 or IPv6 address, got '" +
                                    endpoint.bind_address + "'");
    const in_addr group4 = reinterpret_cast<const sockaddr_in&>(addr.storage).sin_addr;
    const bool multicast = addr.family() == AF_INET && (ntohl(group4.s_addr) >> 28) == 0xE;
    if (addr.family() == AF_INET6 && reinterpret_cast<const sockaddr_in6&>(addr.storage).sin6_addr.s6_addr[0] == 0xff)
        throw std::invalid_argument("IPv6 multicast groups are not supported (" + endpoint.bind_address +
                                    "): bind to an IPv4 group (224.0.0.0/4) or to a unicast address");
    in_addr interface4{};
    interface4.s_addr = htonl(INADDR_ANY);
    if (!endpoint.multicast_interface.empty()) {
        if (!multicast)
            throw std::invalid_argument("multicast_interface is for a multicast bind_address (224.0.0.0/4), got '" +
                                        endpoint.bind_address + "'");
        if (::inet_pton(AF_INET, endpoint.multicast_interface.c_str(), &interface4) != 1)
            throw std::invalid_argument("multicast_interface must be the IPv4 address of an interface, got '" +
                                        endpoint.multicast_interface + "'");
    }
    fd_ = ::socket(addr.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw NetworkInputError("cannot create a UDP socket: " + errno_text(errno));
    int rcvbuf = 1 << 20;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    if (multicast) {
        int one = 1;
        ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    }
    if (::bind(fd_, addr.get(), addr.length) != 0) {
        int err = errno;
        ::close(fd_);
        fd_ = -1;
        throw NetworkInputError("cannot bind UDP " + endpoint.bind_address + ":" + std::to_string(endpoint.port) +
                                 ": " + errno_text(err));
    }
    if (multicast) {
        ip_mreq mreq{};
        mreq.imr_multiaddr = group4;
        mreq.imr_interface = interface4;
        if (::setsockopt(fd_, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) != 0) {
            int err = errno;
            ::close(fd_);
            fd_ = -1;
            throw NetworkInputError("cannot join multicast group " + endpoint.bind_address +
                                    (endpoint.multicast_interface.empty() ? ""
                                                                          : " on " + endpoint.multicast_interface) +
                                    ": " + errno_text(err));
        }
    }
    sockaddr_storage bound{};
    socklen_t bound_len = sizeof(bound);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&bound), &bound_len);
    port_ = ntohs(addr.family() == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                           : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) {
        int err = errno;
        ::close(fd_);
        fd_ = -1;
        throw NetworkInputError("cannot create an eventfd: " + errno_text(err));
    }
}

NetInput::~NetInput() {
    stop();
    if (fd_ >= 0) ::close(fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
}

void NetInput::start() {
    std::lock_guard<std::mutex> lock(lifecycle_mutex_);
    if (thread_.joinable() || stopping_.load()) return;
    thread_ = std::thread([this] { run(); });
    name_thread(thread_, "sinkcast input");
}

void NetInput::stop() {
    std::lock_guard<std::mutex> lock(lifecycle_mutex_);
    stopping_.store(true);
    if (thread_.joinable()) {
        uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof(one));
        thread_.join();
    }
}

void NetInput::run() {
    std::vector<uint8_t> buffer(kMaxDatagram + 1);
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    while (!stopping_.load(std::memory_order_acquire)) {
        int timeout_ms = -1;
        auto deadline = next_deadline();
        if (deadline != Clock::time_point::max()) {
            auto wait = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now()).count();
            timeout_ms = wait <= 0 ? 0 : static_cast<int>((wait + 999) / 1000);
        }
        int ready = ::poll(fds, 2, timeout_ms);
        if (ready < 0 && errno != EINTR) break;
        if (fds[1].revents) break;
        if (ready > 0 && (fds[0].revents & POLLIN)) {
            // Drain what is queued now; MSG_TRUNC reports the real size of an oversized datagram.
            for (int i = 0; i < 256; ++i) {
                ssize_t n = ::recv(fd_, buffer.data(), buffer.size(), MSG_TRUNC);
                if (n < 0) break;
                if (static_cast<size_t>(n) > kMaxDatagram) {
                    malformed_.fetch_add(1, std::memory_order_relaxed);
                    continue;
                }
                try {
                    on_datagram(buffer.data(), static_cast<size_t>(n), Clock::now());
                } catch (...) {
                    errors_.record_current();  // counted and shown in stats(); the next packet goes on
                }
            }
        }
        try {
            if (next_deadline() <= Clock::now()) on_timer(Clock::now());
        } catch (...) {
            errors_.record_current();
        }
    }
}

void NetInput::emit(const float* frames, size_t count, int rate) {
    if (count == 0) return;
    frames_in_.fetch_add(count, std::memory_order_relaxed);
    if (rate == kEngineRate) {
        inner_.push(frames, SampleFormat::Float32, count);
        return;
    }
    if (!resampler_ || resampler_rate_ != rate) {
        resampler_ = std::make_unique<Resampler>(rate, kEngineRate, channels());
        resampler_rate_ = rate;
    }
    resampler_->process(frames, count, [&](const float* out, size_t n) {
        inner_.push(out, SampleFormat::Float32, n);
    });
}

void NetInput::emit_silence(size_t count, int rate) {
    const size_t ch = static_cast<size_t>(channels());
    const size_t chunk = 4800;
    if (silence_.size() < chunk * ch) silence_.assign(chunk * ch, 0.0f);
    while (count > 0) {
        size_t n = std::min(count, chunk);
        emit(silence_.data(), n, rate);
        count -= n;
    }
}

SourceCounters NetInput::counters() const {
    SourceCounters c = inner_.counters();
    c.frames_in = frames_in_.load(std::memory_order_relaxed);
    c.underruns += underruns_.load(std::memory_order_relaxed);
    return c;
}

NetInputStats NetInput::net_stats() const {
    NetInputStats s;
    s.bind_address = bind_address_;
    s.port = port_;
    s.packets = packets_.load(std::memory_order_relaxed);
    s.bytes = bytes_.load(std::memory_order_relaxed);
    s.lost = lost_.load(std::memory_order_relaxed);
    s.late = late_.load(std::memory_order_relaxed);
    s.reordered = reordered_.load(std::memory_order_relaxed);
    s.duplicates = duplicates_.load(std::memory_order_relaxed);
    s.malformed = malformed_.load(std::memory_order_relaxed);
    s.errors = errors_.count();
    s.last_error = errors_.last();
    s.ssrc_changes = ssrc_changes_.load(std::memory_order_relaxed);
    s.foreign = foreign_.load(std::memory_order_relaxed);
    s.resyncs = resyncs_.load(std::memory_order_relaxed);
    s.concealed_frames = concealed_frames_.load(std::memory_order_relaxed);
    s.skipped_frames = skipped_frames_.load(std::memory_order_relaxed);
    s.fec_recovered = fec_recovered_.load(std::memory_order_relaxed);
    s.decode_errors = decode_errors_.load(std::memory_order_relaxed);
    s.format_changes = format_changes_.load(std::memory_order_relaxed);
    s.jitter_ms = jitter_ms_.load(std::memory_order_relaxed);
    s.queued_packets = queued_packets_.load(std::memory_order_relaxed);
    s.wire_sample_rate = wire_rate_.load(std::memory_order_relaxed);
    s.wire_channels = wire_channels_.load(std::memory_order_relaxed);
    s.target_delay_ms = target_delay_ms_;
    return s;
}

}  // namespace sinkcast
