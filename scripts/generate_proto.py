"""Generate the Python code for proto/ into the common library, or check that it is current.

    uv run python scripts/generate_proto.py           # regenerate
    uv run python scripts/generate_proto.py --check   # exit 1 when generated code and .proto disagree

The generated modules live in one place, fraudstream_common.schemas.v1, and every service
imports them from there. protoc writes imports as `from fraudstream.v1 import x_pb2`, after
the proto package; they are rewritten to the Python package they are installed in.
"""

from __future__ import annotations

import argparse
import difflib
import filecmp
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
TARGET = ROOT / "libs/common/src/fraudstream_common/schemas/v1"
PROTO_PACKAGE_DIR = Path("fraudstream/v1")
PYTHON_PACKAGE = "fraudstream_common.schemas.v1"
IMPORT_PATTERN = re.compile(r"^from fraudstream\.v1 import ", re.MULTILINE)
INIT_TEXT = '"""Generated from proto/fraudstream/v1 by scripts/generate_proto.py: do not edit."""\n'


def generate(into: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    out = into / "raw"
    out.mkdir(parents=True)
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    subprocess.run(command, check=True, cwd=ROOT)  # noqa: S603 - fixed argv, no shell
    generated = out / PROTO_PACKAGE_DIR
    into_package = into / "v1"
    into_package.mkdir()
    for source in sorted(generated.iterdir()):
        text = IMPORT_PATTERN.sub(f"from {PYTHON_PACKAGE} import ", source.read_text())
        (into_package / source.name).write_text(text)
    (into_package / "__init__.py").write_text(INIT_TEXT)
    (into_package / "py.typed").write_text("")


def check(fresh: Path) -> list[str]:
    problems: list[str] = []
    committed = {p.name for p in TARGET.iterdir() if p.is_file()} if TARGET.exists() else set()
    expected = {p.name for p in fresh.iterdir()}
    for name in sorted(expected - committed):
        problems.append(f"missing generated file: {name}")
    for name in sorted(committed - expected):
        problems.append(f"stale generated file (no .proto makes it): {name}")
    for name in sorted(expected & committed):
        if not filecmp.cmp(fresh / name, TARGET / name, shallow=False):
            diff = difflib.unified_diff(
                (TARGET / name).read_text().splitlines(),
                (fresh / name).read_text().splitlines(),
                lineterm="",
                n=0,
            )
            problems.append(f"out of date: {name}\n" + "\n".join(list(diff)[:20]))
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = Path(tmp) / "v1"
        if args.check:
            problems = check(fresh)
            for problem in problems:
                print(problem, file=sys.stderr)
            if problems:
                print("generated code disagrees with proto/: run `make proto`", file=sys.stderr)
                return 1
            print(f"generated code matches proto/ ({len(list(fresh.iterdir()))} files)")
            return 0
        if TARGET.exists():
            shutil.rmtree(TARGET)
        shutil.copytree(fresh, TARGET)
        print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
