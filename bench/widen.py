#!/usr/bin/env python3
"""bench/widen.py -- rewrites the bench's server configs for more subscribers than the
harness's eight /16 relay subnets hold (about 520 000): the eight perf scopes become eight /15
scopes (10.208.0.0/15, 10.210.0.0/15, ..., 10.222.0.0/15: 1 048 000 addresses, inside the
harness's 10.208.0.0/12 route), whose relays are GIADDRS_WIDE in bench/lib.sh
(10.208.0.1, 10.210.0.1, ..., 10.222.0.1). The relay layout's scopes (10.201/16, 10.202/16)
are kept.

Usage: widen.py peregrine IN.toml OUT.toml | widen.py kea IN.json OUT.json
"""
import json
import re
import sys

WIDE = [208 + 2 * i for i in range(8)]


def peregrine(text: str) -> str:
    # Everything from the first perf scope on is the perf layout; the relay layout comes first.
    head = text[: text.index('[[scope]]\nname = "perf-210"')]
    scopes = "".join(
        f'[[scope]]\nname = "perf-wide-{b}"\nsubnet = "10.{b}.0.0/15"\n\n'
        f'[[scope.pool]]\nrange = "10.{b}.0.10 - 10.{b + 1}.255.250"\n\n'
        f'[scope.options]\nrouters = ["10.{b}.0.1"]\n\n'
        for b in WIDE
    )
    return head + scopes


def kea(text: str) -> str:
    # The harness's Kea files carry // comment lines, which JSON does not allow.
    config = json.loads("\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//")))
    subnets = [s for s in config["Dhcp4"]["subnet4"] if s["id"] < 210]
    for b in WIDE:
        subnets.append(
            {
                "id": b,
                "subnet": f"10.{b}.0.0/15",
                "pools": [{"pool": f"10.{b}.0.10 - 10.{b + 1}.255.250"}],
                "option-data": [{"name": "routers", "data": f"10.{b}.0.1"}],
            }
        )
    config["Dhcp4"]["subnet4"] = subnets
    return json.dumps(config, indent=2) + "\n"


if __name__ == "__main__":
    kind, src, dst = sys.argv[1:4]
    with open(src) as f:
        text = f.read()
    out = {"peregrine": peregrine, "kea": kea}[kind](text)
    with open(dst, "w") as f:
        f.write(out)
