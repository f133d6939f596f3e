use std::time::Duration;

use crate::{
    session::{
        process_service_result, process_unexpected_response,
        request_builder::{builder_base, builder_debug, builder_error, RequestHeaderBuilder},
    },
    Session, UARequest,
};
use opcua_core::ResponseMessage;
use opcua_types::{
    BrowseDescription, BrowseNextRequest, BrowseNextResponse, BrowsePath, BrowsePathResult,
    BrowseRequest, BrowseResponse, BrowseResult, ByteString, Error, IntegerId, NodeId,
    RegisterNodesRequest, RegisterNodesResponse, StatusCode, TranslateBrowsePathsToNodeIdsRequest,
    TranslateBrowsePathsToNodeIdsResponse, UnregisterNodesRequest, UnregisterNodesResponse,
    ViewDescription,
};
use tracing::{debug_span, Instrument};

#[derive(Debug, Clone)]
/// Discover the references to the specified nodes by sending a [`BrowseRequest`] to the server.
///
/// See OPC UA Part 4 - Services 5.8.2 for complete description of the service and error responses.
pub struct Browse {
    nodes_to_browse: Vec<BrowseDescription>,
    view: ViewDescription,
    max_references_per_node: u32,

    header: RequestHeaderBuilder,
}

builder_base!(Browse);

impl Browse {
    /// Construct a new call to the `Browse` service.
    pub fn new(session: &Session) -> Self {
        Self {
            nodes_to_browse: Vec::new(),
            view: ViewDescription::default(),
            max_references_per_node: 0,

            header: RequestHeaderBuilder::new_from_session(session),
        }
    }

    /// Construct a new call to the `Browse` service, setting header parameters manually.
    pub fn new_manual(
        session_id: u32,
        timeout: Duration,
        auth_token: NodeId,
        request_handle: IntegerId,
    ) -> Self {
        Self {
            nodes_to_browse: Vec::new(),
            view: ViewDescription::default(),
            max_references_per_node: 0,

            header: RequestHeaderBuilder::new(session_id, timeout, auth_token, request_handle),
        }
    }

    /// Set the view to browse.
    pub fn view(mut self, view: ViewDescription) -> Self {
        self.view = view;
        self
    }

    /// Set max references per node. The default is zero, meaning server-defined.
    pub fn max_references_per_node(mut self, max_references_per_node: u32) -> Self {
        self.max_references_per_node = max_references_per_node;
        self
    }

    /// Set nodes to browse, overwriting any that were set previously.
    pub fn nodes_to_browse(mut self, nodes_to_browse: Vec<BrowseDescription>) -> Self {
        self.nodes_to_browse = nodes_to_browse;
        self
    }

    /// Add a node to browse.
    pub fn browse_node(mut self, node_to_browse: impl Into<BrowseDescription>) -> Self {
        self.nodes_to_browse.push(node_to_browse.into());
        self
    }
}

impl UARequest for Browse {
    type Out = BrowseResponse;

    async fn send<'a>(self, channel: &'a crate::AsyncSecureChannel) -> Result<Self::Out, Error>
    where
        Self: 'a,
    {
        let span = debug_span!(
            "Sending Browse request",
            num_nodes_to_browse = self.nodes_to_browse.len()
        );
        let request = {
            let _h = span.enter();
            if self.nodes_to_browse.is_empty() {
                builder_error!(self, "browse was not supplied with any nodes to browse");
                return Err(Error::new(
                    StatusCode::BadNothingToDo,
                    "browse was not supplied with any nodes to browse",
                ));
            }
            BrowseRequest {
                request_header: self.header.header,
                view: self.view,
                requested_max_references_per_node: self.max_references_per_node,
                nodes_to_browse: Some(self.nodes_to_browse),
            }
        };
        let response = channel
            .send(request, self.header.timeout)
            .instrument(span.clone())
            .await?;
        let _h = span.enter();
        if let ResponseMessage::Browse(response) = response {
            builder_debug!(self, "browse, success");
            process_service_result(&response.response_header)?;
            Ok(*response)
        } else {
            builder_error!(self, "browse failed");
            Err(process_unexpected_response(response))
        }
    }
}

#[derive(Debug, Clone)]
/// Continue to discover references to nodes by sending continuation points in a [`BrowseNextRequest`]
/// to the server. This function may have to be called repeatedly to process the initial query.
///
/// See OPC UA Part 4 - Services 5.8.3 for complete description of the service and error responses.
pub struct BrowseNext {
    continuation_points: Vec<ByteString>,
    release_continuation_points: bool,

    header: RequestHeaderBuilder,
}

builder_base!(BrowseNext);

impl BrowseNext {
    /// Construct a new call to the `BrowseNext` service.
    pub fn new(session: &Session) -> Self {
        Self {
            continuation_points: Vec::new(),
            release_continuation_points: false,

            header: RequestHeaderBuilder::new_from_session(session),
        }
    }

    /// Construct a new call to the `BrowseNext` service, setting header parameters manually.
    pub fn new_manual(
        session_id: u32,
        timeout: Duration,
        auth_token: NodeId,
        request_handle: IntegerId,
    ) -> Self {
        Self {
            continuation_points: Vec::new(),
            release_continuation_points: false,

            header: RequestHeaderBuilder::new(session_id, timeout, auth_token, request_handle),
        }
    }

    /// Set release continuation points. Default is false, if this is true,
    /// continuation points will be released and no results will be returned.
    pub fn release_continuation_points(mut self, release_continuation_points: bool) -> Self {
        self.release_continuation_points = release_continuation_points;
        self
    }

    /// Set continuation points, overwriting any that were set previously.
    pub fn continuation_points(mut self, continuation_points: Vec<ByteString>) -> Self {
        self.continuation_points = continuation_points;
        self
    }

    /// Add a continuation point to the request.
    pub fn continuation_point(mut self, continuation_point: ByteString) -> Self {
        self.continuation_points.push(continuation_point);
        self
    }
}

impl UARequest for BrowseNext {
    type Out = BrowseNextResponse;

    async fn send<'a>(self, channel: &'a crate::AsyncSecureChannel) -> Result<Self::Out, Error>
    where
        Self: 'a,
    {
        let span = debug_span!(
            "Sending BrowseNext request",
            num_continuation_points = self.continuation_points.len(),
            release_continuation_points = self.release_continuation_points
        );
        let request = {
            let _h = span.enter();
            if self.continuation_points.is_empty() {
                builder_error!(
                    self,
                    "browse_next was not supplied with any continuation points"
                );
                return Err(Error::new(
                    StatusCode::BadNothingToDo,
                    "browse_next was not supplied with any continuation points",
                ));
            }
            BrowseNextRequest {
                request_header: self.header.header,
                continuation_points: Some(self.continuation_points),
                release_continuation_points: self.release_continuation_points,
            }
        };
        let response = channel
            .send(request, self.header.timeout)
            .instrument(span.clone())
            .await?;
        let _h = span.enter();
        if let ResponseMessage::BrowseNext(response) = response {
            builder_debug!(self, "browse_next, success");
            process_service_result(&response.response_header)?;
            Ok(*response)
        } else {
            builder_error!(self, "browse_next failed");
            Err(process_unexpected_response(response))
        }
    }
}

#[derive(Debug, Clone)]
/// Translate browse paths to NodeIds by sending a [`TranslateBrowsePathsToNodeIdsRequest`] request to the Server
/// Each [`BrowsePath`] is constructed of a starting node and a `RelativePath`. The specified starting node
/// identifies the node from which the RelativePath is based. The RelativePath contains a sequence of
/// ReferenceTypes and BrowseNames.
///
/// See OPC UA Part 4 - Services 5.8.4 for complete description of the service and error responses.
pub struct TranslateBrowsePaths {
    browse_paths: Vec<BrowsePath>,

    header: RequestHeaderBuilder,
}

builder_base!(TranslateBrowsePaths);

impl TranslateBrowsePaths {
    /// Construct a new call to the `TranslateBrowsePaths` service.
    pub fn new(session: &Session) -> Self {
        Self {
            browse_paths: Vec::new(),

            header: RequestHeaderBuilder::new_from_session(session),
        }
    }

    /// Construct a new call to the `TranslateBrowsePaths` service, setting header parameters manually.
    pub fn new_manual(
        session_id: u32,
        timeout: Duration,
        auth_token: NodeId,
        request_handle: IntegerId,
    ) -> Self {
        Self {
            browse_paths: Vec::new(),

            header: RequestHeaderBuilder::new(session_id, timeout, auth_token, request_handle),
        }
    }

    /// Set browse paths, overwriting any that were set previously.
    pub fn browse_paths(mut self, browse_paths: Vec<BrowsePath>) -> Self {
        self.browse_paths = browse_paths;
        self
    }

    /// Add a browse path to the request.
    pub fn browse_path(mut self, browse_path: BrowsePath) -> Self {
        self.browse_paths.push(browse_path);
        self
    }
}

impl UARequest for TranslateBrowsePaths {
    type Out = TranslateBrowsePathsToNodeIdsResponse;

    async fn send<'a>(self, channel: &'a crate::AsyncSecureChannel) -> Result<Self::Out, Error>
    where
        Self: 'a,
    {
        let span = debug_span!(
            "Sending TranslateBrowsePathsToNodeIds request",
            num_browse_paths = self.browse_paths.len()
        );
        let request = {
            let _h = span.enter();
            if self.browse_paths.is_empty() {
                builder_error!(
                    self,
                    "translate_browse_paths_to_node_ids was not supplied with any browse paths"
                );
                return Err(Error::new(
                    StatusCode::BadNothingToDo,
                    "translate_browse_paths_to_node_ids was not supplied with any browse paths",
                ));
            }
            TranslateBrowsePathsToNodeIdsRequest {
                request_header: self.header.header,
                browse_paths: Some(self.browse_paths),
            }
        };
        let response = channel
            .send(request, self.header.timeout)
            .instrument(span.clone())
            .await?;
        let _h = span.enter();
        if let ResponseMessage::TranslateBrowsePathsToNodeIds(response) = response {
            builder_debug!(self, "translate_browse_paths_to_node_ids, success");
            process_service_result(&response.response_header)?;
            Ok(*response)
        } else {
            builder_error!(self, "translate_browse_paths_to_node_ids failed");
            Err(process_unexpected_response(response))
        }
    }
}

#[derive(Debug, Clone)]
/// Register nodes on the server by sending a [`RegisterNodesRequest`]. The purpose of this
/// call is server-dependent but allows a client to ask a server to create nodes which are
/// otherwise expensive to set up or maintain, e.g. nodes attached to hardware.
///
/// See OPC UA Part 4 - Services 5.8.5 for complete description of the service and error responses.
pub struct RegisterNodes {
    nodes_to_register: Vec<NodeId>,

    header: RequestHeaderBuilder,
}

builder_base!(RegisterNodes);

impl RegisterNodes {
    /// Construct a new call to the `RegisterNodes` service.
    pub fn new(session: &Session) -> Self {
        Self {
            nodes_to_register: Vec::new(),

            header: RequestHeaderBuilder::new_from_session(session),
        }
    }

    /// Construct a new call to the `RegisterNodes` service, setting header parameters manually.
    pub fn new_manual(
        session_id: u32,
        timeout: Duration,
        auth_token: NodeId,
        request_handle: IntegerId,
    ) -> Self {
        Self {
            nodes_to_register: Vec::new(),

            header: RequestHeaderBuilder::new(session_id, timeout, auth_token, request_handle),
        }
    }

    /// Set nodes to register, overwriting any that were set previously.
    pub fn nodes_to_register(mut self, nodes_to_register: Vec<NodeId>) -> Self {
        self.nodes_to_register = nodes_to_register;
        self
    }

    /// Add a node to the request.
    pub fn node_to_register(mut self, node_to_register: impl Into<NodeId>) -> Self {
        self.nodes_to_register.push(node_to_register.into());
        self
    }
}

impl UARequest for RegisterNodes {
    type Out = RegisterNodesResponse;

    async fn send<'a>(self, channel: &'a crate::AsyncSecureChannel) -> Result<Self::Out, Error>
    where
        Self: 'a,
    {
        let span = debug_span!(
            "Sending RegisterNodes request",
            num_nodes_to_register = self.nodes_to_register.len()
        );
        let request = {
            let _h = span.enter();
            if self.nodes_to_register.is_empty() {
                builder_error!(self, "register_nodes was not supplied with any node IDs");
                return Err(Error::new(
                    StatusCode::BadNothingToDo,
                    "register_nodes was not supplied with any node IDs",
                ));
            }
            RegisterNodesRequest {
                request_header: self.header.header,
                nodes_to_register: Some(self.nodes_to_register),
            }
        };
        let response = channel
            .send(request, self.header.timeout)
            .instrument(span.clone())
            .await?;
        let _h = span.enter();
        if let ResponseMessage::RegisterNodes(response) = response {
            builder_debug!(self, "register_nodes, success");
            process_service_result(&response.response_header)?;
            Ok(*response)
        } else {
            builder_error!(self, "register_nodes failed");
            Err(process_unexpected_response(response))
        }
    }
}

#[derive(Debug, Clone)]
/// Unregister nodes on the server by sending a [`UnregisterNodesRequest`]. This indicates to
/// the server that the client relinquishes any need for these nodes. The server will ignore
/// unregistered nodes.
///
/// See OPC UA Part 4 - Services 5.8.5 for complete description of the service and error responses.
pub struct UnregisterNodes {
    nodes_to_unregister: Vec<NodeId>,

    header: RequestHeaderBuilder,
}

builder_base!(UnregisterNodes);

impl UnregisterNodes {
    /// Construct a new call to the `UnregisterNodes` service.
    pub fn new(session: &Session) -> Self {
        Self {
            nodes_to_unregister: Vec::new(),

            header: RequestHeaderBuilder::new_from_session(session),
        }
    }

    /// Construct a new call to the `UnregisterNodes` service, setting header parameters manually.
    pub fn new_manual(
        session_id: u32,
        timeout: Duration,
        auth_token: NodeId,
        request_handle: IntegerId,
    ) -> Self {
        Self {
            nodes_to_unregister: Vec::new(),

            header: RequestHeaderBuilder::new(session_id, timeout, auth_token, request_handle),
        }
    }

    /// Set nodes to register, overwriting any that were set previously.
    pub fn nodes_to_unregister(mut self, nodes_to_unregister: Vec<NodeId>) -> Self {
        self.nodes_to_unregister = nodes_to_unregister;
        self
    }

    /// Add a continuation point to the request.
    pub fn node_to_unregister(mut self, node_to_unregister: impl Into<NodeId>) -> Self {
        self.nodes_to_unregister.push(node_to_unregister.into());
        self
    }
}

impl UARequest for UnregisterNodes {
    type Out = UnregisterNodesResponse;

    async fn send<'a>(self, channel: &'a crate::AsyncSecureChannel) -> Result<Self::Out, Error>
    where
        Self: 'a,
    {
        let span = debug_span!(
            "Sending UnregisterNodes request",
            num_nodes_to_unregister = self.nodes_to_unregister.len()
        );
        let request = {
            let _h = span.enter();
            if self.nodes_to_unregister.is_empty() {
                builder_error!(self, "unregister_nodes was not supplied with any node IDs");
                return Err(Error::new(
                    StatusCode::BadNothingToDo,
                    "unregister_nodes was not supplied with any node IDs",
                ));
            }
            UnregisterNodesRequest {
                request_header: self.header.header,
                nodes_to_unregister: Some(self.nodes_to_unregister),
            }
        };
        let response = channel
            .send(request, self.header.timeout)
            .instrument(span.clone())
            .await?;
        let _h = span.enter();
        if let ResponseMessage::UnregisterNodes(response) = response {
            builder_debug!(self, "unregister_nodes, success");
            process_service_result(&response.response_header)?;
            Ok(*response)
        } else {
            builder_error!(self, "unregister_nodes failed");
            Err(process_unexpected_response(response))
        }
    }
}

impl Session {
    /// Discover the references to the specified nodes by sending a [`BrowseRequest`] to the server.
    ///
    /// See OPC UA Part 4 - Services 5.8.2 for complete description of the service and error responses.
    ///
    /// # Arguments
    ///
    /// * `nodes_to_browse` - A list of [`BrowseDescription`] describing nodes to browse.
    ///
    /// # Returns
    ///
    /// * `Ok(Vec<BrowseResult>)` - A list [`BrowseResult`] corresponding to each node to browse. A browse result
    ///   may contain a continuation point, for use with `browse_next()`.
    /// * `Err(Error)` - Request failed, [Status code](StatusCode) is the reason for failure.
    ///
    pub async fn browse(
        &self,
        nodes_to_browse: &[BrowseDescription],
        max_references_per_node: u32,
        view: Option<ViewDescription>,
    ) -> Result<Vec<BrowseResult>, Error> {
        // iiot patch: one result per node to browse, or an error (see `expect_results`).
        super::expect_results(
            "Browse",
            Browse::new(self)
                .nodes_to_browse(nodes_to_browse.to_vec())
                .view(view.unwrap_or_default())
                .max_references_per_node(max_references_per_node)
                .send(&self.channel)
                .await?
                .results,
            nodes_to_browse.len(),
        )
    }

    /// Continue to discover references to nodes by sending continuation points in a [`BrowseNextRequest`]
    /// to the server. This function may have to be called repeatedly to process the initial query.
    ///
    /// See OPC UA Part 4 - Services 5.8.3 for complete description of the service and error responses.
    ///
    /// # Arguments
    ///
    /// * `release_continuation_points` - Flag indicating if the continuation points should be released by the server
    /// * `continuation_points` - A list of [`BrowseDescription`] continuation points
    ///
    /// # Returns
    ///
    /// * `Ok(Option<Vec<BrowseResult>)` - A list [`BrowseResult`] corresponding to each node to browse. A browse result
    ///   may contain a continuation point, for use with `browse_next()`.
    /// * `Err(Error)` - Request failed, [Status code](StatusCode) is the reason for failure.
    ///
    pub async fn browse_next(
        &self,
        release_continuation_points: bool,
        continuation_points: &[ByteString],
    ) -> Result<Vec<BrowseResult>, Error> {
        let results = BrowseNext::new(self)
            .continuation_points(continuation_points.to_vec())
            .release_continuation_points(release_continuation_points)
            .send(&self.channel)
            .await?
            .results;
        // iiot patch: one result per continuation point, or an error (see `expect_results`).
        // Servers may answer a release with no results at all, so that case is not checked.
        if release_continuation_points {
            Ok(results.unwrap_or_default())
        } else {
            super::expect_results("BrowseNext", results, continuation_points.len())
        }
    }

    /// Translate browse paths to NodeIds by sending a [`TranslateBrowsePathsToNodeIdsRequest`] request to the Server
    /// Each [`BrowsePath`] is constructed of a starting node and a `RelativePath`. The specified starting node
    /// identifies the node from which the RelativePath is based. The RelativePath contains a sequence of
    /// ReferenceTypes and BrowseNames.
    ///
    /// See OPC UA Part 4 - Services 5.8.4 for complete description of the service and error responses.
    ///
    /// # Arguments
    ///
    /// * `browse_paths` - A list of [`BrowsePath`] node + relative path for the server to look up
    ///
    /// # Returns
    ///
    /// * `Ok(Vec<BrowsePathResult>>)` - List of [`BrowsePathResult`] for the list of browse
    ///   paths. The size and order of the list matches the size and order of the `browse_paths`
    ///   parameter.
    /// * `Err(Error)` - Request failed, [Status code](StatusCode) is the reason for failure.
    ///
    pub async fn translate_browse_paths_to_node_ids(
        &self,
        browse_paths: &[BrowsePath],
    ) -> Result<Vec<BrowsePathResult>, Error> {
        // iiot patch: one result per browse path, or an error (see `expect_results`).
        super::expect_results(
            "TranslateBrowsePathsToNodeIds",
            TranslateBrowsePaths::new(self)
                .browse_paths(browse_paths.to_vec())
                .send(&self.channel)
                .await?
                .results,
            browse_paths.len(),
        )
    }

    /// Register nodes on the server by sending a [`RegisterNodesRequest`]. The purpose of this
    /// call is server-dependent but allows a client to ask a server to create nodes which are
    /// otherwise expensive to set up or maintain, e.g. nodes attached to hardware.
    ///
    /// See OPC UA Part 4 - Services 5.8.5 for complete description of the service and error responses.
    ///
    /// # Arguments
    ///
    /// * `nodes_to_register` - A list of [`NodeId`] nodes for the server to register
    ///
    /// # Returns
    ///
    /// * `Ok(Vec<NodeId>)` - A list of [`NodeId`] corresponding to size and order of the input. The
    ///   server may return an alias for the input `NodeId`
    /// * `Err(Error)` - Request failed, [Status code](StatusCode) is the reason for failure.
    ///
    pub async fn register_nodes(&self, nodes_to_register: &[NodeId]) -> Result<Vec<NodeId>, Error> {
        // iiot patch: one node id per node to register, or an error (see `expect_results`).
        super::expect_results(
            "RegisterNodes",
            RegisterNodes::new(self)
                .nodes_to_register(nodes_to_register.to_vec())
                .send(&self.channel)
                .await?
                .registered_node_ids,
            nodes_to_register.len(),
        )
    }

    /// Unregister nodes on the server by sending a [`UnregisterNodesRequest`]. This indicates to
    /// the server that the client relinquishes any need for these nodes. The server will ignore
    /// unregistered nodes.
    ///
    /// See OPC UA Part 4 - Services 5.8.5 for complete description of the service and error responses.
    ///
    /// # Arguments
    ///
    /// * `nodes_to_unregister` - A list of [`NodeId`] nodes for the server to unregister
    ///
    /// # Returns
    ///
    /// * `Ok(())` - Request succeeded, server ignores invalid nodes
    /// * `Err(Error)` - Request failed, [Status code](StatusCode) is the reason for failure.
    ///
    pub async fn unregister_nodes(&self, nodes_to_unregister: &[NodeId]) -> Result<(), Error> {
        UnregisterNodes::new(self)
            .nodes_to_unregister(nodes_to_unregister.to_vec())
            .send(&self.channel)
            .await?;
        Ok(())
    }
}
