//! Behaviour of the `Methods/*` methods, kept free of server types so it is unit-testable.

use opcua::types::{StatusCode, Variant};

/// Why a method call did not produce outputs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CallError {
    /// Whole-call failure (argument count, overflow, deliberate failure).
    Status(StatusCode),
    /// Per-argument results, one per supplied argument; the call status becomes
    /// Bad_InvalidArgument as OPC UA Part 4 §5.11.2 requires.
    Arguments(Vec<StatusCode>),
}

/// `Add(a: Int32, b: Int32) -> sum: Int32`.
///
/// No implicit conversion: an Int16 or Int64 argument is a type mismatch, so gateway tests
/// can check that they encode arguments with the declared DataType. Overflow is reported as
/// Bad_OutOfRange instead of wrapping, because a wrapped sum would look like a valid result.
pub(crate) fn add(args: &[Variant]) -> Result<Vec<Variant>, CallError> {
    match args.len() {
        0 | 1 => return Err(CallError::Status(StatusCode::BadArgumentsMissing)),
        2 => {}
        _ => return Err(CallError::Status(StatusCode::BadTooManyArguments)),
    }
    let results: Vec<StatusCode> = args
        .iter()
        .map(|a| match a {
            Variant::Int32(_) => StatusCode::Good,
            _ => StatusCode::BadTypeMismatch,
        })
        .collect();
    let (Variant::Int32(a), Variant::Int32(b)) = (&args[0], &args[1]) else {
        return Err(CallError::Arguments(results));
    };
    a.checked_add(*b)
        .map(|sum| vec![Variant::Int32(sum)])
        .ok_or(CallError::Status(StatusCode::BadOutOfRange))
}

/// `Fail()`: always Bad_InternalError, so callers can verify that a Bad method status is
/// surfaced rather than swallowed.
pub(crate) fn fail(args: &[Variant]) -> Result<Vec<Variant>, CallError> {
    if !args.is_empty() {
        return Err(CallError::Status(StatusCode::BadTooManyArguments));
    }
    Err(CallError::Status(StatusCode::BadInternalError))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_sums_int32() {
        assert_eq!(
            add(&[Variant::Int32(2), Variant::Int32(3)]),
            Ok(vec![Variant::Int32(5)])
        );
    }

    #[test]
    fn add_checks_count_and_types() {
        assert_eq!(
            add(&[Variant::Int32(2)]),
            Err(CallError::Status(StatusCode::BadArgumentsMissing))
        );
        assert_eq!(
            add(&[Variant::Int32(1), Variant::Int32(2), Variant::Int32(3)]),
            Err(CallError::Status(StatusCode::BadTooManyArguments))
        );
        assert_eq!(
            add(&[Variant::Int32(1), Variant::String("x".into())]),
            Err(CallError::Arguments(vec![
                StatusCode::Good,
                StatusCode::BadTypeMismatch
            ]))
        );
        assert_eq!(
            add(&[Variant::Int32(i32::MAX), Variant::Int32(1)]),
            Err(CallError::Status(StatusCode::BadOutOfRange))
        );
    }

    #[test]
    fn fail_always_fails() {
        assert_eq!(
            fail(&[]),
            Err(CallError::Status(StatusCode::BadInternalError))
        );
    }
}
