//! What the page and the server say to each other (JSON text frames), and
//! the checks on what visitors send.

use std::time::{SystemTime, UNIX_EPOCH};

use hyperws::hub::Position;
use hyperws::Message;
use serde::{Deserialize, Serialize};

/// Longest nickname, room name and message accepted, in characters.
pub(crate) const MAX_NICK: usize = 24;
pub(crate) const MAX_ROOM: usize = 32;
pub(crate) const MAX_TEXT: usize = 2000;
/// Longest visitor key accepted, in bytes.
pub(crate) const MAX_KEY: usize = 64;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum FromPage {
    Join {
        room: String,
        nick: String,
        /// The last position the page saw in this room: the server
        /// replays what came after it (or the recent history, without).
        #[serde(default)]
        since: Option<String>,
        /// A random key the page keeps: a nickname held by a connection
        /// with the same key is this visitor's own (a tab reconnecting
        /// before its old connection's process has been seen gone).
        #[serde(default)]
        key: Option<String>,
    },
    Say {
        text: String,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum ToPage<'a> {
    Welcome {
        id: String,
        /// The longest message, in characters, for the page's counter.
        max_text: usize,
    },
    /// A message; recorded ones also carry `position` (put in by the
    /// history's render, see `with_position`).
    Message {
        room: &'a str,
        nick: &'a str,
        text: &'a str,
        /// The sender's connection id, as in its `welcome`: how a page
        /// tells its own messages, whatever nicknames others pick.
        id: String,
        /// When the server received it, in milliseconds since 1970.
        ts: u64,
    },
    Notice {
        room: &'a str,
        text: String,
    },
    Presence {
        room: &'a str,
        nicks: Vec<String>,
    },
    /// The join went through; the room's history after `since` (or its
    /// recent messages) came just before this. `gap` says when that replay
    /// is not exactly what the page missed: `trimmed`, `unknown` (the
    /// history was lost), `unavailable` (Redis is down).
    Joined {
        room: &'a str,
        nick: &'a str,
        replayed: usize,
        gap: Option<String>,
    },
    Error {
        text: &'a str,
    },
}

/// Milliseconds since 1970.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The history's render: `{"type":"message",…}` goes out as
/// `{"position":"EPOCH:OFFSET","type":"message",…}`, so the page knows
/// where it is in the room.
pub(crate) fn with_position(position: Position, msg: Message) -> Message {
    match msg.as_text().and_then(|text| text.strip_prefix('{')) {
        Some(rest) if rest.trim_start().starts_with('}') => {
            Message::text(format!("{{\"position\":\"{position}\"}}"))
        }
        Some(rest) => Message::text(format!("{{\"position\":\"{position}\",{rest}")),
        None => msg,
    }
}

/// Why a room name or nickname is refused, if it is.
pub(crate) fn check_name(name: &str, what: &str, max: usize) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > max {
        return Err(format!("a {what} is 1 to {max} characters"));
    }
    if name
        .chars()
        .any(|c| c.is_control() || is_bidi_or_invisible(c))
    {
        return Err(format!(
            "a {what} cannot hold control, invisible or text-direction characters"
        ));
    }
    Ok(())
}

/// Characters that reorder or hide text: an impostor's tools.
fn is_bidi_or_invisible(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Why a message text is refused, if it is. Line breaks and tabs are fine;
/// other control characters and direction overrides are not.
pub(crate) fn check_text(text: &str) -> Result<(), String> {
    let length = text.chars().count();
    if text.trim().is_empty() {
        return Err("empty messages are not sent".into());
    }
    if length > MAX_TEXT {
        return Err(format!(
            "messages are at most {MAX_TEXT} characters; this one has {length}"
        ));
    }
    let bad = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    };
    if text.chars().any(bad) {
        return Err("messages cannot hold control or text-direction characters".into());
    }
    Ok(())
}
