"""`make demo`: a master and two workers on loopback run the 3-stage word-count job end to end.

The two counts run on different workers; the merge runs on one of them and fetches the other's
output peer to peer. The demo prints the result and the evidence (data locations, worker logs).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from localnet import LocalNet
from runsurge_client.api import ApiError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "wordcount"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sandbox", default="qemu",
                   help="worker sandbox: qemu (default: every task in a fresh VM), bwrap, or process (no isolation)")
    p.add_argument("--keep", action="store_true", help="keep the network's folder (logs) afterwards")
    args = p.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # each step as it happens, also into a pipe or a log
    root = Path(tempfile.mkdtemp(prefix="runsurge-demo-"))
    try:
        return _demo(args, root)
    except (RuntimeError, TimeoutError, ApiError, OSError) as e:  # one line, never a traceback
        print(f"demo failed: {e}", file=sys.stderr)
        return 1


def _demo(args: argparse.Namespace, root: Path) -> int:
    print(f"starting a master and 2 workers on loopback (sandbox: {args.sandbox}; logs in {root})")
    if args.sandbox == "qemu":
        print("each worker boots its guest VM once and saves a snapshot; under software emulation that takes "
              "a minute or two, then every task starts from a restored VM")
    with LocalNet(root, sandbox=args.sandbox, slots=1) as net:
        net.start(workers=2)
        client = net.client()
        job = client.submit_spec(EXAMPLE / "job.toml")
        print(f"submitted job {job['id']} with {job['tasks_total']} tasks; waiting...")
        job = client.wait(job["id"], timeout_s=900)
        for t in job["tasks"]:
            print(f"  task {t['name']:<8} {t['status']:<6} on worker {t['worker_id'][:8]}  "
                  f"{t['wall_s']:.2f}s wall, peak {t['mem_peak_bytes'] / 2**20:.1f} MiB")
        if job["status"] != "done":
            print(f"job {job['status']}: {job['error']}")
            return 1
        out = root / "result"
        for path in client.download_results(job["id"], out):
            print(f"\nresult {path.name}:\n{path.read_text()}")
        print("where the data lives (master / worker ids):")
        for loc in client.locations(job["id"]):
            print(f"  {loc['data_id'][:12]}  {', '.join(h[:8] for h in loc['holders'])}")
        peer_lines = [line for i in (0, 1) for line in net.log(f"worker{i}").splitlines()
                      if "fetched" in line and "from peer" in line]
        print("peer-to-peer fetches in the worker logs:")
        for line in peer_lines:
            print("  " + line.split(" runsurge.worker.fetch ")[-1])
        if not peer_lines:
            print("  none (unexpected)")
            return 1
    print("demo complete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
