//! `ApplicationRecordDataType` (GDS i=1) in its UA Binary form, encoded and decoded by hand.
//!
//! async-opcua generates no code for the GDS namespace, and its index is known only at run time,
//! so the structure travels as a raw ExtensionObject body (`ByteStringBody`, which is what the
//! stack's fallback type loader hands us for an unknown type) tagged with the binary encoding
//! node `ns=GDS;i=134`. Each field is read with the stack's own decoders, so their limits apply.

use std::io::Cursor;

use opcua::types::{
    BinaryDecodable, BinaryEncodable, ByteString, ByteStringBody, ContextOwned, DecodingOptions,
    ExtensionObject, LocalizedText, NodeId, StatusCode, UAString,
};

/// The seven fields of Part 12 §6.6.3, in their encoding order.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplicationRecord {
    pub application_id: NodeId,
    pub application_uri: UAString,
    pub application_type: i32,
    pub application_names: Vec<LocalizedText>,
    pub product_uri: UAString,
    pub discovery_urls: Vec<UAString>,
    pub server_capabilities: Vec<UAString>,
}

fn context() -> ContextOwned {
    ContextOwned::new_default(Default::default(), DecodingOptions::default())
}

impl ApplicationRecord {
    /// Reads the record out of a method argument; anything but an ApplicationRecordDataType in
    /// binary encoding, or a body with bytes left over, is Bad_InvalidArgument.
    pub fn from_extension_object(
        object: &ExtensionObject,
        binary_encoding: &NodeId,
    ) -> Result<Self, StatusCode> {
        let body = object
            .inner_as::<ByteStringBody>()
            .filter(|b| b.encoding_id() == binary_encoding)
            .ok_or(StatusCode::BadInvalidArgument)?;
        let bytes = body.raw_body().as_ref();
        let owned = context();
        let ctx = owned.context();
        let mut stream = Cursor::new(bytes);
        let bad = |_| StatusCode::BadInvalidArgument;
        let record = ApplicationRecord {
            application_id: NodeId::decode(&mut stream, &ctx).map_err(bad)?,
            application_uri: UAString::decode(&mut stream, &ctx).map_err(bad)?,
            application_type: i32::decode(&mut stream, &ctx).map_err(bad)?,
            application_names: Option::<Vec<LocalizedText>>::decode(&mut stream, &ctx)
                .map_err(bad)?
                .unwrap_or_default(),
            product_uri: UAString::decode(&mut stream, &ctx).map_err(bad)?,
            discovery_urls: Option::<Vec<UAString>>::decode(&mut stream, &ctx)
                .map_err(bad)?
                .unwrap_or_default(),
            server_capabilities: Option::<Vec<UAString>>::decode(&mut stream, &ctx)
                .map_err(bad)?
                .unwrap_or_default(),
        };
        if stream.position() != bytes.len() as u64 {
            return Err(StatusCode::BadInvalidArgument);
        }
        Ok(record)
    }

    /// The record as an ExtensionObject in binary encoding.
    pub fn to_extension_object(&self, binary_encoding: &NodeId) -> ExtensionObject {
        let owned = context();
        let ctx = owned.context();
        let mut out = Vec::new();
        // Writing into a Vec only fails on values the types cannot hold (none here).
        let written = self
            .application_id
            .encode(&mut out, &ctx)
            .and_then(|_| self.application_uri.encode(&mut out, &ctx))
            .and_then(|_| self.application_type.encode(&mut out, &ctx))
            .and_then(|_| Some(self.application_names.clone()).encode(&mut out, &ctx))
            .and_then(|_| self.product_uri.encode(&mut out, &ctx))
            .and_then(|_| Some(self.discovery_urls.clone()).encode(&mut out, &ctx))
            .and_then(|_| Some(self.server_capabilities.clone()).encode(&mut out, &ctx));
        if let Err(e) = written {
            tracing::error!(error = %e, "cannot encode an ApplicationRecordDataType");
            return ExtensionObject::null();
        }
        ExtensionObject::new(ByteStringBody::new(
            ByteString::from(out),
            binary_encoding.clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ApplicationRecord {
        ApplicationRecord {
            application_id: NodeId::null(),
            application_uri: "urn:plant:line1:plc".into(),
            application_type: 0,
            application_names: vec![LocalizedText::new("en", "Line 1 PLC")],
            product_uri: "urn:vendor:plc".into(),
            discovery_urls: vec!["opc.tcp://plc1:4840".into()],
            server_capabilities: vec!["DA".into()],
        }
    }

    #[test]
    fn records_survive_the_round_trip() {
        let encoding = NodeId::new(2, 134);
        let object = sample().to_extension_object(&encoding);
        let back = ApplicationRecord::from_extension_object(&object, &encoding).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn wrong_encodings_and_trailing_bytes_are_invalid_arguments() {
        let encoding = NodeId::new(2, 134);
        let object = sample().to_extension_object(&encoding);
        assert_eq!(
            ApplicationRecord::from_extension_object(&object, &NodeId::new(3, 134)),
            Err(StatusCode::BadInvalidArgument)
        );
        let body = object.inner_as::<ByteStringBody>().unwrap();
        let mut raw = body.raw_body().as_ref().to_vec();
        raw.push(0);
        let longer = ExtensionObject::new(ByteStringBody::new(raw.into(), encoding.clone()));
        assert_eq!(
            ApplicationRecord::from_extension_object(&longer, &encoding),
            Err(StatusCode::BadInvalidArgument)
        );
        let short =
            ExtensionObject::new(ByteStringBody::new(vec![0u8, 0].into(), encoding.clone()));
        assert_eq!(
            ApplicationRecord::from_extension_object(&short, &encoding),
            Err(StatusCode::BadInvalidArgument)
        );
    }
}
