// OPCUA for Rust
// SPDX-License-Identifier: MPL-2.0
// Copyright (C) 2017-2024 Adam Lock

//! iiot patch: hostile input for the binary decoder. Every recursive decode path must stop at the
//! depth gauge in `DecodingOptions` with `BadDecodingError` instead of recursing until the stack
//! overflows (which aborts the whole process, it is not a panic). Each crafted message is decoded
//! on a thread with a 256 KiB stack, so any remaining unbounded recursion fails the test run.

use std::{io::Cursor, sync::Arc};

use crate::{
    constants,
    custom::{DataTypeTree, DynamicTypeLoader, EncodingIds, GenericTypeInfo, ParentIds, TypeInfo},
    Array, BinaryDecodable, BinaryEncodable, ContextOwned, DataTypeDefinition, DataTypeId,
    DataValue, DecodingOptions, DiagnosticInfo, EncodingResult, ExtensionObject, NamespaceMap,
    NodeId, StatusCode, StructureDefinition, StructureField, StructureType, TypeLoaderCollection,
    Variant, VariantScalarTypeId,
};

/// How deep the crafted messages nest: about 20 KB each, far beyond any stack.
const HOSTILE_DEPTH: usize = 20_000;

/// Runs `f` on a thread with a small stack and returns its result; a stack overflow aborts.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .name("small-stack-decode".into())
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("spawn decoder thread")
        .join()
        .expect("decoder thread panicked")
}

fn decode_with<T: BinaryDecodable>(bytes: &[u8], ctx: &ContextOwned) -> EncodingResult<T> {
    let mut stream = Cursor::new(bytes);
    T::decode(&mut stream, &ctx.context())
}

fn decode<T: BinaryDecodable>(bytes: &[u8]) -> EncodingResult<T> {
    decode_with(bytes, &ContextOwned::default())
}

/// `prefix`, then `unit` repeated `n` times, then `tail`.
fn repeat(prefix: &[u8], unit: &[u8], n: usize, tail: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(prefix.len() + unit.len() * n + tail.len());
    v.extend_from_slice(prefix);
    for _ in 0..n {
        v.extend_from_slice(unit);
    }
    v.extend_from_slice(tail);
    v
}

fn assert_decoding_error<T: std::fmt::Debug>(what: &str, r: EncodingResult<T>) {
    match r {
        Ok(v) => panic!("{what}: decoded although too deep: {v:?}"),
        Err(e) => assert_eq!(e.status(), StatusCode::BadDecodingError, "{what}: {e}"),
    }
}

fn encode<T: BinaryEncodable>(value: &T) -> Vec<u8> {
    value.encode_to_vec(&ContextOwned::default().context())
}

// Variant encoding bytes of the built-in types involved.
const VARIANT_EXTENSION_OBJECT: u8 = 22;
const VARIANT_DATA_VALUE: u8 = 23;
const VARIANT_VARIANT: u8 = 24;
const VARIANT_DIAGNOSTIC_INFO: u8 = 25;
const VARIANT_ARRAY: u8 = 0x80;
/// DiagnosticInfo encoding mask: only an inner diagnostic info follows.
const HAS_INNER_DIAGNOSTIC_INFO: u8 = 0x40;
/// DataValue encoding mask: only a value follows.
const DATA_VALUE_HAS_VALUE: u8 = 0x01;

#[test]
fn diagnostic_info_nested_20000_deep_in_variant_is_rejected() {
    on_small_stack(|| {
        // Variant of type DiagnosticInfo, 20,000 inner diagnostic infos, the last one empty.
        let bytes = repeat(
            &[VARIANT_DIAGNOSTIC_INFO],
            &[HAS_INNER_DIAGNOSTIC_INFO],
            HOSTILE_DEPTH,
            &[0x00],
        );
        assert_eq!(bytes.len(), HOSTILE_DEPTH + 2);
        assert_decoding_error("Variant(DiagnosticInfo)", decode::<Variant>(&bytes));
        assert_decoding_error("DiagnosticInfo", decode::<DiagnosticInfo>(&bytes[1..]));
        // An array of such Variants.
        let mut array = vec![VARIANT_DIAGNOSTIC_INFO | VARIANT_ARRAY, 1, 0, 0, 0];
        array.extend_from_slice(&bytes[1..]);
        assert_decoding_error("Variant(DiagnosticInfo[])", decode::<Variant>(&array));
    });
}

fn diagnostic_chain(inner_levels: usize) -> DiagnosticInfo {
    let mut info = DiagnosticInfo {
        symbolic_id: Some(inner_levels as i32),
        inner_status_code: Some(StatusCode::BadInternalError),
        ..DiagnosticInfo::null()
    };
    for level in (0..inner_levels).rev() {
        info = DiagnosticInfo {
            symbolic_id: Some(level as i32),
            inner_status_code: Some(StatusCode::BadInternalError),
            inner_diagnostic_info: Some(Box::new(info)),
            ..DiagnosticInfo::null()
        };
    }
    info
}

#[test]
fn diagnostic_info_within_the_limit_still_decodes() {
    on_small_stack(|| {
        let max = constants::MAX_DECODING_DEPTH as usize;
        // As deep as the gauge allows: round-trips unchanged.
        let ok = diagnostic_chain(max);
        assert_eq!(decode::<DiagnosticInfo>(&encode(&ok)).unwrap(), ok);
        let variant = Variant::from(ok.clone());
        assert_eq!(decode::<Variant>(&encode(&variant)).unwrap(), variant);
        // One level more is refused.
        assert_decoding_error(
            "DiagnosticInfo over the limit",
            decode::<DiagnosticInfo>(&encode(&diagnostic_chain(max + 1))),
        );
    });
}

#[test]
fn variant_data_value_cycle_20000_deep_is_rejected() {
    on_small_stack(|| {
        // Variant(DataValue(Variant(DataValue(...)))), innermost Variant empty.
        let scalar = repeat(
            &[],
            &[VARIANT_DATA_VALUE, DATA_VALUE_HAS_VALUE],
            HOSTILE_DEPTH,
            &[0x00],
        );
        assert_decoding_error("Variant(DataValue) chain", decode::<Variant>(&scalar));
        // The same starting from a DataValue, as in WriteValue.value.
        let mut from_data_value = vec![DATA_VALUE_HAS_VALUE];
        from_data_value.extend_from_slice(&scalar);
        assert_decoding_error(
            "DataValue(Variant) chain",
            decode::<DataValue>(&from_data_value),
        );
        // Arrays of one DataValue each.
        let arrays = repeat(
            &[],
            &[
                VARIANT_DATA_VALUE | VARIANT_ARRAY,
                1,
                0,
                0,
                0,
                DATA_VALUE_HAS_VALUE,
            ],
            HOSTILE_DEPTH,
            &[0x00],
        );
        assert_decoding_error("Variant(DataValue[]) chain", decode::<Variant>(&arrays));
    });
}

#[test]
fn variant_data_value_within_the_limit_still_decodes() {
    on_small_stack(|| {
        let max = constants::MAX_DECODING_DEPTH as usize;
        let mut value = Variant::from(42i32);
        for _ in 0..max {
            value = Variant::from(DataValue::value_only(value));
        }
        assert_eq!(decode::<Variant>(&encode(&value)).unwrap(), value);
        let too_deep = Variant::from(DataValue::value_only(value));
        assert_decoding_error(
            "Variant(DataValue) over the limit",
            decode::<Variant>(&encode(&too_deep)),
        );
    });
}

#[test]
fn nested_variants_20000_deep_are_rejected() {
    on_small_stack(|| {
        // Guarded upstream already; kept here so the whole set of cycles is covered.
        let scalar = repeat(&[], &[VARIANT_VARIANT], HOSTILE_DEPTH, &[0x00]);
        assert_decoding_error("Variant(Variant) chain", decode::<Variant>(&scalar));
        let arrays = repeat(
            &[],
            &[VARIANT_VARIANT | VARIANT_ARRAY, 1, 0, 0, 0],
            HOSTILE_DEPTH,
            &[0x00],
        );
        assert_decoding_error("Variant(Variant[]) chain", decode::<Variant>(&arrays));
    });
}

#[test]
fn extension_objects_20000_deep_are_rejected() {
    on_small_stack(|| {
        // Variant(ExtensionObject(LiteralOperand { value: Variant(ExtensionObject(...)) })).
        // LiteralOperand_Encoding_DefaultBinary is i=597: four-byte NodeId 0x01 0x00 0x55 0x02;
        // then body encoding 0x01 and a body length.
        let unit = [
            VARIANT_EXTENSION_OBJECT,
            0x01,
            0x00,
            0x55,
            0x02,
            0x01,
            5,
            0,
            0,
            0,
        ];
        let bytes = repeat(&[], &unit, HOSTILE_DEPTH, &[0x00]);
        assert_decoding_error("ExtensionObject chain", decode::<Variant>(&bytes));
        // One level decodes.
        let one = repeat(&[], &unit, 1, &[0x00]);
        assert!(decode::<Variant>(&one).is_ok());
    });
}

#[test]
fn mixed_cycles_20000_deep_are_rejected() {
    on_small_stack(|| {
        // Alternate every recursive edge: Variant -> DataValue -> Variant -> Variant[] ->
        // ExtensionObject -> ... ending in a deep DiagnosticInfo.
        let unit = [
            VARIANT_DATA_VALUE,
            DATA_VALUE_HAS_VALUE,
            VARIANT_VARIANT | VARIANT_ARRAY,
            1,
            0,
            0,
            0,
            VARIANT_EXTENSION_OBJECT,
            0x01,
            0x00,
            0x55,
            0x02,
            0x01,
            5,
            0,
            0,
            0,
        ];
        let mut tail = vec![VARIANT_DIAGNOSTIC_INFO];
        tail.extend(std::iter::repeat_n(
            HAS_INNER_DIAGNOSTIC_INFO,
            HOSTILE_DEPTH,
        ));
        tail.push(0x00);
        for n in [1, 3, HOSTILE_DEPTH / unit.len()] {
            let bytes = repeat(&[], &unit, n, &tail);
            assert_decoding_error("mixed chain", decode::<Variant>(&bytes));
        }
    });
}

#[test]
fn gauge_is_released_after_each_sibling() {
    on_small_stack(|| {
        // 250 array elements, each as deep as allowed: the gauge counts depth, not elements.
        let max = constants::MAX_DECODING_DEPTH as usize;
        let mut element = Variant::from(1u8);
        for _ in 0..max {
            element = Variant::from(DataValue::value_only(element));
        }
        let data_values =
            Variant::from(Array::new(VariantScalarTypeId::DataValue, vec![element; 250]).unwrap());
        assert_eq!(
            decode::<Variant>(&encode(&data_values)).unwrap(),
            data_values
        );
        let infos = Variant::from(
            Array::new(
                VariantScalarTypeId::DiagnosticInfo,
                vec![Variant::from(diagnostic_chain(max)); 250],
            )
            .unwrap(),
        );
        assert_eq!(decode::<Variant>(&encode(&infos)).unwrap(), infos);
    });
}

#[test]
fn extension_object_claiming_a_huge_body_is_an_error() {
    on_small_stack(|| {
        // Unknown type i=1 (falls back to a raw body), body length 0x7FFFFFFF, 3 bytes present.
        // Upstream allocated the claimed 2 GiB before reading.
        let bytes = [
            VARIANT_EXTENSION_OBJECT,
            0x00,
            0x01,
            0x01,
            0xFF,
            0xFF,
            0xFF,
            0x7F,
            1,
            2,
            3,
        ];
        assert_decoding_error("huge ExtensionObject body", decode::<Variant>(&bytes));
        // A body that is really there still decodes.
        let ok = [
            VARIANT_EXTENSION_OBJECT,
            0x00,
            0x01,
            0x01,
            3,
            0,
            0,
            0,
            1,
            2,
            3,
        ];
        let Variant::ExtensionObject(obj) = decode::<Variant>(&ok).unwrap() else {
            panic!("not an extension object");
        };
        assert!(!obj.is_null());
    });
}

/// A type tree with one self-referencing structure: `Node { Next: Node (optional) }`.
fn recursive_type_loader_context() -> ContextOwned {
    let node_type = NodeId::new(1, 1000);
    let mut parents = ParentIds::new();
    parents.add_type(node_type.clone(), DataTypeId::Structure.into());
    let mut tree = DataTypeTree::new(parents);
    tree.add_type(DataTypeId::Structure.into(), GenericTypeInfo::new(true));
    let info = TypeInfo::from_type_definition(
        DataTypeDefinition::Structure(StructureDefinition {
            default_encoding_id: NodeId::new(1, 1001),
            base_data_type: DataTypeId::Structure.into(),
            structure_type: StructureType::StructureWithOptionalFields,
            fields: Some(vec![StructureField {
                name: "Next".into(),
                data_type: node_type.clone(),
                value_rank: -1,
                is_optional: true,
                ..Default::default()
            }]),
        }),
        "Node".to_owned(),
        Some(EncodingIds {
            binary_id: NodeId::new(1, 1001),
            json_id: NodeId::new(1, 1002),
            xml_id: NodeId::new(1, 1003),
        }),
        false,
        &node_type,
        tree.parent_ids(),
    )
    .expect("type definition");
    tree.add_type(node_type, info);
    let mut loaders = TypeLoaderCollection::new();
    loaders.add_type_loader(DynamicTypeLoader::new(Arc::new(tree)));
    let mut namespaces = NamespaceMap::new();
    namespaces.add_namespace("urn:iiot:test");
    ContextOwned::new(namespaces, loaders, DecodingOptions::default())
}

#[test]
fn self_referencing_dynamic_structure_20000_deep_is_rejected() {
    on_small_stack(|| {
        let ctx = recursive_type_loader_context();
        // ExtensionObject ns=1;i=1001 (four-byte NodeId 0x01 0x01 0xE9 0x03), binary body,
        // then 20,000 `Node`s each with the optional `Next` present (mask 1), the last absent.
        let header = [0x01, 0x01, 0xE9, 0x03, 0x01, 4, 0, 0, 0];
        let bytes = repeat(&header, &[1, 0, 0, 0], HOSTILE_DEPTH, &[0, 0, 0, 0]);
        assert_decoding_error(
            "self-referencing dynamic structure",
            decode_with::<ExtensionObject>(&bytes, &ctx),
        );
        // A short chain decodes.
        let short = repeat(&header, &[1, 0, 0, 0], 3, &[0, 0, 0, 0]);
        let obj = decode_with::<ExtensionObject>(&short, &ctx).unwrap();
        assert!(!obj.is_null());
    });
}
