#!/usr/bin/env bash
# The Debian packages RunSurge needs, installed if missing: shared by `make demo`, `make test` and
# .ci/run. Idempotent and quick when all is present (one dpkg-query). Without root it installs
# nothing and prints the exact command to run instead.
#   scripts/setup-system.sh demo   what `make demo` needs (the venv, the guest image, the VM sandbox)
#   scripts/setup-system.sh test   that plus the test suite's: PostgreSQL, Chromium, network namespaces
set -euo pipefail
# python3-venv make: the venv; debootstrap e2fsprogs qemu-utils: the guest image (vm-images/build.py);
# qemu-system-x86 samba: the VM sandbox and its share; bubblewrap: the bwrap sandbox;
# netcat-openbsd: the guest's share probe
DEMO=(python3-venv make debootstrap e2fsprogs qemu-utils qemu-system-x86 samba bubblewrap netcat-openbsd)
# postgresql: the master is also tested against a real server; chromium: the dashboard's browser tests;
# iproute2: the chaos test's network namespace; libatomic1: Playwright's own Node.js (its driver) links it
TEST=("${DEMO[@]}" postgresql chromium iproute2 libatomic1)
case "${1:-test}" in
  demo) wanted=("${DEMO[@]}") ;;
  test) wanted=("${TEST[@]}") ;;
  *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac
missing=()
if command -v dpkg-query >/dev/null; then
  for p in "${wanted[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
  done
else
  echo "runsurge setup: this is not a Debian system; install the equivalents of: ${wanted[*]}" >&2
  exit 1
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "runsurge setup: missing Debian packages: ${missing[*]}" >&2
  echo "run: sudo apt-get update && sudo apt-get install -y ${missing[*]}   (then the same make command again)" >&2
  exit 1
fi
echo "runsurge setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
