//! The certificate groups' TrustList objects as read-only files (Part 12 §7.8.2): Open or
//! OpenWithMasks takes a snapshot of the group's trust list encoded as a `TrustListDataType`
//! into an `iiot_gds::file::OpenFiles` handle.

use opcua::types::StatusCode;

use crate::model::TrustList;

/// The file content of `list` (base64 DER as the REST model holds it), keeping the lists
/// `masks` selects.
pub fn encode(list: &TrustList, masks: u32) -> Result<Vec<u8>, StatusCode> {
    let lists = list.to_lists().map_err(|_| StatusCode::BadInternalError)?;
    Ok(lists.encode(masks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_select_the_lists() {
        let list = TrustList {
            group_id: "g".into(),
            trusted_certificates: vec!["AQI=".into()],
            trusted_crls: vec!["Aw==".into()],
            issuer_certificates: vec![],
            issuer_crls: vec![],
        };
        let all = encode(&list, iiot_gds::trust_list::ALL).unwrap();
        let certs = encode(&list, 0x1).unwrap();
        assert!(all.len() > certs.len());
        assert_eq!(&certs[..4], &1u32.to_le_bytes());
    }
}
