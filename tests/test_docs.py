"""The "What happens when…" tables: every row names the tests that prove it, and those tests exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"


def table_rows(page: Path) -> list[list[str]]:
    rows = []
    for line in page.read_text().splitlines():
        if line.startswith("| ") and not line.startswith(("| event |", "| file |", "| fault |")):
            rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


def test_every_row_of_what_happens_when_names_tests_that_exist():
    rows = table_rows(ROOT / "docs" / "troubleshooting.md")
    assert len(rows) >= 50
    defined = {
        (path.name, name)
        for path in TESTS.glob("test_*.py")
        for name in re.findall(r"^def (test_\w+)\(", path.read_text(), flags=re.MULTILINE)
    }
    for row in rows:
        named = re.findall(r"`(test_\w+\.py)::(test_\w+)`", row[-1])
        assert named, f"no test named for: {row[0]}"
        missing = [f"{f}::{t}" for f, t in named if (f, t) not in defined]
        assert not missing, f"{row[0]}: no such test {missing}"
