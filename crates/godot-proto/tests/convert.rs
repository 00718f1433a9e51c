//! Conversions between `Variant` and Rust types, both ways, and their errors.

use std::collections::HashMap;

use godot_proto::{
    Color, Dictionary, FromVariant, FromVariantError, NodePath, ObjectId, ToVariant, Transform,
    Variant, VariantType, Vector2, Vector3,
};

fn round_trip<T: ToVariant + FromVariant + PartialEq + std::fmt::Debug>(x: T) {
    let v = x.to_variant();
    // Through the wire as well.
    let v = Variant::from_bytes(&v.to_bytes()).unwrap();
    assert_eq!(T::from_variant(v).unwrap(), x);
}

#[test]
fn rust_values_survive_variant_and_wire() {
    round_trip(true);
    round_trip(-5i8);
    round_trip(40_000u16);
    round_trip(i32::MIN);
    round_trip(u32::MAX);
    round_trip(i64::MIN);
    round_trip(0.1f64);
    round_trip(1.5f32);
    round_trip(String::from("héllo"));
    round_trip(Vector2::new(1.0, 2.0));
    round_trip(Vector3::new(1.0, 2.0, 3.0));
    round_trip(Color::new(0.0, 0.5, 1.0, 1.0));
    round_trip(Transform::default());
    round_trip(NodePath::parse("/root/Game:pos"));
    round_trip(ObjectId(77));
    round_trip(Some(5i64));
    round_trip(None::<i64>);
    round_trip(vec![1i64, 2, 3]);
    round_trip(vec![vec![String::from("a")], vec![]]);
    round_trip(vec![Some(1i32), None]);
    let mut m = HashMap::new();
    m.insert(String::from("a"), vec![1.5f64]);
    m.insert(String::from("b"), vec![]);
    round_trip(m);
}

#[test]
fn pool_arrays_convert_to_vecs() {
    assert_eq!(
        Variant::PoolByteArray(vec![1, 2]).try_to::<Vec<u8>>(),
        Ok(vec![1, 2])
    );
    assert_eq!(
        Variant::PoolIntArray(vec![-1, 300]).try_to::<Vec<i64>>(),
        Ok(vec![-1, 300])
    );
    assert_eq!(
        Variant::PoolRealArray(vec![0.5]).try_to::<Vec<f32>>(),
        Ok(vec![0.5])
    );
    assert_eq!(
        Variant::PoolStringArray(vec!["x".into()]).try_to::<Vec<String>>(),
        Ok(vec!["x".to_owned()])
    );
    assert_eq!(
        Variant::PoolVector2Array(vec![Vector2::new(1.0, 1.0)]).try_to::<Vec<Vector2>>(),
        Ok(vec![Vector2::new(1.0, 1.0)])
    );
    // An element out of range names its index.
    assert_eq!(
        Variant::PoolIntArray(vec![1, 300]).try_to::<Vec<u8>>(),
        Err(FromVariantError::Element {
            index: 1,
            source: Box::new(FromVariantError::OutOfRange {
                expected: "u8",
                value: 300
            })
        })
    );
}

#[test]
fn conversion_errors_say_what_was_expected() {
    let e = Variant::from("x").try_to::<i32>().unwrap_err();
    assert_eq!(e.to_string(), "expected int, got String");
    let e = Variant::Int(1 << 40).try_to::<i32>().unwrap_err();
    assert_eq!(e.to_string(), "1099511627776 does not fit in i32");
    let e = Variant::Array(vec![Variant::Int(1), Variant::Nil])
        .try_to::<Vec<i64>>()
        .unwrap_err();
    assert_eq!(e.to_string(), "element 1: expected int, got null");
    let mut d = Dictionary::new();
    d.insert(Variant::from("k"), Variant::from(2.5));
    let e = Variant::Dictionary(d)
        .try_to::<HashMap<String, String>>()
        .unwrap_err();
    assert_eq!(e.to_string(), "element 0: expected String, got float");
    // Floats accept ints (a GDScript caller may pass 1 for 1.0), not the other way round.
    assert_eq!(Variant::Int(3).try_to::<f64>(), Ok(3.0));
    assert_eq!(
        Variant::Real(3.0).try_to::<i64>(),
        Err(FromVariantError::WrongType {
            expected: "int",
            found: VariantType::Real
        })
    );
}

#[test]
fn direct_encoding_matches_the_variant_encoding() {
    fn check<T: ToVariant>(x: T) {
        let mut direct = Vec::new();
        x.encode_variant(&mut direct);
        assert_eq!(direct, x.to_variant().to_bytes());
    }
    check(7i32);
    check(1i64 << 40);
    check(0.1f64);
    check(2.0f32);
    check(true);
    check("text");
    check(String::from("abcd"));
    check(Some(3u8));
    check(None::<bool>);
    check(vec![1i32, 2]);
    check([Variant::Nil, Variant::from(1)].as_slice());
}
