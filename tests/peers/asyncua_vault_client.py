#!/usr/bin/env python3
"""Connect with a given (vault-issued) client certificate and read one value.

Usage:  asyncua_vault_client.py --url opc.tcp://HOST:P/ --cert CERT.pem --key KEY.pem \
            --app-uri URI --ns-uri urn:iiot:plc-sim --node Scalar/Int32

Used by tests/vault_enroll.rs: an OPC UA client we did not write (asyncua) connects with
Basic256Sha256 SignAndEncrypt, anonymously, using exactly the certificate and private key the
vault handed out, and reads the String node id `--node` in namespace `--ns-uri`.

Prints one JSON line: {"connected": true, "value": ...} and exits 0, or
{"connected": false, "error": "..."} and exits 2 when the server refuses the connection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256


async def run(args: argparse.Namespace) -> int:
    client = Client(url=args.url, timeout=10)
    client.application_uri = args.app_uri
    client.name = "iiot vault enrolment test client"
    await client.set_security(
        SecurityPolicyBasic256Sha256,
        certificate=args.cert,
        private_key=args.key,
        mode=ua.MessageSecurityMode.SignAndEncrypt,
    )
    try:
        async with client:
            ns = await client.get_namespace_index(args.ns_uri)
            value = await client.get_node(ua.NodeId(args.node, ns)).read_value()
    except Exception as exc:  # the refusal is the answer the test looks at
        print(json.dumps({"connected": False, "error": f"{type(exc).__name__}: {exc}"}))
        return 2
    print(json.dumps({"connected": True, "value": value}, default=str))
    return 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--app-uri", required=True)
    p.add_argument("--ns-uri", required=True)
    p.add_argument("--node", required=True)
    sys.exit(asyncio.run(run(p.parse_args())))


if __name__ == "__main__":
    main()
