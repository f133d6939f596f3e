#!/usr/bin/env python3
"""OPC UA interop test peer built on Python `asyncua` (FreeOpcUa).

Usage:  asyncua_server.py --port P --pki DIR [--host 127.0.0.1]

Prints exactly one line to stdout once the server is listening:

    READY opc.tcp://127.0.0.1:P/iiot/asyncua/

and then runs until SIGTERM/SIGINT (exit code 0).

Endpoints (all on the same URL):
  * SecurityPolicy None, mode None             -> Anonymous, UserName
  * Basic256Sha256, mode SignAndEncrypt        -> Anonymous, UserName (user1/password)
Client application certificates are accepted without any trust-list check
(this is a test peer).  The server certificate + key are created on first start
under DIR/own/ and reused afterwards.

Address space (namespace URI urn:iiot:peer:asyncua, string node ids = path below
Objects, BrowseName = last path segment, DisplayName = full id, like plc-sim):
  Scalar (folder)   Scalar/Int32 = 42, Scalar/Double = 3.14, Scalar/String = "hello",
                    Scalar/Boolean = false, plus SByte Byte Int16 UInt16 UInt32 Int64
                    UInt64 Float (0), DateTime (2024-01-01), ByteString (01 02 03); all writable
  Array  (folder)   Array/Int32 = [1,2,3], Array/Double = [1,2,3], Array/String = [a,b,c]; writable
  Counter           UInt64, read-only, +1 every 100 ms
  Methods (object)  Methods/Add(a:Int32, b:Int32) -> sum:Int32 (no conversions: other types
                    -> BadInvalidArgument + BadTypeMismatch per argument; overflow -> BadOutOfRange)
                    Methods/Fail() -> BadInternalError
  Tree   (folder)   Tree/0..2 (folders), each with Tree/i/0..2 Int32 = i*3+j (read/write)
"""

from __future__ import annotations

import signal
import sys

# exit 0 on SIGTERM even while the (slow) imports and address space setup run;
# replaced by the asyncio handler in main()
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

import argparse
import asyncio
import datetime
import ipaddress
import logging
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from asyncua import Server, ua
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole

NAMESPACE_URI = "urn:iiot:peer:asyncua"
APPLICATION_URI = "urn:iiot:peer:asyncua:server"
ENDPOINT_PATH = "/iiot/asyncua/"
USERS = {"user1": "password"}


class TestUserManager:
    """Anonymous and user1/password are both mapped to a normal (read/write/call) user.

    asyncua's default permission ruleset gives the *Anonymous* role no rights at
    all on secure channels, so anonymous sessions are promoted to UserRole.User.
    A wrong username/password returns None -> BadUserAccessDenied.
    """

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if username is None:
            return User(role=UserRole.User, name="anonymous")
        if USERS.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


def ensure_server_certificate(pki: Path) -> tuple[Path, Path]:
    """Create (once) a self-signed application instance certificate for the server.

    SubjectAltName carries the ApplicationUri (required by OPC UA), DNS
    localhost + this host's name and IP 127.0.0.1, so hostname checks by strict
    clients pass for opc.tcp://127.0.0.1 and opc.tcp://localhost.
    """
    own = pki / "own"
    (own / "private").mkdir(parents=True, exist_ok=True)
    (pki / "trusted").mkdir(parents=True, exist_ok=True)
    cert_path = own / "cert.der"
    key_path = own / "private" / "key.pem"
    if cert_path.is_file() and key_path.is_file():
        try:
            cert = x509.load_der_x509_certificate(cert_path.read_bytes())
            if cert.not_valid_after_utc > datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1):
                return cert_path, key_path
        except Exception:  # regenerate on any problem
            pass
    key = cert_gen.generate_private_key()
    hostname = socket.gethostname()
    san: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(APPLICATION_URI),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
    ]
    if hostname and hostname != "localhost":
        san.append(x509.DNSName(hostname))
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        "iiot asyncua peer",
        {"organizationName": "iiot tests"},
        san,
        extended=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        days=3650,
    )
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    # also drop a copy where a client test can pick it up to trust the server explicitly
    (pki / "trusted" / "server_cert.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    return cert_path, key_path


async def set_display_name(node, path: str) -> None:
    # like plc-sim: BrowseName = last path segment, DisplayName = full id
    await node.write_attribute(ua.AttributeIds.DisplayName, ua.DataValue(ua.Variant(ua.LocalizedText(path))))


async def add_folder(parent, idx, path, name):
    folder = await parent.add_folder(ua.NodeId(path, idx), ua.QualifiedName(name, idx))
    await set_display_name(folder, path)
    return folder


async def add_var(parent, idx, path, name, value, vtype, writable=True, array=False):
    var = await parent.add_variable(ua.NodeId(path, idx), ua.QualifiedName(name, idx), ua.Variant(value, vtype))
    await set_display_name(var, path)
    if array:
        await var.write_value_rank(ua.ValueRank.OneDimension)
        await var.write_array_dimensions([0])
    if writable:
        await var.set_writable(True)
    return var


# (name, VariantType, initial value) of the Scalar/* variables: the four the tests rely on
# first, then more built-in types with plc-sim's initial values.
SCALARS = [
    ("Int32", ua.VariantType.Int32, 42),
    ("Double", ua.VariantType.Double, 3.14),
    ("String", ua.VariantType.String, "hello"),
    ("Boolean", ua.VariantType.Boolean, False),
    ("SByte", ua.VariantType.SByte, 0),
    ("Byte", ua.VariantType.Byte, 0),
    ("Int16", ua.VariantType.Int16, 0),
    ("UInt16", ua.VariantType.UInt16, 0),
    ("UInt32", ua.VariantType.UInt32, 0),
    ("Int64", ua.VariantType.Int64, 0),
    ("UInt64", ua.VariantType.UInt64, 0),
    ("Float", ua.VariantType.Float, 0.0),
    ("DateTime", ua.VariantType.DateTime, datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)),
    ("ByteString", ua.VariantType.ByteString, b"\x01\x02\x03"),
]
ARRAYS = [
    ("Int32", ua.VariantType.Int32, [1, 2, 3]),
    ("Double", ua.VariantType.Double, [1.0, 2.0, 3.0]),
    ("String", ua.VariantType.String, ["a", "b", "c"]),
]
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


async def method_add(parent, *args):
    """Same semantics as plc-sim: no conversions, overflow is BadOutOfRange."""
    if len(args) < 2:
        return ua.StatusCode(ua.StatusCodes.BadArgumentsMissing)
    if len(args) > 2:
        return ua.StatusCode(ua.StatusCodes.BadTooManyArguments)
    per_arg = [
        ua.StatusCode() if a.VariantType == ua.VariantType.Int32 and not a.is_array
        else ua.StatusCode(ua.StatusCodes.BadTypeMismatch)
        for a in args
    ]
    res = ua.CallMethodResult()
    if any(sc.is_bad() for sc in per_arg):
        res.StatusCode = ua.StatusCode(ua.StatusCodes.BadInvalidArgument)
        res.InputArgumentResults = per_arg
        return res
    total = args[0].Value + args[1].Value
    if not INT32_MIN <= total <= INT32_MAX:
        return ua.StatusCode(ua.StatusCodes.BadOutOfRange)
    res.OutputArguments = [ua.Variant(total, ua.VariantType.Int32)]
    return res


async def method_fail(parent, *args):
    if args:
        return ua.StatusCode(ua.StatusCodes.BadTooManyArguments)
    return ua.StatusCode(ua.StatusCodes.BadInternalError)


def int32_arg(name: str, description: str) -> ua.Argument:
    arg = ua.Argument()
    arg.Name = name
    arg.DataType = ua.NodeId(ua.ObjectIds.Int32)
    arg.ValueRank = ua.ValueRank.Scalar
    arg.ArrayDimensions = []
    arg.Description = ua.LocalizedText(description)
    return arg


async def build_address_space(server: Server, idx: int):
    objects = server.nodes.objects

    scalar = await add_folder(objects, idx, "Scalar", "Scalar")
    for name, vtype, value in SCALARS:
        await add_var(scalar, idx, f"Scalar/{name}", name, value, vtype)

    array = await add_folder(objects, idx, "Array", "Array")
    for name, vtype, value in ARRAYS:
        await add_var(array, idx, f"Array/{name}", name, value, vtype, array=True)

    counter = await add_var(objects, idx, "Counter", "Counter", 0, ua.VariantType.UInt64, writable=False)

    methods = await objects.add_object(ua.NodeId("Methods", idx), ua.QualifiedName("Methods", idx))
    await set_display_name(methods, "Methods")
    add = await methods.add_method(
        ua.NodeId("Methods/Add", idx),
        ua.QualifiedName("Add", idx),
        method_add,
        [int32_arg("a", "first addend"), int32_arg("b", "second addend")],
        [int32_arg("sum", "a + b")],
    )
    await set_display_name(add, "Methods/Add")
    fail = await methods.add_method(ua.NodeId("Methods/Fail", idx), ua.QualifiedName("Fail", idx), method_fail, [], [])
    await set_display_name(fail, "Methods/Fail")

    tree = await add_folder(objects, idx, "Tree", "Tree")
    for i in range(3):
        sub = await add_folder(tree, idx, f"Tree/{i}", str(i))
        for j in range(3):
            # value = ordinal among the leaves, like plc-sim's Tree
            await add_var(sub, idx, f"Tree/{i}/{j}", str(j), i * 3 + j, ua.VariantType.Int32)

    return counter


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pki", type=Path, required=True, help="directory for the server's own certificate/key")
    ap.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    ap.add_argument("--verbose", action="store_true", help="asyncua INFO logging on stderr")
    args = ap.parse_args()

    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, stream=sys.stderr)

    # installed first, so SIGTERM during the (few seconds of) startup also exits with code 0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    cert_path, key_path = ensure_server_certificate(args.pki)
    url = f"opc.tcp://{args.host}:{args.port}{ENDPOINT_PATH}"

    server = Server(user_manager=TestUserManager())
    await server.init()
    server.set_endpoint(url)
    server.set_server_name("iiot asyncua peer")
    await server.set_application_uri(APPLICATION_URI)
    server.product_uri = "urn:iiot:peer:asyncua:product"
    await server.load_certificate(str(cert_path))
    await server.load_private_key(str(key_path))
    server.set_security_policy(
        [ua.SecurityPolicyType.NoSecurity, ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt]
    )
    server.set_identity_tokens([ua.AnonymousIdentityToken, ua.UserNameIdentityToken])
    # No certificate validator is installed: asyncua then accepts every client certificate.

    idx = await server.register_namespace(NAMESPACE_URI)
    counter = await build_address_space(server, idx)

    if stop.is_set():
        return 0
    await server.start()
    print(f"READY {url}", flush=True)

    async def tick():
        n = 0
        while True:
            await asyncio.sleep(0.1)
            n += 1
            await counter.write_value(ua.Variant(n, ua.VariantType.UInt64))

    ticker = asyncio.create_task(tick())
    try:
        await stop.wait()
    finally:
        ticker.cancel()
        try:
            await asyncio.wait_for(server.stop(), timeout=5)
        except Exception:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
