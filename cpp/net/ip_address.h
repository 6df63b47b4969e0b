// A numeric IPv4 or IPv6 address (never a name: nothing here looks anything
// up) as a socket address. The one parser for every bind address the engine
// takes: network inputs, the ICE bind address, and the check that explains a
// socket ICE could not open.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace sinkcast {

struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;

    int family() const { return storage.ss_family; }
    const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
    void set_port(uint16_t port);
};

// False when `address` is not an IPv4 or IPv6 literal (then `out` is unchanged).
bool parse_ip_address(const std::string& address, uint16_t port, SocketAddress& out);

inline bool is_ip_literal(const std::string& address) {
    SocketAddress ignored;
    return parse_ip_address(address, 0, ignored);
}

}  // namespace sinkcast
