#!/usr/bin/env python3
"""Smoke-check an OPC UA test peer with an independent asyncua client.

Usage:  asyncua_check_client.py --url opc.tcp://127.0.0.1:P/path --ns-uri urn:iiot:peer:asyncua \
            --pki DIR [--mode none|secure|both]

For each mode it connects, then: reads/writes Scalar/* and Array/Int32, checks
that Counter changes, calls Methods/Add(2,3) == 5, checks Methods/Fail returns a
Bad status, and browses Tree (expects 3 folders x 3 variables).

  none   : SecurityPolicy None, anonymous
  secure : Basic256Sha256 SignAndEncrypt, username user1/password, with a client
           certificate generated (once) in DIR/client/ by asyncua.
Prints one line per check and "N passed, N failed" at the end; exit 1 on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import socket
import sys
import time
from pathlib import Path

from cryptography.x509.oid import ExtendedKeyUsageOID

from asyncua import Client, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

CLIENT_APP_URI = "urn:iiot:peer:check-client"

results = {"passed": 0, "failed": 0}


def check(label: str, cond: bool, detail: str = "") -> None:
    if cond:
        results["passed"] += 1
        print(f"ok   {label}")
    else:
        results["failed"] += 1
        print(f"FAIL {label} {detail}")


async def make_client(url: str, mode: str, pki: Path, user: str | None = "user1",
                      password: str = "password") -> Client:
    client = Client(url=url, timeout=10)
    client.application_uri = CLIENT_APP_URI
    client.name = "iiot peer check client"
    if mode == "secure":
        d = pki / "client"
        d.mkdir(parents=True, exist_ok=True)
        cert, key = d / "cert.der", d / "key.pem"
        await setup_self_signed_certificate(
            key,
            cert,
            CLIENT_APP_URI,
            socket.gethostname(),
            [ExtendedKeyUsageOID.CLIENT_AUTH],
            {"organizationName": "iiot tests"},
        )
        await client.set_security(
            SecurityPolicyBasic256Sha256,
            certificate=str(cert),
            private_key=str(key),
            mode=ua.MessageSecurityMode.SignAndEncrypt,
        )
        if user is not None:
            client.set_user(user)
            client.set_password(password)
    return client


async def run_mode(url: str, ns_uri: str, mode: str, pki: Path) -> None:
    client = await make_client(url, mode, pki)
    t0 = time.monotonic()
    async with client:
        check(f"[{mode}] connect ({time.monotonic() - t0:.2f}s)", True)
        idx = await client.get_namespace_index(ns_uri)
        check(f"[{mode}] namespace {ns_uri} at index {idx}", idx > 0)

        def node(s: str):
            return client.get_node(ua.NodeId(s, idx))

        v = await node("Scalar/Int32").read_value()
        check(f"[{mode}] read Scalar/Int32 = {v}", isinstance(v, int))

        for sid, val, vt in [
            ("Scalar/Int32", 1234, ua.VariantType.Int32),
            ("Scalar/Double", 2.5, ua.VariantType.Double),
            ("Scalar/String", f"written-{mode}", ua.VariantType.String),
            ("Scalar/Boolean", True, ua.VariantType.Boolean),
            ("Scalar/SByte", -5, ua.VariantType.SByte),
            ("Scalar/Byte", 200, ua.VariantType.Byte),
            ("Scalar/Int16", -300, ua.VariantType.Int16),
            ("Scalar/UInt16", 60000, ua.VariantType.UInt16),
            ("Scalar/UInt32", 4000000000, ua.VariantType.UInt32),
            ("Scalar/Int64", -(2**40), ua.VariantType.Int64),
            ("Scalar/UInt64", 2**40 + 7, ua.VariantType.UInt64),
            ("Scalar/Float", 1.5, ua.VariantType.Float),
            ("Scalar/DateTime", datetime.datetime(2030, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc),
             ua.VariantType.DateTime),
            ("Scalar/ByteString", b"\x00\xff\x10", ua.VariantType.ByteString),
            ("Array/Int32", [7, 8, 9, 10], ua.VariantType.Int32),
            ("Array/Double", [0.5, -1.25], ua.VariantType.Double),
            ("Array/String", ["x", "yz"], ua.VariantType.String),
        ]:
            await node(sid).write_value(ua.DataValue(ua.Variant(val, vt)))
            back = await node(sid).read_value()
            if isinstance(back, datetime.datetime) and back.tzinfo is None:
                back = back.replace(tzinfo=datetime.timezone.utc)
            check(f"[{mode}] write/read {sid} = {back!r}", back == val, f"expected {val!r}")
            dvt = await node(sid).read_data_type_as_variant_type()
            check(f"[{mode}] {sid} DataType {dvt.name}", dvt == vt)
        # restore initial values so a later run starts from the documented state
        await node("Scalar/Int32").write_value(ua.DataValue(ua.Variant(42, ua.VariantType.Int32)))
        await node("Array/Int32").write_value(ua.DataValue(ua.Variant([1, 2, 3], ua.VariantType.Int32)))
        # a write with the wrong type must be refused, not converted
        try:
            await node("Scalar/Int32").write_value(ua.DataValue(ua.Variant(1, ua.VariantType.Int16)))
            check(f"[{mode}] Int16 write to Scalar/Int32 refused", False, "write accepted")
        except ua.UaStatusCodeError as e:
            check(f"[{mode}] Int16 write to Scalar/Int32 refused ({type(e).__name__})", True)

        c1 = await node("Counter").read_value()
        await asyncio.sleep(0.35)
        c2 = await node("Counter").read_value()
        check(f"[{mode}] Counter changes {c1} -> {c2}", c2 > c1)

        methods = node("Methods")
        out = await methods.call_method(
            ua.NodeId("Methods/Add", idx), ua.Variant(2, ua.VariantType.Int32), ua.Variant(3, ua.VariantType.Int32)
        )
        check(f"[{mode}] Methods/Add(2,3) = {out!r}", out == 5)
        add_node = node("Methods/Add")
        props = {(await p.read_browse_name()).Name: p for p in await add_node.get_properties()}
        check(f"[{mode}] Methods/Add has properties {sorted(props)}",
              {"InputArguments", "OutputArguments"} <= set(props))
        if "InputArguments" in props:
            ins = await props["InputArguments"].read_value()
            check(f"[{mode}] InputArguments {[a.Name for a in ins]}",
                  [a.Name for a in ins] == ["a", "b"] and all(a.DataType == ua.NodeId(ua.ObjectIds.Int32) for a in ins))
        for label, a, b, want in [
            ("overflow", ua.Variant(2**31 - 1, ua.VariantType.Int32), ua.Variant(1, ua.VariantType.Int32),
             ("BadOutOfRange",)),
            ("Int16 arg", ua.Variant(1, ua.VariantType.Int16), ua.Variant(1, ua.VariantType.Int32),
             ("BadInvalidArgument", "BadTypeMismatch")),
        ]:
            try:
                await methods.call_method(ua.NodeId("Methods/Add", idx), a, b)
                check(f"[{mode}] Methods/Add {label} -> {want}", False, "call succeeded")
            except ua.UaStatusCodeError as e:
                check(f"[{mode}] Methods/Add {label} -> {type(e).__name__}", type(e).__name__ in want)
        dn = (await add_node.read_display_name()).Text
        check(f"[{mode}] DisplayName of Methods/Add = {dn!r}", dn == "Methods/Add")
        try:
            await methods.call_method(ua.NodeId("Methods/Fail", idx))
            check(f"[{mode}] Methods/Fail returns Bad", False, "call succeeded")
        except ua.UaStatusCodeError as e:
            check(f"[{mode}] Methods/Fail returns Bad ({type(e).__name__})", True)

        tree = node("Tree")
        folders = await tree.get_children(refs=ua.ObjectIds.HierarchicalReferences)
        leaves = []
        for f in folders:
            leaves += await f.get_children(refs=ua.ObjectIds.HierarchicalReferences)
        ids = sorted(n.nodeid.Identifier for n in leaves)
        check(f"[{mode}] Tree has {len(folders)} folders / {len(leaves)} vars", len(folders) == 3 and len(leaves) == 9,
              str(ids))
        t21 = await node("Tree/2/1").read_value()
        check(f"[{mode}] Tree/2/1 = {t21}", "Tree/2/1" in ids and t21 == 7)


async def extra_secure_checks(url: str, pki: Path) -> None:
    """Anonymous over SignAndEncrypt works; a wrong password is rejected."""
    client = await make_client(url, "secure", pki, user=None)
    async with client:
        ns = await client.get_namespace_array()
        check("[secure] anonymous session over Basic256Sha256 SignAndEncrypt", len(ns) > 2)
    client = await make_client(url, "secure", pki, password="wrong")
    try:
        async with client:
            check("[secure] wrong password rejected", False, "session was activated")
    except Exception as e:
        check(f"[secure] wrong password rejected ({type(e).__name__})", True)


async def list_endpoints(url: str) -> None:
    client = Client(url=url, timeout=10)
    for ep in await client.connect_and_get_server_endpoints():
        tokens = ",".join(f"{t.TokenType.name}" for t in ep.UserIdentityTokens)
        print(f"endpoint {ep.EndpointUrl} {ep.SecurityPolicyUri.split('#')[-1]} {ep.SecurityMode.name} [{tokens}]"
              f" server={ep.Server.ApplicationUri}")


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--ns-uri", required=True)
    ap.add_argument("--pki", type=Path, required=True, help="directory for the client certificate")
    ap.add_argument("--mode", choices=["none", "secure", "both"], default="both")
    args = ap.parse_args()
    modes = ["none", "secure"] if args.mode == "both" else [args.mode]
    try:
        await list_endpoints(args.url)
    except Exception as e:
        check("GetEndpoints", False, f"{type(e).__name__}: {e}")
    for mode in modes:
        try:
            await run_mode(args.url, args.ns_uri, mode, args.pki)
            if mode == "secure":
                await extra_secure_checks(args.url, args.pki)
        except Exception as e:  # report and continue with next mode
            check(f"[{mode}] session", False, f"{type(e).__name__}: {e}")
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 0 if results["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
