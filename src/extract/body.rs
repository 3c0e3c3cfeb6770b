//! Body extractors: [`Bytes`], [`String`] and [`Json`], each reading at most
//! the router's body limit.

use bytes::Bytes;
#[cfg(feature = "json")]
use http::{header, HeaderValue, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::rejection::BodyRejection;
use super::{FromRequest, Request};
#[cfg(feature = "json")]
use crate::response::{IntoResponse, Response};

/// The most bytes a body extractor reads unless the router says otherwise
/// ([`Router::body_limit`](crate::Router::body_limit)): 2 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The body limit in force for a request, put there by the router.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub(crate) usize);

async fn read_body(req: Request) -> Result<Bytes, BodyRejection> {
    let limit = req
        .extensions()
        .get::<BodyLimit>()
        .map_or(DEFAULT_BODY_LIMIT, |l| l.0);
    let body = Limited::new(req.into_body(), limit);
    match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
            Err(BodyRejection::TooLarge(limit))
        }
        Err(err) => Err(BodyRejection::Read(err.to_string())),
    }
}

impl<S: Sync> FromRequest<S> for Bytes {
    type Rejection = BodyRejection;

    async fn from_request(req: Request, _: &S) -> Result<Self, BodyRejection> {
        read_body(req).await
    }
}

impl<S: Sync> FromRequest<S> for String {
    type Rejection = BodyRejection;

    async fn from_request(req: Request, _: &S) -> Result<Self, BodyRejection> {
        let bytes = read_body(req).await?;
        String::from_utf8(bytes.into()).map_err(|_| BodyRejection::NotUtf8)
    }
}

#[cfg(feature = "json")]
/// A JSON body (with `Content-Type: application/json`) deserialized with
/// serde, or a value serialized as a JSON response.
///
/// ```
/// use hyperws::extract::Json;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Deserialize, Serialize)]
/// struct Note { text: String }
///
/// async fn echo_note(Json(note): Json<Note>) -> Json<Note> {
///     Json(note)
/// }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

#[cfg(feature = "json")]
impl<S: Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = BodyRejection;

    async fn from_request(req: Request, _: &S) -> Result<Self, BodyRejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json")
                    || (mime.len() > 5
                        && mime[..mime.len() - 5].contains('/')
                        && mime.ends_with("+json"))
            });
        if !is_json {
            return Err(BodyRejection::NotJson);
        }
        let bytes = read_body(req).await?;
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|err| BodyRejection::InvalidJson(err.to_string()))
    }
}

#[cfg(feature = "json")]
impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => {
                let mut res = Response::new(body.into());
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                res
            }
            Err(err) => {
                tracing::error!(%err, "failed to serialize a JSON response");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}
