#!/usr/bin/env python3
"""The summary table of a compare.sh run: bench/summarize.py RUNS_LOG > summary.md

Sustained rate per server, ratios to Kea measured in the same session, medians over the
runs at the sustained rate (ACKs/s, DORA p50/p99, server and generator CPU), the first step
that failed."""
import sys, statistics as st
runs, sustained, top = {}, {}, {}
for line in open(sys.argv[1]):
    if line.startswith("#"): continue
    f = line.rstrip("\n").split("\t")
    if f[0] == "SUSTAINED":
        sustained[f[1]] = f[2]; top[f[1]] = len(f) > 3 and f[3] == "top-of-ladder"; continue
    kv = dict(x.split("=", 1) for x in f[3:])
    runs.setdefault(f[0], []).append((int(f[1]), f[2], kv))
def at(srv, rate):
    return [kv for r, v, kv in runs.get(srv, []) if r == rate and v == "pass"]
def med(xs):
    xs = [float(x) for x in xs if x not in ("None", "")]
    return st.median(xs) if xs else None
def rate_of(srv):
    s = sustained.get(srv, "")
    return int(s) if s.isdigit() else None
ref = {k: rate_of(k) for k in ("kea-persist", "kea-nopersist")}
print("| server | sustained DORA/s (3/3 runs < 1 % drops) | × Kea persist | × Kea no-persist | ACKs/s at sustained (median) | DORA p50 / p99 ms | server CPU % of a core | server CPU µs per DORA | worker busy µs per DORA | generator busy % | first failing step |")
print("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|")
for srv in sustained:
    r = rate_of(srv); kvs = at(srv, r) if r else []
    acks = med(k["acks_per_s"] for k in kvs); p50 = med(k["dora_p50_ms"] for k in kvs)
    p99 = med(k["dora_p99_ms"] for k in kvs); cpu = med(k["server_cpu"] for k in kvs)
    fails = sorted((rr, v, kv) for rr, v, kv in runs.get(srv, []) if v != "pass")
    first = next((f"{rr}: {v}, offered {kv['offered']}, ACKs/s {kv['acks_per_s']}, drops DO/RA {kv['drops_do']}/{kv['drops_ra']} %, CPU {kv['server_cpu']} %"
                  for rr, v, kv in fails if r is None or rr > r), "none in the ladder")
    ratio = lambda k: f"{r / ref[k]:.2f}" if r and ref.get(k) else "–"
    fmt = lambda x, p=0: "–" if x is None else f"{x:,.{p}f}"
    us = f"{cpu * 1e4 / r:.1f}" if cpu is not None and r else "–"
    gen = med(k.get("gen_busy", "None") for k in kvs)
    busy = med(k.get("busy_us", "None") for k in kvs)
    shown = f"≥ {sustained[srv]} (top of the ladder)" if top.get(srv) else sustained[srv]
    print(f"| {srv} | {shown} | {ratio('kea-persist')} | {ratio('kea-nopersist')} | {fmt(acks)} | {fmt(p50, 2)} / {fmt(p99, 2)} | {fmt(cpu)} | {us} | {fmt(busy, 2)} | {fmt(gen)} | {first} |")
