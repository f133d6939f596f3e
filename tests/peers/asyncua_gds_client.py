#!/usr/bin/env python3
"""An independent GDS pull client (Python asyncua) run against the vault's OPC UA face.

Usage:  asyncua_gds_client.py --url opc.tcp://HOST:P/ --rest http://HOST:P --dir DIR \
            --writer NAME:KEY --approver NAME:KEY --reader NAME:KEY

Used by vault/tests/gds_asyncua.rs. Every Directory method is called by the NodeId of the OPC
Foundation's GDS NodeSet, with an ApplicationRecordDataType built from the DataTypeDefinition
the server publishes (asyncua's load_data_type_definitions, as any generic client would); CSRs,
chains and CRLs are made and checked by the openssl command line. Approvals come once through
the REST API and once through the OPC UA face, by a principal other than the requester.

Each step prints one line; the first failed expectation prints `FAIL: ...` and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_from_binary

GDS_NS = "http://opcfoundation.org/UA/GDS/"
VAULT_NS = "urn:iiot:vault"
RSA_SHA256_TYPE = ua.NodeId(12560, 0)

# Directory method ids (Opc.Ua.Gds.NodeSet2.xml).
FIND_APPLICATIONS = 143
REGISTER_APPLICATION = 146
UPDATE_APPLICATION = 200
UNREGISTER_APPLICATION = 149
GET_APPLICATION = 216
QUERY_APPLICATIONS = 992
QUERY_SERVERS = 151
START_SIGNING_REQUEST = 157
START_NEW_KEY_PAIR_REQUEST = 154
FINISH_REQUEST = 163
GET_CERTIFICATE_GROUPS = 508
GET_TRUST_LIST = 204
GET_CERTIFICATE_STATUS = 225
REVOKE_CERTIFICATE = 15003
GET_CERTIFICATES = 89
CHECK_REVOCATION_STATUS = 126
DIRECTORY = 141
APPLICATION_GROUP = 615
TRUST_LIST = 616


class Failed(Exception):
    pass


def check(cond: bool, what: str) -> None:
    if not cond:
        raise Failed(what)


def step(what: str) -> None:
    print(f"ok: {what}", flush=True)


def openssl(args: list[str], cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if ok and p.returncode != 0:
        raise Failed(f"openssl {' '.join(args)}: {p.stderr}")
    return p


def make_key_and_csr(d: Path, name: str, uri: str, bits: int = 2048) -> bytes:
    """An RSA key (`name`.key) and the DER CSR for it, with `uri` as subjectAltName."""
    openssl(["genrsa", "-out", f"{name}_key.pem", str(bits)], d)
    openssl(
        [
            "req", "-new", "-key", f"{name}_key.pem", "-subj", f"/CN={name}",
            "-addext", f"subjectAltName=URI:{uri}", "-outform", "DER", "-out", f"{name}.csr",
        ],
        d,
    )
    return (d / f"{name}.csr").read_bytes()


def self_signed(d: Path, name: str, uri: str) -> None:
    """A self-signed client certificate (`name`.der, `name`.key), what an application has
    before it is enrolled."""
    openssl(
        [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}_key.pem",
            "-subj", f"/CN={name}", "-days", "30",
            "-addext", f"subjectAltName=URI:{uri},DNS:localhost",
            "-addext", "keyUsage=digitalSignature,nonRepudiation,keyEncipherment,dataEncipherment",
            "-addext", "extendedKeyUsage=clientAuth,serverAuth",
            "-outform", "DER", "-out", f"{name}.der",
        ],
        d,
    )


def pem(label: str, der: bytes) -> str:
    import base64
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def rest(base: str, method: str, path: str, key: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
            return r.status, json.loads(text) if text else {}
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        return e.code, json.loads(text) if text else {}


async def expect_bad(coro, code: int, what: str) -> None:
    try:
        await coro
    except ua.UaStatusCodeError as e:
        check(e.code == code, f"{what}: expected {ua.StatusCode(code).name}, got {ua.StatusCode(e.code).name}")
        step(f"{what} -> {ua.StatusCode(code).name}")
        return
    raise Failed(f"{what}: expected {ua.StatusCode(code).name}, but the call succeeded")


def request_uuid(node: ua.NodeId) -> str:
    check(isinstance(node.Identifier, uuid.UUID), f"ids are Guid NodeIds, got {node}")
    return str(node.Identifier)


async def session(url: str, d: Path, cert: str, key: str, app_uri: str, user: str | None = None) -> Client:
    client = Client(url=url, timeout=15)
    client.application_uri = app_uri
    client.name = "asyncua GDS test client"
    if user is not None:
        name, password = user.split(":", 1)
        client.set_user(name)
        client.set_password(password)
    await client.set_security(
        SecurityPolicyBasic256Sha256,
        certificate=str(d / cert),
        private_key=str(d / key),
        mode=ua.MessageSecurityMode.SignAndEncrypt,
    )
    await client.connect()
    return client


class Gds:
    def __init__(self, client: Client, ns: int):
        self.client = client
        self.ns = ns
        self.directory = client.get_node(ua.NodeId(DIRECTORY, ns))

    @staticmethod
    async def open(client: Client) -> "Gds":
        return Gds(client, await client.get_namespace_index(GDS_NS))

    def id(self, i: int) -> ua.NodeId:
        return ua.NodeId(i, self.ns)

    async def call(self, method: int, *args):
        return await self.directory.call_method(self.id(method), *args)

    def group(self) -> ua.NodeId:
        return self.id(APPLICATION_GROUP)

    async def read_trust_list(self, trust_list_id: ua.NodeId, masks: int | None = None) -> ua.TrustListDataType:
        node = self.client.get_node(trust_list_id)
        if masks is None:
            handle = await node.call_method(ua.NodeId(TRUST_LIST + 6, self.ns), ua.Variant(1, ua.VariantType.Byte))
        else:
            handle = await node.call_method(ua.NodeId(TRUST_LIST + 22, self.ns), ua.Variant(masks, ua.VariantType.UInt32))
        data = b""
        while True:
            chunk = await node.call_method(
                ua.NodeId(TRUST_LIST + 11, self.ns),
                ua.Variant(handle, ua.VariantType.UInt32),
                ua.Variant(700, ua.VariantType.Int32),
            )
            if not chunk:
                break
            data += chunk
        await node.call_method(ua.NodeId(TRUST_LIST + 9, self.ns), ua.Variant(handle, ua.VariantType.UInt32))
        return struct_from_binary(ua.TrustListDataType, Buffer(data))


def record(uri: str, kind: ua.ApplicationType, name: str, urls: list[str]):
    return ua.ApplicationRecordDataType(
        ApplicationId=ua.NodeId(),
        ApplicationUri=uri,
        ApplicationType=kind,
        ApplicationNames=[ua.LocalizedText(name, "en")],
        ProductUri="urn:test:asyncua-gds",
        DiscoveryUrls=urls,
        ServerCapabilities=["DA"] if urls else [],
    )


def write_trust(d: Path, tl: ua.TrustListDataType, tag: str) -> tuple[str, str]:
    check(tl.TrustedCertificates and tl.TrustedCrls, f"trust list {tag} has CAs and CRLs")
    (d / f"ca-{tag}.pem").write_text("".join(pem("CERTIFICATE", c) for c in tl.TrustedCertificates))
    (d / f"crl-{tag}.pem").write_text("".join(pem("X509 CRL", c) for c in tl.TrustedCrls))
    return f"ca-{tag}.pem", f"crl-{tag}.pem"


async def run(a: argparse.Namespace) -> None:
    d = Path(a.dir)
    d.mkdir(parents=True, exist_ok=True)
    client_uri = "urn:test:asyncua-gds:client"
    other_uri = "urn:test:asyncua-gds:other"
    self_signed(d, "client", client_uri)
    writer_key = a.writer.split(":", 1)[1]
    approver_key = a.approver.split(":", 1)[1]

    # None security: discovery only, no session.
    plain = Client(url=a.url, timeout=10)
    plain.set_user(a.writer.split(":", 1)[0])
    plain.set_password(writer_key)
    try:
        await plain.connect()
        await plain.disconnect()
        raise Failed("a session on the None endpoint was activated")
    except Failed:
        raise
    except Exception as e:
        step(f"None security refused ({type(e).__name__})")
    endpoints = await Client(url=a.url, timeout=10).connect_and_get_server_endpoints()
    check(any(e.SecurityMode == ua.MessageSecurityMode.None_ for e in endpoints), "GetEndpoints over None")
    check(
        all(not e.UserIdentityTokens for e in endpoints if e.SecurityMode == ua.MessageSecurityMode.None_),
        "the None endpoint offers no user token",
    )
    step(f"GetEndpoints: {len(endpoints)} endpoints")

    writer = await session(a.url, d, "client.der", "client_key.pem", client_uri, a.writer)
    try:
        types = await writer.load_data_type_definitions()
        check("ApplicationRecordDataType" in types, f"ApplicationRecordDataType generated from the server's definition: {list(types)}")
        step("ApplicationRecordDataType built from its DataTypeDefinition")
        gds = await Gds.open(writer)
        check(gds.ns > 0, "GDS namespace in the namespace array")

        app = await gds.call(REGISTER_APPLICATION, record(client_uri, ua.ApplicationType.Client, "asyncua GDS client", []))
        app_uuid = request_uuid(app)
        step(f"RegisterApplication -> {app}")
        await expect_bad(
            gds.call(REGISTER_APPLICATION, record(client_uri, ua.ApplicationType.Client, "again", [])),
            ua.StatusCodes.BadEntryExists,
            "RegisterApplication of a registered URI",
        )
        server_app = await gds.call(
            REGISTER_APPLICATION,
            record(other_uri, ua.ApplicationType.Server, "asyncua GDS other", ["opc.tcp://other:4840"]),
        )
        found = await gds.call(FIND_APPLICATIONS, client_uri)
        found = found if isinstance(found, list) else [found]
        check(len(found) == 1 and found[0].ApplicationId == app, f"FindApplications: {found}")
        got = await gds.call(GET_APPLICATION, app)
        check(got.ApplicationUri == client_uri and got.ApplicationNames[0].Text == "asyncua GDS client", f"GetApplication: {got}")
        step("FindApplications, GetApplication")

        updated = record(client_uri, ua.ApplicationType.Client, "asyncua GDS client (renamed)", [])
        updated.ApplicationId = app
        await gds.call(UPDATE_APPLICATION, updated)
        got = await gds.call(GET_APPLICATION, app)
        check(got.ApplicationNames[0].Text == "asyncua GDS client (renamed)", "UpdateApplication")
        step("UpdateApplication")

        q = await gds.call(
            QUERY_APPLICATIONS,
            ua.Variant(0, ua.VariantType.UInt32), ua.Variant(0, ua.VariantType.UInt32),
            "asyncua GDS%", "", ua.Variant(0, ua.VariantType.UInt32), "", ua.Variant([], ua.VariantType.String),
        )
        check(len(q[2]) == 2, f"QueryApplications by name pattern: {q}")
        q = await gds.call(
            QUERY_APPLICATIONS,
            ua.Variant(0, ua.VariantType.UInt32), ua.Variant(1, ua.VariantType.UInt32),
            "", "", ua.Variant(0, ua.VariantType.UInt32), "", ua.Variant([], ua.VariantType.String),
        )
        check(len(q[2]) == 1 and q[1] > 0, f"QueryApplications pages with NextRecordId: {q}")
        servers = await gds.call(
            QUERY_SERVERS,
            ua.Variant(0, ua.VariantType.UInt32), ua.Variant(0, ua.VariantType.UInt32),
            "", "", "", ua.Variant(["DA"], ua.VariantType.String),
        )
        servers = servers[1]
        check(len(servers) == 1 and servers[0].DiscoveryUrl == "opc.tcp://other:4840", f"QueryServers: {servers}")
        server_record_id = servers[0].RecordId
        step("QueryApplications, QueryServers")

        groups = await gds.call(GET_CERTIFICATE_GROUPS, app)
        check(gds.group() in groups, f"GetCertificateGroups: {groups}")
        tl_id = await gds.call(GET_TRUST_LIST, app, gds.group())
        check(tl_id == gds.id(TRUST_LIST), f"GetTrustList: {tl_id}")
        check(await gds.call(GET_CERTIFICATE_STATUS, app, gds.group(), RSA_SHA256_TYPE) is True, "update required before any certificate")
        step("GetCertificateGroups, GetTrustList, GetCertificateStatus")

        # Signing request: waits for approval, approved through REST.
        csr = make_key_and_csr(d, "enrolled", client_uri)
        req = await gds.call(START_SIGNING_REQUEST, app, gds.group(), RSA_SHA256_TYPE, csr)
        step(f"StartSigningRequest -> {req}")
        await expect_bad(gds.call(FINISH_REQUEST, app, req), ua.StatusCodes.BadNothingToDo, "FinishRequest before approval")
        status, body = rest(a.rest, "POST", f"/v2/requests/{request_uuid(req)}/approve", writer_key)
        check(status == 403, f"the requester cannot approve: {status} {body}")
        status, body = rest(a.rest, "POST", f"/v2/requests/{request_uuid(req)}/approve", approver_key)
        check(status in (200, 204), f"REST approval: {status} {body}")
        cert, key, issuers = await gds.call(FINISH_REQUEST, app, req)
        check(cert and not key and len(issuers) == 1, "FinishRequest returns the certificate and its issuer")
        (d / "enrolled.pem").write_text(pem("CERTIFICATE", cert))
        step("FinishRequest after REST approval")

        tl = await gds.read_trust_list(tl_id)
        check(tl.SpecifiedLists == 15, f"SpecifiedLists All: {tl.SpecifiedLists}")
        ca, crl = write_trust(d, tl, "1")
        out = openssl(["verify", "-crl_check", "-CAfile", ca, "-CRLfile", crl, "enrolled.pem"], d, ok=False)
        check(out.returncode == 0, f"openssl verifies the chain and CRL: {out.stdout}{out.stderr}")
        only_certs = await gds.read_trust_list(tl_id, masks=1)
        check(only_certs.SpecifiedLists == 1 and not only_certs.TrustedCrls, "OpenWithMasks(TrustedCertificates)")
        step("TrustList file read (Open/Read/Close, OpenWithMasks); openssl verify OK")

        certs = await gds.call(GET_CERTIFICATES, app, gds.group())
        check(certs[0] == [RSA_SHA256_TYPE] and certs[1] == [cert], f"GetCertificates: {certs}")
        check(await gds.call(GET_CERTIFICATE_STATUS, app, gds.group(), RSA_SHA256_TYPE) is False, "no update needed after issue")
        st = await gds.call(CHECK_REVOCATION_STATUS, cert)
        check(st[0].is_good(), f"CheckRevocationStatus of a valid certificate: {st}")
        step("GetCertificates, GetCertificateStatus, CheckRevocationStatus")

        # Bad input: nothing stored.
        _, before = rest(a.rest, "GET", "/v2/requests", approver_key)
        before = len(before["requests"])
        wrong_uri = make_key_and_csr(d, "wronguri", "urn:test:someone-else")
        await expect_bad(
            gds.call(START_SIGNING_REQUEST, app, gds.group(), RSA_SHA256_TYPE, wrong_uri),
            ua.StatusCodes.BadCertificateUriInvalid,
            "CSR whose SAN URI is not the registered one",
        )
        weak = make_key_and_csr(d, "weak", client_uri, bits=1024)
        try:
            await gds.call(START_SIGNING_REQUEST, app, gds.group(), RSA_SHA256_TYPE, weak)
            raise Failed("an RSA-1024 CSR was accepted")
        except ua.UaStatusCodeError as e:
            check(ua.StatusCode(e.code).is_bad(), "RSA-1024 refused")
            step(f"RSA-1024 CSR -> {ua.StatusCode(e.code).name}")
        await expect_bad(
            gds.call(START_SIGNING_REQUEST, app, gds.group(), RSA_SHA256_TYPE, b"not a csr"),
            ua.StatusCodes.BadCertificateInvalid,
            "garbage CSR",
        )
        garbage = ua.ExtensionObject(TypeId=gds.id(134), Body=b"\x01\x02\x03")
        await expect_bad(
            gds.call(REGISTER_APPLICATION, ua.Variant(garbage, ua.VariantType.ExtensionObject)),
            ua.StatusCodes.BadInvalidArgument,
            "malformed ApplicationRecord",
        )
        await expect_bad(
            gds.call(START_SIGNING_REQUEST, app, ua.NodeId(9999, gds.ns), RSA_SHA256_TYPE, csr),
            ua.StatusCodes.BadInvalidArgument,
            "unknown certificate group",
        )
        await expect_bad(gds.call(GET_APPLICATION, ua.NodeId(uuid.uuid4(), gds.ns)), ua.StatusCodes.BadNotFound, "unknown application")
        _, after = rest(a.rest, "GET", "/v2/requests", approver_key)
        check(len(after["requests"]) == before, f"refused requests stored nothing: {before} -> {len(after['requests'])}")
        await expect_bad(gds.call(UNREGISTER_APPLICATION, app), ua.StatusCodes.BadUserAccessDenied, "writer unregistering")
        await expect_bad(gds.call(REVOKE_CERTIFICATE, app, cert), ua.StatusCodes.BadUserAccessDenied, "writer revoking")

        # New key pair: the key is handed out once.
        kp = await gds.call(
            START_NEW_KEY_PAIR_REQUEST, app, gds.group(), RSA_SHA256_TYPE, "CN=asyncua keypair",
            ua.Variant(["localhost"], ua.VariantType.String), "PEM", "",
        )
        await expect_bad(
            gds.call(
                START_NEW_KEY_PAIR_REQUEST, app, gds.group(), RSA_SHA256_TYPE, "CN=x",
                ua.Variant([], ua.VariantType.String), "PFX", "secret",
            ),
            ua.StatusCodes.BadInvalidArgument,
            "PFX over OPC UA",
        )
    finally:
        await writer.disconnect()

    approver = await session(a.url, d, "client.der", "client_key.pem", client_uri, a.approver)
    try:
        gds = await Gds.open(approver)
        vault_ns = await approver.get_namespace_index(VAULT_NS)
        vault = approver.get_node(ua.NodeId("Vault", vault_ns))
        await vault.call_method(ua.NodeId("Vault/ApproveRequest", vault_ns), kp)
        step("key pair request approved through the OPC UA face")
    finally:
        await approver.disconnect()

    writer = await session(a.url, d, "client.der", "client_key.pem", client_uri, a.writer)
    try:
        gds = await Gds.open(writer)
        cert2, key2, _ = await gds.call(FINISH_REQUEST, app, kp)
        check(cert2 and key2 and key2.startswith(b"-----BEGIN PRIVATE KEY-----"), "FinishRequest hands out the new key")
        again = await gds.call(FINISH_REQUEST, app, kp)
        check(again[0] == cert2 and not again[1], "the key is handed out once")
        step("StartNewKeyPairRequest: key once")
        # A request for the other application, to test that applications stay apart.
        other_csr = make_key_and_csr(d, "other", other_uri)
        other_req = await gds.call(START_SIGNING_REQUEST, server_app, gds.group(), RSA_SHA256_TYPE, other_csr)
    finally:
        await writer.disconnect()

    # ApplicationSelfAdmin: anonymous, on the certificate the vault issued.
    me = await session(a.url, d, "enrolled.pem", "enrolled_key.pem", client_uri)
    try:
        gds = await Gds.open(me)
        got = await gds.call(GET_APPLICATION, app)
        check(got.ApplicationUri == client_uri, "an application reads its own record")
        renew_csr = make_key_and_csr(d, "renew", client_uri)
        renew = await gds.call(START_SIGNING_REQUEST, app, gds.group(), RSA_SHA256_TYPE, renew_csr)
        await expect_bad(gds.call(FINISH_REQUEST, app, renew), ua.StatusCodes.BadNothingToDo, "self-submitted request waits")
        await expect_bad(gds.call(FINISH_REQUEST, server_app, other_req), ua.StatusCodes.BadUserAccessDenied, "FinishRequest of another application")
        await expect_bad(gds.call(GET_APPLICATION, server_app), ua.StatusCodes.BadUserAccessDenied, "reading another application")
        renamed = record(client_uri, ua.ApplicationType.Client, "asyncua GDS client (self-named)", [])
        renamed.ApplicationId = app
        await gds.call(UPDATE_APPLICATION, renamed)
        other_identity = record("urn:test:asyncua-gds:impostor", ua.ApplicationType.Client, "x", [])
        other_identity.ApplicationId = app
        await expect_bad(gds.call(UPDATE_APPLICATION, other_identity), ua.StatusCodes.BadUserAccessDenied, "an application changing its own URI")
        tl = await gds.read_trust_list(gds.id(TRUST_LIST))
        check(bool(tl.TrustedCertificates), "an enrolled application reads the trust list")
        step("ApplicationSelfAdmin over its own record only")
    finally:
        await me.disconnect()

    anonymous = await session(a.url, d, "client.der", "client_key.pem", client_uri)
    try:
        gds = await Gds.open(anonymous)
        await expect_bad(gds.call(GET_APPLICATION, app), ua.StatusCodes.BadUserAccessDenied, "anonymous with an unknown certificate")
    finally:
        await anonymous.disconnect()

    approver = await session(a.url, d, "client.der", "client_key.pem", client_uri, a.approver)
    try:
        gds = await Gds.open(approver)
        await gds.call(REVOKE_CERTIFICATE, app, cert)
        st = await gds.call(CHECK_REVOCATION_STATUS, cert)
        check(st[0].value == ua.StatusCodes.BadCertificateRevoked, f"CheckRevocationStatus after revocation: {st}")
        tl = await gds.read_trust_list(gds.id(TRUST_LIST))
        ca, crl = write_trust(d, tl, "2")
        out = openssl(["verify", "-crl_check", "-CAfile", ca, "-CRLfile", crl, "enrolled.pem"], d, ok=False)
        check(out.returncode != 0 and "revoked" in (out.stdout + out.stderr), f"the next CRL lists it: {out.stdout}{out.stderr}")
        step("RevokeCertificate: CheckRevocationStatus and the CRL say revoked")
        await gds.call(UNREGISTER_APPLICATION, app)
        st = await gds.call(CHECK_REVOCATION_STATUS, cert2)
        check(st[0].value == ua.StatusCodes.BadCertificateRevoked, "UnregisterApplication revokes its certificates")
        servers = (await gds.call(
            QUERY_SERVERS,
            ua.Variant(0, ua.VariantType.UInt32), ua.Variant(0, ua.VariantType.UInt32),
            "", "", "", ua.Variant([], ua.VariantType.String),
        ))[1]
        check([x.RecordId for x in servers] == [server_record_id], f"record ids stay after an unregistration: {servers}")
        step("UnregisterApplication revokes; other record ids unchanged")
    finally:
        await approver.disconnect()

    # The revoked certificate no longer opens a session.
    try:
        c = await session(a.url, d, "enrolled.pem", "enrolled_key.pem", client_uri)
        await c.disconnect()
        raise Failed("a revoked certificate opened a session")
    except Failed:
        raise
    except Exception as e:
        step(f"revoked certificate refused at connect ({type(e).__name__})")

    # A reader cannot register.
    reader = await session(a.url, d, "client.der", "client_key.pem", client_uri, a.reader)
    try:
        gds = await Gds.open(reader)
        await expect_bad(
            gds.call(REGISTER_APPLICATION, record("urn:test:reader", ua.ApplicationType.Client, "r", [])),
            ua.StatusCodes.BadUserAccessDenied,
            "reader registering",
        )
    finally:
        await reader.disconnect()
    print("PASS", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    for flag in ["--url", "--rest", "--dir", "--writer", "--approver", "--reader"]:
        p.add_argument(flag, required=True)
    try:
        asyncio.run(run(p.parse_args()))
    except Failed as e:
        print(f"FAIL: {e}", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
