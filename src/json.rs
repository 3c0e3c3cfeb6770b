//! JSON messages: one encoding and one decoding for sockets, split halves
//! and hub connections.

use std::future::Future;

use crate::error::Error;
use crate::message::Message;

/// Serializes a value into a text message.
pub(crate) fn to_message<T: serde::Serialize + ?Sized>(value: &T) -> Result<Message, Error> {
    serde_json::to_string(value)
        .map(Message::text)
        .map_err(Error::json)
}

/// Whatever receives messages: a socket, its receiving half, a hub inbox.
pub(crate) trait Recv: Send {
    fn recv_message(&mut self) -> impl Future<Output = Option<Result<Message, Error>>> + Send;
}

/// Receives messages until one decodes as JSON for `T`: pings and pongs are
/// skipped, a close ends the reading (`None`), an error or invalid JSON is
/// returned as it is.
pub(crate) async fn recv<T: serde::de::DeserializeOwned>(
    from: &mut impl Recv,
) -> Option<Result<T, Error>> {
    loop {
        let parsed = match from.recv_message().await? {
            Ok(Message::Text(text)) => serde_json::from_str(&text),
            Ok(Message::Binary(data)) => serde_json::from_slice(&data),
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Close(_)) => return None,
            Err(err) => return Some(Err(err)),
        };
        return Some(parsed.map_err(Error::json));
    }
}
