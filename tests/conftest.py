from __future__ import annotations

from collections.abc import Iterator

import pytest

import sinkcast


@pytest.fixture
def manual() -> Iterator[sinkcast.AudioManager]:
    """An engine on the manual clock: render() drives it, deterministically."""
    eng = sinkcast.AudioManager(realtime=False)
    try:
        yield eng
    finally:
        eng.shutdown()


@pytest.fixture
def realtime() -> Iterator[sinkcast.AudioManager]:
    eng = sinkcast.AudioManager(realtime=True, bind_address="127.0.0.1")
    try:
        yield eng
    finally:
        eng.shutdown()
