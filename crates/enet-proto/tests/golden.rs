//! Golden bytes from a real session: a Godot 3.2.3 `NetworkedMultiplayerENet` client and server
//! (on the system C ENet 1.3.17, no checksum, no compression) captured on loopback, 19 datagrams
//! from CONNECT to DISCONNECT. The bytes are kept here as hex literals; no file is read.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use enet_proto::wire::{
    Command, CommandHeader, Connect, Datagram, Header, WireCommand, COMMAND_FLAG_ACKNOWLEDGE,
    COMMAND_FLAG_UNSEQUENCED,
};
use enet_proto::{Event, Host, HostConfig, PacketFlags};
use hex_literal::hex;

/// All 19 datagrams of the capture, in order.
const CAPTURE: [&[u8]; 19] = [
    &hex!("8fff568282ff00010000ffff0000057800010000000000030000000000000000000013880000000200000002fed8458236c3558f"),
    &hex!("8000568483ff0001000000000000057800010000000000030000000000000000000013880000000200000002fed84582"),
    &hex!("8000568a01ff0001000156848601000100128f55c33601000000020100000047616d6500"),
    &hex!("8000568a8601000200318f55c33601000000002400008068656c6c6f00020400000006000000636c69656e740000020000000200000047616d6500"),
    &hex!("8000568a8601000300298f55c33601000000001c000080746f5f6d6173746572000104000000010000006d00000047616d6500"),
    &hex!("8000568a8601000400258f55c33601000000001800008073796e635f70696e670001020000002b00000047616d6500"),
    &hex!("8000568b010100010001568a860100010012010000008f55c336020100000047616d6500"),
    &hex!("8000568b860100020031010000008f55c336002400008068656c6c6f000204000000060000007365727665720000020000000100000047616d6500"),
    &hex!("8000568b860100030025010000008f55c336001800008073796e635f70696e670001020000002a00000047616d6500"),
    &hex!("8000568b860100040029010000008f55c336001c000080746f5f707570706574000104000000010000007000000047616d6500"),
    &hex!("00004902000000010021010000008f55c3360014000080756e72656c0001020000000700000047616d6500"),
    &hex!("0000010100020002568a010100030003568a010100040004568a"),
    &hex!("8000568b86010005000e010000008f55c3360347616d6500"),
    &hex!("8000568b860100060035010000008f55c33600280000807265706c7900020400000009000000686920636c69656e74000000020000000300000047616d6500"),
    &hex!("0000010100010001568b010100020002568b010100030003568b010100040004568b010100050005568b010100060006568b"),
    &hex!("8000569186010005000e8f55c336010000000347616d6500"),
    &hex!("00000101000500055691"),
    &hex!("8000588a85ff0002"),
    &hex!("8000588f44ff000236c3558f85ff0003"),
];

const GODOT_CONNECT: Connect = Connect {
    outgoing_peer_id: 0,
    incoming_session_id: 0xFF,
    outgoing_session_id: 0xFF,
    mtu: 1400,
    window_size: 65536,
    channel_count: 3,
    incoming_bandwidth: 0,
    outgoing_bandwidth: 0,
    packet_throttle_interval: 5000,
    packet_throttle_acceleration: 2,
    packet_throttle_deceleration: 2,
    connect_id: 0xfed8_4582,
    data: 918_771_087,
};

#[test]
fn every_captured_datagram_roundtrips() {
    for (i, bytes) in CAPTURE.iter().enumerate() {
        let d = Datagram::parse(bytes, false).unwrap_or_else(|e| panic!("#{}: {e}", i + 1));
        let mut out = Vec::new();
        d.emit(&mut out);
        assert_eq!(&out[..], *bytes, "datagram #{}", i + 1);
    }
}

#[test]
fn test_parse_connect() {
    let d = Datagram::parse(CAPTURE[0], false).unwrap();
    assert_eq!(
        d.header,
        Header {
            peer_id: 0xFFF,
            session_id: 0,
            compressed: false,
            sent_time: Some(22146)
        }
    );
    assert_eq!(d.commands.len(), 1);
    assert_eq!(d.commands[0].header, CommandHeader::new(0x82, 0xFF, 1));
    assert_eq!(d.commands[0].command, Command::Connect(GODOT_CONNECT));
}

#[test]
fn test_emit_connect() {
    let d = Datagram {
        header: Header {
            peer_id: 0xFFF,
            session_id: 0,
            compressed: false,
            sent_time: Some(22146),
        },
        checksum: None,
        commands: vec![WireCommand {
            header: CommandHeader::new(Command::CONNECT | COMMAND_FLAG_ACKNOWLEDGE, 0xFF, 1),
            command: Command::Connect(GODOT_CONNECT),
        }],
    };
    let mut out = Vec::new();
    d.emit(&mut out);
    assert_eq!(out, CAPTURE[0]);
}

#[test]
fn test_parse_and_emit_verify_connect() {
    let d = Datagram::parse(CAPTURE[1], false).unwrap();
    let verify = Connect {
        incoming_session_id: 0,
        outgoing_session_id: 0,
        data: 0,
        ..GODOT_CONNECT
    };
    assert_eq!(d.header.sent_time, Some(22148));
    assert_eq!(d.header.peer_id, 0);
    assert_eq!(d.commands[0].command, Command::VerifyConnect(verify));
    let mut out = Vec::new();
    WireCommand {
        header: CommandHeader::new(Command::VERIFY_CONNECT | COMMAND_FLAG_ACKNOWLEDGE, 0xFF, 1),
        command: Command::VerifyConnect(verify),
    }
    .emit(&mut out);
    assert_eq!(out, CAPTURE[1][4..]);
}

#[test]
fn test_parse_and_emit_ack_and_reliable() {
    let d = Datagram::parse(CAPTURE[2], false).unwrap();
    let payload = hex!("8f55c33601000000020100000047616d6500");
    let expected = vec![
        WireCommand {
            header: CommandHeader::new(Command::ACKNOWLEDGE, 0xFF, 1),
            command: Command::Acknowledge {
                received_reliable_sequence_number: 1,
                received_sent_time: 22148,
            },
        },
        WireCommand {
            header: CommandHeader::new(Command::SEND_RELIABLE | COMMAND_FLAG_ACKNOWLEDGE, 1, 1),
            command: Command::SendReliable { data: &payload },
        },
    ];
    assert_eq!(d.commands, expected);
    let mut out = Vec::new();
    Datagram {
        header: d.header,
        checksum: None,
        commands: expected,
    }
    .emit(&mut out);
    assert_eq!(out, CAPTURE[2]);
}

#[test]
fn test_parse_and_emit_unsequenced_disconnect_and_ping() {
    let d = Datagram::parse(CAPTURE[18], false).unwrap();
    let expected = vec![
        WireCommand {
            header: CommandHeader::new(Command::DISCONNECT | COMMAND_FLAG_UNSEQUENCED, 0xFF, 2),
            command: Command::Disconnect { data: 918_771_087 },
        },
        WireCommand {
            header: CommandHeader::new(Command::PING | COMMAND_FLAG_ACKNOWLEDGE, 0xFF, 3),
            command: Command::Ping,
        },
    ];
    assert_eq!(d.commands, expected);
    let unseq = Datagram::parse(CAPTURE[10], false).unwrap();
    assert!(matches!(
        unseq.commands[0].command,
        Command::SendUnsequenced { unsequenced_group: 1, data } if data.len() == 33
    ));
    assert_eq!(unseq.header.sent_time, None);
}

fn godot_client() -> SocketAddr {
    "127.0.0.1:47262".parse().unwrap()
}

/// Our client emits the same CONNECT as Godot's (modulo clock and random connect id).
#[test]
fn host_connect_matches_c_enet() {
    let now = Instant::now();
    let mut host = Host::new(
        HostConfig {
            mtu: 1400,
            ..HostConfig::default()
        },
        now,
    )
    .unwrap();
    host.connect(now, "127.0.0.1:7777".parse().unwrap(), 3, 918_771_087)
        .unwrap();
    let t = host.poll_transmit(now).unwrap();
    assert_eq!(t.data.len(), CAPTURE[0].len());
    assert_eq!(t.data[..2], CAPTURE[0][..2]);
    assert_eq!(t.data[4..44], CAPTURE[0][4..44]); // everything but sentTime and connectID
    assert_eq!(t.data[48..], CAPTURE[0][48..]);
    assert!(host.poll_transmit(now).is_none());
}

/// Our server answers Godot's captured CONNECT with the captured VERIFY_CONNECT,
/// then accepts the client's ACK + RPC and acknowledges it like C ENet.
#[test]
fn host_accepts_captured_godot_client() {
    let t0 = Instant::now();
    let mut server = Host::new(
        HostConfig {
            mtu: 1400,
            ..HostConfig::default()
        },
        t0,
    )
    .unwrap();
    server.handle_datagram(t0, godot_client(), CAPTURE[0]);
    let verify = server.poll_transmit(t0).unwrap();
    assert_eq!(verify.destination, godot_client());
    assert_eq!(verify.data[..2], CAPTURE[1][..2]);
    assert_eq!(verify.data[4..], CAPTURE[1][4..]);
    assert!(server.poll_event().is_none());

    // The client's ACK must echo our own sentTime to be accepted.
    let mut ack_and_rpc = CAPTURE[2].to_vec();
    ack_and_rpc[10..12].copy_from_slice(&verify.data[2..4]);
    let t1 = t0 + Duration::from_millis(6);
    server.handle_datagram(t1, godot_client(), &ack_and_rpc);
    match server.poll_event() {
        Some(Event::Connect { address, data, .. }) => {
            assert_eq!(address, godot_client());
            assert_eq!(data, 918_771_087);
        }
        other => panic!("expected connect, got {other:?}"),
    }
    match server.poll_event() {
        Some(Event::Receive {
            channel, packet, ..
        }) => {
            assert_eq!(channel, 1);
            assert_eq!(packet.flags, PacketFlags::RELIABLE);
            assert_eq!(packet.data, CAPTURE[2][18..]);
        }
        other => panic!("expected receive, got {other:?}"),
    }
    let ack = server.poll_transmit(t1).unwrap();
    // 0x0000 header (no reliable command => no sentTime) then ACK ch 1 seq 1 echoing 0x568a.
    assert_eq!(ack.data, hex!("0000 01010001 0001 568a"));
    assert!(server.poll_transmit(t1).is_none());

    // The next three RPC datagrams are acknowledged together, byte for byte like
    // C ENet's datagram #12.
    for d in &CAPTURE[3..6] {
        server.handle_datagram(t1, godot_client(), d);
    }
    let acks = server.poll_transmit(t1).unwrap();
    assert_eq!(acks.data, CAPTURE[11]);
    let mut rpcs = 0;
    while let Some(e) = server.poll_event() {
        assert!(matches!(e, Event::Receive { channel: 1, .. }));
        rpcs += 1;
    }
    assert_eq!(rpcs, 3);

    // Godot's unsequenced DISCONNECT (datagram #19, with a PING) ends the session.
    let mut bye = CAPTURE[18].to_vec();
    bye[2..4].copy_from_slice(&CAPTURE[2][2..4]);
    server.handle_datagram(t1, godot_client(), &bye);
    match server.poll_event() {
        Some(Event::Disconnect { data, reason, .. }) => {
            assert_eq!(data, 918_771_087);
            assert_eq!(reason, enet_proto::DisconnectReason::Remote);
        }
        other => panic!("expected disconnect, got {other:?}"),
    }
    // The peer is gone: nothing (not even the PING's ACK) is sent.
    assert!(server.poll_transmit(t1).is_none());
}
