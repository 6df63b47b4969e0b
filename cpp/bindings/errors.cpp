#include "bindings/errors.h"

#include <cstring>

#if defined(__GLIBCXX__)
#include <cxxabi.h>
#endif

#include "engine/errors.h"
#include "net/net_input.h"
#include "webrtc/signaling_message.h"
#include "bindings/release_gil.h"

namespace nb = nanobind;

namespace sinkcast::bindings {

namespace {

// The classes live in python/sinkcast/_errors.py. The reference is kept for
// the life of the process on purpose: releasing it after the interpreter is
// gone would crash.
PyObject* error_class(const char* name) {
    nb::object cls = nb::module_::import_("sinkcast._errors").attr(name);
    return cls.release().ptr();
}

// PyErr_SetString decodes strictly: a message that quotes input cut inside a
// UTF-8 sequence would raise UnicodeDecodeError instead of the intended class.
void set_error(PyObject* cls, const char* message) {
    PyObject* text = PyUnicode_DecodeUTF8(message, static_cast<Py_ssize_t>(std::strlen(message)), "replace");
    if (!text) return;  // a MemoryError is set
    PyErr_SetObject(cls, text);
    Py_DECREF(text);
}

void raise(const char* class_name, const char* message) {
    static PyObject* cache[16] = {};
    static const char* names[16] = {};
    for (int i = 0; i < 16; ++i) {
        if (names[i] && std::strcmp(names[i], class_name) == 0) {
            set_error(cache[i], message);
            return;
        }
        if (!names[i]) {
            PyObject* cls = nullptr;
            try {
                cls = error_class(class_name);
            } catch (nb::python_error& e) {
                e.restore();  // sinkcast._errors failed to import: report that instead
                return;
            }
            names[i] = class_name;
            cache[i] = cls;
            set_error(cls, message);
            return;
        }
    }
    set_error(PyExc_RuntimeError, message);
}

// nanobind's catch (...) around every bound call also catches the unwinding
// of pthread_exit(), which CPython before 3.14 uses to end a thread that waits
// for the GIL once the interpreter finalizes: a daemon thread running Python
// code inside one of our calls as the program ends. That unwinding is no C++
// exception, so the translators get a null exception_ptr, and rethrowing it
// crashed the process (SIGSEGV). It may not be stopped either (glibc aborts:
// "exception not rethrown"). Parking the thread is what CPython 3.14 does to
// such threads: it holds no GIL, and the process ends around it. The calls
// known to run Python code park where they call it (call_python_or_park),
// before destructors free objects without the GIL; this is the last resort.
void end_of_foreign_unwinding() {
#if defined(__GLIBCXX__)
    try {
        throw;  // what nanobind's catch (...) is handling
    } catch (abi::__forced_unwind&) {
        park_until_the_process_ends();
    } catch (...) {
        // Another runtime's exception (another language's panic): it cannot be
        // described, and returning ends its handling.
    }
#endif
    PyErr_SetString(PyExc_SystemError, "sinkcast: a foreign (non-C++) exception crossed a bound call");
}

}  // namespace

void register_error_translator() {
    nb::register_exception_translator([](const std::exception_ptr& p, void*) {
        if (!p) {
            end_of_foreign_unwinding();
            return;
        }
        try {
            std::rethrow_exception(p);
        } catch (const UnknownIdError& e) {
            raise(e.kind() == "sink" ? "UnknownSinkError" : "UnknownSourceError", e.what());
        } catch (const DuplicateIdError& e) {
            raise("DuplicateIdError", e.what());
        } catch (const RouteError& e) {
            raise("RouteError", e.what());
        } catch (const LocalResourceError& e) {  // before its base class
            raise("LocalResourceError", e.what());
        } catch (const SignalingError& e) {
            raise("SignalingError", e.what());
        } catch (const EngineClosedError& e) {
            raise("EngineClosedError", e.what());
        } catch (const ClockModeError& e) {
            raise("ClockModeError", e.what());
        } catch (const NetworkInputError& e) {
            raise("NetworkInputError", e.what());
        }
        // Anything else falls through to nanobind's own translation
        // (std::invalid_argument -> ValueError, ...).
    });
}

}  // namespace sinkcast::bindings
