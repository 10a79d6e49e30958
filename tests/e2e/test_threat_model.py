"""docs/threat-model.md ties every defence to a test: each test it names
must exist, so the document cannot drift from the suite."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "threat-model.md"


def rows():
    """The table rows that describe a threat (not headers or separators)."""
    for line in DOC.read_text().splitlines():
        if line.startswith("| ") and not line.startswith("| threat") and not line.startswith("| actor") \
                and not re.match(r"\| [A-D]\. ", line) and not set(line) <= set("|- "):
            yield line


def test_every_named_test_exists():
    missing = []
    for ref in re.findall(r"`([A-Za-z0-9_./]+)::([A-Za-z0-9_*]+)`", DOC.read_text()):
        suite, case = ref
        if suite.endswith(".py"):
            path = ROOT / "tests" / "e2e" / suite
            pattern = rf"^def {re.escape(case)}\(" if case != "*" else r"^def test_"
        else:
            path = ROOT / "tests" / "unit" / f"{suite}.c"
            pattern = rf"^static void {re.escape(case)}\(" if case != "*" else r"^static void test_"
        if not path.exists() or not re.search(pattern, path.read_text(), re.M):
            missing.append(f"{suite}::{case}")
    assert not missing, f"threat-model.md names tests that do not exist: {missing}"


def test_every_named_fuzz_target_and_file_exists():
    text = DOC.read_text()
    for target in set(re.findall(r"`(fuzz_[a-z0-9_]+)`", text)):
        assert (ROOT / "tests" / "fuzz" / f"{target}.c").exists(), target
    for name in set(re.findall(r"`(test_[a-z0-9_]+\.py)`", text)):
        assert (ROOT / "tests" / "e2e" / name).exists(), name
    for script in set(re.findall(r"`(scripts/[a-z0-9_.-]+)`", text)):
        assert (ROOT / script).exists(), script


def test_every_threat_row_names_a_test():
    bare = [r for r in rows() if not re.search(r"`[^`]*(::|fuzz_|test_|scripts/)[^`]*`", r)]
    assert not bare, "rows without a test:\n" + "\n".join(bare)
