// Why a listener's ICE socket could not be opened, in words the application
// can act on. libdatachannel only says "Failed to gather local ICE
// candidates"; the usual causes are all on this side: the process is out of
// file descriptors, the bind address is not one of this host's, or every
// port of the configured range is taken.
#pragma once

#include <string>

namespace sinkcast {

struct IceConfig;

// Called after such a failure: tries what libjuice tried (a UDP socket, bound
// to the bind address, on a port of the range) and returns " (the cause; what
// to change)", or "" when it finds nothing wrong. Only on the error path: it
// may bind every port of the range once.
std::string explain_ice_socket_failure(const IceConfig& ice);

}  // namespace sinkcast
