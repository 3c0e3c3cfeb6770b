//! Compile-time checks: the types and futures users hold across `.await`s
//! and move between tasks are `Send` (and `Sync` where it matters).

use hyperws::{Config, Error, Message, WebSocket, WebSocketReceiver, WebSocketSender};

fn is_send<T: Send>(_: &T) {}
fn send_type<T: Send>() {}
fn sync_type<T: Sync>() {}

#[allow(dead_code, unreachable_code, clippy::diverging_sub_expression)]
async fn futures_are_send(
    mut socket: WebSocket,
    mut tx: WebSocketSender,
    mut rx: WebSocketReceiver,
) {
    is_send(&socket.recv());
    is_send(&socket.send(Message::text("x")));
    is_send(&socket.close(1000, "bye"));
    is_send(&socket.flush());
    is_send(&tx.send(Message::text("x")));
    is_send(&rx.recv());
    #[cfg(feature = "json")]
    {
        is_send(&socket.recv_json::<serde_json::Value>());
        is_send(&socket.send_json(&1));
    }
}

#[test]
fn public_types_are_send_and_sync_where_needed() {
    send_type::<WebSocket>();
    send_type::<WebSocketSender>();
    send_type::<WebSocketReceiver>();
    send_type::<Error>();
    sync_type::<Error>();
    send_type::<Config>();
    sync_type::<Config>();
    send_type::<Message>();
    sync_type::<Message>();
}
