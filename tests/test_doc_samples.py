"""The documentation's sample outputs are what the program prints now: each fenced block of
docs/*.md and README.md that starts with a ``$ fastvar ...`` line is run (in this process,
stdout only) and compared with the lines under it, the times of the run (load-dependent)
masked. A block whose command writes a file gets a temporary folder in its place."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from fastvar.cli import main

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
# "engine exact, 0.212 s (+ 21.5 s compiling) (+ 1.2 s theory);": the times vary with load,
# and a first run (kernels not yet cached) adds the compile's
TIMES = re.compile(r"\d[\d.e+-]* s(?: \(\+ [\d.e+-]+ s (?:compiling|theory)\))*(?=;|$)")


def samples() -> list:
    found = []
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines[:-1]):
            if line.startswith("```") and lines[i + 1].startswith("$ fastvar"):
                end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
                found.append(pytest.param(lines[i + 1][2:], lines[i + 2:end],
                                          id=f"{page.name}:{i + 2}"))
    return found


def _masked(lines: list[str]) -> list[str]:
    return [TIMES.sub("T s", line.rstrip()) for line in lines]


def test_the_pages_show_samples():
    assert len(samples()) >= 4  # quickstart, theory, finite-width, classic


@pytest.mark.parametrize("command,shown", samples())
def test_a_documented_command_prints_what_its_page_shows(command, shown, capsys, monkeypatch,
                                                         tmp_path):
    monkeypatch.setenv("COLUMNS", "100")
    args = shlex.split(command)[1:]
    for k, arg in enumerate(args):  # files the command writes go to a temporary folder
        if k and args[k - 1] in ("--plot", "--json", "--csv"):
            if args[k - 1] == "--plot":
                pytest.importorskip("matplotlib")
            args[k] = str(tmp_path / Path(arg).name)
    assert main(args) == 0
    printed = capsys.readouterr().out.splitlines()
    assert _masked(printed) == _masked(shown), (
        f"{command!r} prints (regenerate the page's sample):\n" + "\n".join(printed))
