"""Tiny packages built in a test with `pip wheel` (offline: no build isolation, no index)."""

import subprocess
import sys
import textwrap


def make_wheel(src, dest, name: str, version: str, body: str | None = None) -> None:
    pkg = src / f"{name}-{version}"
    (pkg / name).mkdir(parents=True)
    (pkg / name / "__init__.py").write_text(body if body is not None else f"VALUE = '{name} {version}'\n")
    (pkg / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "{name}"
        version = "{version}"
        """))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "--no-build-isolation",
                    "--disable-pip-version-check", "-q", "-w", str(dest), str(pkg)], check=True)
