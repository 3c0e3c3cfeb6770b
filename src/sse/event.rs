//! One Server-Sent Event and its text on the wire (the `text/event-stream`
//! format of the HTML standard).

use std::fmt;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

/// One event of an [`Sse`](super::Sse) stream: data (over as many lines as
/// it has), and optionally its type (`event`), its id (what a reconnecting
/// `EventSource` sends back as `Last-Event-ID`), the reconnection delay the
/// client should use (`retry`), and a comment.
///
/// ```
/// use hyperws::sse::Event;
/// use std::time::Duration;
///
/// let event = Event::default()
///     .event("message")
///     .id("42")
///     .data("first line\nsecond line")
///     .retry(Duration::from_secs(3));
/// assert_eq!(
///     event.to_string(),
///     "event: message\nid: 42\nretry: 3000\ndata: first line\ndata: second line\n\n"
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct Event {
    event: Option<String>,
    id: Option<String>,
    retry: Option<Duration>,
    data: Option<String>,
    comment: Option<String>,
}

/// `true` when `value` can be one field's value: no line break (and, for
/// an id, no NUL, which the client would ignore the id for).
fn one_line(value: &str) -> bool {
    !value.contains(['\n', '\r'])
}

impl Event {
    /// The event's data; several lines become several `data:` lines, which
    /// the client joins back with `\n`. Line ends may be `\n`, `\r\n` or
    /// `\r`.
    pub fn data(mut self, data: impl Into<String>) -> Self {
        self.data = Some(data.into());
        self
    }

    /// The data as JSON (on one line).
    ///
    /// # Errors
    ///
    /// When `value` cannot be serialized.
    #[cfg(feature = "json")]
    pub fn json_data<T: serde::Serialize + ?Sized>(
        self,
        value: &T,
    ) -> Result<Self, crate::error::Error> {
        let text = serde_json::to_string(value).map_err(crate::error::Error::json)?;
        Ok(self.data(text))
    }

    /// The event's type (`addEventListener(type, ..)` in the browser;
    /// without it, `message`).
    ///
    /// # Panics
    ///
    /// When `event` holds a line break.
    pub fn event(mut self, event: impl Into<String>) -> Self {
        let event = event.into();
        assert!(
            one_line(&event),
            "an SSE event type cannot hold a line break"
        );
        self.event = Some(event);
        self
    }

    /// The event's id: the client keeps the last one it saw and sends it as
    /// `Last-Event-ID` when it reconnects.
    ///
    /// # Panics
    ///
    /// When `id` holds a line break or a NUL.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        let id = id.into();
        assert!(
            one_line(&id) && !id.contains('\0'),
            "an SSE id cannot hold a line break or a NUL"
        );
        self.id = Some(id);
        self
    }

    /// How long the client should wait before reconnecting (whole
    /// milliseconds).
    pub fn retry(mut self, delay: Duration) -> Self {
        self.retry = Some(delay);
        self
    }

    /// A comment: ignored by the client, seen by anyone reading the stream.
    /// Several lines become several comment lines.
    pub fn comment(mut self, text: impl Into<String>) -> Self {
        self.comment = Some(text.into());
        self
    }

    /// The event's text on the wire, blank line included.
    pub(crate) fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        let mut field = |name: &str, value: &str| {
            buf.put_slice(name.as_bytes());
            if !value.is_empty() {
                buf.put_slice(b" ");
                buf.put_slice(value.as_bytes());
            }
            buf.put_u8(b'\n');
        };
        if let Some(comment) = &self.comment {
            for line in lines(comment) {
                field(":", line);
            }
        }
        if let Some(event) = &self.event {
            field("event:", event);
        }
        if let Some(id) = &self.id {
            field("id:", id);
        }
        if let Some(retry) = self.retry {
            field("retry:", &retry.as_millis().to_string());
        }
        if let Some(data) = &self.data {
            for line in lines(data) {
                field("data:", line);
            }
        }
        buf.put_u8(b'\n');
        buf.freeze()
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.encode()))
    }
}

/// The lines of `text`, split at `\r\n`, `\n` or `\r` (as the client
/// splits them); an empty text is one empty line.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.find(['\r', '\n']) {
            Some(at) => {
                let skip = if text[at..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&text[at + skip..]);
                Some(&text[..at])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_lines_split_at_every_kind_of_line_end() {
        let event = Event::default().data("a\r\nb\rc\nd");
        assert_eq!(event.to_string(), "data: a\ndata: b\ndata: c\ndata: d\n\n");
        assert_eq!(Event::default().data("").to_string(), "data:\n\n");
        assert_eq!(
            Event::default().data("end\n").to_string(),
            "data: end\ndata:\n\n"
        );
    }

    #[test]
    fn comments_and_empty_events() {
        assert_eq!(
            Event::default().comment("hi\nthere").to_string(),
            ": hi\n: there\n\n"
        );
        assert_eq!(Event::default().to_string(), "\n");
    }

    #[test]
    #[should_panic(expected = "line break")]
    fn an_id_with_a_line_break_is_refused() {
        let _ = Event::default().id("1\n2");
    }
}
