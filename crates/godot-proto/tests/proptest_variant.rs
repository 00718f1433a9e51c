//! Properties of the Variant codec and the MultiplayerAPI input path:
//!
//! * `decode(encode(v)) == v` for arbitrary values of every type, nested;
//! * the encoding is 4-byte aligned and `decode` consumes exactly what `encode` wrote;
//! * arbitrary and mutated bytes never panic, and what a decode charges to its memory budget
//!   (an upper bound of what it allocates) never exceeds the limit;
//! * whatever decodes re-encodes to bytes that decode to the same encoding (a fixed point);
//! * arbitrary packets into a `MultiplayerApi` never panic and never run a handler of a mode
//!   that forbids the sender.

use godot_proto::{
    decode_counting, Aabb, Basis, Color, DecodeLimits, Dictionary, MultiplayerApi, NodePath,
    ObjectId, Plane, Quat, Rect2, RpcMode, Transform, Transform2D, Variant, Vector2, Vector3,
};
use proptest::prelude::*;

/// Godot strings end at the first NUL when decoded, so generated strings have none.
fn text() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,12}"
}

fn f32s() -> impl Strategy<Value = f32> {
    any::<f32>().prop_filter("NaN != NaN", |f| !f.is_nan())
}

fn v2() -> impl Strategy<Value = Vector2> {
    (f32s(), f32s()).prop_map(|(x, y)| Vector2::new(x, y))
}

fn v3() -> impl Strategy<Value = Vector3> {
    (f32s(), f32s(), f32s()).prop_map(|(x, y, z)| Vector3::new(x, y, z))
}

fn color() -> impl Strategy<Value = Color> {
    (f32s(), f32s(), f32s(), f32s()).prop_map(|(r, g, b, a)| Color::new(r, g, b, a))
}

fn basis() -> impl Strategy<Value = Basis> {
    (v3(), v3(), v3()).prop_map(|(a, b, c)| Basis { rows: [a, b, c] })
}

fn leaf() -> impl Strategy<Value = Variant> {
    prop_oneof![
        Just(Variant::Nil),
        any::<bool>().prop_map(Variant::Bool),
        any::<i64>().prop_map(Variant::Int),
        any::<i32>().prop_map(|i| Variant::Int(i.into())),
        any::<f64>()
            .prop_filter("NaN", |f| !f.is_nan())
            .prop_map(Variant::Real),
        f32s().prop_map(|f| Variant::Real(f.into())),
        text().prop_map(Variant::String),
        v2().prop_map(Variant::Vector2),
        (v2(), v2()).prop_map(|(position, size)| Variant::Rect2(Rect2 { position, size })),
        v3().prop_map(Variant::Vector3),
        (v2(), v2(), v2()).prop_map(|(x, y, origin)| Variant::Transform2D(Transform2D {
            x,
            y,
            origin
        })),
        (v3(), f32s()).prop_map(|(normal, d)| Variant::Plane(Plane { normal, d })),
        color().prop_map(|c| Variant::Quat(Quat {
            x: c.r,
            y: c.g,
            z: c.b,
            w: c.a
        })),
        (v3(), v3()).prop_map(|(position, size)| Variant::Aabb(Aabb { position, size })),
        basis().prop_map(Variant::Basis),
        (basis(), v3()).prop_map(|(basis, origin)| Variant::Transform(Transform { basis, origin })),
        color().prop_map(Variant::Color),
        (
            prop::collection::vec(text(), 0..4),
            prop::collection::vec(text(), 0..3),
            any::<bool>()
        )
            .prop_map(|(names, subnames, absolute)| Variant::NodePath(NodePath {
                names,
                subnames,
                absolute
            })),
        Just(Variant::Rid),
        any::<u64>().prop_map(|id| Variant::Object(ObjectId(id))),
        prop::collection::vec(any::<u8>(), 0..20).prop_map(Variant::PoolByteArray),
        prop::collection::vec(any::<i32>(), 0..8).prop_map(Variant::PoolIntArray),
        prop::collection::vec(f32s(), 0..8).prop_map(Variant::PoolRealArray),
        prop::collection::vec(text(), 0..5).prop_map(Variant::PoolStringArray),
        prop::collection::vec(v2(), 0..5).prop_map(Variant::PoolVector2Array),
        prop::collection::vec(v3(), 0..5).prop_map(Variant::PoolVector3Array),
        prop::collection::vec(color(), 0..5).prop_map(Variant::PoolColorArray),
    ]
}

fn variant() -> impl Strategy<Value = Variant> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Variant::Array),
            prop::collection::vec((inner.clone(), inner), 0..5)
                .prop_map(|pairs| Variant::Dictionary(Dictionary(pairs))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn decode_inverts_encode(v in variant()) {
        let bytes = v.to_bytes();
        prop_assert_eq!(bytes.len() % 4, 0, "4-byte aligned");
        let (back, used) = Variant::decode(&bytes, &DecodeLimits::default()).unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(&back, &v);
        // Bytes after the value are left alone.
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[1, 2, 3, 4]);
        let (back2, used2) = Variant::decode(&longer, &DecodeLimits::default()).unwrap();
        prop_assert_eq!(used2, bytes.len());
        prop_assert_eq!(&back2, &v);
        // Every strict prefix fails (no value is a prefix of itself), without panicking.
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            if cut < bytes.len() {
                prop_assert!(Variant::decode(&bytes[..cut], &DecodeLimits::default()).is_err());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_nor_exceed_the_budget(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        max_alloc in 0usize..4096,
        max_depth in 0usize..8,
    ) {
        let limits = DecodeLimits { max_depth, max_alloc };
        match decode_counting(&bytes, &limits) {
            Ok((v, used, charged)) => {
                prop_assert!(used <= bytes.len());
                prop_assert!(charged <= max_alloc);
                // A fixed point: re-encoding what decoded gives bytes that decode to the same
                // encoding (compared as bytes: NaNs are not equal to themselves).
                let again = v.to_bytes();
                let (w, _) = Variant::decode(&again, &DecodeLimits::default()).unwrap();
                prop_assert_eq!(w.to_bytes(), again);
            }
            Err((_, charged)) => prop_assert!(charged <= max_alloc),
        }
    }

    #[test]
    fn mutated_encodings_never_panic(
        v in variant(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = v.to_bytes();
        for (i, x) in flips {
            let i = i.index(bytes.len());
            bytes[i] = x;
        }
        let limits = DecodeLimits { max_depth: 8, max_alloc: 1 << 16 };
        let charged = match decode_counting(&bytes, &limits) {
            Ok((_, _, charged)) | Err((_, charged)) => charged,
        };
        prop_assert!(charged <= limits.max_alloc);
        let cut = cut.index(bytes.len() + 1);
        let _ = Variant::decode(&bytes[..cut], &limits);
    }

    #[test]
    fn arbitrary_packets_into_the_api_never_panic(
        packets in prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..64),
                // Well-formed heads with random tails reach the argument decoder.
                (0u8..5, prop::collection::vec(any::<u8>(), 0..48)).prop_map(|(cmd, tail)| {
                    let mut p = vec![cmd, 1, 0, 0, 0];
                    p.extend_from_slice(b"remote\0");
                    p.extend_from_slice(&tail);
                    p
                }),
            ],
            1..16,
        ),
        from in prop_oneof![Just(1), Just(7), any::<i32>()],
    ) {
        let mut api = MultiplayerApi::with_state(0u32);
        api.register("Game", "remote", RpcMode::Remote, |ctx, _args: Vec<Variant>| {
            *ctx.state_mut() += 1;
        });
        api.register("Game", "off", RpcMode::Disabled, |_ctx, _args: Vec<Variant>| {
            panic!("a disabled method ran");
        });
        api.register("Game", "puppet", RpcMode::Puppet, |_ctx, _args: Vec<Variant>| {
            panic!("a puppet method ran on the master");
        });
        api.start_server();
        api.on_peer_connected(7);
        // Announce path id 1 = Game for the sender, as a real peer would.
        api.handle_packet(from, b"\x02\x01\x00\x00\x00Game\x00");
        for p in &packets {
            api.handle_packet(from, p);
            while api.poll_outgoing().is_some() {}
            while api.poll_event().is_some() {}
        }
        let stats = api.stats();
        // (A packet "from" our own id counts as a local call.)
        let ran = stats.calls_executed + stats.local_calls;
        prop_assert!(ran <= packets.len() as u64);
        prop_assert_eq!(u64::from(*api.state()), ran);
    }
}
