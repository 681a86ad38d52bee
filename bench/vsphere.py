"""vSphere collection benchmark against govmomi's simulator (2,000 VMs by default).

Measures, in the same run and against the same simulator:
- the fast collector (the default: pages read by lxml, auditor/sources/vsphere_soap.py): a
  whole collection, from the API version probe and login to the logout;
- the pyVmomi collector (--vsphere-parser pyvmomi): the same collection, pages read by
  pyVmomi's deserialiser into its objects first;
- the lxml floor: the same page requests sent the same way, each answer received and parsed
  by lxml, and nothing made of it: what no reader of these answers can go below;
- with --vcenters K (K > 1): K simulators of that size collected together (collect_all, each
  vCenter in a process of its own) against the same K collected one after another.
Each time is the best of --repeat runs: other work on the machine only ever slows a run down
(the load average is printed; the CPU time of the collector's own process, which excludes
the simulator, is printed too, as it depends far less on that other work).
The first run of the K vCenters together, which starts the fork server as a fresh command
does, is printed too, and the CPU one run together uses (read from /proc: the collecting
processes', which the fork server reaps, and the simulators'): spread over every core the
process may use, the least time any run together can take where the simulators share the
collector's cores. So is the CPU of one run one after another, spread the same way: the
least time of a run together that cost no more CPU than that.

Targets: fast >= 5x faster than pyVmomi; fast <= 2x the floor; K vCenters together <= 0.75x
the time of one after another; SOAP round trips that grow with pages (one per PAGE_SIZE objects),
not with objects.

The naive pyVmomi loop (vm.name, vm.config, ... per VM, a round trip each) this benchmark once
compared with is gone: at 2,000 VMs it takes minutes, and what it showed is structural: the
round-trip count below still checks it.

Usage: python bench/vsphere.py [--vms N] [--vcenters K] [--repeat R] [--check]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from multiprocessing import forkserver
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyVmomi import SoapAdapter, vmodl

from auditor.shards import default_workers
from auditor.sources import Progress, collect_all
from auditor.sources.vsphere import (
    PAGE_SIZE,
    PROPERTIES,
    VSphereConnection,
    VSphereSource,
    _filter_spec,
    _logout,
    send_tapped,
    supported_properties,
)
from auditor.sources.vsphere_soap import page_token
from tests import vcsim

TARGET_RATIO, TARGET_FLOOR, TARGET_PARALLEL = 5.0, 2.0, 0.75


def connection(simulator: vcsim.Simulator) -> VSphereConnection:
    return vcsim.connection(simulator, timeout=600)


def collect(simulator: vcsim.Simulator, parser: str, page_size: int = PAGE_SIZE) -> list[dict]:
    """One whole collection; its resources."""
    result = VSphereSource(connection(simulator), page_size=page_size, parser=parser).collect(Progress(enabled=False))
    if result.sources[0].status != "ok":
        raise SystemExit(f"collection failed: {result.sources[0].error}")
    return result.resources


def floor(simulator: vcsim.Simulator) -> tuple[float, int]:
    """The same page requests as a collection, each answer received and parsed by lxml and
    nothing more: (seconds for the pages, pages)."""
    source = VSphereSource(connection(simulator))
    service = source._connect()  # login as the collector logs in; only the pages are timed
    try:
        content = service.RetrieveContent()
        properties = supported_properties(PROPERTIES, service._stub.version)
        view = content.viewManager.CreateContainerView(content.rootFolder, list(properties), True)
        collector = content.propertyCollector
        options = vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=PAGE_SIZE)
        started = time.perf_counter()
        answer = send_tapped(collector, "RetrievePropertiesEx", [[_filter_spec(view, properties)], options])
        pages = 1
        while token := page_token(answer):
            answer = send_tapped(collector, "ContinueRetrievePropertiesEx", [token])
            pages += 1
        elapsed = time.perf_counter() - started
        view.DestroyView()
        return elapsed, pages
    finally:
        _logout(service)


def best(repeat: int, run: Callable[[], object]) -> tuple[float, float]:
    """The best wall time of `repeat` runs of `run`, and the best CPU time of this process
    (the collector's own work: the simulator is another process)."""
    times, cpu = [], []
    for _ in range(repeat):
        started, used = time.perf_counter(), time.process_time()
        run()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - used)
    return min(times), min(cpu)


def process_seconds(pid: int, children: bool = False) -> float | None:
    """CPU seconds process `pid` has used, with those of its children it has waited for when
    `children` (Linux), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    used = sum(int(field) for field in fields[11:15 if children else 13])
    return used / os.sysconf("SC_CLK_TCK")


def load() -> str:
    """The machine's load average (1 minute): other work makes every time longer."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "unknown"


@contextlib.contextmanager
def counted_calls() -> Iterator[Counter]:
    """SOAP calls by method while inside (every call, tapped or not, goes through InvokeMethod)."""
    calls: Counter = Counter()
    invoke = SoapAdapter.SoapStubAdapter.InvokeMethod

    def counting(self, mo, info, args, *rest, **kwargs):
        calls[info.wsdlName] += 1
        return invoke(self, mo, info, args, *rest, **kwargs)

    SoapAdapter.SoapStubAdapter.InvokeMethod = counting
    try:
        yield calls
    finally:
        SoapAdapter.SoapStubAdapter.InvokeMethod = invoke


def start(binary: Path, workdir: Path, vms: int) -> vcsim.Simulator:
    started = time.perf_counter()
    # the model has two resource pools (a cluster's and a standalone host's)
    simulator = vcsim.start(binary, workdir, "-vms", str(vms // 2))
    print(f"simulator with {vms:,} VMs ready in {time.perf_counter() - started:.1f} s")
    return simulator


def single(binary: Path, workdir: Path, vms: int, repeat: int) -> list[str]:
    """Fast, pyVmomi and floor on one simulator; the targets missed."""
    simulator = start(binary, workdir, vms)
    try:
        resources = collect(simulator, "fast")  # warm up the simulator and pyVmomi's type cache
        fast, fast_cpu = best(repeat, lambda: collect(simulator, "fast"))
        reference, reference_cpu = best(repeat, lambda: collect(simulator, "pyvmomi"))
        floors = [floor(simulator) for _ in range(repeat)]
        lxml_floor, pages = min(seconds for seconds, _ in floors), floors[0][1]
        trips = {}
        for page_size in (PAGE_SIZE, PAGE_SIZE // 4):
            with counted_calls() as calls:
                collect(simulator, "fast", page_size)
            trips[page_size] = (sum(calls.values()),
                                calls["RetrievePropertiesEx"] + calls["ContinueRetrievePropertiesEx"])
    finally:
        simulator.stop()
    ratio, over_floor = reference / fast, fast / lxml_floor
    objects = sum(1 for r in resources if r["type"] not in ("vCenter", "License"))  # what the pages hold
    print(f"  fast collector:    {fast:6.2f} s  ({len(resources):,} resources; best of {repeat}; {fast_cpu:.2f} s "
          "of CPU in this process)")
    print(f"  pyVmomi collector: {reference:6.2f} s  ({reference_cpu:.2f} s of CPU: "
          f"{reference_cpu / fast_cpu:.1f}x the fast collector's)")
    print(f"  lxml floor:        {lxml_floor:6.2f} s  (the same {pages} pages received and parsed by lxml, "
          "nothing made of them)")
    print(f"  fast vs pyVmomi: {ratio:.1f}x faster (target >= {TARGET_RATIO:g})")
    print(f"  fast vs floor:   {over_floor:.2f}x the floor (target <= {TARGET_FLOOR:g})")
    small = PAGE_SIZE // 4
    print(f"  SOAP round trips: {trips[PAGE_SIZE][0]} at {PAGE_SIZE:,} objects a page (the default; "
          f"{trips[PAGE_SIZE][1]} pages), {trips[small][0]} at {small:,} ({trips[small][1]} pages)")
    # one page per PAGE_SIZE (or a quarter of it) objects, and the other calls (login, lookups) as many
    # either way
    pages_grow = all(pages == -(-objects // size) for size, (_, pages) in trips.items()) and (
        trips[small][0] - trips[small][1] == trips[PAGE_SIZE][0] - trips[PAGE_SIZE][1])
    return [name for name, ok in (("fast vs pyVmomi", ratio >= TARGET_RATIO),
                                  ("fast vs floor", over_floor <= TARGET_FLOOR),
                                  ("round trips", pages_grow)) if not ok]


def cpu_of(run: Callable[[], object], simulators: list[vcsim.Simulator]) -> tuple[float, float] | None:
    """The CPU one call of `run` takes, read from /proc: collecting (this process, and the
    collecting processes, whose time the fork server adds to its own as it reaps them) and
    simulating; None where /proc cannot tell."""
    server = getattr(forkserver._forkserver, "_forkserver_pid", None)

    def read() -> list[float | None]:
        return [process_seconds(server, children=True) if server else None,
                *(process_seconds(s.process.pid) for s in simulators)]

    before = read()
    used = time.process_time()
    run()
    used = time.process_time() - used
    time.sleep(0.2)  # the fork server reaps the last child
    after = read()
    if None in before + after:
        return None
    return after[0] - before[0] + used, sum(after[1:]) - sum(before[1:])  # type: ignore[operator, arg-type]


def together(binary: Path, workdir: Path, vms: int, vcenters: int, repeat: int) -> list[str]:
    """K simulators collected together and one after another; the targets missed."""
    simulators = [start(binary, workdir, vms) for _ in range(vcenters)]
    try:
        sources = [VSphereSource(connection(simulator)) for simulator in simulators]
        for source in sources:  # warm up every simulator
            collect_all([source], Progress(enabled=False))

        def parallel() -> None:
            snapshot = collect_all(sources, Progress(enabled=False))
            if any(source.status != "ok" for source in snapshot.sources):
                raise SystemExit(f"collection failed: {[s.error for s in snapshot.sources]}")

        def sequential() -> None:
            for source in sources:
                collect_all([source], Progress(enabled=False))

        first = best(1, parallel)[0]  # starts the fork server, as a fresh command does
        apart = best(repeat, sequential)[0]
        joint = min(first, best(repeat, parallel)[0])
        # what a run together costs in CPU, simulators included: on shared cores no run can take
        # less than that spread over every core; and what one after another costs: a run
        # together that cost no more could take no less than that spread the same way
        together_cpu = cpu_of(parallel, simulators)
        apart_cpu = cpu_of(sequential, simulators)
    finally:
        for simulator in simulators:
            simulator.stop()
    ratio = joint / apart
    print(f"  {vcenters} vCenters together: {joint:.2f} s (first run, with the fork server's start: {first:.2f} s); "
          f"one after another: {apart:.2f} s")
    print(f"  together vs one after another: {ratio:.2f} (target <= {TARGET_PARALLEL:g}; with the fork server's "
          f"start {first / apart:.2f})")
    cores = default_workers()  # the CPUs this process may use (affinity, a container's quota)
    if together_cpu is not None:
        collecting, simulating = together_cpu
        least = (collecting + simulating) / cores
        print(f"  CPU of one run together: {collecting:.2f} s collecting (the processes and this one), "
              f"{simulating:.2f} s simulating; spread over {cores} cores, no run takes less than {least:.2f} s, "
              f"{least / apart:.2f} of one after another")
    if apart_cpu is not None:
        collecting, simulating = apart_cpu
        ideal = (collecting + simulating) / cores
        print(f"  CPU of one run one after another: {collecting:.2f} s collecting, {simulating:.2f} s "
              f"simulating; a run together that cost no more would take {ideal:.2f} s, "
              f"{ideal / apart:.2f} of one after another")
    return [] if ratio <= TARGET_PARALLEL else ["vCenters together"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=2000, help="VMs per simulator (default: 2,000)")
    parser.add_argument("--vcenters", type=int, default=1, help="also collect this many simulators together")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the best counts")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    print(f"load average before: {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        binary = vcsim.build(Path(tmp))
        missed = single(binary, Path(tmp), args.vms, args.repeat)
        if args.vcenters > 1:
            missed += together(binary, Path(tmp), args.vms, args.vcenters, args.repeat)
    print(f"load average after: {load()}")
    if missed:
        print(f"missed targets: {', '.join(missed)}" + ("" if args.check else " (--check makes that exit 1)"))
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
