#!/usr/bin/env python3
"""Drive the hub's REST service API with Microsoft's own service SDK.

Why this exists: our Rust tests must not only check the hub with our own HTTP
client, whose idea of the protocol is the same as the server's. This script is an
independent client of the service API: it uses only `azure.iot.hub.IoTHubRegistryManager`
from Microsoft's azure-iot-hub 2.7.0 (never raw HTTP), so whatever the SDK sends
(paths, api-version, If-Match quoting, SAS tokens, paging headers) and whatever it
accepts in return (status codes, JSON shapes) is exactly what a real Azure IoT Hub
client would do.

Run it with the Azure venv (scripts/install-peers.sh --azure-only):

    tests/peers/.venv-azure/bin/python tests/peers/hub_service_client.py \\
        --connection-string-file FILE registry
    ... --connection-string-file FILE wrong-key
    ... --connection-string-file FILE method --device ID --method NAME \\
        --payload '{"a": 1}' --timeout 10

* The service connection string (HostName=host:port;SharedAccessKeyName=...;
  SharedAccessKey=...) is read from FILE, never from argv, and never printed.
* TLS trust comes from REQUESTS_CA_BUNDLE, set by the caller (requests honours it);
  certificate verification is never disabled here.
* stdout carries one JSON object per line; diagnostics go to stderr.

Scenarios:
  registry   the device/module/twin/query sequence in `scenario_registry`, one
             `{"step": ...}` line per step; exit 0 when all steps behaved as expected,
             exit 1 with a message on stderr at the first deviation. Expects a hub
             without the devices sdk-dev-1 / sdk-dev-2.
  wrong-key  the same connection string with another SharedAccessKey: get_devices must
             fail with 401 -> prints {"step": "wrong-key", "status": 401}, exit 0.
  method     invoke_device_method -> {"status": <int>, "payload": <json>}, exit 0; on an
             HTTP error {"httpStatus": <code>, "error": <body text>}, exit 3.
"""

import argparse
import base64
import json
import os
import sys

from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import (
    CloudToDeviceMethod,
    QuerySpecification,
    Twin,
    TwinProperties,
)
from msrest.exceptions import HttpOperationError

DEV1 = "sdk-dev-1"
DEV2 = "sdk-dev-2"
MOD1 = "sdk-mod-1"
PLANT8_QUERY = "SELECT * FROM devices WHERE tags.site = 'plant-8'"
EXIT_METHOD_HTTP_ERROR = 3


class StepFailed(Exception):
    """A step did not behave as expected; the message says how."""


# ------------------------------------------------------------------ helpers --


LAST_STEP = [None]  # for error messages: the last step printed


def emit(step, **fields):
    """One JSON object per line on stdout, flushed so the caller sees it at once."""
    LAST_STEP[0] = step
    print(json.dumps({"step": step, **fields}, sort_keys=False), flush=True)


def check(cond, message):
    if not cond:
        raise StepFailed(message)


def new_key():
    """A SAS key as the portal makes them: base64 of 32 random bytes."""
    return base64.b64encode(os.urandom(32)).decode("ascii")


def read_connection_string(path):
    try:
        with open(path, encoding="utf-8") as f:
            cs = f.read().strip()
    except OSError as e:
        raise SystemExit(f"hub_service_client: cannot read connection string file {path}: {e.strerror}")
    if not cs:
        raise SystemExit(f"hub_service_client: connection string file {path} is empty")
    return cs


def with_other_key(cs):
    """The connection string with SharedAccessKey replaced by another valid base64 key."""
    parts = []
    replaced = False
    for part in cs.split(";"):
        name, sep, value = part.partition("=")
        if name == "SharedAccessKey" and sep:
            other = new_key()
            while other == value:
                other = new_key()
            part = f"{name}={other}"
            replaced = True
        parts.append(part)
    if not replaced:
        raise SystemExit("hub_service_client: the connection string has no SharedAccessKey")
    return ";".join(parts)


def http_status(err):
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def error_details(err):
    """Status, iothub-errorcode header and the body's Message of an HttpOperationError."""
    response = err.response
    details = {"status": response.status_code}
    code = response.headers.get("iothub-errorcode")
    if code is not None:
        details["errorCode"] = code
    text = response.text
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = body.get("Message", body.get("message"))
        if message is not None:
            details["message"] = message
    elif text:
        details["body"] = text
    return details


def expect_http_error(status, what, call, *args):
    """Run an SDK call that must fail with HTTP `status`; returns the error's details."""
    try:
        result = call(*args)
    except HttpOperationError as err:
        got = http_status(err)
        check(got == status, f"{what}: expected HTTP {status}, got {got}: {err.response.text!r}")
        return error_details(err)
    raise StepFailed(f"{what}: expected HTTP {status}, but the call succeeded ({result!r})")


def desired_of(twin):
    props = twin.properties
    return dict(props.desired or {}) if props is not None else {}


def query_ids(result):
    return [t.device_id for t in (result.items or [])]


def registry_manager(cs):
    # from_connection_string only prepares the AMQP (C2D) client; nothing here uses it,
    # so no AMQP connection is opened: every call below is HTTPS.
    return IoTHubRegistryManager.from_connection_string(cs)


# ---------------------------------------------------------------- scenarios --


def scenario_registry(rm):
    primary, secondary = new_key(), new_key()

    # 1. create
    dev = rm.create_device_with_sas(DEV1, primary, secondary, "enabled")
    auth = dev.authentication
    key_matches = auth is not None and auth.symmetric_key is not None and auth.symmetric_key.primary_key == primary
    emit(
        "create-device",
        deviceId=dev.device_id,
        generationId=dev.generation_id,
        etag=dev.etag,
        status=dev.status,
        authenticationType=auth.type if auth else None,
        primaryKeyMatches=key_matches,
    )
    check(dev.device_id == DEV1, f"create-device: deviceId {dev.device_id!r}")
    check(dev.status == "enabled", f"create-device: status {dev.status!r}")
    check(bool(dev.etag), "create-device: no etag")
    check(bool(dev.generation_id), "create-device: no generationId")
    check(auth is not None and auth.type == "sas", f"create-device: authentication {auth!r}")
    check(key_matches, "create-device: primaryKey differs from the one sent")

    # 2. get
    got = rm.get_device(DEV1)
    auth = got.authentication
    emit(
        "get-device",
        deviceId=got.device_id,
        generationId=got.generation_id,
        etag=got.etag,
        status=got.status,
        authenticationType=auth.type if auth else None,
        primaryKeyMatches=bool(auth and auth.symmetric_key and auth.symmetric_key.primary_key == primary),
        connectionState=got.connection_state,
    )
    check(got.device_id == DEV1, f"get-device: deviceId {got.device_id!r}")
    check(got.generation_id == dev.generation_id, "get-device: generationId differs from create")
    check(got.etag == dev.etag, f"get-device: etag {got.etag!r} differs from create's {dev.etag!r}")
    check(got.status == "enabled", f"get-device: status {got.status!r}")
    check(got.connection_state == "Disconnected", f"get-device: connectionState {got.connection_state!r}")

    # 3. update with the etag from 2 (the SDK sends If-Match: "<etag>")
    upd = rm.update_device_with_sas(DEV1, got.etag, primary, secondary, "disabled")
    emit("update-device", status=upd.status, etagChanged=upd.etag != got.etag, etag=upd.etag)
    check(upd.status == "disabled", f"update-device: status {upd.status!r}")
    check(bool(upd.etag) and upd.etag != got.etag, "update-device: etag did not change")

    # 4. twin
    twin = rm.get_twin(DEV1)
    desired = desired_of(twin)
    emit("get-twin", deviceId=twin.device_id, version=twin.version, etag=twin.etag, desiredVersion=desired.get("$version"))
    check(twin.device_id == DEV1, f"get-twin: deviceId {twin.device_id!r}")
    check(bool(twin.etag), "get-twin: no etag")
    check(isinstance(twin.version, int), f"get-twin: version {twin.version!r}")
    check(isinstance(desired.get("$version"), int), f"get-twin: desired $version {desired.get('$version')!r}")

    # 5. patch tags + desired with the twin etag
    tags7 = {"site": "plant-7", "line": {"cell": 3}}
    patch = Twin(tags=tags7, properties=TwinProperties(desired={"telemetryInterval": 5}))
    t5 = rm.update_twin(DEV1, patch, twin.etag)
    d5 = desired_of(t5)
    emit(
        "update-twin",
        tags=t5.tags,
        telemetryInterval=d5.get("telemetryInterval"),
        desiredVersion=d5.get("$version"),
        version=t5.version,
        etag=t5.etag,
    )
    check(t5.tags == tags7, f"update-twin: tags {t5.tags!r}")
    check(d5.get("telemetryInterval") == 5, f"update-twin: telemetryInterval {d5.get('telemetryInterval')!r}")
    check(d5.get("$version") == desired["$version"] + 1, f"update-twin: desired $version {d5.get('$version')!r}")
    check(isinstance(t5.version, int) and t5.version > twin.version, f"update-twin: version {t5.version!r}")

    # 6. null deletes a desired property; etag "*" (sent as If-Match: "*", quoted)
    t6 = rm.update_twin(DEV1, Twin(properties=TwinProperties(desired={"telemetryInterval": None})), "*")
    d6 = desired_of(t6)
    emit("update-twin-null", telemetryIntervalAbsent="telemetryInterval" not in d6, desiredVersion=d6.get("$version"))
    check("telemetryInterval" not in d6, f"update-twin-null: desired still {d6!r}")

    # 7. replace tags (PUT)
    tags8 = {"site": "plant-8"}
    t7 = rm.replace_twin(DEV1, Twin(tags=tags8), t6.etag)
    emit("replace-twin", tags=t7.tags)
    check(t7.tags == tags8, f"replace-twin: tags {t7.tags!r}, expected exactly {tags8!r}")

    # 8. query, then paging with a second device
    spec = QuerySpecification(query=PLANT8_QUERY)
    res = rm.query_iot_hub(spec)
    ids = query_ids(res)
    emit("query", deviceIds=ids, type=res.type, continuationToken=res.continuation_token)
    check(DEV1 in ids, f"query: {DEV1} not in {ids!r}")

    rm.create_device_with_sas(DEV2, new_key(), new_key(), "enabled")
    t2 = rm.update_twin(DEV2, Twin(tags={"site": "plant-8"}))
    emit("create-device-2", deviceId=DEV2, tags=t2.tags)
    check(t2.tags == {"site": "plant-8"}, f"create-device-2: tags {t2.tags!r}")

    pages = query_pages(rm, spec, max_item_count=1)
    paged = [i for page in pages for i in page]
    emit("query-paged", pages=pages, deviceIds=paged)
    check(all(len(p) <= 1 for p in pages), f"query-paged: a page holds more than 1 item: {pages!r}")
    check(sorted(paged) == [DEV1, DEV2], f"query-paged: got {paged!r}, expected {DEV1} and {DEV2} once each")
    check(len([p for p in pages if p]) == 2, f"query-paged: expected 2 non-empty pages, got {pages!r}")

    # 9. module
    mod = rm.create_module_with_sas(DEV1, MOD1, None, new_key(), new_key())
    emit("create-module", moduleId=mod.module_id, deviceId=mod.device_id, etag=mod.etag)
    check(mod.module_id == MOD1 and mod.device_id == DEV1, f"create-module: {mod.device_id!r}/{mod.module_id!r}")

    gm = rm.get_module(DEV1, MOD1)
    emit("get-module", moduleId=gm.module_id, deviceId=gm.device_id, generationId=gm.generation_id, etag=gm.etag)
    check(gm.module_id == MOD1 and gm.device_id == DEV1, f"get-module: {gm.device_id!r}/{gm.module_id!r}")

    mods = [m.module_id for m in rm.get_modules(DEV1)]
    emit("get-modules", moduleIds=mods)
    check(MOD1 in mods, f"get-modules: {MOD1} not in {mods!r}")

    mt = rm.get_module_twin(DEV1, MOD1)
    emit("get-module-twin", deviceId=mt.device_id, moduleId=mt.module_id, etag=mt.etag, version=mt.version)
    check(mt.module_id == MOD1, f"get-module-twin: moduleId {mt.module_id!r}")

    mt2 = rm.update_module_twin(DEV1, MOD1, Twin(properties=TwinProperties(desired={"x": 1})), mt.etag)
    emit("update-module-twin", x=desired_of(mt2).get("x"))
    check(desired_of(mt2).get("x") == 1, f"update-module-twin: desired {desired_of(mt2)!r}")

    rm.delete_module(DEV1, MOD1)
    gone = expect_http_error(404, "get-module after delete", rm.get_module, DEV1, MOD1)
    emit("delete-module", moduleId=MOD1, getAfterDelete=gone)

    # 10. list devices
    listed = [d.device_id for d in rm.get_devices(max_number_of_devices=10)]
    emit("get-devices", deviceIds=listed)
    check(DEV1 in listed and DEV2 in listed, f"get-devices: {listed!r}")

    # 11. stale etag -> 412
    stale = expect_http_error(
        412, "update-device with a stale etag", rm.update_device_with_sas, DEV1, '"bogus"', primary, secondary, "enabled"
    )
    emit("stale-etag", **stale)

    # 12. unknown device -> 404
    missing = expect_http_error(404, "get-device does-not-exist", rm.get_device, "does-not-exist")
    emit("not-found", **missing)

    # 13. delete both (etag "*": the SDK sends If-Match: "*") -> 404 afterwards
    for device_id in (DEV1, DEV2):
        rm.delete_device(device_id, "*")
        after = expect_http_error(404, f"get-device {device_id} after delete", rm.get_device, device_id)
        emit("delete-device", deviceId=device_id, getAfterDelete=after)


def query_pages(rm, spec, max_item_count, limit=10):
    """All pages of a query; the SDK returns the x-ms-continuation response header as
    QueryResult.continuation_token and sends it back as the x-ms-continuation request header."""
    pages = []
    token = None
    while True:
        res = rm.query_iot_hub(spec, token, str(max_item_count))
        pages.append(query_ids(res))
        token = res.continuation_token
        if not token:
            return pages
        check(len(pages) < limit, f"query-paged: still a continuation token after {limit} pages: {pages!r}")


def scenario_wrong_key(cs):
    rm = registry_manager(with_other_key(cs))
    try:
        devices = rm.get_devices()
    except HttpOperationError as err:
        status = http_status(err)
        check(status == 401, f"wrong-key: expected HTTP 401, got {status}: {err.response.text!r}")
        emit("wrong-key", status=status)
        return
    raise StepFailed(f"wrong-key: get_devices succeeded with a wrong key ({len(devices)} devices)")


def scenario_method(rm, args):
    try:
        payload = json.loads(args.payload)
    except ValueError as e:
        raise SystemExit(f"hub_service_client: --payload is not JSON: {e}")
    # msrest's HTTP timeout (100 s by default) must outlast the hub's wait for the device.
    rm.protocol.config.connection.timeout = max(100, args.timeout + 30)
    request = CloudToDeviceMethod(
        method_name=args.method, payload=payload, response_timeout_in_seconds=args.timeout
    )
    try:
        result = rm.invoke_device_method(args.device, request)
    except HttpOperationError as err:
        print(json.dumps({"httpStatus": http_status(err), "error": err.response.text}), flush=True)
        return EXIT_METHOD_HTTP_ERROR
    print(json.dumps({"status": result.status, "payload": result.payload}), flush=True)
    return 0


# --------------------------------------------------------------------- main --


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Drive the hub's service API with Microsoft's azure-iot-hub IoTHubRegistryManager.",
        epilog="TLS trust: set REQUESTS_CA_BUNDLE to the hub's CA certificate (PEM).",
    )
    parser.add_argument(
        "--connection-string-file",
        required=True,
        metavar="FILE",
        help="file holding the service connection string (HostName=...;SharedAccessKeyName=...;SharedAccessKey=...)",
    )
    sub = parser.add_subparsers(dest="scenario", required=True, metavar="scenario")
    sub.add_parser("registry", help="device/module/twin/query sequence, one JSON line per step")
    sub.add_parser("wrong-key", help="another SharedAccessKey: get_devices must fail with 401")
    method = sub.add_parser("method", help="invoke a direct method on a device")
    method.add_argument("--device", required=True, help="device id")
    method.add_argument("--method", required=True, help="method name")
    method.add_argument("--payload", default="null", help="JSON payload (default: null, sent as \"\")")
    method.add_argument("--timeout", type=int, default=30, help="responseTimeoutInSeconds (default 30)")
    return parser.parse_args(argv)


def describe_failure(e):
    if isinstance(e, StepFailed):
        return f"FAILED: {e}"
    if isinstance(e, HttpOperationError):
        # An SDK call that should have succeeded; the body usually says why.
        return f"unexpected HTTP {http_status(e)}: {e} body={e.response.text!r}"
    # TLS, connection, deserialization, ...
    return f"{type(e).__module__}.{type(e).__name__}: {e}"


def main(argv=None):
    args = parse_args(argv)
    cs = read_connection_string(args.connection_string_file)
    try:
        if args.scenario == "registry":
            scenario_registry(registry_manager(cs))
            return 0
        if args.scenario == "wrong-key":
            scenario_wrong_key(cs)
            return 0
        return scenario_method(registry_manager(cs), args)
    except Exception as e:  # noqa: BLE001 - every failure becomes one clear line on stderr
        where = args.scenario if LAST_STEP[0] is None else f"{args.scenario} (after step {LAST_STEP[0]})"
        print(f"hub_service_client: {where}: {describe_failure(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
