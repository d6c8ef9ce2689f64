"""Tiny packages built in a test with `pip wheel` (offline: no build isolation, no index)."""

import re
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


def run_twice(net, script, requirements: str, out, timeout_s: float = 120) -> list[str]:
    """Runs `script` as two jobs with the same requirements; their single results, and checks the
    worker built the environment once and reused it once (its log says so)."""
    client, outs = net.client(), []
    for i in range(2):
        job = client.wait(client.submit([script], mode="single", requirements=requirements)["id"],
                          timeout_s=timeout_s)
        assert job["status"] == "done", job
        (result,) = client.download_results(job["id"], out / f"out{i}")
        outs.append(result.read_text())
    log = net.log("worker0")
    assert len(re.findall(r"environment built env=", log)) == 1, log
    assert len(re.findall(r"environment reused env=", log)) == 1, log
    return outs
