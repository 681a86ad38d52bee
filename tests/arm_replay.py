"""A local HTTPS peer for the Azure source: Entra ID's token endpoint plus Azure Resource
Manager, replaying Microsoft's published REST examples (tests/fixtures/azure-rest-examples) and our own rows.

The real SDK clients talk to it through the switches a user has (`--arm-endpoint`,
`--authority`, `--ca-bundle`), so the path from CLI to token to inventory is the real one.
It behaves as the services do where the collector depends on it:

- tokens: OpenID discovery and the client-credentials grant, checked against one client
  secret and for the scope of Resource Manager's audience (here the replay's own URL);
  every ARM call needs a bearer token it issued and has not revoked;
- subscriptions: `GET /subscriptions` lists only those the identity may read, as ARM does;
- Resource Graph: `POST /providers/Microsoft.ResourceGraph/resources` pages by `$skipToken`
  (at most 1,000 rows a page), returns only rows of requested subscriptions the identity
  may read (ARG leaves out the others silently), and sends the quota headers;
- resource groups: 403 AuthorizationFailed for a subscription the identity may not read;
- policy definitions by id (custom and built-in);
- Resource SKUs: `GET /subscriptions/{id}/providers/Microsoft.Compute/skus` answers the SKUs
  of the `location eq '...'` its $filter names (Microsoft's published example for westus and a
  recorded eastus answer), paged by `$skiptoken` with an absolute nextLink;
- faults queued per route (429 with Retry-After, 500, ...), consumed in order;
- held routes: a request is read and then never answered (a stalled service) until stop(),
  from the first request of the route or after a number answered normally.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import re
import ssl
import threading
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "azure-rest-examples"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "3b7e2a51-6f0e-4d7c-9a43-0c8b5f1e2d77"
CLIENT_SECRET = "replay-only-secret"  # a test server's credential, not a secret anyone relies on
TRICKLE = 0.25  # seconds between the bytes of a trickled answer


def example_body(relative: str) -> Any:
    """The 200 response body of one of Microsoft's published examples."""
    document = json.loads((EXAMPLES / relative).read_text(encoding="utf-8"))
    return document["responses"]["200"]["body"]


def subscription_of(resource_id: str) -> str:
    """The subscription segment of an ARM id, as written (placeholders such as `subid` kept)."""
    match = re.match(r"/subscriptions/([^/]+)", resource_id, re.I)
    return match.group(1) if match else ""


def graph_row(arm: dict[str, Any], tenant: str = TENANT) -> dict[str, Any]:
    """An ARM resource as Resource Graph returns it: the ARM JSON plus ARG's own columns."""
    row = dict(arm)
    row["type"] = str(arm.get("type", "")).lower()
    row.setdefault("tenantId", tenant)
    row.setdefault("subscriptionId", subscription_of(arm["id"]))
    group = re.search(r"/resourcegroups/([^/]+)", arm["id"], re.I)
    row.setdefault("resourceGroup", group.group(1).lower() if group else "")
    return row


def example_rows() -> list[dict[str, Any]]:
    """The published examples that are resources, as Resource Graph rows."""
    rows = []
    for relative in ("compute/VirtualMachine_ListBySubscription_ByLocation.json",
                     "network/NetworkSecurityGroupListAll.json", "network/VirtualNetworkListAll.json",
                     "policy/listPolicyAssignments.json"):
        rows += [graph_row(item) for item in example_body(relative)["value"]]
    # the examples reuse placeholder ids ({virtualMachineName} twice); Resource Graph never
    # returns one id twice, and the collector rightly fails a scope whose pages do
    unique = {}
    for row in rows:
        unique.setdefault(row["id"].lower(), row)
    return list(unique.values())


def make_certificate(workdir: Path) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for 127.0.0.1 (its own CA bundle) and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "arm-replay.test")])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = workdir / "arm-replay.pem", workdir / "arm-replay.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class Fault:
    """One queued answer that replaces the normal one."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass
class Estate:
    """What the replayed tenant holds."""

    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> subscription JSON
    forbidden: set[str] = field(default_factory=set)  # exist, but this identity may not read them
    rows: list[dict[str, Any]] = field(default_factory=list)  # Resource Graph rows, every table
    definitions: dict[str, dict[str, Any]] = field(default_factory=dict)  # lower-case id -> definition
    management_groups: dict[str, set[str]] = field(default_factory=dict)  # group -> subscription ids
    skus: list[dict[str, Any]] = field(default_factory=list)  # Resource SKUs, every location
    sku_page_size: int = 1000  # SKUs per page of the Resource SKUs answer

    def add_subscription(self, subscription_id: str, display_name: str, *, readable: bool = True,
                         state: str = "Enabled") -> None:
        """A subscription of the tenant; an unreadable one is neither listed nor queried."""
        self.subscriptions[subscription_id] = {
            "id": f"/subscriptions/{subscription_id}", "subscriptionId": subscription_id,
            "tenantId": TENANT, "displayName": display_name, "state": state,
            "authorizationSource": "RoleBased",
            "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01",
                                     "spendingLimit": "Off"}}
        if not readable:
            self.forbidden.add(subscription_id)


class ArmReplay:
    """The server; start() it, point the collector at `url`, stop() it."""

    def __init__(self, workdir: Path, estate: Estate):
        self.estate = estate
        self.cert, self.key = make_certificate(workdir)
        self.faults: dict[str, list[Fault]] = {}
        self.requests: Counter[str] = Counter()
        self.log: list[tuple[str, str, dict[str, Any] | None]] = []  # (route, token, ARG body)
        self.issued: list[str] = []
        self.revoked: set[str] = set()  # tokens ARM answers 401 for (expired)
        self.quota_remaining: int | None = None  # sent as x-ms-user-quota-remaining when set
        self.held: dict[str, int] = {}  # route -> requests still answered before the rest are held
        self.trickling: set[str] = set()  # held routes answered a byte at a time rather than not at all
        self.released = threading.Event()  # set by stop(): held requests end without an answer
        self.lock = threading.Lock()
        self._by_id: dict[str, dict[str, Any]] | None = None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The base URL for both ARM and the authority."""
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> ArmReplay:
        """Serve in a background thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def fail(self, route: str, *faults: Fault) -> None:
        """Answer the next requests of `route` with these faults, in order."""
        self.faults.setdefault(route, []).extend(faults)

    def hold(self, route: str, after: int = 0) -> None:
        """Answer `after` more requests of `route`, then read every later one and never answer
        it, as a stalled service does: TCP and TLS up, the request taken, then silence until stop()."""
        self.held[route] = after

    def trickle(self, route: str, after: int = 0) -> None:
        """Answer `after` more requests of `route`, then answer every later one with a 1 MiB
        body sent a byte every TRICKLE seconds: each wait for bytes ends well within any
        timeout, and the answer would take three days."""
        self.held[route] = after
        self.trickling.add(route)

    def by_id(self) -> dict[str, dict[str, Any]]:
        """Rows by lower-case id (built once; the estate does not change while serving)."""
        with self.lock:
            if self._by_id is None:
                self._by_id = {row["id"].lower(): row for row in self.estate.rows}
            return self._by_id

    def arm_requests(self) -> int:
        """Requests made to Resource Manager (token requests not counted)."""
        return sum(n for route, n in self.requests.items() if route not in ("openid", "token"))

    def graph_bodies(self) -> list[dict[str, Any]]:
        """The Resource Graph request bodies, in order."""
        return [body for route, _, body in self.log if route == "resources" and body is not None]


def _handler(replay: ArmReplay) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body leave in one segment: written apart, delayed ACK adds 40 ms a request
        wbufsize = 1 << 16
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:  # quiet test output
            pass

        def do_GET(self) -> None:  # http.server's naming
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            payload = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("x-ms-request-id", "replay")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def _trickle(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(1 << 20))
            self.end_headers()
            self.wfile.flush()
            try:
                while not replay.released.wait(TRICKLE):
                    self.wfile.write(b" ")
                    self.wfile.flush()
            except OSError:  # the client gave up
                pass

        def _dispatch(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parsed = urllib.parse.urlsplit(self.path)
            path, query = parsed.path, urllib.parse.parse_qs(parsed.query)
            route, params = _route(method, path)
            token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            body = json.loads(raw) if route == "resources" and raw else None
            with replay.lock:
                replay.requests[route] += 1
                replay.log.append((route, token, body))
                held = replay.held.get(route) == 0
                if route in replay.held and not held:
                    replay.held[route] -= 1
                queued = None if held else replay.faults.get(route)
                fault = queued.pop(0) if queued else None
            if held:
                if route in replay.trickling:
                    self._trickle()
                else:
                    replay.released.wait()
                self.close_connection = True  # the client gave up long ago; nothing more to read
                return
            if fault is not None:
                self._send(fault.status, fault.body, fault.headers)
                return
            if route == "openid":
                self._openid(params["tenant"])
            elif route == "token":
                self._token(params["tenant"], urllib.parse.parse_qs(raw.decode()))
            elif route == "unknown":
                self._send(404, {"error": {"code": "InvalidResourceType", "message": f"no route for {path}"}})
            elif not self._authorised(token):
                return
            elif route == "subscriptions":
                self._send(200, {"value": [{k: v for k, v in s.items() if k != "listed"}
                                           for sid, s in replay.estate.subscriptions.items()
                                           if sid not in replay.estate.forbidden and s.get("listed", True)]})
            elif route == "resourcegroups":
                self._resource_groups(params["subscription"])
            elif route == "definition":
                definition = replay.estate.definitions.get(path.lower())
                if definition is None:
                    self._send(404, {"error": {"code": "PolicyDefinitionNotFound",
                                               "message": f"The policy definition '{path}' could not be found."}})
                else:
                    self._send(200, definition)
            elif route == "resources":
                self._graph(body or {}, query)
            elif route == "generic-list":
                self._generic_list(params["subscription"], query)
            elif route == "by-id":
                self._by_id(path)
            elif route == "skus":
                self._skus(params["subscription"], query)

        def _skus(self, subscription: str, query: dict[str, list[str]]) -> None:
            """`GET .../providers/Microsoft.Compute/skus`: the SKUs of the filtered location."""
            estate = replay.estate
            if subscription not in estate.subscriptions:
                self._send(404, {"error": {"code": "SubscriptionNotFound",
                                           "message": f"The subscription '{subscription}' could not be found."}})
                return
            if subscription in estate.forbidden:
                self._send(*_denied(subscription, "Microsoft.Compute/skus/read"))
                return
            odata = (query.get("$filter") or [""])[0]
            wanted = re.fullmatch(r"\s*location\s+eq\s+'([^']*)'\s*", odata, re.I)
            if odata and not wanted:
                self._send(400, {"error": {"code": "InvalidFilter", "message": f"Unsupported $filter: {odata}"}})
                return
            items = [sku for sku in estate.skus if not wanted
                     or wanted.group(1).lower() in (str(loc).lower() for loc in sku.get("locations") or ())]
            start = int((query.get("$skiptoken") or ["0"])[0])
            answer: dict[str, Any] = {"value": items[start:start + estate.sku_page_size]}
            if start + estate.sku_page_size < len(items):
                answer["nextLink"] = (f"{replay.url}/subscriptions/{subscription}/providers/Microsoft.Compute/skus?"
                                      + urllib.parse.urlencode({"api-version": "2021-07-01", "$filter": odata,
                                                                "$skiptoken": start + estate.sku_page_size}))
            self._send(200, answer)

        def _generic_list(self, subscription: str, query: dict[str, list[str]]) -> None:
            """`GET /subscriptions/{id}/resources`: ids, names and types only, 1,000 a page."""
            rows = [r for r in replay.estate.rows if r["subscriptionId"] == subscription
                    and not r["type"].startswith(("microsoft.resources/", "microsoft.authorization/",
                                                  "microsoft.policyinsights/"))]
            start = int((query.get("$skiptoken") or ["0"])[0])
            page = [{key: row.get(key) for key in ("id", "name", "type", "location", "tags")}
                    for row in rows[start:start + 1000]]
            answer: dict[str, Any] = {"value": page}
            if start + 1000 < len(rows):
                answer["nextLink"] = (f"{replay.url}/subscriptions/{subscription}/resources"
                                      f"?api-version=2021-04-01&$skiptoken={start + 1000}")
            self._send(200, answer)

        def _by_id(self, path: str) -> None:
            """`GET {resource id}`: one resource's full ARM JSON."""
            wanted = urllib.parse.unquote(path).lower()
            row = replay.by_id().get(wanted)
            if row is None:
                self._send(404, {"error": {"code": "ResourceNotFound", "message": f"{path} was not found."}})
            else:
                self._send(200, {k: v for k, v in row.items()
                                 if k not in ("subscriptionId", "resourceGroup", "tenantId")})

        def _openid(self, tenant: str) -> None:
            base = f"{replay.url}/{tenant}"
            self._send(200, {"token_endpoint": f"{base}/oauth2/v2.0/token", "issuer": f"{base}/v2.0",
                             "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                             "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                             "tenant_region_scope": "WW"})

        def _token(self, tenant: str, form: dict[str, list[str]]) -> None:
            secret = (form.get("client_secret") or [""])[0]
            client = (form.get("client_id") or [""])[0]
            scopes = (form.get("scope") or [""])[0].split()
            if f"{replay.url}/.default" not in scopes:  # Resource Manager's audience here is the replay's URL
                self._send(400, {"error": "invalid_scope",
                                 "error_description": f"AADSTS70011: The provided scope {scopes} is not valid."})
                return
            if tenant != TENANT or client != CLIENT_ID or secret != CLIENT_SECRET:
                self._send(401, {"error": "invalid_client",
                                 "error_description": "AADSTS7000215: Invalid client secret provided. "
                                                      "Trace ID: replay"})
                return
            with replay.lock:
                token = f"replay-token-{len(replay.issued) + 1}"
                replay.issued.append(token)
            self._send(200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                             "access_token": token})

        def _authorised(self, token: str) -> bool:
            if token in replay.issued and token not in replay.revoked:
                return True
            expired = token in replay.revoked
            self._send(401, {"error": {"code": "ExpiredAuthenticationToken" if expired else "InvalidAuthenticationToken",
                                       "message": "The access token expiry UTC time is earlier than current UTC time."
                                       if expired else "The access token is invalid."}},
                       {"WWW-Authenticate": 'Bearer authorization_uri="https://login.windows.net/", '
                                            'error="invalid_token", error_description="The access token has expired."'})
            return False

        def _resource_groups(self, subscription: str) -> None:
            estate = replay.estate
            if subscription not in estate.subscriptions:
                self._send(404, {"error": {"code": "SubscriptionNotFound",
                                           "message": f"The subscription '{subscription}' could not be found."}})
            elif subscription in estate.forbidden:
                self._send(*_denied(subscription, "Microsoft.Resources/subscriptions/resourcegroups/read"))
            else:
                self._send(200, {"value": [r for r in estate.rows if r["type"] == "microsoft.resources/"
                                           "subscriptions/resourcegroups" and r["subscriptionId"] == subscription]})

        def _graph(self, body: dict[str, Any], query: dict[str, list[str]]) -> None:
            estate = replay.estate
            requested = set(body.get("subscriptions") or ())
            for group in body.get("managementGroups") or ():
                requested |= estate.management_groups.get(group, set())
            readable = {s for s in requested if s in estate.subscriptions and s not in estate.forbidden}
            kql = body.get("query", "")
            rows = [r for r in estate.rows if r["subscriptionId"] in readable and _selected(r, kql)]
            rows.sort(key=lambda r: r["id"].lower())
            options = body.get("options") or {}
            top = min(int(options.get("$top") or 1000), 1000)
            start = int(base64.b64decode(options["$skipToken"]).decode()) if options.get("$skipToken") else 0
            page = rows[start:start + top]
            answer: dict[str, Any] = {"totalRecords": len(rows), "count": len(page), "resultTruncated": "false",
                                      "facets": [], "data": page}
            if start + top < len(rows):
                answer["$skipToken"] = base64.b64encode(str(start + top).encode()).decode()
            headers = {"x-ms-user-quota-resets-after": "00:00:01"}
            if replay.quota_remaining is not None:
                with replay.lock:
                    headers["x-ms-user-quota-remaining"] = str(replay.quota_remaining)
                    replay.quota_remaining = max(replay.quota_remaining - 1, 0)
            self._send(200, answer, headers)

    return Handler


def _denied(subscription: str, action: str) -> tuple[int, dict[str, Any]]:
    return 403, {"error": {"code": "AuthorizationFailed",
                           "message": f"The client '{CLIENT_ID}' with object id '{CLIENT_ID}' does not have "
                                      f"authorization to perform action '{action}' over scope "
                                      f"'/subscriptions/{subscription}' or the scope is invalid. If access was "
                                      "recently granted, please refresh your credentials."}}


def _selected(row: dict[str, Any], kql: str) -> bool:
    """Whether the collector's KQL asks for this row's type (the replay reads the type list
    only, so a type the query forgets is missing from the snapshot, as it would be in Azure)."""
    return f"'{row['type']}'" in kql.lower()


_ROUTES = [
    ("GET", re.compile(r"^/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration$"), "openid"),
    ("POST", re.compile(r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/token$"), "token"),
    ("GET", re.compile(r"^/subscriptions$", re.I), "subscriptions"),
    ("GET", re.compile(r"^/subscriptions/(?P<subscription>[^/]+)/resourcegroups$", re.I), "resourcegroups"),
    ("GET", re.compile(r"^(/subscriptions/[^/]+)?/providers/microsoft\.authorization/"
                       r"policy(set)?definitions/[^/]+$", re.I), "definition"),
    ("POST", re.compile(r"^/providers/microsoft\.resourcegraph/resources$", re.I), "resources"),
    ("GET", re.compile(r"^/subscriptions/(?P<subscription>[^/]+)/resources$", re.I), "generic-list"),
    ("GET", re.compile(r"^/subscriptions/(?P<subscription>[^/]+)/providers/microsoft\.compute/skus$", re.I), "skus"),
    ("GET", re.compile(r"^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/.+$", re.I), "by-id"),
]


def _route(method: str, path: str) -> tuple[str, dict[str, str]]:
    for route_method, pattern, name in _ROUTES:
        match = pattern.match(urllib.parse.unquote(path))
        if route_method == method and match:
            return name, match.groupdict()
    return "unknown", {}


FIXTURE = Path(__file__).resolve().parent / "fixtures" / "azure" / "estate.json"
SKUS_EASTUS = Path(__file__).resolve().parent / "fixtures" / "azure" / "resource-skus-eastus.json"
EXAMPLE_SUBSCRIPTIONS = ("subid", "{subscriptionId}", "ae640e6b-ba3e-4256-9d62-2993eecfa6f2")


def standard_estate() -> Estate:
    """Microsoft's examples (their placeholder subscriptions kept) plus our fixture rows:
    the NSG `testnsg` is built from the published rule-list example, as Resource Graph
    embeds an NSG's rules in it."""
    estate = Estate()
    for subscription in EXAMPLE_SUBSCRIPTIONS:
        estate.add_subscription(subscription, f"example {subscription}")
    fixture = json.loads(FIXTURE.read_text(encoding="utf-8"))
    for subscription in fixture["subscriptions"]:
        estate.add_subscription(subscription["subscriptionId"], subscription["displayName"])
    estate.management_groups = {group: set(members) for group, members in fixture["management_groups"].items()}
    rules = example_body("network/NetworkSecurityGroupRuleList.json")["value"]
    testnsg = {"id": "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/networkSecurityGroups/testnsg",
               "name": "testnsg", "type": "Microsoft.Network/networkSecurityGroups", "location": "westus",
               "properties": {"securityRules": rules, "provisioningState": "Succeeded"}}
    estate.rows = example_rows() + [graph_row(testnsg)] + [graph_row(row) for row in fixture["rows"]]
    estate.definitions = {d["id"].lower(): d for d in fixture["definitions"]}
    # Resource SKUs: Microsoft's published example (westus) and a recorded answer for eastus
    estate.skus = (example_body("compute/ListAvailableResourceSkusForARegion.json")["value"]
                   + json.loads(SKUS_EASTUS.read_text(encoding="utf-8"))["value"])
    return estate


def generated_rows(count: int, subscription: str) -> list[dict[str, Any]]:
    """`count` distinct resources shaped like the published NSG, VNet and VM examples."""
    shapes = [example_body("network/NetworkSecurityGroupListAll.json")["value"][0],
              example_body("network/VirtualNetworkListAll.json")["value"][0],
              example_body("compute/VirtualMachine_ListBySubscription_ByLocation.json")["value"][0]]
    kinds = ("networkSecurityGroups", "virtualNetworks", "virtualMachines")
    providers = ("Microsoft.Network", "Microsoft.Network", "Microsoft.Compute")
    rows = []
    for index in range(count):
        shape = index % 3
        arm = json.loads(json.dumps(shapes[shape]))
        arm["name"] = f"{kinds[shape].lower()[:-1]}-{index:05d}"
        arm["id"] = (f"/subscriptions/{subscription}/resourceGroups/rg-{index // 500:03d}/providers/"
                     f"{providers[shape]}/{kinds[shape]}/{arm['name']}")
        rows.append(graph_row(arm))
    return rows
