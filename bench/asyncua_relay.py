#!/usr/bin/env python3
"""OPC UA -> MQTT relay written the way such relays usually are: Python asyncua + paho-mqtt.

It is the peer of `iiot bench relay`: the same plc-sim nodes, the same broker, the same sink.

  asyncua_relay.py --url opc.tcp://127.0.0.1:P/ --mqtt-port M --count 10000 \
      --sampling-ms 100 --publishing-ms 1000 --queue-size 10

Connects (SecurityPolicy None, anonymous), creates one subscription with a callback handler,
and monitors `nsu=urn:iiot:plc-sim;s=Fast/{i}` for i in [--first, --first + --count), in
CreateMonitoredItems calls of --chunk nodes. Every data change is published with paho-mqtt as
one small JSON message, QoS 1, to `{--topic-prefix}/{DisplayName}`:

  {"NodeId": "ns=2;s=Fast/7", "DisplayName": "f7", "Value": 123,
   "SourceTimestamp": "2026-01-01T00:00:00.123456Z"}

The display name is `f{i}`, as in the publishednodes.json `iiot bench relay` gives the module.

stdout: with --wait-go, `CONNECTED` once connected (the driver measures the baseline RSS, then
writes a line to stdin); then one line `READY {"items": N, "good": G, "subscribe_seconds": S}` once every chunk
was answered, then nothing until SIGTERM/SIGINT, when it prints `DONE {"published": P}`.
Diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time

import paho.mqtt.client as mqtt
from asyncua import Client, ua

NAMESPACE_URI = "urn:iiot:plc-sim"


def iso(ts) -> str | None:
    if ts is None:
        return None
    # asyncua gives naive UTC datetimes (or aware ones, depending on the version).
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Handler:
    """asyncua callback handler: one MQTT publish (QoS 1) per data change."""

    def __init__(self, mqttc: mqtt.Client, prefix: str, names: dict, qos: int) -> None:
        self.mqttc = mqttc
        self.prefix = prefix
        self.names = names
        self.qos = qos
        self.published = 0

    def datachange_notification(self, node, val, data) -> None:
        name = self.names.get(node.nodeid)
        if name is None:
            return
        dv = data.monitored_item.Value
        body = json.dumps(
            {
                "NodeId": name[0],
                "DisplayName": name[1],
                "Value": val,
                "SourceTimestamp": iso(dv.SourceTimestamp),
            },
            separators=(",", ":"),
        )
        self.mqttc.publish(f"{self.prefix}/{name[1]}", body, qos=self.qos)
        self.published += 1

    def status_change_notification(self, status) -> None:
        print(f"relay: subscription status change {status}", file=sys.stderr)


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--mqtt-host", default="127.0.0.1")
    ap.add_argument("--mqtt-port", type=int, required=True)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--sampling-ms", type=float, default=1000.0)
    ap.add_argument("--publishing-ms", type=float, default=1000.0)
    ap.add_argument("--queue-size", type=int, default=10)
    ap.add_argument("--chunk", type=int, default=1000)
    ap.add_argument("--qos", type=int, default=1, choices=[0, 1])
    ap.add_argument("--topic-prefix", default="relay")
    ap.add_argument(
        "--wait-go",
        action="store_true",
        help="print CONNECTED once connected, then wait for a line on stdin before subscribing",
    )
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, stream=sys.stderr)

    mqttc = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"asyncua-relay-{args.mqtt_port}-{args.first}",
        protocol=mqtt.MQTTv311,
    )
    connected = asyncio.Event()
    loop = asyncio.get_running_loop()
    mqttc.on_connect = lambda c, u, f, rc, p: loop.call_soon_threadsafe(connected.set)
    mqttc.connect(args.mqtt_host, args.mqtt_port, keepalive=60)
    mqttc.loop_start()  # paho's own network thread, as its docs suggest
    await asyncio.wait_for(connected.wait(), 10)

    client = Client(url=args.url, timeout=60)
    client.session_timeout = 600_000
    await client.connect()
    try:
        ns = await client.get_namespace_index(NAMESPACE_URI)
        names = {}
        nodes = []
        for i in range(args.first, args.first + args.count):
            nid = ua.NodeId(f"Fast/{i}", ns)
            names[nid] = (f"ns={ns};s=Fast/{i}", f"f{i}")
            nodes.append(client.get_node(nid))
        handler = Handler(mqttc, args.topic_prefix, names, args.qos)
        if args.wait_go:
            print("CONNECTED", flush=True)
            await loop.run_in_executor(None, sys.stdin.readline)
        t0 = time.monotonic()
        sub = await client.create_subscription(args.publishing_ms, handler)
        good = 0
        for k in range(0, len(nodes), args.chunk):
            handles = await sub.subscribe_data_change(
                nodes[k : k + args.chunk],
                queuesize=args.queue_size,
                sampling_interval=args.sampling_ms,
            )
            good += sum(1 for h in handles if isinstance(h, int))
        ready = {"items": len(nodes), "good": good, "subscribe_seconds": time.monotonic() - t0}
        print("READY " + json.dumps(ready), flush=True)

        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        print("DONE " + json.dumps({"published": handler.published}), flush=True)
    finally:
        try:
            await asyncio.wait_for(client.disconnect(), 5)
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass
        mqttc.loop_stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
