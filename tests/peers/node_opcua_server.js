#!/usr/bin/env node
/*
 * OPC UA interop test peer built on node-opcua (pinned 2.160.0, see package.json).
 *
 * Usage:  node node_opcua_server.js --port P --pki DIR [--host 127.0.0.1] [--cert-uri-first]
 *
 * --cert-uri-first: node-opcua's own certificates list the ApplicationUri LAST in
 * SubjectAltName; async-opcua 0.19 (our module's stack) requires it FIRST and fails the
 * secure CreateSession with BadCertificateUriInvalid. Without the flag the peer behaves like
 * any node-opcua server in the field; with it the server certificate has the URI first.
 *
 * Prints exactly one line to stdout once the server is listening:
 *
 *     READY opc.tcp://127.0.0.1:P/iiot/node-opcua
 *
 * and runs until SIGTERM/SIGINT (exit code 0). Everything node-opcua logs goes to stderr.
 *
 * Endpoints (same URL):
 *   - SecurityPolicy None, mode None              -> Anonymous, UserName
 *   - Basic256Sha256, mode SignAndEncrypt         -> Anonymous, UserName (user1/password)
 * Client certificates: the server's certificate manager (PKI in DIR) has
 * automaticallyAcceptUnknownCertificate=true, so any unknown client certificate is
 * copied to DIR/trusted/certs and accepted. node-opcua still insists that the client
 * certificate's SubjectAltName URI equals the ApplicationUri the client sends in
 * CreateSession (else BadCertificateUriInvalid).
 *
 * Address space (namespace URI urn:iiot:peer:node-opcua, string node ids = path below
 * Objects, BrowseName = last path segment, DisplayName = full id, like plc-sim):
 *   Scalar (folder)   Scalar/Int32 = 42, Scalar/Double = 3.14, Scalar/String = "hello",
 *                     Scalar/Boolean = false, plus SByte Byte Int16 UInt16 UInt32 Int64
 *                     UInt64 Float (0), DateTime (2024-01-01), ByteString (01 02 03); all writable
 *   Array  (folder)   Array/Int32 = [1,2,3], Array/Double = [1,2,3], Array/String = [a,b,c]; writable
 *   Counter           UInt64, read-only, +1 every 100 ms
 *   Methods (object)  Methods/Add(a:Int32, b:Int32) -> sum:Int32 (overflow -> BadOutOfRange;
 *                     node-opcua itself rejects wrongly typed arguments with BadInvalidArgument)
 *                     Methods/Fail() -> BadInternalError
 *   Tree   (folder)   Tree/0..2 (folders), each with Tree/i/0..2 Int32 = i*3+j (read/write)
 */
"use strict";

const util = require("util");
const os = require("os");
const path = require("path");
const fs = require("fs");

// node-opcua logs with console.log; keep stdout for the READY line only.
const toStderr = (...a) => process.stderr.write(util.format(...a) + "\n");
console.log = toStderr;
console.info = toStderr;
console.warn = toStderr;
console.debug = toStderr;

const {
    OPCUAServer,
    OPCUACertificateManager,
    SecurityPolicy,
    MessageSecurityMode,
    Variant,
    DataType,
    VariantArrayType,
    StatusCodes,
    makeAccessLevelFlag,
    nodesets,
} = require("node-opcua");

const NAMESPACE_URI = "urn:iiot:peer:node-opcua";
const APPLICATION_URI = "urn:iiot:peer:node-opcua:server";
const RESOURCE_PATH = "/iiot/node-opcua";
const USERS = { user1: "password" };

function parseArgs(argv) {
    const out = { host: "127.0.0.1" };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const next = () => {
            if (i + 1 >= argv.length) fail(`missing value for ${a}`);
            return argv[++i];
        };
        if (a === "--port") out.port = parseInt(next(), 10);
        else if (a === "--pki") out.pki = next();
        else if (a === "--host") out.host = next();
        else if (a === "--cert-uri-first") out.certUriFirst = true;
        else if (a === "-h" || a === "--help") {
            process.stderr.write("usage: node_opcua_server.js --port P --pki DIR [--host 127.0.0.1] [--cert-uri-first]\n");
            process.exit(0);
        } else fail(`unknown argument ${a}`);
    }
    if (!Number.isInteger(out.port) || out.port <= 0 || out.port > 65535) fail("--port P is required");
    if (!out.pki) fail("--pki DIR is required");
    out.pki = path.resolve(out.pki);
    return out;
}

function fail(msg) {
    process.stderr.write(`node_opcua_server: ${msg}\n`);
    process.exit(2);
}

async function ensureServerCertificate(cm, uriFirst) {
    // node-opcua would create a certificate itself, but only with DNS names (no IP); create
    // it here so strict clients connecting to 127.0.0.1/localhost can verify the host.
    // node-opcua-crypto always writes SubjectAltName as DNS..., IP..., URI (URI last), which
    // async-opcua 0.19 rejects (it takes the *first* SAN entry as the ApplicationUri:
    // BadCertificateUriInvalid). --cert-uri-first builds an otherwise equivalent certificate
    // with the URI first, in a separate file so the two variants can share one PKI dir.
    const certFile = path.join(cm.rootDir, uriFirst ? "own/certs/certificate_uri_first.pem" : "own/certs/certificate.pem");
    if (fs.existsSync(certFile)) return certFile;
    const hostname = os.hostname();
    const dns = [...new Set(["localhost", hostname])];
    if (!uriFirst) {
        await cm.createSelfSignedCertificate({
            applicationUri: APPLICATION_URI,
            dns,
            ip: ["127.0.0.1"],
            outputFile: certFile,
            subject: `/CN=iiot node-opcua peer/O=iiot tests`,
            startDate: new Date(),
            validity: 3650,
        });
        return certFile;
    }
    const x509 = require("@peculiar/x509");
    const nodeCrypto = require("crypto");
    const webcrypto = nodeCrypto.webcrypto;
    const keyPem = fs.readFileSync(cm.privateKey, "utf8"); // created by cm.initialize()
    const alg = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256", publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
    const keys = {
        privateKey: await webcrypto.subtle.importKey(
            "pkcs8",
            nodeCrypto.createPrivateKey(keyPem).export({ type: "pkcs8", format: "der" }),
            alg,
            false,
            ["sign"]
        ),
        publicKey: await webcrypto.subtle.importKey(
            "spki",
            nodeCrypto.createPublicKey(keyPem).export({ type: "spki", format: "der" }),
            alg,
            true,
            ["verify"]
        ),
    };
    const notBefore = new Date(Date.now() - 24 * 3600 * 1000);
    const notAfter = new Date(Date.now() + 3650 * 24 * 3600 * 1000);
    const K = x509.KeyUsageFlags;
    const cert = await x509.X509CertificateGenerator.createSelfSigned(
        {
            serialNumber: nodeCrypto.randomBytes(16).toString("hex").replace(/^[89a-f]/, "1"),
            name: "CN=iiot node-opcua peer, O=iiot tests",
            notBefore,
            notAfter,
            signingAlgorithm: alg,
            keys,
            extensions: [
                new x509.BasicConstraintsExtension(false, undefined, true),
                new x509.KeyUsagesExtension(
                    K.digitalSignature | K.nonRepudiation | K.keyEncipherment | K.dataEncipherment | K.keyCertSign,
                    true
                ),
                new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], true),
                new x509.SubjectAlternativeNameExtension([
                    { type: "url", value: APPLICATION_URI },
                    ...dns.map((d) => ({ type: "dns", value: d })),
                    { type: "ip", value: "127.0.0.1" },
                ]),
                await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
                await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
            ],
        },
        webcrypto
    );
    fs.mkdirSync(path.dirname(certFile), { recursive: true });
    fs.writeFileSync(certFile, cert.toString("pem") + "\n");
    return certFile;
}

// [name, DataType, initial value] of Scalar/*: the four the tests rely on first, then more
// built-in types with plc-sim's initial values.
const SCALARS = [
    ["Int32", DataType.Int32, 42],
    ["Double", DataType.Double, 3.14],
    ["String", DataType.String, "hello"],
    ["Boolean", DataType.Boolean, false],
    ["SByte", DataType.SByte, 0],
    ["Byte", DataType.Byte, 0],
    ["Int16", DataType.Int16, 0],
    ["UInt16", DataType.UInt16, 0],
    ["UInt32", DataType.UInt32, 0],
    ["Int64", DataType.Int64, [0, 0]], // 64-bit ints are [high, low] UInt32 pairs in node-opcua
    ["UInt64", DataType.UInt64, [0, 0]],
    ["Float", DataType.Float, 0],
    ["DateTime", DataType.DateTime, new Date(Date.UTC(2024, 0, 1))],
    ["ByteString", DataType.ByteString, Buffer.from([1, 2, 3])],
];
const ARRAYS = [
    ["Int32", DataType.Int32, new Int32Array([1, 2, 3])],
    ["Double", DataType.Double, new Float64Array([1, 2, 3])],
    ["String", DataType.String, ["a", "b", "c"]],
];

function buildAddressSpace(server) {
    const addressSpace = server.engine.addressSpace;
    const ns = addressSpace.registerNamespace(NAMESPACE_URI);
    const objects = addressSpace.rootFolder.objects;
    const rw = makeAccessLevelFlag("CurrentRead | CurrentWrite");
    const ro = makeAccessLevelFlag("CurrentRead");
    // like plc-sim: BrowseName = last path segment, DisplayName = full id
    const names = (path) => ({ nodeId: `s=${path}`, browseName: path.split("/").pop(), displayName: path });

    const addFolder = (parent, path) => ns.addFolder(parent, names(path));
    const addVar = (parent, path, dataType, value, opts = {}) =>
        ns.addVariable({
            ...names(path),
            organizedBy: parent,
            dataType,
            valueRank: opts.array ? 1 : -1,
            arrayDimensions: opts.array ? [0] : null,
            accessLevel: opts.readOnly ? ro : rw,
            userAccessLevel: opts.readOnly ? ro : rw,
            value: new Variant({
                dataType,
                arrayType: opts.array ? VariantArrayType.Array : VariantArrayType.Scalar,
                value,
            }),
        });

    const scalar = addFolder(objects, "Scalar");
    for (const [name, dataType, value] of SCALARS) addVar(scalar, `Scalar/${name}`, dataType, value);

    const array = addFolder(objects, "Array");
    for (const [name, dataType, value] of ARRAYS) addVar(array, `Array/${name}`, dataType, value, { array: true });

    let count = 0;
    const counter = addVar(objects, "Counter", DataType.UInt64, [0, 0], { readOnly: true });
    const timer = setInterval(() => {
        count += 1;
        counter.setValueFromSource(
            new Variant({
                dataType: DataType.UInt64,
                arrayType: VariantArrayType.Scalar,
                value: [Math.floor(count / 0x100000000), count >>> 0],
            })
        );
    }, 100);

    const methods = ns.addObject({ ...names("Methods"), organizedBy: objects });
    const add = ns.addMethod(methods, {
        ...names("Methods/Add"),
        inputArguments: [
            { name: "a", description: { text: "first addend" }, dataType: DataType.Int32, valueRank: -1 },
            { name: "b", description: { text: "second addend" }, dataType: DataType.Int32, valueRank: -1 },
        ],
        outputArguments: [{ name: "sum", description: { text: "a + b" }, dataType: DataType.Int32, valueRank: -1 }],
    });
    // node-opcua checks argument count and types against InputArguments before calling us
    add.bindMethod(async (inputArguments, _context) => {
        const sum = inputArguments[0].value + inputArguments[1].value;
        if (sum < -0x80000000 || sum > 0x7fffffff) return { statusCode: StatusCodes.BadOutOfRange };
        return { statusCode: StatusCodes.Good, outputArguments: [{ dataType: DataType.Int32, value: sum }] };
    });
    // no InputArguments/OutputArguments properties, like plc-sim
    const failM = ns.addMethod(methods, names("Methods/Fail"));
    failM.bindMethod(async (inputArguments, _context) => ({
        statusCode: inputArguments && inputArguments.length ? StatusCodes.BadTooManyArguments : StatusCodes.BadInternalError,
    }));

    const tree = addFolder(objects, "Tree");
    for (let i = 0; i < 3; i++) {
        const sub = addFolder(tree, `Tree/${i}`);
        // value = ordinal among the leaves, like plc-sim's Tree
        for (let j = 0; j < 3; j++) addVar(sub, `Tree/${i}/${j}`, DataType.Int32, i * 3 + j);
    }
    return { ns, timer };
}

let server = null;
let timer = null;
let stopping = false;

async function stop() {
    if (stopping) return;
    stopping = true;
    if (timer) clearInterval(timer);
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

    const serverCertificateManager = new OPCUACertificateManager({
        rootFolder: args.pki,
        automaticallyAcceptUnknownCertificate: true,
    });
    await serverCertificateManager.initialize();
    const certificateFile = await ensureServerCertificate(serverCertificateManager, !!args.certUriFirst);

    server = new OPCUAServer({
        port: args.port,
        host: args.host, // listen address
        hostname: args.host, // host part of the advertised endpoint URL
        resourcePath: RESOURCE_PATH,
        nodeset_filename: [nodesets.standard],
        serverCertificateManager,
        certificateFile,
        securityPolicies: [SecurityPolicy.None, SecurityPolicy.Basic256Sha256],
        securityModes: [MessageSecurityMode.None, MessageSecurityMode.SignAndEncrypt],
        allowAnonymous: true,
        userManager: {
            isValidUser: (userName, password) => Object.prototype.hasOwnProperty.call(USERS, userName) && USERS[userName] === password,
        },
        serverInfo: {
            applicationUri: APPLICATION_URI,
            productUri: "urn:iiot:peer:node-opcua:product",
            applicationName: { text: "iiot node-opcua peer", locale: "en" },
        },
        buildInfo: { productName: "iiot node-opcua peer", manufacturerName: "iiot tests" },
        serverCapabilities: { maxSessions: 100 },
        maxConnectionsPerEndpoint: 100,
        isAuditing: false,
        disableDiscovery: false,
    });

    await server.initialize();
    timer = buildAddressSpace(server).timer;
    await server.start();
    if (stopping) return;

    const url = `opc.tcp://${args.host}:${args.port}${RESOURCE_PATH}`;
    process.stdout.write(`READY ${url}\n`);
}

main().catch((err) => {
    process.stderr.write(`node_opcua_server: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
});
