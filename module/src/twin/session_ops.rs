//! Small OPC UA building blocks the twin operations share: resolving a start node plus a
//! browse path, reading a few attributes, finding a data type's built-in type.

use opcua::types::{
    AttributeId, BrowseDescription, BrowseDirection, BrowsePath, BrowseResultMask, DataValue,
    NodeClassMask, NodeId, QualifiedName, ReadValueId, ReferenceTypeId, RelativePath,
    RelativePathElement, StatusCode, TimestampsToReturn, VariantScalarTypeId,
};

use crate::error::{ErrorKind, Result, ServiceError};
use crate::opcua::json_value::builtin_of;
use crate::opcua::node_id::Namespaces;
use crate::opcua::session_pool::LiveSession;
use opcua::client::Session;

/// Turns a browse path element (`Name`, `2:Name`, `urn:x#Name`, `nsu=urn:x;Name`) into a
/// qualified name of this server.
pub fn parse_browse_name(text: &str, ns: &Namespaces) -> Result<QualifiedName> {
    let bad = |why: &str| {
        ServiceError::bad_request(
            StatusCode::BadBrowseNameInvalid,
            format!("browse path element '{text}' {why}"),
        )
    };
    let text = text.trim_start_matches('/');
    if text.is_empty() {
        return Err(bad("is empty"));
    }
    if let Some(rest) = text.strip_prefix("nsu=") {
        let (uri, name) = rest.split_once(';').ok_or_else(|| bad("lacks ';'"))?;
        let idx = ns
            .index_of(uri)
            .ok_or_else(|| bad("names an unknown namespace"))?;
        return Ok(QualifiedName::new(idx, name));
    }
    if let Some(rest) = text.strip_prefix("ns=") {
        let (idx, name) = rest.split_once(';').ok_or_else(|| bad("lacks ';'"))?;
        let idx = idx.parse::<u16>().map_err(|_| bad("has a bad index"))?;
        return Ok(QualifiedName::new(idx, name));
    }
    if let Some((uri, name)) = text.rsplit_once('#') {
        if let Some(idx) = ns.index_of(uri) {
            return Ok(QualifiedName::new(idx, name));
        }
    }
    if let Some((idx, name)) = text.split_once(':') {
        if let Ok(idx) = idx.parse::<u16>() {
            return Ok(QualifiedName::new(idx, name));
        }
    }
    Ok(QualifiedName::new(0, text))
}

/// Resolves `start` (or the Root folder) plus an optional browse path to one node.
pub async fn resolve_node(
    session: &Session,
    ns: &Namespaces,
    start: Option<&str>,
    browse_path: Option<&[String]>,
) -> Result<NodeId> {
    let path = browse_path.unwrap_or_default();
    let start = match start.filter(|s| !s.is_empty()) {
        Some(s) => ns
            .parse(s)
            .map_err(|e| ServiceError::bad_request(StatusCode::BadNodeIdInvalid, e.to_string()))?,
        None if path.is_empty() => {
            return Err(ServiceError::bad_request(
                StatusCode::BadNodeIdInvalid,
                "a nodeId or a browsePath is required",
            ))
        }
        None => NodeId::root_folder_id(),
    };
    if path.is_empty() {
        return Ok(start);
    }
    let targets = translate(session, ns, &start, path).await?;
    targets.into_iter().next().ok_or_else(|| {
        ServiceError::service(
            StatusCode::BadNoMatch,
            format!("browse path {path:?} matched no node"),
        )
    })
}

/// TranslateBrowsePathsToNodeIds of one path; every match is returned.
pub async fn translate(
    session: &Session,
    ns: &Namespaces,
    start: &NodeId,
    path: &[String],
) -> Result<Vec<NodeId>> {
    let elements = path
        .iter()
        .map(|p| {
            Ok(RelativePathElement {
                reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
                is_inverse: false,
                include_subtypes: true,
                target_name: parse_browse_name(p, ns)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let request = BrowsePath {
        starting_node: start.clone(),
        relative_path: RelativePath {
            elements: Some(elements),
        },
    };
    let results = session
        .translate_browse_paths_to_node_ids(&[request])
        .await
        .map_err(|e| ServiceError::from_opcua(&e, "TranslateBrowsePathsToNodeIds"))?;
    let result = results.into_iter().next().ok_or_else(|| {
        ServiceError::service(StatusCode::BadUnexpectedError, "server returned no result")
    })?;
    if result.status_code.is_bad() {
        return Err(ServiceError::service(
            result.status_code,
            format!("browse path {path:?} could not be resolved"),
        ));
    }
    Ok(result
        .targets
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.remaining_path_index == u32::MAX)
        .filter_map(|t| ns.resolve_expanded(&t.target_id, "").ok())
        .collect())
}

/// Reads several attributes of one node in one round trip.
pub async fn read_attributes(
    live: &LiveSession,
    node: &NodeId,
    attributes: &[AttributeId],
) -> Result<Vec<DataValue>> {
    let reads: Vec<_> = attributes
        .iter()
        .map(|a| ReadValueId {
            node_id: node.clone(),
            attribute_id: *a as u32,
            ..Default::default()
        })
        .collect();
    let values = live
        .session
        .read(&reads, TimestampsToReturn::Neither, 0.0)
        .await
        .map_err(|e| ServiceError::from_opcua(&e, "Read"))?;
    if values.len() != reads.len() {
        return Err(ServiceError::service(
            StatusCode::BadUnexpectedError,
            format!("server answered {} of {} reads", values.len(), reads.len()),
        ));
    }
    Ok(values)
}

/// The built-in type a value of `data_type` travels as, walking the supertype chain of
/// server-defined types (a custom enumeration is an Int32, a custom string subtype a String).
pub async fn builtin_type(live: &LiveSession, data_type: &NodeId) -> Result<VariantScalarTypeId> {
    let mut current = data_type.clone();
    for _ in 0..16 {
        if let Some(t) = builtin_of(&current) {
            return Ok(t);
        }
        let browse = BrowseDescription {
            node_id: current.clone(),
            browse_direction: BrowseDirection::Inverse,
            reference_type_id: ReferenceTypeId::HasSubtype.into(),
            include_subtypes: false,
            node_class_mask: NodeClassMask::DATA_TYPE.bits(),
            result_mask: BrowseResultMask::All as u32,
        };
        let results = live
            .session
            .browse(&[browse], 1, None)
            .await
            .map_err(|e| ServiceError::from_opcua(&e, "Browse supertype"))?;
        let parent = results
            .into_iter()
            .next()
            .and_then(|r| r.references)
            .and_then(|r| r.into_iter().next())
            .map(|r| r.node_id.node_id);
        match parent {
            Some(p) => current = p,
            None => break,
        }
    }
    // Structures and other non-scalar types cannot be written from plain JSON.
    Err(ServiceError::new(
        ErrorKind::BadRequest,
        StatusCode::BadTypeMismatch,
        format!("data type {data_type} has no built-in JSON mapping"),
    ))
}
