//! RFC 6455 conformance, written from the RFC as raw bytes against the echo
//! example (`examples/echo.rs`, the real binary): reserved bits, opcodes,
//! control-frame rules, fragmentation, UTF-8 (failing fast inside a
//! fragmented message), close codes and reasons, and 16 MiB and 64 MiB
//! messages both ways. Each case names the section it checks.
#![cfg(feature = "router")]

mod common;

use std::process::Command;

use common::{
    client_frame, client_frame_zero_mask, example_path, handshake, raw, start_example, Example,
    FrameReader, RawFrame, TIMEOUT,
};
use tokio::io::AsyncWriteExt;

const MIB: usize = 1024 * 1024;

/// The echo example, listening on a port of its own.
async fn echo() -> Example {
    let mut command = Command::new(example_path("echo"));
    command.arg("127.0.0.1:0");
    start_example(command)
}

async fn open(echo: &Example) -> FrameReader {
    let res = raw(echo.addr, &handshake("")).await;
    assert_eq!(res.status, 101);
    FrameReader::new(res)
}

impl FrameReader {
    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads frames until a close; returns its code (`None`: no code).
    async fn close_code_after(&mut self, mut seen: impl FnMut(RawFrame)) -> Option<u16> {
        loop {
            let frame = self.expect().await;
            if frame.opcode() == 0x8 {
                return frame.close_code();
            }
            seen(frame);
        }
    }

    async fn expect_close(&mut self, code: u16, case: &str) {
        let got = self
            .close_code_after(|f| panic!("{case}: unexpected {f:?}"))
            .await;
        assert_eq!(got, Some(code), "{case}");
        // After the close the server ends the TCP connection (§7.1.1).
        assert!(
            tokio::time::timeout(TIMEOUT, self.next())
                .await
                .unwrap()
                .is_none(),
            "{case}: the connection stayed open"
        );
    }
}

#[tokio::test]
async fn reserved_bits_fail_the_connection_5_2() {
    let echo = echo().await;
    for (bits, case) in [
        (0x40, "RSV1"),
        (0x20, "RSV2"),
        (0x10, "RSV3"),
        (0x70, "all three"),
    ] {
        let mut ws = open(&echo).await;
        ws.send(&client_frame(0x81 | bits, b"hello")).await;
        ws.expect_close(1002, case).await;
    }
    // On a control frame too.
    let mut ws = open(&echo).await;
    ws.send(&client_frame(0x89 | 0x40, b"")).await;
    ws.expect_close(1002, "RSV1 on a ping").await;
}

#[tokio::test]
async fn reserved_opcodes_fail_the_connection_5_2() {
    let echo = echo().await;
    for opcode in [0x3u8, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        let mut ws = open(&echo).await;
        ws.send(&client_frame(0x80 | opcode, b"x")).await;
        ws.expect_close(1002, &format!("opcode {opcode:#x}")).await;
    }
}

#[tokio::test]
async fn control_frames_follow_5_5() {
    let echo = echo().await;
    // A ping of 125 bytes (the most allowed) is answered with the same.
    let mut ws = open(&echo).await;
    let payload = vec![b'p'; 125];
    ws.send(&client_frame(0x89, &payload)).await;
    let pong = ws.expect().await;
    assert_eq!((pong.opcode(), pong.payload), (0xA, payload));
    // An empty ping too.
    ws.send(&client_frame(0x89, b"")).await;
    let pong = ws.expect().await;
    assert_eq!((pong.opcode(), pong.payload.len()), (0xA, 0));
    // An unsolicited pong is ignored (§5.5.3): the next message echoes.
    ws.send(&client_frame(0x8A, b"unasked")).await;
    ws.send(&client_frame(0x81, b"after")).await;
    assert_eq!(ws.expect().await.payload, b"after");

    // 126 bytes is too long for a control frame.
    let mut ws = open(&echo).await;
    ws.send(&client_frame(0x89, &[0u8; 126])).await;
    ws.expect_close(1002, "ping of 126 bytes").await;
    // Control frames must not be fragmented.
    let mut ws = open(&echo).await;
    ws.send(&client_frame(0x09, b"frag")).await;
    ws.expect_close(1002, "fragmented ping").await;
}

#[tokio::test]
async fn fragmented_messages_are_reassembled_with_control_frames_between_5_4() {
    let echo = echo().await;
    let mut ws = open(&echo).await;
    ws.send(&client_frame(0x01, b"Hel")).await;
    ws.send(&client_frame(0x89, b"mid")).await;
    ws.send(&client_frame(0x00, b"")).await;
    ws.send(&client_frame(0x00, b"lo, ")).await;
    ws.send(&client_frame(0x80, b"world")).await;
    // The ping is answered before the message completes.
    let pong = ws.expect().await;
    assert_eq!((pong.opcode(), pong.payload), (0xA, b"mid".to_vec()));
    let text = ws.expect().await;
    assert_eq!(
        (text.opcode(), text.payload),
        (0x1, b"Hello, world".to_vec())
    );
    // A binary message in many one-byte fragments.
    let mut bytes = client_frame(0x02, &[0]);
    for i in 1..99u8 {
        bytes.extend(client_frame(0x00, &[i]));
    }
    bytes.extend(client_frame(0x80, &[99]));
    ws.send(&bytes).await;
    let binary = ws.expect().await;
    assert_eq!(binary.payload, (0..100u8).collect::<Vec<_>>());
}

#[tokio::test]
async fn fragmentation_errors_fail_the_connection_5_4() {
    let echo = echo().await;
    let mut ws = open(&echo).await;
    ws.send(&client_frame(0x80, b"no start")).await;
    ws.expect_close(1002, "continuation without a message")
        .await;

    let mut ws = open(&echo).await;
    ws.send(&client_frame(0x01, b"start")).await;
    ws.send(&client_frame(0x81, b"new message inside")).await;
    ws.expect_close(1002, "a new data frame inside a fragmented message")
        .await;
}

#[tokio::test]
async fn text_must_be_utf8_8_1() {
    let echo = echo().await;
    // Valid: a four-byte character split across three fragments.
    let mut ws = open(&echo).await;
    let smile = "🙂".as_bytes();
    ws.send(&client_frame(0x01, &smile[..1])).await;
    ws.send(&client_frame(0x00, &smile[1..3])).await;
    ws.send(&client_frame(0x80, &smile[3..])).await;
    assert_eq!(ws.expect().await.payload, smile);

    for (bytes, case) in [
        (&[0xff][..], "0xFF"),
        (&[0xc0, 0x80][..], "overlong NUL"),
        (&[0xed, 0xa0, 0x80][..], "UTF-16 surrogate"),
        (&[0xf4, 0x90, 0x80, 0x80][..], "above U+10FFFF"),
    ] {
        let mut ws = open(&echo).await;
        ws.send(&client_frame(0x81, bytes)).await;
        ws.expect_close(1007, case).await;
    }

    // Fail fast: invalid bytes in the first fragment are refused before
    // the message ends (the rest is never sent).
    let mut ws = open(&echo).await;
    ws.send(&client_frame(0x01, b"ok so far \xff")).await;
    ws.expect_close(1007, "invalid inside a fragmented message")
        .await;
    // A truncated character at the end of the message is invalid too.
    let mut ws = open(&echo).await;
    ws.send(&client_frame(0x01, b"cut ")).await;
    ws.send(&client_frame(0x80, &smile[..2])).await;
    ws.expect_close(1007, "truncated character").await;
}

#[tokio::test]
async fn close_codes_and_reasons_follow_5_5_1_and_7_4() {
    let echo = echo().await;
    // Valid codes are echoed, with any reason of valid UTF-8.
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999,
    ] {
        let mut ws = open(&echo).await;
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice("bye ✓".as_bytes());
        ws.send(&client_frame(0x88, &payload)).await;
        ws.expect_close(code, &format!("code {code}")).await;
    }
    // An empty close is answered with a close (§5.5.1).
    let mut ws = open(&echo).await;
    ws.send(&client_frame(0x88, b"")).await;
    let got = ws.close_code_after(|f| panic!("{f:?}")).await;
    assert!(got.is_none() || got == Some(1000), "{got:?}");

    // Codes that must not be sent, a one-byte payload, and a reason that
    // is not UTF-8 fail the connection.
    for (payload, expected, case) in [
        (vec![0x03, 0xe7], 1002, "code 999"),
        (vec![0x03, 0xec], 1002, "code 1004"),
        (vec![0x03, 0xed], 1002, "code 1005"),
        (vec![0x03, 0xee], 1002, "code 1006"),
        (vec![0x03, 0xf7], 1002, "code 1015"),
        (vec![0x13, 0x88], 1002, "code 5000"),
        (vec![0x03], 1002, "one byte"),
        (vec![0x03, 0xe8, 0xff], 1007, "reason not UTF-8"),
    ] {
        let mut ws = open(&echo).await;
        ws.send(&client_frame(0x88, &payload)).await;
        ws.expect_close(expected, case).await;
    }
}

#[tokio::test]
async fn messages_of_16_and_64_mib_go_both_ways() {
    let echo = echo().await;
    let mut ws = open(&echo).await;
    let text = vec![b't'; 16 * MIB];
    ws.send(&client_frame_zero_mask(0x81, &text)).await;
    let back = ws.expect().await;
    assert_eq!((back.opcode(), back.payload.len()), (0x1, 16 * MIB));
    assert!(back.payload == text);

    let binary: Vec<u8> = (0..64 * MIB).map(|i| (i % 253) as u8).collect();
    ws.send(&client_frame_zero_mask(0x82, &binary)).await;
    let back = tokio::time::timeout(TIMEOUT * 3, ws.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((back.opcode(), back.payload.len()), (0x2, 64 * MIB));
    assert!(back.payload == binary);

    // The echo's limit is 64 MiB: one byte more is refused with 1009.
    ws.send(&client_frame_zero_mask(0x82, &vec![0u8; 64 * MIB + 1]))
        .await;
    ws.expect_close(1009, "64 MiB + 1").await;
}
