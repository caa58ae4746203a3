#!/usr/bin/env python3
"""The longest times a thread was kept off its CPU while it could run (preempted), and by whom.

Reads a `perf record -e sched:sched_switch -C CPU -o FILE` taken around a run (for example while
bench/compare.sh or peregrine-loadgen drives the server):

    python3 bench/preemptions.py FILE [THREAD]     # THREAD: the worker's name, default pg-dpdk-0

Prints how many preemptions there were, how many lasted over 2 ms, and the longest ones with the
thread that ran first in each: a DPDK queue holds a few milliseconds of a busy port's frames, so
those over 2 ms are the ones to explain.
"""
import re
import subprocess
import sys

SWITCH = re.compile(
    r"(?:^|\s)(\d+\.\d+):\s+sched:sched_switch:\s+prev_comm=(.+?) prev_pid=\d+ prev_prio=\d+ "
    r"prev_state=(\S+) ==> next_comm=(.+?) next_pid=\d+"
)


def main():
    data = sys.argv[1]
    thread = sys.argv[2] if len(sys.argv) > 2 else "pg-dpdk-0"
    text = subprocess.run(
        ["perf", "script", "-i", data, "-F", "time,event,trace"],
        capture_output=True, text=True, check=True,
    ).stdout
    off = None
    preempted = []
    for line in text.splitlines():
        m = SWITCH.search(line)
        if not m:
            continue
        at, prev, state, nxt = float(m.group(1)), m.group(2), m.group(3), m.group(4)
        if prev == thread:
            # Runnable when switched out: preempted; anything else: it slept of its own accord.
            off = (at, nxt) if state.startswith("R") else None
        elif nxt == thread and off:
            preempted.append((at - off[0], off[1]))
            off = None
    preempted.sort(reverse=True)
    total = sum(p for p, _ in preempted)
    over = sum(1 for p, _ in preempted if p > 0.002)
    print(f"{thread}: preempted {len(preempted)} times, {total * 1e3:.1f} ms in all, "
          f"{over} over 2 ms")
    for took, by in preempted[:8]:
        print(f"  {took * 1e3:6.2f} ms  {by}")


if __name__ == "__main__":
    main()
