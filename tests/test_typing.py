"""The package ships type stubs of the native module and passes mypy --strict against them."""

from __future__ import annotations

import ast
import re
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


def test_the_readme_api_table_names_the_real_parameters() -> None:
    # Keyword arguments copied from the README must work: the table once
    # wrote add_sink(id, ...) and connect(source, sink, ...) for sink_id and
    # source_id, and set_volume(id, v) for volume.
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme.split("## The API", 1)[1].split("### ", 1)[0]
    stub = ast.parse((Path(sinkcast.__file__).parent / "_sinkcast.pyi").read_text())
    manager = next(n for n in stub.body if isinstance(n, ast.ClassDef) and n.name == "AudioManager")
    params = {
        f.name: {a.arg for a in f.args.args + f.args.kwonlyargs} - {"self"}
        for f in manager.body if isinstance(f, ast.FunctionDef)
    }
    params["AudioManager"] = params["__init__"]
    checked = 0
    for row in table.splitlines():
        if not row.startswith("| `"):
            continue
        cell = row.split(" | ")[0]
        for name, args in re.findall(r"`(\w+)\(([^`]*)\)", cell):
            assert name in params, f"README names {name}(), which AudioManager does not have"
            for arg in filter(None, (a.split("=")[0].strip(" *") for a in args.split(","))):
                assert arg in params[name], f"README: {name}({arg}=...), but {name} takes {sorted(params[name])}"
                checked += 1
    assert checked > 30


def test_the_readme_documents_every_stats_key() -> None:
    """stats()'s docstring says the README lists its keys: every key of a sink,
    route, listener, source and network input, and the top level."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    with sinkcast.AudioManager(bind_address="127.0.0.1") as eng:
        eng.add_sink("out")
        eng.add_source("mic")
        eng.add_rtp_source("line", port=0)
        eng.connect("mic", "out")
        eng.connect("line", "out")
        eng.handle_incoming_webrtc_signaling_message("out/l", "request_offer", "")
        stats = eng.stats()
    sink = stats["sinks"]["out"]
    layers = {
        "top level": stats,
        "sink": sink,
        "route": sink["routes"]["mic"],
        "listener": sink["listeners"]["out/l"],
        "source": stats["sources"]["line"],
        "network input": stats["inputs"]["line"],
    }
    # Each layer's keys are looked for in its own bullet of the README's stats() section
    # (routes and listeners are described within the sink's).
    section = readme.split("### What `stats()` returns", 1)[1].split("\n### ", 1)[0]
    bullets = {b.split(":", 1)[0].strip(): b for b in section.split("\n- ")[1:]}
    where = {"top level": "top level", "sink": "each sink", "route": "each sink", "listener": "each sink",
             "source": "each source", "network input": "each network input (`network`)"}
    missing = [f"{layer}: {key}" for layer, d in layers.items() for key in d if f"`{key}`" not in bullets[where[layer]]]
    assert not missing, f"stats() keys the README's stats() section does not name: {missing}"
