"""scripts/check-layers.py: includes point down the layer chain only."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check-layers.py"


def run(src):
    return subprocess.run([sys.executable, str(SCRIPT), str(src)], capture_output=True, text=True)


def test_the_tree_is_clean():
    r = run(ROOT / "src")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("room,include,why", [
    ("lib", "cmd/cli.h", "a layer above it"),
    ("proto", "net/quic.h", "a layer above it"),
    ("net", "edge/store.h", "a layer above it"),
    ("connector", "edge/store.h", "stay independent"),
    ("edge", "connector/proxy.h", "stay independent"),
    ("edge", "cmd/commands.h", "a layer above it"),
    ("lib", "nowhere/x.h", "unknown layer"),
])
def test_an_upward_include_fails(tmp_path, room, include, why):
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src", src)
    victim = sorted((src / room).glob("*.c"))[0]
    victim.write_text(f'#include "{include}"\n' + victim.read_text())
    r = run(src)
    assert r.returncode == 1
    assert f"src/{room}/{victim.name}:1:" in r.stdout and why in r.stdout, r.stdout


def test_includes_down_and_within_a_room_pass(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src", src)
    victim = sorted((src / "edge").glob("*.c"))[0]
    victim.write_text('#include "lib/err.h"\n#include "net/quic.h"\n#include "edge/store.h"\n'
                      + victim.read_text())
    assert run(src).returncode == 0
