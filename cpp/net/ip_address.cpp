#include "net/ip_address.h"

#include <arpa/inet.h>

namespace sinkcast {

void SocketAddress::set_port(uint16_t port) {
    if (storage.ss_family == AF_INET6)
        reinterpret_cast<sockaddr_in6&>(storage).sin6_port = htons(port);
    else
        reinterpret_cast<sockaddr_in&>(storage).sin_port = htons(port);
}

bool parse_ip_address(const std::string& address, uint16_t port, SocketAddress& out) {
    SocketAddress parsed;
    auto& v4 = reinterpret_cast<sockaddr_in&>(parsed.storage);
    auto& v6 = reinterpret_cast<sockaddr_in6&>(parsed.storage);
    if (inet_pton(AF_INET, address.c_str(), &v4.sin_addr) == 1) {
        v4.sin_family = AF_INET;
        parsed.length = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, address.c_str(), &v6.sin6_addr) == 1) {
        v6.sin6_family = AF_INET6;
        parsed.length = sizeof(sockaddr_in6);
    } else {
        return false;
    }
    parsed.set_port(port);
    out = parsed;
    return true;
}

}  // namespace sinkcast
