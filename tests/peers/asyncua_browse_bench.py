#!/usr/bin/env python3
"""Browse benchmark with an independent OPC UA client (Python asyncua).

Usage:
  asyncua_browse_bench.py --url opc.tcp://127.0.0.1:P/ --root "nsu=urn:iiot:plc-sim;s=Tree"
  asyncua_browse_bench.py --url opc.tcp://127.0.0.1:P/ --root "ns=2;s=Tree"

Connects (SecurityPolicy None, anonymous), then browses the whole subtree below
--root: forward HierarchicalReferences (incl. subtypes), breadth first, each
level sent as Browse requests of up to --batch nodes, up to --concurrency
requests in flight, continuation points followed with BrowseNext.  Every node
reached is browsed in turn (also variables and methods, whose properties count).
Nodes are de-duplicated by NodeId; references to other servers are not followed.

Prints exactly one JSON line on stdout:
  {"nodes": N, "seconds": S}
N counts the root itself plus every distinct node below it (the peers' Tree:
1 + 3 folders + 9 variables = 13).  S is the wall time of the browse only
(connect and namespace lookup excluded).  Diagnostics go to stderr (--verbose).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time

from asyncua import Client, ua

HIERARCHICAL = ua.NodeId(ua.ObjectIds.HierarchicalReferences)


def parse_root(text: str, namespaces: list[str]) -> ua.NodeId:
    """Accept ns=<i>;..., nsu=<uri>;... and plain i=/s=/g=/b= node ids."""
    nid = ua.NodeId.from_string(text)
    uri = getattr(nid, "NamespaceUri", None)
    if uri:
        if uri not in namespaces:
            raise SystemExit(f"namespace {uri!r} not on server; NamespaceArray = {namespaces}")
        return ua.NodeId(nid.Identifier, namespaces.index(uri), nid.NodeIdType)
    return ua.NodeId(nid.Identifier, nid.NamespaceIndex, nid.NodeIdType)


def key(nid: ua.NodeId):
    return (nid.NamespaceIndex, nid.NodeIdType, nid.Identifier)


async def server_max_nodes_per_browse(client: Client) -> int:
    try:
        node = client.get_node(ua.NodeId(ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerBrowse))
        return int(await node.read_value() or 0)
    except Exception:
        return 0


class Browser:
    def __init__(self, client: Client, batch: int, concurrency: int, max_refs: int, result_mask: int):
        self.ua = client.uaclient
        self.batch = batch
        self.sem = asyncio.Semaphore(concurrency)
        self.max_refs = max_refs
        self.result_mask = result_mask
        self.requests = 0
        self.browse_next = 0

    def _desc(self, nid: ua.NodeId) -> ua.BrowseDescription:
        d = ua.BrowseDescription()
        d.NodeId = nid
        d.BrowseDirection = ua.BrowseDirection.Forward
        d.ReferenceTypeId = HIERARCHICAL
        d.IncludeSubtypes = True
        d.NodeClassMask = 0
        d.ResultMask = self.result_mask
        return d

    async def _browse_batch(self, nodes: list[ua.NodeId]) -> list[ua.ReferenceDescription]:
        params = ua.BrowseParameters()
        params.View = ua.ViewDescription()
        params.RequestedMaxReferencesPerNode = self.max_refs
        params.NodesToBrowse = [self._desc(n) for n in nodes]
        refs: list[ua.ReferenceDescription] = []
        async with self.sem:
            self.requests += 1
            results = await self.ua.browse(params)
            pending: list[bytes] = []
            for nid, res in zip(nodes, results):
                if res.StatusCode.is_bad():
                    logging.warning("browse %s: %s", nid.to_string(), res.StatusCode)
                    continue
                refs.extend(res.References or [])
                if res.ContinuationPoint:
                    pending.append(res.ContinuationPoint)
            while pending:
                nparams = ua.BrowseNextParameters()
                nparams.ReleaseContinuationPoints = False
                nparams.ContinuationPoints = pending
                self.browse_next += 1
                results = await self.ua.browse_next(nparams)
                pending = []
                for res in results:
                    if res.StatusCode.is_bad():
                        logging.warning("browse next: %s", res.StatusCode)
                        continue
                    refs.extend(res.References or [])
                    if res.ContinuationPoint:
                        pending.append(res.ContinuationPoint)
        return refs

    async def walk(self, root: ua.NodeId) -> int:
        seen = {key(root)}
        level = [root]
        while level:
            chunks = [level[i : i + self.batch] for i in range(0, len(level), self.batch)]
            batches = await asyncio.gather(*(self._browse_batch(c) for c in chunks))
            nxt: list[ua.NodeId] = []
            for refs in batches:
                for ref in refs:
                    target = ref.NodeId
                    if getattr(target, "ServerIndex", 0):
                        continue  # lives on another server
                    nid = ua.NodeId(target.Identifier, target.NamespaceIndex, target.NodeIdType)
                    k = key(nid)
                    if k not in seen:
                        seen.add(k)
                        nxt.append(nid)
            level = nxt
        return len(seen)


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--root", required=True, help='e.g. "nsu=urn:iiot:plc-sim;s=Tree" or "ns=2;s=Tree"')
    ap.add_argument("--batch", type=int, default=1000, help="nodes per Browse request (capped by the server's MaxNodesPerBrowse)")
    ap.add_argument("--concurrency", type=int, default=4, help="Browse requests in flight")
    ap.add_argument("--max-refs", type=int, default=1000, help="RequestedMaxReferencesPerNode (0 = server decides)")
    ap.add_argument("--result-mask", choices=["all", "minimal"], default="all",
                    help="all = every ReferenceDescription field (BrowseName, DisplayName, NodeClass, TypeDefinition...); "
                    "minimal = NodeClass only")
    ap.add_argument("--timeout", type=float, default=120.0, help="per-request timeout in seconds")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, stream=sys.stderr)

    mask = ua.BrowseResultMask.All if args.result_mask == "all" else ua.BrowseResultMask.NodeClass
    client = Client(url=args.url, timeout=args.timeout)
    async with client:
        namespaces = await client.get_namespace_array()
        root = parse_root(args.root, namespaces)
        limit = await server_max_nodes_per_browse(client)
        batch = max(1, min(args.batch, limit) if limit > 0 else args.batch)
        browser = Browser(client, batch, max(1, args.concurrency), args.max_refs, int(mask))
        t0 = time.perf_counter()
        n = await browser.walk(root)
        seconds = time.perf_counter() - t0
    logging.info(
        "root=%s batch=%d (server MaxNodesPerBrowse=%d) browse requests=%d browse_next=%d",
        root.to_string(), batch, limit, browser.requests, browser.browse_next,
    )
    print(json.dumps({"nodes": n, "seconds": round(seconds, 6)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
