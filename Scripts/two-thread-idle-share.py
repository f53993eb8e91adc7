#!/usr/bin/env python3
"""How much of a two-thread ENINet evaluation runs on one thread.

Records `eninet-md bench eninet --threads 2` with `perf` and matches every sample of the
calling thread with the nearest sample (within 0.3 ms) of the thread team's worker. The share
of the caller's samples taken while the worker spun idle (in `ThreadTeam`'s wait loop) is the
serial share of the evaluation, a figure far steadier than two-thread wall time on a shared
host. Samples come every 0.25 ms, so for a system whose loops are shorter than that (one
aspirin) read the total only, not its split by function.

Usage: Scripts/two-thread-idle-share.py [--binary B] [--model M] [--structure S] [--repetitions N]
(run from the repository, with `../shared` beside it for the default model).
"""
import argparse
import bisect
import collections
import re
import subprocess
import sys
import tempfile

IDLE = "ThreadTeamC7workers"  # the worker's wait loop (its mangled name contains this)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--binary", default=".build/release/eninet-md")
    p.add_argument("--model", default="../shared/eninet-reference/eninet-small.safetensors")
    p.add_argument("--structure", required=True, help="an XYZ file (for example ten aspirins)")
    p.add_argument("--repetitions", type=int, default=400)
    p.add_argument("--top", type=int, default=10, help="functions to list")
    a = p.parse_args()

    with tempfile.NamedTemporaryFile(suffix=".perf") as data:
        bench = [a.binary, "bench", "eninet", "--model", a.model, "--structure", a.structure,
                 "--threads", "2", "--repetitions", str(a.repetitions)]
        run = subprocess.run(["perf", "record", "-F", "4000", "-o", data.name] + bench,
                             capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit("perf record failed:\n" + run.stderr)
        print("".join(line + "\n" for line in run.stdout.splitlines() if "triplets" in line), end="")
        script = subprocess.run(["perf", "script", "-i", data.name, "-F", "tid,time,ip,sym"],
                                capture_output=True, text=True).stdout

    samples = []  # (thread, time, function)
    for line in script.splitlines():
        m = re.match(r"\s*(\d+)\s+(\d+\.\d+):\s+\S+\s+(\S+)", line)
        if m:
            samples.append((int(m.group(1)), float(m.group(2)), m.group(3)))
    busiest = [t for t, _ in collections.Counter(s[0] for s in samples).most_common(2)]
    if len(busiest) < 2:
        sys.exit("fewer than two threads sampled")
    by_thread = {t: [(time, f) for tid, time, f in samples if tid == t] for t in busiest}
    idle_count = {t: sum(IDLE in f for _, f in by_thread[t]) for t in busiest}
    worker = max(busiest, key=lambda t: idle_count[t])
    caller = min(busiest, key=lambda t: idle_count[t])
    worker_times = [time for time, _ in by_thread[worker]]

    matched, idle = 0, collections.Counter()
    for time, function in by_thread[caller]:
        # Only while the worker exists, and not while the graph is built (outside the figures).
        if time < worker_times[0] or time > worker_times[-1] or "Graph" in function:
            continue
        i = bisect.bisect_left(worker_times, time)
        j = min((k for k in (i - 1, i) if 0 <= k < len(worker_times)), key=lambda k: abs(worker_times[k] - time))
        if abs(worker_times[j] - time) > 3e-4:
            continue
        matched += 1
        if IDLE in by_thread[worker][j][1]:
            idle[function] += 1
    if matched == 0:
        sys.exit("no caller sample matched a worker sample")
    print(f"caller samples {matched}, worker idle during {100 * sum(idle.values()) / matched:.1f} %")
    for function, count in idle.most_common(a.top):
        print(f"  {100 * count / matched:5.2f} %  {function[:100]}")


if __name__ == "__main__":
    main()
