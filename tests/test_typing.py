"""The package ships type stubs of the native module and passes mypy --strict against them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sinkcast


def test_stub_and_py_typed_are_shipped() -> None:
    package = Path(sinkcast.__file__).parent
    assert (package / "py.typed").exists()
    stub = (package / "_sinkcast.pyi").read_text()
    assert "def set_python_webrtc_signaling_callback(self, callback: Callable[[str, str, str], object] | None) -> None" in stub
    assert "def handle_incoming_webrtc_signaling_message(self, target: str, type: str, message: str) -> None" in stub
    assert "def render(self, sink_id: str, frames: int, out: " in stub


def test_mypy_strict_passes_on_the_package(tmp_path: Path) -> None:
    # From an empty directory: mypy finds the installed package (sources, .pyi, py.typed).
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "-p", "sinkcast"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_catches_a_misuse(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import sinkcast\nsinkcast.AudioManager().add_sink(42)\n")
    proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", str(bad)], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 1 and "add_sink" in proc.stdout
