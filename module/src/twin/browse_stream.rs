//! BrowseStream: a whole subtree browsed by the module and streamed to the caller as JSON
//! lines, one `BrowseStreamChunkModel` per reference.
//!
//! Walking a large address space one API call per node costs a round trip per node; here
//! the module batches many nodes into each Browse request, keeps a few requests in flight and
//! follows continuation points itself, so the caller pays one HTTP request for the tree.

use std::collections::{HashSet, VecDeque};

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use opcua::types::{
    BrowseDescription, BrowseDirection as UaDirection, BrowseResult, BrowseResultMask, NodeId,
    ReferenceDescription, ReferenceTypeId, StatusCode,
};
use tokio::sync::mpsc;

use super::browse::{class_mask, parse_node, references, Shape};
use super::{error_info, error_info_of, OpContext};
use crate::api::{BrowseDirection, BrowseStreamChunkModel, BrowseStreamRequestModel};
use crate::error::{Result, ServiceError};

/// Nodes per Browse request and requests in flight: large enough to keep a server busy,
/// small enough for the operation limits most servers advertise.
const BATCH: usize = 1000;
const IN_FLIGHT: usize = 4;

struct Walk {
    direction: UaDirection,
    reference_type: NodeId,
    include_subtypes: bool,
    class_mask: u32,
}

/// One node's browse outcome after all continuation points were followed.
struct Browsed {
    node: NodeId,
    status: StatusCode,
    references: Vec<ReferenceDescription>,
}

async fn browse_batch(ctx: &OpContext, walk: &Walk, nodes: Vec<NodeId>) -> Result<Vec<Browsed>> {
    let descriptions: Vec<_> = nodes
        .iter()
        .map(|n| BrowseDescription {
            node_id: n.clone(),
            browse_direction: walk.direction,
            reference_type_id: walk.reference_type.clone(),
            include_subtypes: walk.include_subtypes,
            node_class_mask: walk.class_mask,
            result_mask: BrowseResultMask::All as u32,
        })
        .collect();
    let results = ctx
        .live
        .session
        .browse(&descriptions, 0, None)
        .await
        .map_err(|e| ServiceError::from_opcua(&e, "Browse"))?;
    if results.len() != nodes.len() {
        return Err(ServiceError::service(
            StatusCode::BadUnexpectedError,
            format!(
                "server answered {} of {} browses",
                results.len(),
                nodes.len()
            ),
        ));
    }
    let mut out: Vec<Browsed> = Vec::with_capacity(nodes.len());
    let mut pending = Vec::new();
    for (i, (node, r)) in nodes.into_iter().zip(results).enumerate() {
        if !r.continuation_point.is_null_or_empty() {
            pending.push((i, r.continuation_point.clone()));
        }
        out.push(Browsed {
            node,
            status: r.status_code,
            references: r.references.unwrap_or_default(),
        });
    }
    while !pending.is_empty() {
        let points: Vec<_> = pending.iter().map(|(_, cp)| cp.clone()).collect();
        let next = ctx
            .live
            .session
            .browse_next(false, &points)
            .await
            .map_err(|e| ServiceError::from_opcua(&e, "BrowseNext"))?;
        let mut still = Vec::new();
        for ((i, _), r) in pending.iter().zip(next) {
            out[*i].references.extend(r.references.unwrap_or_default());
            if r.status_code.is_bad() {
                out[*i].status = r.status_code;
            } else if !r.continuation_point.is_null_or_empty() {
                still.push((*i, r.continuation_point));
            }
        }
        pending = still;
    }
    Ok(out)
}

/// Walks the subtree and sends JSON lines until done, the caller goes away, or an error.
pub async fn run(ctx: OpContext, req: BrowseStreamRequestModel, tx: mpsc::Sender<Bytes>) {
    if let Err(e) = walk(&ctx, &req, &tx).await {
        let chunk = BrowseStreamChunkModel {
            source_id: String::new(),
            error_info: Some(error_info_of(&e)),
            ..Default::default()
        };
        let _ = tx.send(line(&chunk)).await;
    }
}

fn line(chunk: &BrowseStreamChunkModel) -> Bytes {
    let mut v = serde_json::to_vec(chunk).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

async fn walk(
    ctx: &OpContext,
    req: &BrowseStreamRequestModel,
    tx: &mpsc::Sender<Bytes>,
) -> Result<()> {
    let starts = match req.node_id.as_deref() {
        None | Some([]) => vec![NodeId::root_folder_id()],
        Some(ids) => ids
            .iter()
            .map(|id| parse_node(ctx, Some(id), NodeId::root_folder_id()))
            .collect::<Result<Vec<_>>>()?,
    };
    let walk = Walk {
        direction: match req.direction.unwrap_or(BrowseDirection::Forward) {
            BrowseDirection::Forward => UaDirection::Forward,
            BrowseDirection::Backward => UaDirection::Inverse,
            BrowseDirection::Both => UaDirection::Both,
        },
        reference_type: parse_node(
            ctx,
            req.reference_type_id.as_deref(),
            ReferenceTypeId::HierarchicalReferences.into(),
        )?,
        include_subtypes: !req.no_subtypes.unwrap_or(false),
        class_mask: class_mask(req.node_class_filter.as_deref()),
    };
    let recurse = !req.no_recurse.unwrap_or(false);
    let shape = Shape {
        read_values: req.read_variable_values.unwrap_or(false),
        ids_only: false,
    };
    let mut visited: HashSet<NodeId> = starts.iter().cloned().collect();
    let mut queue: VecDeque<NodeId> = starts.into();
    let mut in_flight = FuturesUnordered::new();
    loop {
        while in_flight.len() < IN_FLIGHT && !queue.is_empty() {
            let n = queue.len().min(BATCH);
            let batch: Vec<NodeId> = queue.drain(..n).collect();
            in_flight.push(browse_batch(ctx, &walk, batch));
        }
        let Some(done) = in_flight.next().await else {
            break;
        };
        let mut out = Vec::new();
        for b in done? {
            let source_id = ctx.ns.format(&b.node, ctx.format);
            if b.status.is_bad() {
                out.extend_from_slice(&line(&BrowseStreamChunkModel {
                    source_id,
                    error_info: error_info(b.status, None),
                    ..Default::default()
                }));
                continue;
            }
            if recurse {
                for r in &b.references {
                    if r.node_id.server_index != 0 {
                        continue;
                    }
                    if let Ok(id) = ctx.ns.resolve_expanded(&r.node_id, "") {
                        if visited.insert(id.clone()) {
                            queue.push_back(id);
                        }
                    }
                }
            }
            let result = BrowseResult {
                status_code: b.status,
                references: Some(b.references),
                ..Default::default()
            };
            for reference in references(ctx, &result, &shape).await? {
                out.extend_from_slice(&line(&BrowseStreamChunkModel {
                    source_id: source_id.clone(),
                    reference: Some(reference),
                    ..Default::default()
                }));
            }
        }
        if tx.send(Bytes::from(out)).await.is_err() {
            // The caller hung up: stop browsing.
            return Ok(());
        }
    }
    Ok(())
}
