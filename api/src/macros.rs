//! Declarative helpers for the two enum shapes OPC Publisher puts on the wire.
//!
//! OPC Publisher writes enums as their member names, but its serializers also
//! accept any letter case and the raw integer value. Plain serde derives cannot
//! express that, so these macros generate the (de)serializers once.

/// An enum whose JSON form is one member name, e.g. `"SignAndEncrypt"`.
///
/// Deserialization accepts any letter case and the .NET integer value, because
/// OPC Publisher's serializers accept both and clients send both.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every member, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The member name OPC Publisher writes.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => stringify!($variant)),+
                }
            }

            /// The .NET integer value of the member.
            pub const fn value(self) -> i64 {
                match self {
                    $($name::$variant => $value),+
                }
            }

            /// Looks a member up by its .NET integer value.
            pub fn from_value(value: i64) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.value() == value)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// A string enum of the member names: what is written. What is read is wider (any
        /// letter case, the integer), so the description lists the integers too.
        #[cfg(feature = "openapi")]
        impl ::utoipa::PartialSchema for $name {
            fn schema() -> ::utoipa::openapi::RefOr<::utoipa::openapi::schema::Schema> {
                let values: Vec<String> = Self::ALL
                    .iter()
                    .map(|v| format!("`{}` = {}", v.as_str(), v.value()))
                    .collect();
                ::utoipa::openapi::ObjectBuilder::new()
                    .schema_type(::utoipa::openapi::schema::Type::String)
                    .enum_values(Some(Self::ALL.iter().map(|v| v.as_str())))
                    .description(Some(format!(
                        "Written as the member name; read in any letter case or as the .NET \
                         integer value ({}).",
                        values.join(", ")
                    )))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl ::utoipa::ToSchema for $name {
            fn name() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::UnknownEnumValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let s = s.trim();
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().eq_ignore_ascii_case(s))
                    .or_else(|| s.parse::<i64>().ok().and_then(Self::from_value))
                    .ok_or_else(|| $crate::UnknownEnumValue {
                        type_name: stringify!($name),
                        value: s.to_string(),
                    })
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl ::serde::de::Visitor<'_> for V {
                    type Value = $name;

                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str(concat!("a ", stringify!($name), " name or integer"))
                    }

                    fn visit_str<E: ::serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        v.parse().map_err(E::custom)
                    }

                    fn visit_i64<E: ::serde::de::Error>(self, v: i64) -> Result<$name, E> {
                        $name::from_value(v).ok_or_else(|| {
                            E::custom(format!(concat!("unknown ", stringify!($name), " value {}"), v))
                        })
                    }

                    fn visit_u64<E: ::serde::de::Error>(self, v: u64) -> Result<$name, E> {
                        let v = i64::try_from(v).map_err(E::custom)?;
                        self.visit_i64(v)
                    }

                    /// `2.0` is the integer 2 in JSON (and to JSON Schema's `integer`).
                    fn visit_f64<E: ::serde::de::Error>(self, v: f64) -> Result<$name, E> {
                        if v.fract() == 0.0 && v.abs() < 1e15 {
                            self.visit_i64(v as i64)
                        } else {
                            Err(E::custom(format!(concat!("unknown ", stringify!($name), " value {}"), v)))
                        }
                    }
                }
                deserializer.deserialize_any(V)
            }
        }
    };
}

/// A `[Flags]` enum whose JSON form is the set member names joined by `", "`,
/// e.g. `"CurrentRead, CurrentWrite"`, as .NET formats flag values.
///
/// Modelled as a bit-set newtype so unknown combinations survive a round trip.
macro_rules! flags_enum {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$vmeta:meta])* const $flag:ident = $value:expr => $wire:literal; )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(pub u32);

        impl $name {
            $( $(#[$vmeta])* pub const $flag: $name = $name($value); )+

            /// Member names with their bits, in declaration order.
            pub const NAMES: &'static [(&'static str, u32)] = &[$(($wire, $value)),+];

            /// The raw bits.
            pub const fn bits(self) -> u32 {
                self.0
            }

            /// Whether every bit of `other` is set.
            pub const fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }

            /// Whether no bit is set.
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }

            /// The .NET text form, or `None` when bits without a name are set
            /// (then .NET falls back to the number).
            pub fn to_names(self) -> Option<String> {
                if self.0 == 0 {
                    return Self::NAMES
                        .iter()
                        .find(|(_, bits)| *bits == 0)
                        .map(|(name, _)| (*name).to_string());
                }
                let mut rest = self.0;
                let mut names = Vec::new();
                for (name, bits) in Self::NAMES {
                    if *bits != 0 && self.0 & bits == *bits {
                        names.push(*name);
                        rest &= !bits;
                    }
                }
                (rest == 0).then(|| names.join(", "))
            }
        }

        /// What is written: the member names joined by `", "`, or the number when bits
        /// without a name are set.
        #[cfg(feature = "openapi")]
        impl ::utoipa::PartialSchema for $name {
            fn schema() -> ::utoipa::openapi::RefOr<::utoipa::openapi::schema::Schema> {
                use ::utoipa::openapi::schema::{KnownFormat, SchemaFormat, Type};
                let names: Vec<&str> = Self::NAMES.iter().map(|(name, _)| *name).collect();
                let example = Self::NAMES
                    .iter()
                    .filter(|(_, bits)| *bits != 0)
                    .take(2)
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>()
                    .join(", ");
                ::utoipa::openapi::OneOfBuilder::new()
                    .item(
                        ::utoipa::openapi::ObjectBuilder::new()
                            .schema_type(Type::String)
                            .description(Some(format!(
                                "Flag names joined by \", \" (read in any letter case): {}",
                                names.join(", ")
                            )))
                            .examples([example]),
                    )
                    .item(
                        ::utoipa::openapi::ObjectBuilder::new()
                            .schema_type(Type::Integer)
                            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                            .minimum(Some(0))
                            .maximum(Some(u32::MAX))
                            .description(Some("The raw bits, written when a bit has no name")),
                    )
                    .description(Some(concat!(stringify!($name), " flags")))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl ::utoipa::ToSchema for $name {
            fn name() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl ::std::ops::BitOr for $name {
            type Output = $name;

            fn bitor(self, rhs: $name) -> $name {
                $name(self.0 | rhs.0)
            }
        }

        impl ::std::ops::BitOrAssign for $name {
            fn bitor_assign(&mut self, rhs: $name) {
                self.0 |= rhs.0;
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::UnknownEnumValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut bits = 0u32;
                for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let found = Self::NAMES
                        .iter()
                        .find(|(name, _)| name.eq_ignore_ascii_case(part))
                        .map(|(_, b)| *b)
                        .or_else(|| part.parse::<u32>().ok());
                    match found {
                        Some(b) => bits |= b,
                        None => {
                            return Err($crate::UnknownEnumValue {
                                type_name: stringify!($name),
                                value: part.to_string(),
                            })
                        }
                    }
                }
                Ok($name(bits))
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self.to_names() {
                    Some(names) => serializer.serialize_str(&names),
                    None => serializer.serialize_u32(self.0),
                }
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl ::serde::de::Visitor<'_> for V {
                    type Value = $name;

                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str(concat!("comma separated ", stringify!($name), " names or an integer"))
                    }

                    fn visit_str<E: ::serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        v.parse().map_err(E::custom)
                    }

                    fn visit_u64<E: ::serde::de::Error>(self, v: u64) -> Result<$name, E> {
                        u32::try_from(v).map($name).map_err(E::custom)
                    }

                    fn visit_i64<E: ::serde::de::Error>(self, v: i64) -> Result<$name, E> {
                        u32::try_from(v).map($name).map_err(E::custom)
                    }
                }
                deserializer.deserialize_any(V)
            }
        }
    };
}
