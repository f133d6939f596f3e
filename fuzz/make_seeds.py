#!/usr/bin/env python3
"""Writes the committed seed corpus, fuzz/seeds/<target>/ (a few small, valid, hand-made inputs
per fuzz target), and the hand-made regression inputs under fuzz/regressions/<target>/ (OPC UA Part 6 binary encoding, written out by hand here so that the seeds do not
depend on the encoder under test). Re-run after changing it: python3 fuzz/make_seeds.py
"""
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")


def u8(v): return struct.pack("<B", v)
def u16(v): return struct.pack("<H", v)
def u32(v): return struct.pack("<I", v)
def i32(v): return struct.pack("<i", v)
def i64(v): return struct.pack("<q", v)
def f64(v): return struct.pack("<d", v)


def string(s):
    if s is None:
        return i32(-1)
    b = s.encode() if isinstance(s, str) else s
    return i32(len(b)) + b


def node_id(i, ns=0):
    if ns == 0 and i < 256:
        return u8(0) + u8(i)
    if ns < 256 and i < 65536:
        return u8(1) + u8(ns) + u16(i)
    return u8(2) + u16(ns) + u32(i)


def string_node_id(ns, s):
    return u8(3) + u16(ns) + string(s)


NOW = 133_000_000_000_000_000  # a DateTime (100 ns ticks since 1601)
NULL_EO = node_id(0) + u8(0)   # null ExtensionObject


def extension_object(type_id, body):
    return node_id(type_id) + u8(1) + i32(len(body)) + body


def variant_scalar(type_id, encoded):
    return u8(type_id) + encoded


def variant_array(type_id, items, dims=None):
    out = u8(type_id | 0x80 | (0x40 if dims else 0)) + i32(len(items)) + b"".join(items)
    if dims:
        out += i32(len(dims)) + b"".join(i32(d) for d in dims)
    return out


def data_value(variant=None, status=None, src_ts=None, srv_ts=None):
    mask, out = 0, b""
    if variant is not None:
        mask |= 0x01
        out += variant
    if status is not None:
        mask |= 0x02
        out += u32(status)
    if src_ts is not None:
        mask |= 0x04
        out += i64(src_ts)
    if srv_ts is not None:
        mask |= 0x08
        out += i64(srv_ts)
    return u8(mask) + out


def diagnostic_info(symbolic_id=None, additional=None, inner_status=None, inner=None):
    mask, out = 0, b""
    if symbolic_id is not None:
        mask |= 0x01
        out += i32(symbolic_id)
    if additional is not None:
        mask |= 0x10
        out += string(additional)
    if inner_status is not None:
        mask |= 0x20
        out += u32(inner_status)
    if inner is not None:
        mask |= 0x40
        out += inner
    return u8(mask) + out


def request_header(handle=1):
    return (node_id(0) + i64(NOW) + u32(handle) + u32(0) + string(None) + u32(10000)
            + NULL_EO)


def response_header(handle=1, result=0):
    return i64(NOW) + u32(handle) + u32(result) + u8(0) + i32(-1) + NULL_EO


# Encoding ids (…_Encoding_DefaultBinary) of the services used below.
OPEN_SECURE_CHANNEL_REQUEST, OPEN_SECURE_CHANNEL_RESPONSE = 446, 449
GET_ENDPOINTS_REQUEST = 428
READ_REQUEST, READ_RESPONSE = 631, 634
WRITE_REQUEST = 673
SERVICE_FAULT = 397


def read_value_id(nid, attribute=13):
    return nid + u32(attribute) + string(None) + u16(0) + string(None)


def open_secure_channel_request():
    return (node_id(OPEN_SECURE_CHANNEL_REQUEST) + request_header() + u32(0) + i32(0) + i32(1)
            + string(b"") + u32(3_600_000))


def open_secure_channel_response():
    return (node_id(OPEN_SECURE_CHANNEL_RESPONSE) + response_header() + u32(0)
            + u32(1) + u32(1) + i64(NOW) + u32(3_600_000) + string(b""))


def get_endpoints_request():
    return (node_id(GET_ENDPOINTS_REQUEST) + request_header(2)
            + string("opc.tcp://localhost:4840") + i32(-1) + i32(-1))


def read_request():
    nodes = [read_value_id(node_id(2258)), read_value_id(string_node_id(2, "Scalar/Int32"))]
    return (node_id(READ_REQUEST) + request_header(3) + f64(0.0) + i32(2)
            + i32(len(nodes)) + b"".join(nodes))


def write_request():
    value = data_value(variant_scalar(6, i32(42)))
    write_value = string_node_id(2, "Scalar/Int32") + u32(13) + string(None) + value
    return node_id(WRITE_REQUEST) + request_header(4) + i32(1) + write_value


def read_response():
    results = [
        data_value(variant_scalar(13, i64(NOW)), src_ts=NOW, srv_ts=NOW),
        data_value(variant_scalar(6, i32(-7)), status=0),
        data_value(variant_array(11, [f64(1.5), f64(2.5)])),
        data_value(status=0x80340000),
    ]
    return (node_id(READ_RESPONSE) + response_header(3) + i32(len(results)) + b"".join(results)
            + i32(-1))


def service_fault():
    return node_id(SERVICE_FAULT) + response_header(5, 0x80010000)


NONE_POLICY = "http://opcfoundation.org/UA/SecurityPolicy#None"


def chunk(kind, body, seq, req_id, final=b"F", channel=1):
    if kind == b"OPN":
        security = string(NONE_POLICY) + string(None) + string(None)
    else:
        security = u32(1)  # token id
    rest = security + u32(seq) + u32(req_id) + body
    return kind + final + u32(12 + len(rest)) + u32(channel) + rest


def hello():
    rest = u32(0) + u32(65536) + u32(65536) + u32(0) + u32(0) + string("opc.tcp://localhost:4840")
    return b"HELF" + u32(8 + len(rest)) + rest


def acknowledge():
    rest = u32(0) + u32(65536) + u32(65536) + u32(0) + u32(0)
    return b"ACKF" + u32(8 + len(rest)) + rest


def error_message():
    rest = u32(0x80820000) + string("bye")
    return b"ERRF" + u32(8 + len(rest)) + rest


def split_chunks(body, seq, req_id, parts=2):
    n = (len(body) + parts - 1) // parts
    pieces = [body[i:i + n] for i in range(0, len(body), n)]
    return b"".join(
        chunk(b"MSG", p, seq + k, req_id, b"F" if k == len(pieces) - 1 else b"C")
        for k, p in enumerate(pieces))


SEEDS = {
    "chunk_server": {
        "hello_opn_read": b"\x00" + hello() + chunk(b"OPN", open_secure_channel_request(), 1, 1)
        + chunk(b"MSG", read_request(), 2, 2),
        "get_endpoints": b"\x00" + chunk(b"MSG", get_endpoints_request(), 1, 1),
        "write_two_chunks": b"\x00" + split_chunks(write_request(), 1, 7),
        "sign_channel_msg": b"\x01" + chunk(b"MSG", read_request(), 1, 1),
        "encrypt_channel_msg": b"\x02" + chunk(b"MSG", read_request(), 1, 1),
    },
    "chunk_client": {
        "ack_opn_read": b"\x00" + acknowledge() + chunk(b"OPN", open_secure_channel_response(), 1, 1)
        + chunk(b"MSG", read_response(), 2, 2),
        "service_fault": b"\x00" + chunk(b"MSG", service_fault(), 1, 5),
        "read_two_chunks": b"\x00" + split_chunks(read_response(), 1, 3),
        "final_error": b"\x00" + chunk(b"MSG", u32(0x80340000) + string("no"), 1, 9, b"A"),
        "error": b"\x00" + error_message(),
        "sign_channel_msg": b"\x01" + chunk(b"MSG", read_response(), 1, 1),
    },
    "message": {
        "open_secure_channel_request": b"\x00" + open_secure_channel_request(),
        "read_request": b"\x00" + read_request(),
        "write_request": b"\x00" + write_request(),
        "read_response": b"\x01" + read_response(),
        "service_fault": b"\x01" + service_fault(),
    },
    "variant": {
        "int32": variant_scalar(6, i32(42)),
        "string": variant_scalar(12, string("hello")),
        "double_matrix": variant_array(11, [f64(v) for v in range(6)], dims=[2, 3]),
        "nested_variant": variant_scalar(24, variant_scalar(1, u8(1))),
        "data_value": variant_scalar(23, data_value(variant_scalar(7, u32(7)), status=0)),
        "localized_text": variant_scalar(21, u8(3) + string("en") + string("text")),
        "extension_object": variant_scalar(22, extension_object(321, string("anonymous"))),
    },
    "data_value": {
        "full": data_value(variant_scalar(6, i32(1)), 0, NOW, NOW),
        "status_only": data_value(status=0x80340000),
        "string_array": data_value(variant_array(12, [string("a"), string(None)])),
        "nested": data_value(variant_scalar(23, data_value(variant_scalar(3, u8(9))))),
    },
    "diagnostic_info": {
        "empty": diagnostic_info(),
        "symbolic": diagnostic_info(symbolic_id=3, additional="detail"),
        "nested": diagnostic_info(inner_status=0x80340000,
                                  inner=diagnostic_info(symbolic_id=1, inner=diagnostic_info())),
    },
    "extension_object": {
        "null": NULL_EO,
        "anonymous_token": extension_object(321, string("anonymous")),
        "username_token": extension_object(
            324, string("username") + string("user") + string(b"secret") + string(None)),
        "unknown_type": node_id(5, 2) + u8(1) + i32(3) + b"abc",
        "argument": extension_object(
            298, string("x") + node_id(6) + i32(-1) + i32(-1) + u8(0)),
    },
    "variant_to_json": {
        "int32": b"\x00" + variant_scalar(6, i32(42)),
        "float_nan": b"\x00" + variant_scalar(10, bytes.fromhex("0000c07f")),
        "matrix": b"\x00" + variant_array(6, [i32(v) for v in range(6)], dims=[3, 2]),
        "qualified_name": b"\x00" + variant_scalar(20, u16(2) + string("Name")),
        "node_id": b"\x00" + variant_scalar(17, string_node_id(1, "Fast/0")),
        "status_code": b"\x00" + variant_scalar(19, u32(0x80340000)),
        "data_value": b"\x01" + data_value(variant_scalar(12, string("s")), 0, NOW, NOW),
        "extension_object": b"\x00" + variant_scalar(22, extension_object(321, string("x"))),
    },
    "node_id": {
        "numeric": b"i=85",
        "ns_string": b"ns=2;s=Scalar/Int32",
        "nsu": b"nsu=urn:iiot:plc-sim;s=Fast/0",
        "uri_hash": b"urn:iiot:plc-sim#i=1001",
        "guid": b"g=72962b91-fa75-4ae6-8d28-b404dc7daf63",
        "opaque": b"ns=1;b=AAEC",
        "uri_with_hash": b"http://example.com/ns#frag#s=x",
        "expanded": b"svr=1;nsu=urn:x;i=1",
    },
    "json_value": {
        "int32": bytes([5, 0]) + b"42",
        "double_string": bytes([10, 0]) + b'"NaN"',
        "bool_array": bytes([0, 1]) + b"[true, false, 1]",
        "matrix": bytes([5, 1]) + b"[[1,2],[3,4]]",
        "datetime": bytes([12, 0]) + b'"2024-01-02T03:04:05.123Z"',
        "guid": bytes([13, 0]) + b'"72962b91-fa75-4ae6-8d28-b404dc7daf63"',
        "bytestring": bytes([14, 0]) + b'"AAEC"',
        "node_id": bytes([16, 2]) + b'"nsu=urn:iiot:plc-sim;s=Fast/0"',
        "status": bytes([18, 0]) + b'{"Code": 2150891520}',
        "qualified_name": bytes([19, 0]) + b'"urn:iiot:plc-sim#Name"',
        "localized_text": bytes([20, 0]) + b'{"Locale": "en", "Text": "hi"}',
        "variant": bytes([23, 1]) + b'[1, "a", 2.5]',
    },
    "scan_ranges": {
        "single": b"127.0.0.1\n4840",
        "cidr": b"192.168.1.0/24\n4840-4841",
        "range_list": b"10.0.0.1-10.0.0.9; 10.0.1.1\n4840,48010;53530",
        "too_large": b"10.0.0.0/8\n1-65535",
    },
    "request_body": {
        "value_read": b"\x00" + b'{"connection":{"endpoint":{"url":"opc.tcp://localhost:4840",'
        b'"securityMode":"None"}},"request":{"nodeId":"nsu=urn:iiot:plc-sim;s=Fast/0"}}',
        "value_write": b"\x02" + b'{"connection":{"endpoint":{"url":"opc.tcp://plc:4840"},'
        b'"user":{"type":"UserName","value":{"user":"u","password":"p"}}},'
        b'"request":{"nodeId":"ns=2;s=Scalar/Int32","value":42,"dataType":"Int32"}}',
        "node_read": b"\x01" + b'{"connection":{"endpoint":{"url":"opc.tcp://h:1"}},'
        b'"request":{"attributes":[{"nodeId":"i=2258","attribute":"Value"}]}}',
        "browse_first": b"\x04" + b'{"connection":{"endpoint":{"url":"opc.tcp://h:1"}},'
        b'"request":{"nodeId":"i=85","direction":"Forward","maxReferencesToReturn":10}}',
        "method_call": b"\x08" + b'{"connection":{"endpoint":{"url":"opc.tcp://h:1"}},'
        b'"request":{"methodId":"ns=2;s=Methods/Add","objectId":"ns=2;s=Methods",'
        b'"arguments":[{"value":1,"dataType":"Int32"},{"value":2,"dataType":"Int32"}]}}',
        "capabilities_null": b"\x09" + b'{"connection":{"endpoint":{"url":"opc.tcp://h:1"}},'
        b'"request":null}',
        "endpoint": b"\x0a" + b'{"url":"opc.tcp://h:1","securityPolicy":'
        b'"http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256"}',
        "discover": b"\x0e" + b'{"id":"r1","discovery":"Scan","configuration":'
        b'{"addressRangesToScan":"127.0.0.1/32","portRangesToScan":"4840"}}',
        "whitespace": b"\x0f" + b"  \n",
    },
}


# Regression inputs, fuzz/regressions/<target>/: each must decode to an error, never crash.
# Deep nesting that async-opcua-types 0.19.0 decodes by unbounded recursion, overflowing the
# stack (the process aborts): DiagnosticInfo's inner DiagnosticInfo, and a Variant holding a
# DataValue holding a Variant... (Variant only counted Variant-in-Variant and ExtensionObject
# nesting). Upstream 0.19.0 overflows a 2 MiB stack (a tokio worker's) at about 2,000
# Variant/DataValue levels and 7,500 DiagnosticInfo levels; fixed by the depth checks in
# vendor/async-opcua-types (vendor/PATCHES.md).
DEEP_DIAGNOSTIC_INFO = b"\x40" * 10000 + b"\x00"
DEEP_VARIANT = b"\x17\x01" * 4000 + b"\x00"     # Variant(DataValue{value: Variant(...)})
DEEP_DATA_VALUE = b"\x01\x17" * 4000 + b"\x00"  # DataValue{value: Variant(DataValue{...})}


def deep_read_response():
    # What a hostile server answers to the module's ValueRead.
    return (node_id(READ_RESPONSE) + response_header(3) + i32(1) + DEEP_DATA_VALUE + i32(-1))


def deep_write_request():
    # What a hostile client sends to plc-sim.
    write_value = string_node_id(2, "Scalar/Int32") + u32(13) + string(None) + DEEP_DATA_VALUE
    return node_id(WRITE_REQUEST) + request_header(4) + i32(1) + write_value


def deep_service_fault():
    # A ServiceFault whose response header carries the deep DiagnosticInfo.
    header = i64(NOW) + u32(5) + u32(0x80010000) + DEEP_DIAGNOSTIC_INFO + i32(-1) + NULL_EO
    return node_id(SERVICE_FAULT) + header


# Found by the fuzzers (data_value, extension_object, variant, variant_to_json), open in
# async-opcua-types 0.19.0: `Argument::decode` pads `arrayDimensions` with zeros up to
# `valueRank`, a 32-bit number from the input, so this 16-byte Argument allocates 8 GiB
# (0x7fffffff u32s); the process aborts on the failed allocation or is OOM-killed. Arguments
# come in method calls (plc-sim) and in InputArguments/OutputArguments values the module reads
# for MethodMetadata/MethodCall.
ARGUMENT_HUGE_RANK = extension_object(
    298, string("x") + node_id(6) + i32(0x7FFFFFFF) + i32(0) + u8(0))
ARGUMENT_VALUE = data_value(variant_scalar(22, ARGUMENT_HUGE_RANK))


def argument_read_response():
    return node_id(READ_RESPONSE) + response_header(3) + i32(1) + ARGUMENT_VALUE + i32(-1)


def argument_write_request():
    write_value = string_node_id(2, "Scalar/Int32") + u32(13) + string(None) + ARGUMENT_VALUE
    return node_id(WRITE_REQUEST) + request_header(4) + i32(1) + write_value


# Found by chunk_client / chunk_server, open in async-opcua-core 0.19.0: on a channel in Sign or
# SignAndEncrypt mode, `SecureChannel::verify_and_remove_security[_server]` computes
# `message_size - signature_size` (32 for Basic256Sha256) before checking either, so a MSG
# chunk shorter than the signature (here 16 bytes, no valid signature needed) panics: overflow
# in debug builds, an out-of-range slice in release builds.
SHORT_MSG_CHUNK = b"MSGF" + u32(16) + u32(1) + u32(1)

REGRESSIONS = {
    "diagnostic_info": {"deep_inner_diagnostic_info": DEEP_DIAGNOSTIC_INFO},
    "variant": {
        "deep_variant_data_value": DEEP_VARIANT,
        "argument_huge_value_rank": variant_scalar(22, ARGUMENT_HUGE_RANK),
    },
    "data_value": {
        "deep_data_value_variant": DEEP_DATA_VALUE,
        "argument_huge_value_rank": ARGUMENT_VALUE,
    },
    "extension_object": {
        "argument_huge_value_rank": ARGUMENT_HUGE_RANK,
        # Found by variant, open in async-opcua-types 0.19.0: an Argument with valueRank <= 0
        # and arrayDimensions [1]: `byte_len` counts the dimensions (8 bytes) but `encode`
        # writes an empty array (4 bytes), so the ExtensionObject's length prefix is wrong and
        # the chunker pads the message: whoever re-encodes it (a server serving a stored value)
        # sends a corrupt message.
        "argument_byte_len_mismatch": extension_object(
            298, string("x") + node_id(6) + i32(0) + i32(1) + u32(1) + u8(0)),
    },
    "variant_to_json": {
        "deep_data_value_variant": b"\x01" + DEEP_DATA_VALUE,
        "argument_huge_value_rank": b"\x01" + ARGUMENT_VALUE,
    },
    "message": {
        "deep_read_response": b"\x01" + deep_read_response(),
        "deep_write_request": b"\x00" + deep_write_request(),
        "argument_read_response": b"\x01" + argument_read_response(),
        "argument_write_request": b"\x00" + argument_write_request(),
    },
    "chunk_client": {
        "deep_read_response": b"\x00" + chunk(b"MSG", deep_read_response(), 1, 3),
        "deep_service_fault": b"\x00" + chunk(b"MSG", deep_service_fault(), 1, 5),
        "argument_read_response": b"\x00" + chunk(b"MSG", argument_read_response(), 1, 3),
        "sign_short_chunk": b"\x01" + SHORT_MSG_CHUNK,
    },
    "chunk_server": {
        "deep_write_request": b"\x00" + chunk(b"MSG", deep_write_request(), 1, 4),
        "argument_write_request": b"\x00" + chunk(b"MSG", argument_write_request(), 1, 4),
        "sign_and_encrypt_short_chunk": b"\x02" + SHORT_MSG_CHUNK,
    },
    # iiot-module, open (found by json_value): what `to_json` writes for a value that
    # `from_json` accepted must be accepted again as the same value.
    "json_value": {
        # A null XmlElement is written as the JSON string "[null]" (Display of a null
        # UAString) instead of null.
        "null_xml_element": bytes([15, 0]) + b"null",
        # QualifiedName 0:"1:x" is written "1:x", which reads back as 1:"x".
        "qualified_name_ns0_with_colon": bytes([19, 0]) + b'"0:1:x"',
        # DateTime is written with milliseconds only: 05.1234567 reads back as 05.123.
        "datetime_sub_millisecond": bytes([12, 0]) + b'"2024-01-02T03:04:05.1234567Z"',
    },
    # iiot-module, open (found by node_id): every NamespaceFormat of a parsed node id must parse
    # back to the same node.
    "node_id": {
        # PANIC: `Namespaces::parse` passes the text after "nsu=<uri>;" to async-opcua-types'
        # `Identifier::from_str`, which slices `&s[..2]` and panics when byte 2 is inside a
        # multi-byte character.
        "nsu_non_ascii_identifier": "nsu=urn:iiot:plc-sim;sé".encode(),
        # A string identifier containing '#' cannot be read back in the default `Uri` form:
        # ns=2;s=a#b is written "http://example.com/ns#frag#s=a#b", which `parse` splits at the
        # last '#' and refuses as malformed.
        "string_id_with_hash": b"ns=2;s=a#b",
        # A namespace URI containing ';' is written unescaped in the `Expanded` form
        # ("nsu=urn:a;b=c;i=1"), which `parse` splits at the first ';'.
        "namespace_uri_with_semicolon": b"urn:a;b=c#i=1",
        # An empty string identifier is accepted in the `uri#s=` form but its `Index` form
        # "ns=1;s=" is refused.
        "empty_string_id": b"urn:iiot:plc-sim#s=",
    },
}


def write_all(root, table):
    for target, inputs in table.items():
        d = os.path.join(root, target)
        os.makedirs(d, exist_ok=True)
        for name, data in inputs.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)


def main():
    write_all(ROOT, SEEDS)
    write_all(os.path.join(os.path.dirname(ROOT), "regressions"), REGRESSIONS)


if __name__ == "__main__":
    main()
