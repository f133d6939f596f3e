#!/usr/bin/env node
/*
 * GDS push CLIENT built on node-opcua's ClientPushCertificateManagement
 * (node-opcua-server-configuration 2.157.0): pushes a CA-signed certificate and the CA to a
 * server (ours, or tests/peers/node_push_server.js) the way a GDS does.
 *
 * Usage:
 *   node node_push_client.js --endpoint URL --user NAME --password-file FILE
 *        --client-cert C.pem --client-key K.pem --ca-cert CA.pem --ca-key CAKEY.pem
 *        [--ca-crl CRL.pem] [--regenerate-key] [--expect-denied]
 *
 * Steps (each prints one JSON line to stdout; logging goes to stderr):
 *   connect               Basic256Sha256 / SignAndEncrypt, client cert+key from the files,
 *                         UserName identity
 *   info                  SupportedPrivateKeyFormats, DefaultApplicationGroup CertificateTypes
 *   createSigningRequest  DefaultApplicationGroup, first CertificateType, subject from the
 *                         server's current certificate, optionally a new server-side key
 *   sign                  openssl x509 -req with the CA (30 days, CA:FALSE, OPC UA key usages)
 *   updateCertificate     the signed cert + [CA]; never sends a private key (the server has it)
 *   trustListBefore       counts of the DefaultApplicationGroup trust list
 *   addCertificate        the CA as trusted certificate. A server may refuse a CA here with
 *                         Bad_CertificateInvalid (Part 12 §7.8.2.6 v1.05: a CA needs its CRL, which
 *                         AddCertificate cannot carry; plc-sim does): reported as
 *                         {"refused":"BadCertificateInvalid","expected":true}, and the CA then
 *                         goes in with writeTrustList, so --ca-crl is required against such a server
 *   writeTrustList        only with --ca-crl: full trust list (with the CA) + CRL via
 *                         Open(0x06)/Write/CloseAndUpdate
 *   trustListAfter        counts again (shows whether the CRL write took effect); fails if the
 *                         CA was refused by addCertificate and is not in the list after the write
 *   applyChanges
 *   getRejectedList
 *   newCertificate        fresh connections until GetEndpoints presents the pushed certificate
 *   secureSession         a new SignAndEncrypt session against the new certificate (proves the
 *                         server uses the matching key)
 * Final line: {"result":"ok","pushedThumbprint":...,"presentedThumbprint":...}
 *          or {"result":"error","step":...,"status":...}; exit code 0 only on "ok".
 *
 * --sign-only: connect over Sign instead of SignAndEncrypt; implies --expect-denied (Part 12 asks
 * for encryption where keys and trust lists travel). Two refusals count: the server does not
 * let the administrator activate a session over Sign at all (plc-sim offers the administrators'
 * tokens on SignAndEncrypt endpoints only; final line {"result":"ok","denied":<status of the
 * failed ActivateSession>,"deniedAt":"activateSession"}), or the session opens and
 * CreateSigningRequest answers BadSecurityModeInsufficient (node-opcua's own server;
 * "deniedAt":"createSigningRequest").
 *
 * --expect-denied: the user lacks SecurityAdmin; succeed only if CreateSigningRequest answers
 * BadUserAccessDenied (final line {"result":"ok","denied":"BadUserAccessDenied"}). --ca-cert/
 * --ca-key are optional then (--ca-cert is needed once the server presents a CA-issued cert).
 * Every step has a timeout; the whole run is capped at 60 s.
 *
 * Against node-opcua's own server (2.157) writeTrustList reports Good but changes nothing
 * (CloseAndUpdate is a no-op there): trustListAfter then says "crlPushed":false, which is
 * reported, not treated as a failure.
 */
"use strict";

const util = require("util");
const os = require("os");
const path = require("path");
const fs = require("fs");
const crypto = require("crypto");
const { execFileSync } = require("child_process");

// node-opcua logs with console.log (also at require time); keep stdout for our JSON lines.
const toStderr = (...a) => process.stderr.write(util.format(...a) + "\n");
console.log = toStderr;
console.info = toStderr;
console.warn = toStderr;
console.debug = toStderr;

const { OPCUAClient, OPCUACertificateManager, SecurityPolicy, MessageSecurityMode, UserTokenType, DataType, AttributeIds, BinaryStream } =
    require("node-opcua");
const { ClientPushCertificateManagement } = require("node-opcua-server-configuration");
const { OpenFileMode } = require("node-opcua-file-transfer");
const { TrustListDataType } = require("node-opcua-types");
const { exploreCertificate, convertPEMtoDER } = require("node-opcua-crypto");

const OVERALL_TIMEOUT_MS = 60000;
const STEP_TIMEOUT_MS = 15000;
const NEW_CERT_WAIT_MS = 20000;

function usage() {
    return (
        "usage: node_push_client.js --endpoint URL --user NAME --password-file FILE --client-cert C.pem --client-key K.pem\n" +
        "       --ca-cert CA.pem --ca-key CAKEY.pem [--ca-crl CRL.pem] [--regenerate-key] [--expect-denied] [--sign-only]\n"
    );
}

function parseArgs(argv) {
    const out = { regenerateKey: false, expectDenied: false };
    const fail = (msg) => {
        process.stderr.write(`node_push_client: ${msg}\n${usage()}`);
        process.exit(2);
    };
    const opts = {
        "--endpoint": "endpoint",
        "--user": "user",
        "--password-file": "passwordFile",
        "--client-cert": "clientCert",
        "--client-key": "clientKey",
        "--ca-cert": "caCert",
        "--ca-key": "caKey",
        "--ca-crl": "caCrl",
    };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (opts[a]) {
            if (i + 1 >= argv.length) fail(`missing value for ${a}`);
            out[opts[a]] = argv[++i];
        } else if (a === "--regenerate-key") out.regenerateKey = true;
        else if (a === "--expect-denied") out.expectDenied = true;
        else if (a === "--sign-only") {
            out.signOnly = true;
            out.expectDenied = true;
        }
        else if (a === "-h" || a === "--help") {
            process.stderr.write(usage());
            process.exit(0);
        } else fail(`unknown argument ${a}`);
    }
    for (const k of ["endpoint", "user", "passwordFile", "clientCert", "clientKey"]) if (!out[k]) fail(`${k} is required`);
    if (!out.expectDenied) for (const k of ["caCert", "caKey"]) if (!out[k]) fail(`${k} is required`);
    return out;
}

// keys starting with "_" carry binary results between steps and are not printed
const emit = (obj) => process.stdout.write(JSON.stringify(obj, (k, v) => (k.startsWith("_") ? undefined : v)) + "\n");
const sha1 = (der) => crypto.createHash("sha1").update(der).digest("hex");
const statusName = (s) => (s && s.name) || String(s);

// A failed step: carries the step name and an OPC UA status (name) or message.
class StepError extends Error {
    constructor(step, status) {
        super(`${step}: ${status}`);
        this.step = step;
        this.status = status;
    }
}

function withTimeout(promise, ms, step) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new StepError(step, `timeout after ${ms} ms`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Run one step: print {"step":name,"ok":true,...result} or throw a StepError.
async function step(name, fn, ms = STEP_TIMEOUT_MS) {
    let result;
    try {
        result = await withTimeout(Promise.resolve().then(fn), ms, name);
    } catch (err) {
        if (err instanceof StepError) throw err;
        throw new StepError(name, err && err.message ? err.message : String(err));
    }
    emit({ step: name, ok: true, ...(result || {}) });
    return result || {};
}

function expectGood(name, statusCode) {
    if (!statusCode || statusCode.isNotGood()) throw new StepError(name, statusName(statusCode));
}

// DER of the first PEM block of `label` in a file (or the file itself if it is DER).
function readDer(file, label) {
    const buf = fs.readFileSync(file);
    if (!buf.toString("latin1").includes("-----BEGIN")) return buf;
    const m = buf.toString("latin1").match(new RegExp(`-----BEGIN ${label}-----([^-]+)-----END ${label}-----`));
    if (!m) throw new Error(`${file}: no PEM block "${label}"`);
    return Buffer.from(m[1].replace(/\s+/g, ""), "base64");
}

function openssl(args, input) {
    // node-opcua-pki sets process.env.OPENSSL_CONF / RANDFILE for its own use (sometimes to
    // the string "undefined"); the openssl CLI must not inherit them.
    const env = { ...process.env };
    delete env.OPENSSL_CONF;
    delete env.RANDFILE;
    return execFileSync("openssl", args, { input, env, timeout: 10000, stdio: ["pipe", "pipe", "pipe"] }).toString();
}

// Subject and SAN URIs of a DER CSR or certificate, as openssl prints them.
function describe(kind, der) {
    const text = openssl([kind, "-inform", "DER", "-noout", "-text"], der);
    const subject = ((text.match(/Subject: (.*)/) || [])[1] || "").trim();
    const issuer = ((text.match(/Issuer: (.*)/) || [])[1] || "").trim();
    const uris = [...text.matchAll(/URI:([^,\s]+)/g)].map((m) => m[1]);
    const dns = [...text.matchAll(/DNS:([^,\s]+)/g)].map((m) => m[1]);
    return { subject, issuer, uris, dns };
}

const hasCertificate = (list, der) => (list || []).some((c) => Buffer.compare(c, der) === 0);

// The status name in a node-opcua error (e.g. a failed ActivateSession), or null.
function deniedStatus(err) {
    const text = String((err && (err.message || err)) || "");
    const m = text.match(/\bBad[A-Za-z]+/);
    return m ? m[0] : null;
}

function trustListCounts(tl) {
    const n = (a) => (a ? a.length : 0);
    return {
        trustedCertificates: n(tl.trustedCertificates),
        trustedCrls: n(tl.trustedCrls),
        issuerCertificates: n(tl.issuerCertificates),
        issuerCrls: n(tl.issuerCrls),
    };
}

async function makeClient(args, tmp, securityMode, securityPolicy) {
    // Throw-away client PKI that accepts the server: the trust under test is the SERVER's trust
    // in us. automaticallyAcceptUnknownCertificate accepts a self-signed server certificate;
    // a CA-issued one (after a push) needs its CA trusted (else BadCertificateChainIncomplete)
    // and a CRL for that CA (else BadCertificateRevocationUnknown), which we waive unless
    // --ca-crl is given. Signatures and key possession are still checked on SignAndEncrypt.
    const clientCertificateManager = new OPCUACertificateManager({
        rootFolder: path.join(tmp, "client-pki"),
        automaticallyAcceptUnknownCertificate: true,
    });
    await clientCertificateManager.initialize();
    if (args.caCert) await clientCertificateManager.trustCertificate(readDer(args.caCert, "CERTIFICATE"));
    if (args.caCrl) await clientCertificateManager.addRevocationList(readDer(args.caCrl, "X509 CRL"));
    else {
        const verify = clientCertificateManager.verifyCertificate.bind(clientCertificateManager);
        clientCertificateManager.verifyCertificate = (cert, o) => verify(cert, { ...(o || {}), ignoreMissingRevocationList: true });
    }
    return OPCUAClient.create({
        applicationName: "iiot node-opcua push client",
        // node-opcua's server requires the client cert's SAN URI == ApplicationUri in CreateSession
        applicationUri: args.applicationUri,
        clientCertificateManager,
        certificateFile: path.resolve(args.clientCert),
        privateKeyFile: path.resolve(args.clientKey),
        securityMode,
        securityPolicy,
        endpointMustExist: false,
        connectionStrategy: { maxRetry: 0, initialDelay: 200, maxDelay: 500 },
        requestedSessionTimeout: 60000,
    });
}

async function closeQuietly(client, session) {
    try {
        if (session) await withTimeout(session.close(), 3000, "close");
    } catch (_) {
        /* the server may already have cut the channel */
    }
    try {
        if (client) await withTimeout(client.disconnect(), 3000, "disconnect");
    } catch (_) {
        /* same */
    }
}

// Sign the CSR with the CA via the openssl CLI; returns the certificate DER.
function signCsr(args, tmp, csrDer) {
    const csrFile = path.join(tmp, "server.csr.der");
    const extFile = path.join(tmp, "server.ext");
    const certFile = path.join(tmp, "server.cert.der");
    fs.writeFileSync(csrFile, csrDer);
    // subjectAltName (ApplicationUri, host names) comes from the CSR via -copy_extensions copy;
    // the usages are the OPC UA application certificate profile; AKI lets node-opcua find the issuer.
    fs.writeFileSync(
        extFile,
        [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,nonRepudiation,keyEncipherment,dataEncipherment",
            "extendedKeyUsage=serverAuth,clientAuth",
            "subjectKeyIdentifier=hash",
            "authorityKeyIdentifier=keyid,issuer",
            "",
        ].join("\n")
    );
    openssl([
        "x509", "-req", "-inform", "DER", "-in", csrFile,
        "-CA", args.caCert, "-CAkey", args.caKey, "-set_serial", "0x" + crypto.randomBytes(15).toString("hex"),
        "-days", "30", "-sha256", "-copy_extensions", "copy", "-extfile", extFile,
        "-outform", "DER", "-out", certFile,
    ]);
    return fs.readFileSync(certFile);
}

// Poll GetEndpoints (None channel, fresh client each time) until the server presents `pushed`.
async function waitForNewCertificate(args, tmp, pushed) {
    const deadline = Date.now() + NEW_CERT_WAIT_MS;
    let last = null;
    let attempts = 0;
    while (Date.now() < deadline) {
        attempts++;
        const client = await makeClient(args, tmp, MessageSecurityMode.None, SecurityPolicy.None);
        try {
            await withTimeout(client.connect(args.endpoint), 3000, "connect");
            const endpoints = await withTimeout(client.getEndpoints(), 3000, "getEndpoints");
            const ep = endpoints.find(
                (e) => e.securityPolicyUri === SecurityPolicy.Basic256Sha256 && e.securityMode === MessageSecurityMode.SignAndEncrypt
            );
            if (ep && ep.serverCertificate) {
                last = ep.serverCertificate;
                if (Buffer.compare(last, pushed) === 0) return { attempts, presented: last };
            }
        } catch (err) {
            process.stderr.write(`waiting for new certificate: ${err.message}\n`);
        } finally {
            await closeQuietly(client, null);
        }
        await new Promise((r) => setTimeout(r, 500));
    }
    throw new StepError("newCertificate", `server still presents ${last ? sha1(last) : "nothing"} after ${NEW_CERT_WAIT_MS} ms`);
}

async function run(args, tmp) {
    const password = fs.readFileSync(args.passwordFile, "utf8").replace(/\r?\n$/, "");
    const userIdentity = { type: UserTokenType.UserName, userName: args.user, password };
    const clientDer = readDer(args.clientCert, "CERTIFICATE");
    const san = exploreCertificate(clientDer).tbsCertificate.extensions?.subjectAltName;
    args.applicationUri = (san && san.uniformResourceIdentifier && san.uniformResourceIdentifier[0]) || "urn:iiot:test:push-client";

    let client = null;
    let session = null;
    try {
        const connected = await step("connect", async () => {
            const mode = args.signOnly ? MessageSecurityMode.Sign : MessageSecurityMode.SignAndEncrypt;
            client = await makeClient(args, tmp, mode, SecurityPolicy.Basic256Sha256);
            await client.connect(args.endpoint);
            try {
                session = await client.createSession(userIdentity);
            } catch (err) {
                // Over Sign a server may refuse the administrator's identity outright.
                const denied = args.signOnly && deniedStatus(err);
                if (!denied) throw err;
                return { securityMode: "Sign", user: args.user, denied };
            }
            return { securityMode: args.signOnly ? "Sign" : "SignAndEncrypt", securityPolicy: "Basic256Sha256", user: args.user, applicationUri: args.applicationUri };
        });
        if (connected.denied) return { result: "ok", denied: connected.denied, deniedAt: "activateSession" };
        const pcm = new ClientPushCertificateManagement(session);
        const rsaSha256 = ClientPushCertificateManagement.rsaSha256ApplicationCertificateType;

        if (args.expectDenied) {
            // createSigningRequest() returns the call status instead of throwing
            const r = await step("createSigningRequest", async () => {
                const res = await pcm.createSigningRequest("DefaultApplicationGroup", rsaSha256, null, false);
                return { status: statusName(res.statusCode) };
            });
            const expected = args.signOnly ? "BadSecurityModeInsufficient" : "BadUserAccessDenied";
            if (r.status !== expected) throw new StepError("createSigningRequest", `expected ${expected}, got ${r.status}`);
            return { result: "ok", denied: r.status, deniedAt: "createSigningRequest" };
        }

        const caDer = readDer(args.caCert, "CERTIFICATE");
        const group = await pcm.getApplicationGroup();

        let certificateTypeId = rsaSha256;
        await step("info", async () => {
            const formats = await pcm.getSupportedPrivateKeyFormats();
            const types = await group.getCertificateTypes();
            if (types && types.length) certificateTypeId = types[0];
            return { supportedPrivateKeyFormats: formats, certificateTypes: (types || []).map((t) => t.toString()) };
        });

        const { _csr: csrDer } = await step("createSigningRequest", async () => {
            // subjectName null: the server reuses the subject of its current certificate.
            // regeneratePrivateKey needs >= 32 bytes of nonce (else BadInvalidArgument).
            const nonce = args.regenerateKey ? crypto.randomBytes(32) : undefined;
            const res = await pcm.createSigningRequest("DefaultApplicationGroup", certificateTypeId, null, args.regenerateKey, nonce);
            expectGood("createSigningRequest", res.statusCode);
            const d = describe("req", res.certificateSigningRequest);
            return { regeneratePrivateKey: args.regenerateKey, _csr: res.certificateSigningRequest, subject: d.subject, sanUris: d.uris, sanDns: d.dns };
        });

        const { _cert: certDer } = await step("sign", async () => {
            const der = signCsr(args, tmp, csrDer);
            const d = describe("x509", der);
            return { _cert: der, thumbprint: sha1(der), subject: d.subject, issuer: d.issuer, sanUris: d.uris };
        });

        await step("updateCertificate", async () => {
            // No privateKeyFormat/privateKey: the key is the server's (existing or regenerated by
            // CreateSigningRequest); node-opcua then checks that cert and that key match.
            const res = await pcm.updateCertificate("DefaultApplicationGroup", certificateTypeId, certDer, [caDer]);
            expectGood("updateCertificate", res.statusCode);
            return { applyChangesRequired: res.applyChangesRequired };
        });

        const trustList = await group.getTrustList();
        const readTrustList = () => trustList.readTrustedCertificateListWithMasks(15 /* TrustListMasks.All */);
        const before = await step("trustListBefore", async () => trustListCounts(await readTrustList()));

        const { refused: caRefused } = await step("addCertificate", async () => {
            const status = await trustList.addCertificate(caDer, true);
            const name = statusName(status);
            if (name === "BadCertificateInvalid") {
                // A server taking a CA only with its CRL: the full trust list write brings both.
                if (!args.caCrl) throw new StepError("addCertificate", `${name}: the server takes the CA only with its CRL; pass --ca-crl`);
                return { thumbprint: sha1(caDer), isTrustedCertificate: true, refused: name, expected: true };
            }
            expectGood("addCertificate", status);
            return { thumbprint: sha1(caDer), isTrustedCertificate: true };
        });

        if (args.caCrl) {
            // TrustListType has no AddCrl method: a CRL only gets there by rewriting the whole
            // list. TrustListClient.writeTrustedCertificateList() is unusable in 2.157 (opens with
            // mode Write (0x02) which the server refuses, never calls Write, and sends CloseAndUpdate
            // two arguments), so do Open(WriteEraseExisting)/Write/CloseAndUpdate by hand.
            await step("writeTrustList", async () => {
                const current = await readTrustList();
                const crlDer = readDer(args.caCrl, "X509 CRL");
                const trusted = current.trustedCertificates || [];
                const next = new TrustListDataType({
                    specifiedLists: 15,
                    trustedCertificates: hasCertificate(trusted, caDer) ? trusted : [...trusted, caDer],
                    trustedCrls: [...(current.trustedCrls || []), crlDer],
                    issuerCertificates: current.issuerCertificates || [],
                    issuerCrls: current.issuerCrls || [],
                });
                const stream = new BinaryStream(next.binaryStoreSize());
                next.encode(stream);
                const handle = await trustList.open(OpenFileMode.WriteEraseExisting);
                await trustList.write(stream.buffer);
                const res = await session.call({
                    objectId: trustList.nodeId,
                    methodId: trustList.closeAndUpdateNodeId, // resolved by open() -> ensureInitialized()
                    inputArguments: [{ dataType: DataType.UInt32, value: handle }],
                });
                trustList.fileHandle = 0; // CloseAndUpdate closes the handle (per spec)
                expectGood("writeTrustList", res.statusCode);
                const out = res.outputArguments && res.outputArguments[0];
                return { bytes: stream.buffer.length, closeAndUpdateStatus: statusName(res.statusCode), applyChangesRequired: out ? out.value : null };
            });
        }

        await step("trustListAfter", async () => {
            const list = await readTrustList();
            const after = trustListCounts(list);
            const caTrusted = hasCertificate(list.trustedCertificates, caDer);
            if (caRefused && !caTrusted) throw new StepError("trustListAfter", "the CA refused by addCertificate is not in the list after writeTrustList");
            return { ...after, before, caTrusted, crlPushed: after.trustedCrls + after.issuerCrls > before.trustedCrls + before.issuerCrls };
        });

        await step("applyChanges", async () => {
            const status = await pcm.applyChanges();
            expectGood("applyChanges", status);
            return { status: statusName(status) };
        });

        // node-opcua keeps the channel for ~2 s after ApplyChanges, so this still gets through.
        await step("getRejectedList", async () => {
            const res = await pcm.getRejectedList();
            expectGood("getRejectedList", res.statusCode);
            return { count: (res.certificates || []).length };
        });

        await closeQuietly(client, session);
        client = session = null;

        const { _presented: presented } = await step(
            "newCertificate",
            async () => {
                const r = await waitForNewCertificate(args, tmp, certDer);
                const d = describe("x509", r.presented);
                return { _presented: r.presented, attempts: r.attempts, thumbprint: sha1(r.presented), issuer: d.issuer };
            },
            NEW_CERT_WAIT_MS + 2000
        );

        // A SignAndEncrypt session with the new certificate proves the server also uses the
        // matching (possibly regenerated) private key, not just that it advertises the cert.
        await step("secureSession", async () => {
            let c2 = null;
            let s2 = null;
            try {
                c2 = await makeClient(args, tmp, MessageSecurityMode.SignAndEncrypt, SecurityPolicy.Basic256Sha256);
                await c2.connect(args.endpoint);
                s2 = await c2.createSession(userIdentity);
                const dv = await s2.read({ nodeId: "ns=0;i=2259", attributeId: AttributeIds.Value }); // ServerStatus_State
                return { serverState: dv.value.value, serverCertificateThumbprint: sha1(c2.serverCertificate) };
            } finally {
                await closeQuietly(c2, s2);
            }
        });
        return { result: "ok", pushedThumbprint: sha1(certDer), presentedThumbprint: sha1(presented) };
    } finally {
        await closeQuietly(client, session);
    }
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "node-push-client-"));
    const watchdog = setTimeout(() => {
        emit({ result: "error", step: "overall", status: `timeout after ${OVERALL_TIMEOUT_MS} ms` });
        process.exit(1);
    }, OVERALL_TIMEOUT_MS);
    let code = 1;
    try {
        const final = await run(args, tmp);
        emit(final);
        code = 0;
    } catch (err) {
        const e = err instanceof StepError ? err : new StepError("internal", err && err.stack ? err.stack : String(err));
        process.stderr.write(`node_push_client: ${e.message}\n`);
        emit({ result: "error", step: e.step, status: e.status });
    } finally {
        clearTimeout(watchdog);
        fs.rmSync(tmp, { recursive: true, force: true });
    }
    process.exit(code);
}

main();
