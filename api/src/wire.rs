//! Small wire-encoding helpers shared by the models.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Returned when an enum name or number is not one OPC Publisher defines, so
/// request validation can name the offending value in a 400 response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEnumValue {
    /// The enum being parsed.
    pub type_name: &'static str,
    /// The text that did not match.
    pub value: String,
}

impl std::fmt::Display for UnknownEnumValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown {} value '{}'", self.type_name, self.value)
    }
}

impl std::error::Error for UnknownEnumValue {}

/// A binary blob. .NET writes `byte[]` as a base64 string, but some 2.9
/// models declare byte collections that other serializers write as an array
/// of numbers, so both forms are read; base64 is always written.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct ByteString(pub Vec<u8>);

impl ByteString {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The base64 text as it appears on the wire.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.0)
    }
}

impl From<Vec<u8>> for ByteString {
    fn from(value: Vec<u8>) -> Self {
        ByteString(value)
    }
}

impl Serialize for ByteString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

/// What is written: a base64 string. Arrays of byte numbers are read too, but not offered.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ByteString {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, SchemaFormat, Type};
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Byte)))
            .content_encoding("base64")
            .description(Some(
                "Base64 (an array of byte values is also read, as some clients send one)",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ByteString {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("ByteString")
    }
}

impl<'de> Deserialize<'de> for ByteString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Numbers(Vec<u8>),
        }
        match Repr::deserialize(deserializer)? {
            Repr::Text(text) => STANDARD
                .decode(text.trim())
                .map(ByteString)
                .map_err(serde::de::Error::custom),
            Repr::Numbers(bytes) => Ok(ByteString(bytes)),
        }
    }
}

/// Treats an explicit JSON `null` like a missing field, because OPC Publisher
/// clients send `"request": null` for operations without arguments.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
