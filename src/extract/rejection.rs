//! Why an extractor failed: each a response with a status and a one-line
//! reason.

use std::fmt;

use http::StatusCode;

use crate::response::{plain_text, IntoResponse, Response};

/// The query string does not fit the expected type (400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRejection(pub(crate) String);

/// A path parameter does not fit the expected type (400), or the route has
/// none to give (500, a programmer error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRejection {
    /// A parameter could not be parsed or percent-decoded.
    Invalid(String),
    /// The handler asked for parameters its route does not have.
    Missing,
}

/// No [`ConnectInfo`](super::ConnectInfo) in the request: the server was
/// not started with [`serve`](crate::serve) (500).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MissingConnectInfo;

/// The [`Extension`](super::Extension) the handler asked for is not in the
/// request (500).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingExtension(pub(crate) &'static str);

/// The body could not be read or does not fit the expected type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyRejection {
    /// Over the body limit (413).
    TooLarge(usize),
    /// Reading the body failed (400).
    Read(String),
    /// A `String` body that is not UTF-8 (400).
    NotUtf8,
    /// `Json` without `Content-Type: application/json` (415).
    NotJson,
    /// The JSON does not fit the expected type (422) or is malformed.
    InvalidJson(String),
}

impl QueryRejection {
    fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }
}

impl PathRejection {
    fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::Missing => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl MissingConnectInfo {
    fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

impl MissingExtension {
    fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

impl BodyRejection {
    fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Read(_) | Self::NotUtf8 => StatusCode::BAD_REQUEST,
            Self::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::InvalidJson(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

impl fmt::Display for QueryRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid query string: {}", self.0)
    }
}

impl fmt::Display for PathRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(why) => write!(f, "invalid path parameter: {why}"),
            Self::Missing => f.write_str("no path parameters for this route"),
        }
    }
}

impl fmt::Display for MissingConnectInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no connection info: serve the router with hyperws::serve")
    }
}

impl fmt::Display for MissingExtension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "missing request extension {}", self.0)
    }
}

impl fmt::Display for BodyRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge(limit) => write!(f, "body over {limit} bytes"),
            Self::Read(why) => write!(f, "could not read the body: {why}"),
            Self::NotUtf8 => f.write_str("body is not valid UTF-8"),
            Self::NotJson => f.write_str("expected Content-Type: application/json"),
            Self::InvalidJson(why) => write!(f, "invalid JSON body: {why}"),
        }
    }
}

macro_rules! into_response {
    ($($name:ty),+) => {$(
        impl IntoResponse for $name {
            fn into_response(self) -> Response {
                plain_text(self.status(), self.to_string())
            }
        }

        impl std::error::Error for $name {}
    )+};
}

into_response!(
    QueryRejection,
    PathRejection,
    MissingConnectInfo,
    MissingExtension,
    BodyRejection
);
