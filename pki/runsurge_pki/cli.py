"""`runsurge-pki`: create the CA, issue certificates, list and revoke them."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version
from pathlib import Path

from runsurge_pki.ca import MASTER_CN, SERVER_DAYS, CertAuthority, PkiError, fingerprint, write_private


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="runsurge-pki", description=__doc__)
    p.add_argument("--version", action="version", version=f"%(prog)s {version('runsurge-pki')}")
    p.add_argument("--dir", type=Path, required=True, help="the CA folder")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create the CA (refuses to overwrite one)")
    c = sub.add_parser("issue", help="issue a key + certificate (the master's)")
    c.add_argument("--name", default=MASTER_CN, help=f"common name (default {MASTER_CN})")
    c.add_argument("--host", action="append", default=[], help="a DNS name or IP it serves (repeatable)")
    c.add_argument("--days", type=int, default=SERVER_DAYS)
    c.add_argument("--out", type=Path, required=True, help="writes OUT.key (0600) and OUT.pem")
    sub.add_parser("list", help="every certificate issued, with its state")
    sub.add_parser("fingerprint", help="the CA's fingerprint, for runsurge-worker --ca-fingerprint")
    c = sub.add_parser("revoke", help="revoke a certificate by serial (hex)")
    c.add_argument("serial")
    args = p.parse_args(argv)
    try:
        if args.command == "init":
            CertAuthority.create(args.dir)
            print(f"created the CA in {args.dir} (keep ca.key secret; give ca.pem to every host)")
            return 0
        ca = CertAuthority(args.dir)
        if args.command == "issue":
            key, cert = ca.issue(args.name, args.host, args.days)
            write_private(args.out.with_suffix(".key"), key)
            args.out.with_suffix(".pem").write_bytes(cert)
            print(f"issued {args.name} for {', '.join(args.host) or 'no hosts'}: {args.out}.pem")
        elif args.command == "fingerprint":
            print(fingerprint(ca.ca_pem))
        elif args.command == "list":
            revoked = ca.revoked()
            for c in ca.issued():
                state = "revoked" if c.serial in revoked else "valid"
                print(f"{c.serial}  {state:<7}  until {c.not_after:%Y-%m-%d}  {c.common_name}  {' '.join(c.hosts)}")
        elif args.command == "revoke":
            ca.revoke(args.serial.lower())
            print(f"revoked {args.serial}; the master refuses it from its next call on")
    except PkiError as e:
        print(f"runsurge-pki: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
