#!/usr/bin/env node
/*
 * GDS push TARGET built on node-opcua: an OPCUAServer with node-opcua's own
 * ServerConfiguration push management (node-opcua-server-configuration 2.157.0,
 * installPushCertificateManagementOnServer). Our GDS pushes certificates and trust lists to it.
 *
 * Usage:
 *   node node_push_server.js --port P --pki DIR --admin-user NAME --admin-password-file FILE
 *        [--host 127.0.0.1] [--trust-client-cert FILE]... [--trust-crl FILE]... [--ignore-missing-crl]
 *
 *   --trust-client-cert FILE  DER or PEM certificate put into DIR/trusted/certs before start
 *                             (repeatable): a self-signed client certificate, or a CA certificate
 *                             to trust the clients it issued. Unknown certificates are refused
 *                             (OpenSecureChannel -> BadSecurityChecksFailed) and filed in DIR/rejected.
 *   --trust-crl FILE          DER or PEM CRL put into DIR/issuers/crl (repeatable).
 *   --ignore-missing-crl      accept CA-issued clients although their issuer has no CRL.
 *
 * CA-issued clients: node-opcua-pki requires a CRL of the issuing CA (DIR/trusted/crl or
 * DIR/issuers/crl), else OpenSecureChannel fails with BadCertificateRevocationUnknown;
 * ignoreMissingRevocationList exists only as a per-call option of verifyCertificate(), hence
 * --ignore-missing-crl. A client refused as BadCertificateChainIncomplete (CA not known yet) is
 * moved to DIR/rejected and stays refused (BadCertificateUntrusted) after its CA is trusted.
 *
 * Users (UserName token; Anonymous is disabled):
 *   NAME     / <password file, trailing newline trimmed>            roles AuthenticatedUser + SecurityAdmin
 *   operator / <same password> + "-operator"                          role  AuthenticatedUser only
 * node-opcua's push methods check SecurityAdmin (server/tools.js hasExpectedUserAccess) and a
 * SignAndEncrypt channel (hasEncryptedChannel).
 *
 * Endpoints (no resource path): Basic256Sha256 Sign and SignAndEncrypt, plus node-opcua's
 * restricted None endpoint that only serves discovery (GetEndpoints/FindServers).
 * ApplicationUri urn:node-push-target:<host>. Server certificate: DIR/own/certs/certificate.pem
 * (the only path node-opcua's push management reads and writes), key DIR/own/private/private_key.pem.
 *
 * stdout, one JSON object per line:
 *   {"ready":true,"endpoint":"opc.tcp://H:P","applicationUri":...,"certificateThumbprint":<sha1 hex>,"at":<ISO time>}
 * and, after every ApplyChanges (also one with nothing pending):
 *   {"event":"certificateChanged","certificateThumbprint":...,"at":...}  files swapped, listener closed
 *   {"event":"endpointsResumed","certificateThumbprint":...,"at":...}    2 s later: channels cut, listening again
 * Logging goes to stderr. SIGTERM/SIGINT -> exit 0.
 */
"use strict";

const util = require("util");
const os = require("os");
const path = require("path");
const fs = require("fs");
const crypto = require("crypto");

// node-opcua logs with console.log; keep stdout for our JSON lines.
const toStderr = (...a) => process.stderr.write(util.format(...a) + "\n");
console.log = toStderr;
console.info = toStderr;
console.warn = toStderr;
console.debug = toStderr;

const { OPCUAServer, OPCUACertificateManager, SecurityPolicy, MessageSecurityMode, makeRoles, nodesets } = require("node-opcua");
const { installPushCertificateManagementOnServer } = require("node-opcua-server-configuration");

function usage() {
    return (
        "usage: node_push_server.js --port P --pki DIR --admin-user NAME --admin-password-file FILE\n" +
        "       [--host 127.0.0.1] [--trust-client-cert FILE]... [--trust-crl FILE]... [--ignore-missing-crl]\n"
    );
}

function fail(msg) {
    process.stderr.write(`node_push_server: ${msg}\n${usage()}`);
    process.exit(2);
}

function parseArgs(argv) {
    const out = { host: "127.0.0.1", trustCerts: [], trustCrls: [], ignoreMissingCrl: false };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const next = () => {
            if (i + 1 >= argv.length) fail(`missing value for ${a}`);
            return argv[++i];
        };
        if (a === "--port") out.port = parseInt(next(), 10);
        else if (a === "--pki") out.pki = path.resolve(next());
        else if (a === "--host") out.host = next();
        else if (a === "--admin-user") out.adminUser = next();
        else if (a === "--admin-password-file") out.passwordFile = next();
        else if (a === "--trust-client-cert") out.trustCerts.push(next());
        else if (a === "--trust-crl") out.trustCrls.push(next());
        else if (a === "--ignore-missing-crl") out.ignoreMissingCrl = true;
        else if (a === "-h" || a === "--help") {
            process.stderr.write(usage());
            process.exit(0);
        } else fail(`unknown argument ${a}`);
    }
    if (!Number.isInteger(out.port) || out.port <= 0 || out.port > 65535) fail("--port P is required");
    if (!out.pki) fail("--pki DIR is required");
    if (!out.adminUser) fail("--admin-user NAME is required");
    if (!out.passwordFile) fail("--admin-password-file FILE is required");
    return out;
}

// DER from a DER or PEM file (first PEM block of the given label).
function readDer(file, label) {
    const buf = fs.readFileSync(file);
    const text = buf.toString("latin1");
    if (!text.includes("-----BEGIN")) return buf;
    const m = text.match(new RegExp(`-----BEGIN ${label}-----([^-]+)-----END ${label}-----`));
    if (!m) throw new Error(`${file}: no PEM block "${label}"`);
    return Buffer.from(m[1].replace(/\s+/g, ""), "base64");
}

const sha1 = (der) => crypto.createHash("sha1").update(der).digest("hex");
const out = (obj) => process.stdout.write(JSON.stringify({ ...obj, at: new Date().toISOString() }) + "\n");

let server = null;
let stopping = false;

async function stop() {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(0), 5000);
    force.unref();
    try {
        if (server) await server.shutdown(0);
    } catch (e) {
        process.stderr.write(`shutdown error: ${e}\n`);
    }
    process.exit(0);
}
// installed first, so SIGTERM during the (few seconds of) startup also exits with code 0
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

async function main() {
    const args = parseArgs(process.argv.slice(2));
    const password = fs.readFileSync(args.passwordFile, "utf8").replace(/\r?\n$/, "");
    const users = {
        [args.adminUser]: { password, roles: "AuthenticatedUser;SecurityAdmin" },
        operator: { password: password + "-operator", roles: "AuthenticatedUser" },
    };
    const applicationUri = `urn:node-push-target:${args.host}`;

    const cm = new OPCUACertificateManager({ rootFolder: args.pki, automaticallyAcceptUnknownCertificate: false });
    if (args.ignoreMissingCrl) {
        // node-opcua-pki 5.7 only honours ignoreMissingRevocationList as a per-call option of
        // verifyCertificate(); OPCUACertificateManager.checkCertificate() calls it without options
        // (node-opcua-certificate-manager/dist/certificate_manager.js:74), so inject it here.
        const verify = cm.verifyCertificate.bind(cm);
        cm.verifyCertificate = (cert, options) => verify(cert, { ...(options || {}), ignoreMissingRevocationList: true });
    }
    await cm.initialize(); // creates DIR/{own,trusted,issuers,rejected} and the 2048-bit private key

    // The push management only ever reads/writes DIR/own/certs/certificate.pem, so the server
    // certificate lives there. node-opcua would create it itself (only FQDN + external IPs); make
    // it here with localhost/127.0.0.1 and an O= in the subject (CreateSigningRequest reuses it).
    const certificateFile = path.join(cm.rootDir, "own/certs/certificate.pem");
    if (!fs.existsSync(certificateFile)) {
        await cm.createSelfSignedCertificate({
            applicationUri,
            dns: [...new Set(["localhost", os.hostname()])],
            ip: ["127.0.0.1"],
            outputFile: certificateFile,
            subject: "/CN=node-opcua push target/O=iiot tests",
            startDate: new Date(),
            validity: 365,
        });
    }
    // Explicit trust only: trustCertificate() files the cert under DIR/trusted/certs.
    for (const f of args.trustCerts) {
        const der = readDer(f, "CERTIFICATE");
        await cm.trustCertificate(der);
        process.stderr.write(`trusted client certificate ${sha1(der)} (${f})\n`);
    }
    for (const f of args.trustCrls) {
        const status = await cm.addRevocationList(readDer(f, "X509 CRL")); // -> DIR/issuers/crl
        process.stderr.write(`added CRL ${f}: ${status}\n`);
    }

    server = new OPCUAServer({
        port: args.port,
        host: args.host,
        hostname: args.host, // host part of the advertised endpoint URL
        nodeset_filename: [nodesets.standard],
        serverCertificateManager: cm,
        // DefaultUserTokenGroup; without this node-opcua uses ~/.config/node-opcua-default-nodejs/UserPKI
        userCertificateManager: new OPCUACertificateManager({ rootFolder: path.join(args.pki, "user-pki") }),
        certificateFile,
        privateKeyFile: cm.privateKey,
        securityPolicies: [SecurityPolicy.Basic256Sha256],
        // Sign too, so clients can check that the push methods insist on SignAndEncrypt
        securityModes: [MessageSecurityMode.Sign, MessageSecurityMode.SignAndEncrypt],
        allowAnonymous: false,
        userManager: {
            isValidUser: (userName, pw) => Object.prototype.hasOwnProperty.call(users, userName) && users[userName].password === pw,
            // a fresh array each call: node-opcua pushes AuthenticatedUser into it
            getUserRoles: (userName) => (users[userName] ? makeRoles(users[userName].roles) : []),
        },
        serverInfo: {
            applicationUri,
            productUri: "urn:node-push-target:product",
            applicationName: { text: "node-opcua push target", locale: "en" },
        },
        buildInfo: { productName: "node-opcua push target", manufacturerName: "iiot tests" },
        isAuditing: false,
    });
    await server.initialize();
    await installPushCertificateManagementOnServer(server);

    // Report the certificate swap. The push manager emits CertificateChanged after moving the
    // pending files into place (ApplyChanges); node-opcua's handler then waits 2 s, cuts all
    // channels and listens again (install_push_certitifate_management.js onCertificateChange).
    const pushManager = server.engine.addressSpace.rootFolder.objects.server.getChildByName("ServerConfiguration").$pushCertificateManager;
    const currentThumbprint = () => sha1(readDer(certificateFile, "CERTIFICATE"));
    pushManager.on("CertificateChanged", () => out({ event: "certificateChanged", certificateThumbprint: currentThumbprint() }));
    const resume = server.resumeEndPoints.bind(server);
    server.resumeEndPoints = async () => {
        await resume();
        out({ event: "endpointsResumed", certificateThumbprint: currentThumbprint() });
    };

    await server.start();
    if (stopping) return;
    out({
        ready: true,
        endpoint: `opc.tcp://${args.host}:${args.port}`,
        applicationUri,
        certificateThumbprint: sha1(server.getCertificate()),
    });
}

main().catch((err) => {
    process.stderr.write(`node_push_server: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
});
