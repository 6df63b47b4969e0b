#include "ice_socket_check.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <vector>

#include "net/ip_address.h"
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
  bool bind_to(const SocketAddress& addr) const { return ::bind(fd_, addr.get(), addr.length) == 0; }

 private:
  int fd_;
  int error_;
};

}  // namespace

std::string explain_ice_socket_failure(const IceConfig& ice) {
  SocketAddress addr;  // "" binds every interface, as 0.0.0.0 does
  if (!parse_ip_address(ice.bind_address.empty() ? "0.0.0.0" : ice.bind_address, 0, addr)) return "";

  {
    // A few sockets at once, not one: the failed attempt may have given back
    // a descriptor or two as it unwound, and so may a closing listener.
    std::vector<std::unique_ptr<UdpSocket>> spare;
    while (spare.size() < 8) {
      spare.push_back(std::make_unique<UdpSocket>(addr.family()));
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
    if (!spare.front()->bind_to(addr)) {
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
    UdpSocket probe(addr.family());
    addr.set_port(static_cast<uint16_t>(port));
    if (probe.ok() && probe.bind_to(addr)) return "";  // a port is free: not the cause
  }
  return " (no UDP port of port_range " + std::to_string(begin) + "-" + std::to_string(end) +
         " is free; each listener needs one unless ice_udp_mux=True)";
}

}  // namespace sinkcast
