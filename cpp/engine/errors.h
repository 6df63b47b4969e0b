// Exceptions the engine throws. The bindings map each to a Python exception
// of sinkcast (see python/sinkcast/_errors.py); plain std::invalid_argument
// becomes ValueError.
#pragma once

#include <charconv>
#include <stdexcept>
#include <string>

namespace sinkcast {

// A number as an error message quotes it: the shortest text that reads back
// as the same double (1.0000001, 1e-09, nan), where std::to_string would show
// six decimals ("1.000000" for a value refused for being above 1).
inline std::string number_text(double value) {
    char text[32];
    auto result = std::to_chars(text, text + sizeof text, value);
    return std::string(text, result.ptr);
}

// An id that names no sink / source (Python: UnknownSinkError / UnknownSourceError, both KeyError).
class UnknownIdError : public std::out_of_range {
public:
    // hint: what else the id names, if anything ("'out' is a sink"), for the message.
    UnknownIdError(std::string kind, std::string id, const std::string& hint = "")
        : std::out_of_range("unknown " + kind + " '" + id + "'" + (hint.empty() ? "" : " (" + hint + ")")),
          kind_(std::move(kind)),
          id_(std::move(id)) {}
    const std::string& kind() const { return kind_; }
    const std::string& id() const { return id_; }

private:
    std::string kind_, id_;
};

// add_* with an id that is already taken (Python: DuplicateIdError, a ValueError).
class DuplicateIdError : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

// connect() of an existing route, disconnect()/set_gain() of a missing one (Python: RouteError, a ValueError).
class RouteError : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

// Any call after shutdown(), or in a child of fork() on an engine made before
// it (Python: EngineClosedError, a RuntimeError).
class EngineClosedError : public std::runtime_error {
public:
    EngineClosedError() : std::runtime_error("the AudioManager has been shut down") {}
    explicit EngineClosedError(const std::string& message) : std::runtime_error(message) {}
};

// A call that the engine's clock mode does not allow, e.g. render() in real time
// (Python: ClockModeError, a RuntimeError).
class ClockModeError : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

}  // namespace sinkcast
