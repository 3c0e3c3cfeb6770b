//! JSON messages: one encoding and one decoding for sockets, split halves
//! and hub connections.

use crate::{Error, Message};

/// Serializes a value into a text message.
pub(crate) fn to_message<T: serde::Serialize + ?Sized>(value: &T) -> Result<Message, Error> {
    serde_json::to_string(value)
        .map(Message::text)
        .map_err(Error::json)
}

/// What an incoming item means to a JSON reader.
pub(crate) enum Decoded<T> {
    /// A ping or pong: read on.
    Skip,
    /// The peer closed: the reader is done.
    End,
    /// A value, or why there is none (bad JSON, or a connection error).
    Item(Result<T, Error>),
}

/// Parses a text or binary message as JSON.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(item: Result<Message, Error>) -> Decoded<T> {
    let parsed = match item {
        Ok(Message::Text(text)) => serde_json::from_str(&text),
        Ok(Message::Binary(data)) => serde_json::from_slice(&data),
        Ok(Message::Ping(_) | Message::Pong(_)) => return Decoded::Skip,
        Ok(Message::Close(_)) => return Decoded::End,
        Err(err) => return Decoded::Item(Err(err)),
    };
    Decoded::Item(parsed.map_err(Error::json))
}
