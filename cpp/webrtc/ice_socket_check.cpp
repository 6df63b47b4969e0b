#include "ice_socket_check.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "webrtc_sender.h"

namespace sinkcast {
namespace {

class UdpSocket {
 public:
  explicit UdpSocket(int family) : fd_(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0)), error_(fd_ < 0 ? errno : 0) {}
  ~UdpSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;
  bool ok() const { return fd_ >= 0; }
  int error() const { return error_; }  // errno of socket(), if it failed
  bool bind_to(const sockaddr_storage& addr, socklen_t len) const {
    return ::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), len) == 0;
  }

 private:
  int fd_;
  int error_;
};

void set_port(sockaddr_storage& addr, uint16_t port) {
  if (addr.ss_family == AF_INET6)
    reinterpret_cast<sockaddr_in6&>(addr).sin6_port = htons(port);
  else
    reinterpret_cast<sockaddr_in&>(addr).sin_port = htons(port);
}

}  // namespace

std::string explain_ice_socket_failure(const IceConfig& ice) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(sockaddr_in);
  if (ice.bind_address.empty()) {
    auto& any = reinterpret_cast<sockaddr_in&>(addr);
    any.sin_family = AF_INET;
    any.sin_addr.s_addr = htonl(INADDR_ANY);
  } else {
    addrinfo hints{};
    hints.ai_flags = AI_NUMERICHOST;  // never a DNS lookup
    hints.ai_socktype = SOCK_DGRAM;
    addrinfo* found = nullptr;
    if (::getaddrinfo(ice.bind_address.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) return "";
    std::memcpy(&addr, found->ai_addr, found->ai_addrlen);
    len = static_cast<socklen_t>(found->ai_addrlen);
    ::freeaddrinfo(found);
  }

  {
    // A few sockets at once, not one: the failed attempt may have given back
    // a descriptor or two as it unwound, and so may a closing listener.
    std::vector<std::unique_ptr<UdpSocket>> spare;
    while (spare.size() < 8) {
      spare.push_back(std::make_unique<UdpSocket>(addr.ss_family));
      if (!spare.back()->ok()) break;
    }
    if (!spare.back()->ok()) {
      if (spare.back()->error() == EMFILE) {
        struct rlimit limit {};
        ::getrlimit(RLIMIT_NOFILE, &limit);
        return " (this process is at its limit of " + std::to_string(limit.rlim_cur) +
               " open file descriptors; each listener needs a UDP socket unless ice_udp_mux=True: "
               "raise the limit with `ulimit -n` or resource.setrlimit(resource.RLIMIT_NOFILE, ...))";
      }
      if (spare.back()->error() == ENFILE) return " (the system has no file descriptor left)";
      return "";
    }
    set_port(addr, 0);
    if (!spare.front()->bind_to(addr, len)) {
      if (errno == EADDRNOTAVAIL)
        return " (bind_address " + ice.bind_address + " is not an address of this host)";
      return "";
    }
  }

  if (ice.port_range_begin == 0 && ice.port_range_end == 0) return "";
  // The same defaults as WebRTCSender gives libdatachannel for an open end.
  const unsigned begin = ice.port_range_begin != 0 ? ice.port_range_begin : 1024;
  const unsigned end = ice.port_range_end != 0 ? ice.port_range_end : 65535;
  for (unsigned port = begin; port <= end; ++port) {
    UdpSocket probe(addr.ss_family);
    set_port(addr, static_cast<uint16_t>(port));
    if (probe.ok() && probe.bind_to(addr, len)) return "";  // a port is free: not the cause
  }
  return " (no UDP port of port_range " + std::to_string(begin) + "-" + std::to_string(end) +
         " is free; each listener needs one unless ice_udp_mux=True)";
}

}  // namespace sinkcast
