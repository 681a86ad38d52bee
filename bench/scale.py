"""Scan benchmark at 100,000, 300,000 and 1,000,000 resources: time and peak memory.

The estate is the sample estate scaled to sites of about 100,000 resources (two vCenters
of 40,000 and 30,000 VMs, under vSphere 8's 45,000 VMs per vCenter, and 30,000 Azure
resources), repeated with each copy's vCenters, subscriptions and ids renamed, and written
as one JSON Lines snapshot (`.jsonl.gz`). Each size is scanned in a child process as a user
would run it (`auditor scan --snapshot estate.jsonl.gz --format json,sarif`, workers one
per CPU): timed --repeat times, the best counting (other work on a shared machine only
ever slows a run down), then once more with its peak memory taken, the largest sum of the
resident memory of the scan and its workers (proportional set sizes), sampled every 50 ms.
Sampling reads every page table of the processes (1.7 s of CPU beside a 10 s scan on two
cores), so no time is taken while it runs; the slowest timed run is printed too. The reference, measured
the same way in the same run, is loading the same file with orjson alone: every line
parsed into one list, nothing else. Each figure is printed with its ratio to that reference.

Targets: 1,000,000 resources in under 120 s and 4 GiB; 100,000 in under 8 s.

Usage: python bench/scale.py [--sizes 100000,300000,1000000] [--formats json,sarif] [--repeat 2] [--check]
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auditor.sample import SAMPLE_BASELINE
from auditor.sample.generate import build_sample_estate
from auditor.snapshot_lines import snapshot_lines

AS_OF = "2026-11-25"
SITE = 100_000
GIB = 1024 ** 3
# the sample's names that make a site's ids: each copy of the site gets its own
RENAMED = (b"corp.example", b"4f2a9c1e", b"111122223333", b"444455556666")


def site_lines() -> tuple[bytes, list[bytes]]:
    """The header and resource lines of one site of about SITE resources."""
    vms = int(SITE * 0.7)
    estate = build_sample_estate(vms_per_vcenter=(vms * 4 // 7, vms * 3 // 7), azure_vm_scale=int(SITE * 0.3) // 26)
    header = estate.as_dict()
    resources = header.pop("resources")
    lines = list(snapshot_lines(header, resources))
    return lines[0], lines[1:]


def renamed(line: bytes, copy: int) -> bytes:
    """A line of copy `copy` of the site: its vCenters, subscriptions and ids its own."""
    if copy == 0:
        return line
    for token, new in zip(RENAMED, (b"s%d.corp.example" % copy, b"%08x" % copy, b"%012d" % copy,
                                    b"%012d" % (copy + 500_000)), strict=True):
        line = line.replace(token, new)
    return line


def write_estate(path: Path, size: int, header: bytes, lines: list[bytes]) -> int:
    """Write an estate of `size` resources (whole copies of the site, the last one cut) and
    return how many it holds. The header lists every copy's sources."""
    import orjson

    document = orjson.loads(header)
    copies = -(-size // len(lines))
    sources = []
    for copy in range(copies):
        for source in document["sources"]:
            sources.append(orjson.loads(renamed(orjson.dumps(source), copy)))
    document["sources"] = sources
    written = 0
    with gzip.open(path, "wb", compresslevel=1) as stream:
        stream.write(orjson.dumps(document) + b"\n")
        for copy in range(copies):
            for line in lines[:min(len(lines), size - written)]:
                stream.write(renamed(line, copy))
            written = min(size, written + len(lines))
    return written


def tree_rss(pid: int) -> int:
    """Memory of `pid` and every process below it: the sum of their proportional set sizes
    (a page that forked processes share counts once in all, not once in each)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/smaps_rollup") as rollup:
                total += next(int(line.split()[1]) * 1024 for line in rollup if line.startswith("Pss:"))
        except (OSError, StopIteration):
            pass
        todo.extend(children.get(current, ()))
    return total


def timed(command: list[str], repeat: int) -> tuple[float, float, subprocess.CompletedProcess]:
    """The best and the worst wall time of `repeat` runs of `command`, nothing else of ours
    beside it; a failed run ends the measurement."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        finished = subprocess.run(command, capture_output=True)
        times.append(time.perf_counter() - started)
        if finished.returncode not in (0, 1):
            break
    return min(times), max(times), finished


def measured(command: list[str]) -> tuple[int, subprocess.CompletedProcess]:
    """Peak resident memory of the process tree `command` starts."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, tree_rss(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    done.set()
    sampler.join()
    return peak, subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


# at its fastest: without the cyclic collector re-walking the growing lists (3x slower with it)
ORJSON_ALONE = """
import gc, gzip, sys, orjson
gc.disable()
with gzip.open(sys.argv[1], "rb") as stream:
    rows = [orjson.loads(line) for line in stream]
print(len(rows) - 1)
"""


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument("--formats", default="json,sarif")
    parser.add_argument("--workers", default="", help="passed to the scan (default: one per CPU)")
    parser.add_argument("--repeat", type=_at_least_one, default=2, help="timed runs of each size; the best counts")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]

    started = time.perf_counter()
    header, lines = site_lines()
    print(f"site: {len(lines):,} resources built in {time.perf_counter() - started:.1f} s")
    missed = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            estate = Path(tmp) / f"estate-{size}.jsonl.gz"
            count = write_estate(estate, size, header, lines)
            reference = [sys.executable, "-c", ORJSON_ALONE, str(estate)]
            ref_time, _, ref = timed(reference, args.repeat)
            if ref.returncode != 0:
                raise SystemExit(f"orjson reference failed: {ref.stderr.decode()[-500:]}")
            ref_peak, _ = measured(reference)
            out = Path(tmp) / f"reports-{size}"
            command = [sys.executable, "-m", "auditor", "scan", "--snapshot", str(estate), "--out", str(out),
                       "--format", args.formats, "--as-of", AS_OF, "-q", "--no-history",
                       "--baseline", str(SAMPLE_BASELINE)]
            if args.workers:
                command += ["--workers", args.workers]
            scan_time, slowest, scan = timed(command, args.repeat)
            if scan.returncode in (0, 1):
                scan_peak, scan = measured(command)
            if scan.returncode not in (0, 1):
                raise SystemExit(f"scan of {count:,} resources failed ({scan.returncode}): "
                                 f"{scan.stderr.decode()[-800:]}")
            written = sum(file.stat().st_size for file in (out / "latest").iterdir())
            print(f"{count:>9,} resources ({estate.stat().st_size / 2**20:,.0f} MiB gzip): "
                  f"scan {scan_time:6.1f} s" + (f" (slowest {slowest:.1f} s)" if args.repeat > 1 else "")
                  + f", peak {scan_peak / GIB:5.2f} GiB, "
                  f"{written / 2**20:,.0f} MiB of reports | "
                  f"orjson alone {ref_time:5.1f} s, {ref_peak / GIB:5.2f} GiB | "
                  f"ratio time {scan_time / ref_time:4.1f}x, memory {scan_peak / ref_peak:4.2f}x | "
                  f"load average {os.getloadavg()[1]:.1f}", flush=True)
            if count >= 1_000_000 and (scan_time >= 120 or scan_peak >= 4 * GIB):
                missed.append(f"{count:,} resources: {scan_time:.0f} s, {scan_peak / GIB:.2f} GiB")
            if count <= 100_000 and scan_time >= 8:
                missed.append(f"{count:,} resources: {scan_time:.1f} s")
            estate.unlink()
    if missed:
        print("targets missed: " + "; ".join(missed))
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
