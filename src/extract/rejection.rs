//! Why an extractor failed: each a response with a status and a one-line
//! reason.

use http::StatusCode;

use crate::rejection::impl_rejection;

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

/// No `Last-Event-ID` header, or one that is not UTF-8 (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InvalidLastEventId;

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
    /// The HTTP status this rejection answers with: 400.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }

    /// The one-line reason sent as the body.
    #[must_use]
    pub fn body_text(&self) -> String {
        format!("invalid query string: {}", self.0)
    }
}

impl PathRejection {
    /// The HTTP status this rejection answers with: 400, or 500 for a
    /// route without the parameters asked for.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::Missing => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The one-line reason sent as the body.
    #[must_use]
    pub fn body_text(&self) -> String {
        match self {
            Self::Invalid(why) => format!("invalid path parameter: {why}"),
            Self::Missing => "no path parameters for this route".to_owned(),
        }
    }
}

impl MissingConnectInfo {
    /// The HTTP status this rejection answers with: 500.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// The one-line reason sent as the body.
    #[must_use]
    pub fn body_text(&self) -> String {
        "no connection info: serve the router with hyperws::serve".to_owned()
    }
}

impl InvalidLastEventId {
    /// The HTTP status this rejection answers with: 400.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }

    /// The one-line reason sent as the body.
    #[must_use]
    pub fn body_text(&self) -> String {
        "no valid Last-Event-ID header".to_owned()
    }
}

impl MissingExtension {
    /// The HTTP status this rejection answers with: 500.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// The one-line reason sent as the body.
    #[must_use]
    pub fn body_text(&self) -> String {
        format!("missing request extension {}", self.0)
    }
}

impl BodyRejection {
    /// The HTTP status this rejection answers with: 413, 400, 415 or 422.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Read(_) | Self::NotUtf8 => StatusCode::BAD_REQUEST,
            Self::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::InvalidJson(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    /// The one-line reason sent as the body.
    #[must_use]
    pub fn body_text(&self) -> String {
        match self {
            Self::TooLarge(limit) => format!("body over {limit} bytes"),
            Self::Read(why) => format!("could not read the body: {why}"),
            Self::NotUtf8 => "body is not valid UTF-8".to_owned(),
            Self::NotJson => "expected Content-Type: application/json".to_owned(),
            Self::InvalidJson(why) => format!("invalid JSON body: {why}"),
        }
    }
}

impl_rejection!(QueryRejection);
impl_rejection!(PathRejection);
impl_rejection!(MissingConnectInfo);
impl_rejection!(MissingExtension);
impl_rejection!(InvalidLastEventId);
impl_rejection!(BodyRejection);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rejection::WebSocketUpgradeRejection;
    use crate::response::IntoResponse;

    /// Every rejection answers with its own `status()` and `body_text()`,
    /// and shows the same text.
    #[test]
    fn rejections_answer_with_their_status_and_body() {
        fn check<R: IntoResponse + std::fmt::Display>(r: R, status: StatusCode, body: &str) {
            assert_eq!(r.to_string(), body);
            let res = r.into_response();
            assert_eq!(res.status(), status);
            assert_eq!(
                res.headers()[http::header::CONTENT_TYPE],
                "text/plain; charset=utf-8"
            );
        }
        let body = BodyRejection::TooLarge(10);
        check(body.clone(), body.status(), &body.body_text());
        assert_eq!(body.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let path = PathRejection::Missing;
        check(
            path.clone(),
            StatusCode::INTERNAL_SERVER_ERROR,
            &path.body_text(),
        );
        let upgrade = WebSocketUpgradeRejection::from(crate::rejection::UnsupportedVersion);
        assert_eq!(upgrade.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(upgrade.body_text(), "Sec-WebSocket-Version must be 13");
        let res = upgrade.into_response();
        assert_eq!(res.headers()[http::header::SEC_WEBSOCKET_VERSION], "13");
    }
}
