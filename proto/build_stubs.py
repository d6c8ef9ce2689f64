"""Generate runsurge_proto's Python stubs from runsurge/v1/*.proto (`make proto`).

Stubs are committed; `--check` regenerates into a temporary folder and fails on any drift, so
CI notices a .proto edit without regenerated stubs.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

HERE = Path(__file__).resolve().parent
PROTOS = sorted((HERE / "runsurge" / "v1").glob("*.proto"))
PACKAGE = HERE / "runsurge_proto"
GENERATED = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out: Path) -> list[Path]:
    grpc_include = Path(protoc.__file__).parent / "_proto"
    args = ["protoc", f"-I{HERE}", f"-I{grpc_include}", f"--python_out={out}",
            f"--pyi_out={out}", f"--grpc_python_out={out}"]
    if protoc.main(args + [str(p.relative_to(HERE)) for p in PROTOS]) != 0:
        raise SystemExit("protoc failed")
    files = []
    for src in sorted((out / "runsurge" / "v1").iterdir()):
        if not src.name.endswith(GENERATED):
            continue
        # protoc writes `from runsurge.v1 import x_pb2`; the stubs live flat in runsurge_proto.
        text = re.sub(r"^from runsurge\.v1 import", "from runsurge_proto import",
                      src.read_text(), flags=re.M)
        dst = out / src.name
        dst.write_text(text)
        files.append(dst)
    return files


def main() -> int:
    check = "--check" in sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        drift = []
        for f in generate(Path(tmp)):
            target = PACKAGE / f.name
            if check:
                if not target.exists() or target.read_text() != f.read_text():
                    drift.append(f.name)
            else:
                target.write_text(f.read_text())
        if drift:
            print("stubs out of date, run `make proto`:", ", ".join(drift))
            return 1
    print("stubs up to date" if check else f"wrote stubs to {PACKAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
