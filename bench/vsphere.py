"""vSphere collection benchmark against govmomi's simulator with 2,000 VMs.

Compares, in the same run and against the same simulator:
- auditor's collector (one ContainerView, paged RetrievePropertiesEx, every type);
- the naive pyvmomi loop `for vm in view.view: vm.name, vm.config, vm.guest, vm.runtime,
  vm.network` (VMs only: each attribute read is a round trip of its own).
Prints wall time and SOAP round trips of both and the speed ratio, twice: on loopback as
the simulator answers (well under a millisecond a call, so client CPU dominates: mostly
pyvmomi's XML deserialisation, which both approaches pay), and with the simulator's
per-call delay set to --latency-ms (default 5 ms), a modest stand-in for the network round
trip plus a real vCenter's service time per call.
Targets: ratio >= 20; round trips that grow with pages (one per 1,000 objects).

Usage: python bench/vsphere.py [--vms N] [--check]
"""

from __future__ import annotations

import argparse
import ssl
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import SoapAdapter, vim

from auditor.sources import Progress
from auditor.sources.vsphere import VSphereConnection, VSphereSource
from tests import vcsim

CALLS: Counter = Counter()
_invoke = SoapAdapter.SoapStubAdapter.InvokeMethod


def _counting(self, mo, info, args, *rest, **kwargs):
    CALLS[info.wsdlName] += 1
    return _invoke(self, mo, info, args, *rest, **kwargs)


SoapAdapter.SoapStubAdapter.InvokeMethod = _counting


def ours(simulator, page_size: int) -> tuple[float, int, int]:
    CALLS.clear()
    start = time.perf_counter()
    connection = VSphereConnection(host="127.0.0.1", port=simulator.port, user="auditor", password=vcsim.PASSWORD,
                                   ca_bundle=str(simulator.cert), timeout=120)
    result = VSphereSource(connection, page_size=page_size).collect(Progress(enabled=False))
    elapsed = time.perf_counter() - start
    if result.sources[0].status != "ok":
        raise SystemExit(result.sources[0].error)
    return elapsed, sum(CALLS.values()), len(result.resources)


def naive(simulator) -> tuple[float, int, int]:
    CALLS.clear()
    start = time.perf_counter()
    service = SmartConnect(host="127.0.0.1", port=simulator.port, user="auditor", pwd=vcsim.PASSWORD,
                           sslContext=ssl.create_default_context(cafile=str(simulator.cert)))
    content = service.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    collected = []
    for vm in view.view:
        collected.append((vm.name, vm.config, vm.guest, vm.runtime, vm.network))
    view.DestroyView()
    Disconnect(service)
    return time.perf_counter() - start, sum(CALLS.values()), len(collected)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=2000)
    parser.add_argument("--latency-ms", type=int, default=5, help="modelled per-call latency of the second run")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    ratios = {}
    with tempfile.TemporaryDirectory() as tmp:
        binary = vcsim.build(Path(tmp))
        for latency in (0, args.latency_ms):
            started = time.perf_counter()
            # the model has two resource pools (a cluster's and a standalone host's)
            simulator = vcsim.start(binary, Path(tmp), "-vms", str(args.vms // 2), "-latency-ms", str(latency))
            print(f"simulator with {args.vms:,} VMs, {latency} ms per call, ready in "
                  f"{time.perf_counter() - started:.1f} s")
            try:
                our_time, our_calls, objects = ours(simulator, 1000)
                _, small_page_calls, _ = ours(simulator, 250)
                naive_time, naive_calls, vms = naive(simulator)
            finally:
                simulator.stop()
            ratios[latency] = naive_time / our_time
            print(f"  auditor: {objects:,} resources (all types) in {our_time:.2f} s, {our_calls} SOAP round "
                  f"trips at 1,000 objects a page, {small_page_calls} at 250 a page")
            print(f"  naive loop: {vms:,} VMs only in {naive_time:.2f} s, {naive_calls:,} SOAP round trips")
            print(f"  ratio naive/auditor: {ratios[latency]:.1f}x faster; round trips "
                  f"{naive_calls / max(our_calls, 1):.0f}x fewer")
    ratio = ratios[args.latency_ms]
    print(f"ratio at {args.latency_ms} ms per call: {ratio:.1f}x (target >= 20); on loopback: {ratios[0]:.1f}x")
    pages_grow = small_page_calls > our_calls and our_calls <= 12 + objects // 1000
    missed = [name for name, ok in (("ratio", ratio >= 20), ("round trips", pages_grow)) if not ok]
    if missed:
        print(f"missed targets: {', '.join(missed)}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
