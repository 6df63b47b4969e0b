"""Child: a positive control for the leak check -- leaks one AudioManager on purpose.

Its stderr must carry nanobind's "leaked" report; if it does not, the leak
check of the exit tests would be blind."""

from __future__ import annotations

import ctypes

import sinkcast

eng = sinkcast.AudioManager(realtime=False)
ctypes.pythonapi.Py_IncRef(ctypes.py_object(eng))  # one reference nobody will ever drop
print("EXITING 0", flush=True)
