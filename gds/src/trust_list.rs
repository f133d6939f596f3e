//! The content of a TrustList file (Part 12 §7.8.2.1): a `TrustListDataType` in UA Binary,
//! without an ExtensionObject around it.

use std::io::Cursor;

use opcua::types::{BinaryDecodable, BinaryEncodable, ByteString, ContextOwned, TrustListDataType};

/// `TrustListMasks`: which of the four lists a file holds.
pub const TRUSTED_CERTIFICATES: u32 = 0x1;
pub const TRUSTED_CRLS: u32 = 0x2;
pub const ISSUER_CERTIFICATES: u32 = 0x4;
pub const ISSUER_CRLS: u32 = 0x8;
pub const ALL: u32 = 0xF;

/// The four lists as DER blobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustLists {
    pub trusted_certificates: Vec<Vec<u8>>,
    pub trusted_crls: Vec<Vec<u8>>,
    pub issuer_certificates: Vec<Vec<u8>>,
    pub issuer_crls: Vec<Vec<u8>>,
}

/// Why a TrustList file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("not a TrustListDataType: {0}")]
pub struct TrustListError(String);

impl TrustLists {
    /// The file content holding the lists `masks` selects.
    pub fn encode(&self, masks: u32) -> Vec<u8> {
        let pick = |list: &[Vec<u8>], bit: u32| {
            (masks & bit != 0).then(|| list.iter().map(|d| ByteString::from(d.clone())).collect())
        };
        let data = TrustListDataType {
            specified_lists: masks & ALL,
            trusted_certificates: pick(&self.trusted_certificates, TRUSTED_CERTIFICATES),
            trusted_crls: pick(&self.trusted_crls, TRUSTED_CRLS),
            issuer_certificates: pick(&self.issuer_certificates, ISSUER_CERTIFICATES),
            issuer_crls: pick(&self.issuer_crls, ISSUER_CRLS),
        };
        let owned = ContextOwned::default();
        let mut out = Vec::new();
        // Writing byte strings into a Vec cannot fail.
        if let Err(e) = data.encode(&mut out, &owned.context()) {
            tracing::error!(error = %e, "cannot encode a TrustListDataType");
        }
        out
    }

    /// Reads a file's content; the lists it did not specify come back empty.
    pub fn decode(bytes: &[u8]) -> Result<TrustLists, TrustListError> {
        Self::decode_specified(bytes).map(|(_, lists)| lists)
    }

    /// Reads a file's content with the mask of the lists it specifies (a writer replaces those
    /// and leaves the others).
    pub fn decode_specified(bytes: &[u8]) -> Result<(u32, TrustLists), TrustListError> {
        let owned = ContextOwned::default();
        let mut stream = Cursor::new(bytes);
        let data = TrustListDataType::decode(&mut stream, &owned.context())
            .map_err(|e| TrustListError(e.to_string()))?;
        if stream.position() != bytes.len() as u64 {
            return Err(TrustListError("bytes after the structure".into()));
        }
        let take = |l: Option<Vec<ByteString>>| {
            l.unwrap_or_default()
                .into_iter()
                .filter_map(|b| b.value)
                .collect::<Vec<_>>()
        };
        Ok((
            data.specified_lists & ALL,
            TrustLists {
                trusted_certificates: take(data.trusted_certificates),
                trusted_crls: take(data.trusted_crls),
                issuer_certificates: take(data.issuer_certificates),
                issuer_crls: take(data.issuer_crls),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_survive_the_round_trip_and_masks_select() {
        let lists = TrustLists {
            trusted_certificates: vec![vec![1, 2]],
            trusted_crls: vec![vec![3]],
            issuer_certificates: vec![],
            issuer_crls: vec![vec![4]],
        };
        assert_eq!(TrustLists::decode(&lists.encode(ALL)).unwrap(), lists);
        let (mask, only) =
            TrustLists::decode_specified(&lists.encode(TRUSTED_CERTIFICATES)).unwrap();
        assert_eq!(mask, TRUSTED_CERTIFICATES);
        assert_eq!(only.trusted_certificates, vec![vec![1, 2]]);
        assert!(only.trusted_crls.is_empty());
        let mut longer = lists.encode(ALL);
        longer.push(0);
        assert!(TrustLists::decode(&longer).is_err());
        assert!(TrustLists::decode(&[1, 2]).is_err());
    }
}
