"""Live collection: sources built from options (credentials and TLS checked), collected together.

Every live source is set up (and its options checked) before any is collected, so a bad
Azure option is reported before minutes of vSphere collection, not after.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .blob import BlobLocation, is_blob
from .errors import EXIT_INCOMPLETE, EXIT_OK, InputError
from .files import read_input
from .options import AzureOptions, CollectOptions, VSphereOptions
from .progress import Progress
from .snapshot import Snapshot
from .sources import InventorySource, collect_all


def collect_live(sources: list[InventorySource], progress: Progress, warn: Callable[[str], None]) -> Snapshot:
    """Collect every live source together (`collect_all`), each vCenter once however many
    of its names were given (`collected_once`)."""
    snapshot = collect_all(sources, progress)
    collected_once(snapshot, warn)
    return snapshot


def collected_once(snapshot: Snapshot, warn: Callable[[str], None]) -> None:
    """Keep one collection of a vCenter reached under two names (its address and its DNS
    name, two DNS names): its resources would otherwise be in the snapshot twice, under two
    ids, and its licences and Windows guests counted twice. The two answered from the same
    address and port with the same instance UUID; the later is dropped, with a warning. Two
    that share an instance UUID from different addresses (a cloned or restored appliance,
    or a server claiming another's UUID) are both kept, with a warning: a shared UUID alone
    proves nothing, and dropping a vCenter would hide its findings."""
    first: dict[str, tuple[str, str | None]] = {}  # instance UUID -> (source id, address)
    repeated: set[str] = set()
    for source in snapshot.sources:
        uuid = source.details.get("instance_uuid") if source.cloud == "vsphere" and source.status == "ok" else None
        if not isinstance(uuid, str) or not uuid:
            continue
        address = source.details.get("address")
        if uuid not in first:
            first[uuid] = (source.id, address)
        elif address is not None and address == first[uuid][1]:
            warn(f"{source.id} is the same vCenter as {first[uuid][0]} (instance UUID {uuid}, both answered from "
                 f"{address}): its resources are kept once, under the first name")
            repeated.add(source.id)
        else:
            warn(f"{source.id} and {first[uuid][0]} share the instance UUID {uuid} but answered from other addresses "
                 "(a cloned or restored vCenter?): both are kept")
    if repeated:
        snapshot.sources = [source for source in snapshot.sources if source.id not in repeated]
        snapshot.resources = [resource for resource in snapshot.resources if resource["source"] not in repeated]


def check_ca_bundle(path: Path | None) -> None:
    """A CA bundle given must be a file, said plainly before any connection is made."""
    if path is None or path.is_file():
        return
    raise InputError("CA bundle is a folder, not a PEM file" if path.is_dir() else "CA bundle not found",
                     where=str(path))


def vsphere_password(options: VSphereOptions) -> str:
    """The password from the password file, else VSPHERE_PASSWORD; never from a flag."""
    if options.password_file is not None:
        try:
            text = read_input(options.password_file, "password file").decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("password file is not UTF-8 text", where=str(options.password_file)) from None
        password = text.splitlines()[0] if text else ""
    else:
        password = os.environ.get("VSPHERE_PASSWORD", "")
    if not password:
        raise InputError(f"no vSphere password: set VSPHERE_PASSWORD or pass {options.flag('password-file')} "
                         "(never the password itself on the command line)")
    return password


def vsphere_sources(options: VSphereOptions, warn: Callable[[str], None]) -> list[InventorySource]:
    """One source per vCenter, with the credentials and TLS options checked."""
    from .sources.vsphere import VSphereConnection, VSphereSource, endpoint, parse_server

    user = options.user or os.environ.get("VSPHERE_USER", "")
    if not user:
        raise InputError(f"no vSphere user: pass {options.flag('user')} or set VSPHERE_USER")
    password = vsphere_password(options)
    # what a failed login tells the user to check: what they actually gave
    credentials_from = (f"the user from {options.flag('user') if options.user else 'VSPHERE_USER'} and the password "
                        f"from {options.flag('password-file') if options.password_file else 'VSPHERE_PASSWORD'}")
    check_ca_bundle(options.ca_bundle)
    sources: list[InventorySource] = []
    named: dict[tuple[str, int], str] = {}  # (host, port) -> how it was first written
    for server in options.servers:
        try:
            host, port = parse_server(server)
        except ValueError as exc:
            hint = (f": give the user with {options.flag('user')} or VSPHERE_USER, the password in VSPHERE_PASSWORD "
                    f"or {options.flag('password-file')}") if "@" in server else ""
            raise InputError(f"{options.flag('server')} {_without_credentials(server)!r}: {exc}{hint}") from None
        reached = endpoint(host, port)
        if reached in named:  # one vCenter twice: its resources twice, one id each
            warn(f"{server!r} is the same vCenter as {named[reached]!r}: collected once")
            continue
        named[reached] = server
        connection = VSphereConnection(host=host, port=port, user=user, password=password,
                                       ca_bundle=str(options.ca_bundle) if options.ca_bundle else None,
                                       insecure=options.insecure, timeout=options.timeout,
                                       credentials_from=credentials_from)
        if options.insecure:
            warn(f"TLS certificate verification is disabled for {connection.label}; the connection can be "
                 "intercepted")
        sources.append(VSphereSource(connection, page_size=options.page_size, parser=options.parser))
    return sources


def _without_credentials(server: str) -> str:
    """`server` as it may be shown: all before its last "@" (a user and password, which may
    hold "/", ":" or "@") starred out."""
    return "***@" + server.rsplit("@", 1)[1] if "@" in server else server


def azure_sources(options: AzureOptions) -> list[InventorySource]:
    """The Azure scope to collect, with its options checked."""
    from .sources.azure import AzureConnection, AzureScope, AzureSource

    if options.subscriptions and options.management_group:
        raise InputError(f"give {options.flag('subscription')} or {options.flag('management-group')}, not both")
    if bool(options.arm_endpoint) != bool(options.authority):
        raise InputError(f"{options.flag('arm-endpoint')} and {options.flag('authority')} go together: a private "
                         "Resource Manager has its own token issuer")
    for option, value in (("arm-endpoint", options.arm_endpoint), ("authority", options.authority),
                          ("audience", options.audience)):
        if value and not value.lower().startswith("https://"):
            raise InputError(f"{options.flag(option)} must be an https:// URL (tokens are never sent in clear "
                             f"text): {value}")
    check_ca_bundle(options.ca_bundle)
    connection = AzureConnection(
        cloud=options.cloud, arm_endpoint=options.arm_endpoint, authority=options.authority,
        audience=options.audience, tenant_id=options.tenant,
        ca_bundle=str(options.ca_bundle) if options.ca_bundle else None, timeout=options.timeout)
    # the SDK logs each failed token request as a warning of its own; the source's one-line
    # status says the same, so keep Python's last-resort handler from printing it twice
    logging.getLogger("azure").addHandler(logging.NullHandler())
    scope = AzureScope(subscriptions=list(options.subscriptions), management_group=options.management_group)
    return [AzureSource(connection, scope)]


def live_sources(vsphere: VSphereOptions, azure: AzureOptions,
                 warn: Callable[[str], None]) -> list[InventorySource]:
    """Every live source the options name, all checked before any is collected."""
    sources = vsphere_sources(vsphere, warn) if vsphere.servers else []
    if azure.enabled:
        sources += azure_sources(azure)
    return sources


@dataclass
class CollectOutcome:
    """What `collect` gathered and whether it wrote the snapshot."""

    snapshot: Snapshot
    output: Path | BlobLocation  # in storage under a prefix: the blob written
    written: bool

    @property
    def exit_code(self) -> int:
        """0 when every source was collected, 3 when any failed (nothing written if all did)."""
        return EXIT_INCOMPLETE if self.snapshot.incomplete else EXIT_OK


def run_collect(options: CollectOptions, warn: Callable[[str], None], progress: Progress) -> CollectOutcome:
    """Collect one kind of live source into a snapshot file or blob. When every source
    failed, nothing is written, so the snapshot already at the output path stays."""
    from .snapshot import save_snapshot

    # the options of the other kind of source are left at their defaults: off
    sources = live_sources(options.vsphere, options.azure, warn)
    output = options.output
    if is_blob(output):
        from .blob import check_output, source_label, upload_snapshot
        check_output(output)  # a missing container or a refused credential, before minutes of collection
    snapshot = collect_live(sources, progress, warn)
    written = any(source.status == "ok" for source in snapshot.sources)
    if written and is_blob(output):
        scope = (options.vsphere.servers if options.source == "vsphere" else
                 [f"mg-{options.azure.management_group}"] if options.azure.management_group else
                 options.azure.subscriptions)
        output = upload_snapshot(snapshot, output, source_label(options.source, scope))
    elif written:
        save_snapshot(snapshot, output)
    if written:
        logging.getLogger("auditor").info("wrote %s (%d resources)", output, len(snapshot.resources))
    else:
        logging.getLogger("auditor").info("every source failed: %s is left as it was", output)
    return CollectOutcome(snapshot, output, written)
