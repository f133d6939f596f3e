//! Typed reads of method input arguments. A missing argument is Bad_ArgumentsMissing, one of
//! the wrong type Bad_TypeMismatch; a null (Empty) value reads as the type's null.

use opcua::types::{ExtensionObject, NodeId, StatusCode, Variant};

pub struct Args<'a>(pub &'a [Variant]);

impl Args<'_> {
    fn get(&self, i: usize) -> Result<&Variant, StatusCode> {
        self.0.get(i).ok_or(StatusCode::BadArgumentsMissing)
    }

    pub fn node_id(&self, i: usize) -> Result<NodeId, StatusCode> {
        match self.get(i)? {
            Variant::NodeId(n) => Ok((**n).clone()),
            Variant::Empty => Ok(NodeId::null()),
            _ => Err(StatusCode::BadTypeMismatch),
        }
    }

    /// `None` for a null string.
    pub fn string(&self, i: usize) -> Result<Option<String>, StatusCode> {
        match self.get(i)? {
            Variant::String(s) => Ok(s.value().clone()),
            Variant::Empty => Ok(None),
            _ => Err(StatusCode::BadTypeMismatch),
        }
    }

    pub fn strings(&self, i: usize) -> Result<Vec<String>, StatusCode> {
        match self.get(i)? {
            Variant::Array(a) => a
                .values
                .iter()
                .map(|v| match v {
                    Variant::String(s) => Ok(s.value().clone().unwrap_or_default()),
                    _ => Err(StatusCode::BadTypeMismatch),
                })
                .collect(),
            Variant::Empty => Ok(Vec::new()),
            _ => Err(StatusCode::BadTypeMismatch),
        }
    }

    pub fn bytes(&self, i: usize) -> Result<Vec<u8>, StatusCode> {
        match self.get(i)? {
            Variant::ByteString(b) => Ok(b.value.clone().unwrap_or_default()),
            Variant::Empty => Ok(Vec::new()),
            _ => Err(StatusCode::BadTypeMismatch),
        }
    }

    /// A ByteString array; its null elements read as empty.
    pub fn byte_strings(&self, i: usize) -> Result<Vec<Vec<u8>>, StatusCode> {
        match self.get(i)? {
            Variant::Array(a) => a
                .values
                .iter()
                .map(|v| match v {
                    Variant::ByteString(b) => Ok(b.value.clone().unwrap_or_default()),
                    _ => Err(StatusCode::BadTypeMismatch),
                })
                .collect(),
            Variant::Empty => Ok(Vec::new()),
            _ => Err(StatusCode::BadTypeMismatch),
        }
    }

    pub fn u32(&self, i: usize) -> Result<u32, StatusCode> {
        match self.get(i)? {
            Variant::UInt32(v) => Ok(*v),
            _ => Err(StatusCode::BadTypeMismatch),
        }
    }

    pub fn u64(&self, i: usize) -> Result<u64, StatusCode> {
        match self.get(i)? {
            Variant::UInt64(v) => Ok(*v),
            _ => Err(StatusCode::BadTypeMismatch),
        }
    }

    pub fn i32(&self, i: usize) -> Result<i32, StatusCode> {
        match self.get(i)? {
            Variant::Int32(v) => Ok(*v),
            _ => Err(StatusCode::BadTypeMismatch),
        }
    }

    pub fn bool(&self, i: usize) -> Result<bool, StatusCode> {
        match self.get(i)? {
            Variant::Boolean(v) => Ok(*v),
            _ => Err(StatusCode::BadTypeMismatch),
        }
    }

    pub fn byte(&self, i: usize) -> Result<u8, StatusCode> {
        match self.get(i)? {
            Variant::Byte(v) => Ok(*v),
            _ => Err(StatusCode::BadTypeMismatch),
        }
    }

    pub fn extension_object(&self, i: usize) -> Result<&ExtensionObject, StatusCode> {
        match self.get(i)? {
            Variant::ExtensionObject(o) => Ok(o),
            _ => Err(StatusCode::BadTypeMismatch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_typed() {
        let values = [Variant::UInt32(3), Variant::Empty, Variant::Boolean(true)];
        let args = Args(&values);
        assert_eq!(args.u32(0), Ok(3));
        assert_eq!(args.string(0), Err(StatusCode::BadTypeMismatch));
        assert_eq!(args.string(1), Ok(None));
        assert_eq!(args.node_id(1), Ok(NodeId::null()));
        assert_eq!(args.bool(2), Ok(true));
        assert_eq!(args.bool(0), Err(StatusCode::BadTypeMismatch));
        assert_eq!(args.u32(3), Err(StatusCode::BadArgumentsMissing));
    }
}
