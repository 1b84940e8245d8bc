"""Fuzzes one target of tests/fuzz/targets.py for a fixed time:
`python -m tests.fuzz.run TARGET SECONDS [WORKDIR]` (`--list`: the targets). Exits 0 when nothing broke the target's
contract; otherwise libFuzzer prints the input and writes it to WORKDIR as crash-<hash>."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

from tests.fuzz.targets import SEEDS, TARGETS


def main() -> None:
    if sys.argv[1:] == ["--list"]:
        print("\n".join(TARGETS))
        return
    name, seconds = sys.argv[1], int(sys.argv[2])
    workdir = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
    corpus = workdir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for index, seed in enumerate(SEEDS[name]):
        (corpus / f"seed-{index}").write_bytes(seed)
    atheris.Setup(
        [sys.argv[0], f"-max_total_time={seconds}", f"-artifact_prefix={workdir}/", "-seed=1", str(corpus)],
        TARGETS[name],
    )
    atheris.Fuzz()


if __name__ == "__main__":
    main()
