#!/usr/bin/env python3
"""bench/vcpu-pauses.py -- does this machine pause a busy CPU?

Spins on each CPU given (one process pinned to each), reading the monotonic clock in a tight
loop, and reports every gap between two reads longer than --gap-ms: time the process did not
run. On an idle guest nothing else wants the CPU, so such a gap is the hypervisor running
something else on that virtual CPU (a quota or another guest), or the guest kernel's own work.
Run it with one CPU, then with all: a gap that appears only when every CPU is busy is the
machine's, not the program's. Not run in CI.

  python3 bench/vcpu-pauses.py --cpus 0         # one CPU busy
  python3 bench/vcpu-pauses.py --cpus 0,1       # both busy, as during a benchmark run
"""
import argparse
import multiprocessing as mp
import os
import time


def spin(cpu, seconds, gap_ns, out):
    os.sched_setaffinity(0, {cpu})
    start = last = time.monotonic_ns()
    end = start + int(seconds * 1e9)
    gaps = []
    while last < end:
        now = time.monotonic_ns()
        if now - last > gap_ns:
            gaps.append(((last - start) / 1e9, (now - last) / 1e6))
        last = now
    out.put((cpu, gaps))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpus", default="0,1", help="CPUs to spin on, comma-separated")
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--gap-ms", type=float, default=10.0)
    a = p.parse_args()
    cpus = [int(c) for c in a.cpus.split(",")]
    out = mp.Queue()
    procs = [mp.Process(target=spin, args=(c, a.seconds, int(a.gap_ms * 1e6), out)) for c in cpus]
    for q in procs:
        q.start()
    results = sorted(out.get() for _ in procs)
    for q in procs:
        q.join()
    busy = ",".join(str(c) for c in cpus)
    for cpu, gaps in results:
        listed = " ".join(f"{ms:.1f} ms at {at:.2f} s" for at, ms in gaps)
        print(f"CPU{cpu} (busy: {busy}, {a.seconds:g} s): {len(gaps)} gaps over {a.gap_ms:g} ms"
              + (f": {listed}" if gaps else ""))


if __name__ == "__main__":
    main()
