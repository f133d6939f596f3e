#!/usr/bin/env python3
"""Device/module client of the hub's MQTT endpoint, built only on Microsoft's device SDK.

Why this exists: the hub's MQTT side must work with the real device SDK, not only with our
own MQTT client, whose idea of the protocol is the same as the server's. This script is an
independent client: it uses only the public sync API of azure-iot-device 2.14.0
(`IoTHubDeviceClient` / `IoTHubModuleClient`). Topics, property bags, SAS tokens, twin
requests and method responses are exactly what a real Azure IoT device sends and expects.
The Rust tests run it as a child process and talk to it in JSON lines.

Run it with the Azure venv (scripts/install-peers.sh --azure-only):

    tests/peers/.venv-azure/bin/python tests/peers/hub_device_client.py \\
        --ca-file CA.pem --connection-string-file FILE [--keep-alive 60]
    ... --ca-file CA.pem --x509 --hostname H --device-id D [--module-id M] \\
        --cert-file C --key-file K [--gateway-hostname G]
    ... --edge-env            (module client from the IOTEDGE_* environment variables)

* The connection string (HostName=...;DeviceId=...[;ModuleId=...];SharedAccessKey=...
  [;GatewayHostName=...]) is read from FILE. It never appears in argv and is never printed.
  A ModuleId in it selects IoTHubModuleClient, otherwise IoTHubDeviceClient.
* --ca-file is a PEM file. Its *text* goes to the SDK as `server_verification_cert`.
  With --edge-env it is not used: the SDK rejects that kwarg there and takes the CA from the
  workload API's trust bundle (or from EdgeModuleCACertificateFile in the dev fallback).
* The SDK always dials port 8883 with TLS 1.2 and checks the host name (GatewayHostName if
  set, else HostName) against the server certificate's SAN.
* By default `connection_retry=False`: after a drop (for example a take-over by a second
  client with the same identity) the SDK does not reconnect on its own, so two clients do
  not keep kicking each other off. --connection-retry turns the SDK's reconnect back on.
  `auto_connect` stays at the SDK default (True): a later send or twin command reconnects.

stdout: one JSON object per line, flushed at once. Diagnostics and SDK logs go to stderr.

  {"event":"connected"}                  after connect() returned (CONNACK accepted)
  {"event":"connect-failed","error":"<Class>: <msg>[ <- <CauseClass>: <msg>...]",
   "errorClass":"<Class>"}               then exit 2 (within --connect-timeout, default 15 s)
  {"event":"ready"}                      after the receive handlers are set (SUBACKs received)
  {"event":"setup-failed","error":...,"errorClass":...}    setting the handlers failed; exit 3
  {"event":"connection-state","connected":true|false}      a later change of connection state
                                         (take-over/drop, reconnect; also false on disconnect)
  {"event":"background-exception","error":...,"errorClass":...}   SDK background exceptions

Event lines are asynchronous and may come between command results. Result lines always
carry "cmd" (and "id" if the command had one); event lines never carry "cmd".

stdin: one JSON object per command. Each gets exactly one result line
{"cmd": <echo>, ["id": <echo>,] "ok": true|false, ["error": "<Class>: <msg>"], ...}:

  {"cmd":"send","body":"<text or any JSON value>","properties":{"k":"v"},
   "contentType":"application/json","contentEncoding":"utf-8","messageId":"m-1",
   "correlationId":null,"output":null}
        -> {}                after the SDK's send returned (PUBACK received). With "output"
                             (module clients only): send_message_to_output(msg, output).
  {"cmd":"get_twin"}                          -> {"twin": {...}}
  {"cmd":"patch_reported","patch":{...}}      -> {}
  {"cmd":"expect_desired","timeoutSecs":20}   -> {"patch": {...}}   next queued desired patch
  {"cmd":"expect_method","timeoutSecs":20,"status":200,"respondWith":{...}}
        -> {"method": name, "payload": <request payload>, "requestId": rid,
            "status": <sent status>, "response": <sent payload>}
           Without "respondWith" the response payload is {"echo": payload, "method": name}.
  {"cmd":"expect_input","timeoutSecs":20}     (module clients)
  {"cmd":"expect_c2d","timeoutSecs":20}       (device clients)
        -> {"input": name|null, "body": "<utf-8 text, invalid bytes replaced>",
            "bodyBase64": "...", "properties": {custom properties}, "messageId", "correlationId",
            "contentType", "contentEncoding", "userId", "expiryTimeUtc"}
  {"cmd":"status"}                            -> {"connected": bool}
  {"cmd":"connect"}                           -> {}   client.connect() again (after a drop)
  {"cmd":"disconnect"}                        -> {}   client.shutdown(), then exit 0

A timeout of an expect_* command is ok=false with "TimeoutError: ...". Received desired
patches, method requests and messages are queued from the moment the handlers are set (right
after connect, before "ready"), so nothing that arrives before the expect_* command is lost.
EOF on stdin: shutdown and exit 0. Exit codes: 0 normal end, 2 connect failed, 3 setup
failed, 64 bad command line.
"""

import argparse
import base64
import json
import os
import queue
import sys
import threading

from azure.iot.device import (
    IoTHubDeviceClient,
    IoTHubModuleClient,
    Message,
    MethodResponse,
    X509,
)

EXIT_OK = 0
EXIT_CONNECT_FAILED = 2
EXIT_SETUP_FAILED = 3
EXIT_USAGE = 64
DEFAULT_EXPECT_TIMEOUT = 20.0
SHUTDOWN_TIMEOUT = 10.0

_OUT_LOCK = threading.Lock()


def emit(obj):
    """One JSON object per line on stdout, flushed; safe from any thread."""
    line = json.dumps(obj, default=str)
    with _OUT_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def describe(exc):
    """'Class: message' followed by the __cause__/__context__ chain ('<- Class: message')."""
    parts = []
    seen = set()
    e = exc
    while e is not None and id(e) not in seen and len(parts) < 6:
        seen.add(id(e))
        parts.append("{}: {}".format(type(e).__name__, e))
        if e.__cause__ is not None:
            e = e.__cause__
        elif not e.__suppress_context__:
            e = e.__context__
        else:
            e = None
    return " <- ".join(parts)


def error_fields(exc):
    return {"error": describe(exc), "errorClass": type(exc).__name__}


def hard_exit(code):
    """Exit without waiting for SDK threads (some of them are not daemon threads)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def run_with_timeout(fn, timeout):
    """Run fn() in a daemon thread; return (finished, exception)."""
    box = {"exc": None}

    def target():
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - reported to the caller
            box["exc"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        return False, None
    return True, box["exc"]


# ----------------------------------------------------------------- arguments --


class ArgParser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        sys.stderr.write("{}: error: {}\n".format(self.prog, message))
        sys.exit(EXIT_USAGE)


def parse_args(argv):
    p = ArgParser(
        description="Device/module client of the hub's MQTT endpoint (azure-iot-device SDK only); "
        "JSON lines on stdin/stdout, see the module docstring.",
    )
    p.add_argument("--ca-file", help="PEM file with the hub's CA; its text is server_verification_cert "
                   "(required except with --edge-env)")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--connection-string-file", metavar="FILE",
                      help="file holding the device or module connection string")
    mode.add_argument("--x509", action="store_true", help="X.509 authentication (needs --hostname, "
                      "--device-id, --cert-file, --key-file)")
    mode.add_argument("--edge-env", action="store_true",
                      help="IoTHubModuleClient.create_from_edge_environment() (IOTEDGE_* variables)")
    p.add_argument("--hostname", help="hub host name (X.509)")
    p.add_argument("--device-id", help="device id (X.509)")
    p.add_argument("--module-id", help="module id (X.509; selects IoTHubModuleClient)")
    p.add_argument("--cert-file", help="client certificate (chain) PEM (X.509)")
    p.add_argument("--key-file", help="client private key PEM (X.509)")
    p.add_argument("--pass-phrase", help="pass phrase of the key file (X.509, optional)")
    p.add_argument("--gateway-hostname", help="host to dial instead of --hostname (X.509 only; with "
                   "a connection string use GatewayHostName in it)")
    p.add_argument("--keep-alive", type=int, default=60, help="MQTT keep-alive in seconds (default 60)")
    p.add_argument("--connect-timeout", type=float, default=15.0,
                   help="give up connecting after this many seconds (default 15)")
    p.add_argument("--setup-timeout", type=float, default=30.0,
                   help="give up setting the receive handlers (SUBSCRIBEs) after this many seconds "
                   "(default 30)")
    p.add_argument("--connection-retry", action="store_true",
                   help="let the SDK reconnect after a dropped connection (default: off)")
    p.add_argument("--connection-retry-interval", type=int, default=10,
                   help="seconds between SDK reconnect attempts with --connection-retry (default 10)")
    p.add_argument("--handlers", default="desired,methods,messages",
                   help="comma list of receive handlers to set after connect: desired, methods, "
                   "messages (default: all three; empty string: none)")
    p.add_argument("--product-info", help="product_info appended to the SDK's user agent")
    p.add_argument("--verbose", action="store_true", help="SDK debug logging on stderr")
    args = p.parse_args(argv)

    if not args.edge_env and not args.ca_file:
        p.error("--ca-file is required (except with --edge-env)")
    if args.x509:
        missing = [n for n in ("hostname", "device_id", "cert_file", "key_file") if not getattr(args, n)]
        if missing:
            p.error("--x509 needs " + ", ".join("--" + m.replace("_", "-") for m in missing))
    else:
        extra = [n for n in ("hostname", "device_id", "module_id", "cert_file", "key_file",
                             "pass_phrase", "gateway_hostname") if getattr(args, n)]
        if extra:
            p.error("only with --x509: " + ", ".join("--" + m.replace("_", "-") for m in extra))
    handlers = [h.strip() for h in args.handlers.split(",") if h.strip()]
    unknown = [h for h in handlers if h not in ("desired", "methods", "messages")]
    if unknown:
        p.error("unknown --handlers entries: " + ", ".join(unknown))
    args.handler_set = set(handlers)
    return args


def connection_string_has_module(cs):
    for part in cs.split(";"):
        key, _, value = part.partition("=")
        if key.strip() == "ModuleId" and value.strip():
            return True
    return False


def create_client(args):
    """Build the SDK client; returns (client, is_module). Raises on bad input."""
    kwargs = {
        "keep_alive": args.keep_alive,
        "connection_retry": args.connection_retry,
        "connection_retry_interval": args.connection_retry_interval,
    }
    if args.product_info:
        kwargs["product_info"] = args.product_info

    if args.edge_env:
        if args.ca_file:
            print("note: --ca-file ignored with --edge-env (CA comes from the workload trust bundle)",
                  file=sys.stderr, flush=True)
        return IoTHubModuleClient.create_from_edge_environment(**kwargs), True

    with open(args.ca_file, "r", encoding="utf-8") as f:
        kwargs["server_verification_cert"] = f.read()

    if args.x509:
        x509 = X509(cert_file=args.cert_file, key_file=args.key_file, pass_phrase=args.pass_phrase)
        if args.gateway_hostname:
            kwargs["gateway_hostname"] = args.gateway_hostname
        if args.module_id:
            client = IoTHubModuleClient.create_from_x509_certificate(
                x509=x509, hostname=args.hostname, device_id=args.device_id,
                module_id=args.module_id, **kwargs)
            return client, True
        client = IoTHubDeviceClient.create_from_x509_certificate(
            x509=x509, hostname=args.hostname, device_id=args.device_id, **kwargs)
        return client, False

    with open(args.connection_string_file, "r", encoding="utf-8") as f:
        cs = f.read().strip()
    if connection_string_has_module(cs):
        return IoTHubModuleClient.create_from_connection_string(cs, **kwargs), True
    return IoTHubDeviceClient.create_from_connection_string(cs, **kwargs), False


# -------------------------------------------------------------------- client --


class Session:
    def __init__(self, client, is_module, handler_set):
        self.client = client
        self.is_module = is_module
        self.handler_set = handler_set
        self.desired = queue.Queue()
        self.methods = queue.Queue()
        self.messages = queue.Queue()
        self._state_lock = threading.Lock()
        self._last_state = True  # set up after a successful connect

    # Handlers run on the SDK's handler-runner thread pools (not on the main thread): they only
    # enqueue / print.
    def on_desired(self, patch):
        self.desired.put(patch)

    def on_method(self, request):
        self.methods.put(request)

    def on_message(self, message):
        self.messages.put(message)

    def on_connection_state_change(self):
        # The SDK's callback carries no argument: read the current state, and report only real
        # changes (the event for the initial connect can still be queued when this is set).
        with self._state_lock:
            connected = bool(self.client.connected)
            if connected == self._last_state:
                return
            self._last_state = connected
            emit({"event": "connection-state", "connected": connected})

    def on_background_exception(self, exc):
        emit({"event": "background-exception", **error_fields(exc)})

    def set_receive_handlers(self):
        # Each setter SUBSCRIBEs and blocks until the SUBACK arrives.
        if "desired" in self.handler_set:
            self.client.on_twin_desired_properties_patch_received = self.on_desired
        if "methods" in self.handler_set:
            self.client.on_method_request_received = self.on_method
        if "messages" in self.handler_set:
            self.client.on_message_received = self.on_message

    # ---- commands; each returns a dict of extra result fields or raises ----

    def cmd_send(self, c):
        body = c.get("body", "")
        if not isinstance(body, str):
            body = json.dumps(body)
        msg = Message(
            body,
            message_id=c.get("messageId"),
            content_encoding=c.get("contentEncoding"),
            content_type=c.get("contentType"),
        )
        if c.get("correlationId") is not None:
            msg.correlation_id = c["correlationId"]
        props = c.get("properties") or {}
        if not isinstance(props, dict):
            raise ValueError("'properties' must be an object")
        msg.custom_properties = {str(k): v if isinstance(v, str) else json.dumps(v)
                                 for k, v in props.items()}
        output = c.get("output")
        if output is not None:
            if not self.is_module:
                raise ValueError("'output' needs a module client")
            self.client.send_message_to_output(msg, output)
        else:
            self.client.send_message(msg)
        return {}

    def cmd_get_twin(self, c):
        return {"twin": self.client.get_twin()}

    def cmd_patch_reported(self, c):
        patch = c.get("patch")
        if not isinstance(patch, dict):
            raise ValueError("'patch' must be an object")
        self.client.patch_twin_reported_properties(patch)
        return {}

    @staticmethod
    def _timeout(c):
        t = c.get("timeoutSecs", DEFAULT_EXPECT_TIMEOUT)
        if isinstance(t, bool) or not isinstance(t, (int, float)) or t < 0:
            raise ValueError("'timeoutSecs' must be a non-negative number")
        return float(t)

    def _take(self, q, handler, what, c):
        if handler not in self.handler_set:
            raise RuntimeError("handler '{}' not set (see --handlers)".format(handler))
        timeout = self._timeout(c)
        try:
            return q.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("no {} within {:g} s".format(what, timeout)) from None

    def cmd_expect_desired(self, c):
        return {"patch": self._take(self.desired, "desired", "desired-property patch", c)}

    def cmd_expect_method(self, c):
        status = c.get("status", 200)
        if isinstance(status, bool) or not isinstance(status, int):
            raise ValueError("'status' must be an integer")
        req = self._take(self.methods, "methods", "method request", c)
        if "respondWith" in c:
            payload = c["respondWith"]
        else:
            payload = {"echo": req.payload, "method": req.name}
        result = {"method": req.name, "payload": req.payload, "requestId": req.request_id,
                  "status": status, "response": payload}
        try:
            self.client.send_method_response(
                MethodResponse.create_from_method_request(req, status, payload))
        except Exception as e:  # noqa: BLE001 - reported, keep the request details
            raise _WithFields(e, result) from e
        return result

    def _message_result(self, msg):
        data = msg.data
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif data is None:
            data = b""
        return {
            "input": msg.input_name,
            "body": bytes(data).decode("utf-8", errors="replace"),
            "bodyBase64": base64.b64encode(bytes(data)).decode("ascii"),
            "properties": dict(msg.custom_properties or {}),
            "messageId": msg.message_id,
            "correlationId": msg.correlation_id,
            "contentType": msg.content_type,
            "contentEncoding": msg.content_encoding,
            "userId": msg.user_id,
            "expiryTimeUtc": msg.expiry_time_utc,
        }

    def cmd_expect_input(self, c):
        if not self.is_module:
            raise ValueError("expect_input needs a module client (use expect_c2d)")
        return self._message_result(self._take(self.messages, "messages", "input message", c))

    def cmd_expect_c2d(self, c):
        if self.is_module:
            raise ValueError("expect_c2d needs a device client (use expect_input)")
        return self._message_result(self._take(self.messages, "messages", "C2D message", c))

    def cmd_status(self, c):
        return {"connected": bool(self.client.connected)}

    def cmd_connect(self, c):
        self.client.connect()
        return {}

    def shutdown(self):
        """client.shutdown() with a time limit; returns None or an exception."""
        finished, exc = run_with_timeout(self.client.shutdown, SHUTDOWN_TIMEOUT)
        if not finished:
            return TimeoutError("shutdown did not finish within {:g} s".format(SHUTDOWN_TIMEOUT))
        return exc


class _WithFields(Exception):
    """An error that still carries result fields (e.g. the method request details)."""

    def __init__(self, exc, fields):
        super().__init__(str(exc))
        self.exc = exc
        self.fields = fields


COMMANDS = {
    "send": Session.cmd_send,
    "get_twin": Session.cmd_get_twin,
    "patch_reported": Session.cmd_patch_reported,
    "expect_desired": Session.cmd_expect_desired,
    "expect_method": Session.cmd_expect_method,
    "expect_input": Session.cmd_expect_input,
    "expect_c2d": Session.cmd_expect_c2d,
    "status": Session.cmd_status,
    "connect": Session.cmd_connect,
}


def command_loop(session):
    while True:
        line = sys.stdin.readline()
        if not line:  # EOF
            exc = session.shutdown()
            if exc is not None:
                print("shutdown at EOF: " + describe(exc), file=sys.stderr, flush=True)
            hard_exit(EXIT_OK)
        line = line.strip()
        if not line:
            continue
        try:
            c = json.loads(line)
            if not isinstance(c, dict):
                raise ValueError("command must be a JSON object")
        except ValueError as e:
            emit({"cmd": None, "ok": False, "error": "invalid command line: " + describe(e)})
            continue
        name = c.get("cmd")
        head = {"cmd": name}
        if "id" in c:
            head["id"] = c["id"]

        if name == "disconnect":
            exc = session.shutdown()
            if exc is None:
                emit({**head, "ok": True})
            else:
                emit({**head, "ok": False, **error_fields(exc)})
            hard_exit(EXIT_OK)

        fn = COMMANDS.get(name)
        if fn is None:
            emit({**head, "ok": False, "error": "ValueError: unknown cmd {!r}".format(name),
                  "errorClass": "ValueError"})
            continue
        try:
            fields = fn(session, c)
        except _WithFields as e:
            emit({**head, "ok": False, **e.fields, **error_fields(e.exc)})
        except Exception as e:  # noqa: BLE001 - a failed command must not end the script
            emit({**head, "ok": False, **error_fields(e)})
        else:
            emit({**head, "ok": True, **fields})


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.verbose:
        import logging
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                            format="%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s")

    try:
        client, is_module = create_client(args)
    except Exception as e:  # noqa: BLE001 - bad key, unreadable file, edge env missing, ...
        emit({"event": "connect-failed", **error_fields(e)})
        hard_exit(EXIT_CONNECT_FAILED)

    session = Session(client, is_module, args.handler_set)

    finished, exc = run_with_timeout(client.connect, args.connect_timeout)
    if not finished:
        emit({"event": "connect-failed", "errorClass": "TimeoutError",
              "error": "TimeoutError: not connected within {:g} s".format(args.connect_timeout)})
        hard_exit(EXIT_CONNECT_FAILED)
    if exc is not None:
        emit({"event": "connect-failed", **error_fields(exc)})
        hard_exit(EXIT_CONNECT_FAILED)
    emit({"event": "connected"})

    # Client-event handlers subscribe nothing. They are set only after connect, so that
    # "connection-state" reports later changes only (not the initial connect); connect errors
    # come from connect() itself.
    client.on_background_exception = session.on_background_exception
    client.on_connection_state_change = session.on_connection_state_change
    finished, exc = run_with_timeout(session.set_receive_handlers, args.setup_timeout)
    if not finished or exc is not None:
        if exc is None:
            exc = TimeoutError("receive handlers not set within {:g} s".format(args.setup_timeout))
        emit({"event": "setup-failed", **error_fields(exc)})
        hard_exit(EXIT_SETUP_FAILED)
    emit({"event": "ready"})

    command_loop(session)


if __name__ == "__main__":
    main()
