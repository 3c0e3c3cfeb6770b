//! axum integration (feature `axum`, on `axum-core` alone):
//! [`WebSocketUpgrade`] is an axum extractor and its rejection an axum
//! response. Everything else carries over as is: a handler returns the
//! [`Response`](crate::Response) of `on_upgrade` (axum takes any
//! `http::Response` whose body is a `Body`), a [`Config`](crate::Config) in
//! an `Extension` is every upgrade's default, and [`Sessions`](crate::Sessions)
//! in an `Extension` gives the WebSockets `axum::serve`'s graceful shutdown
//! and a limit. `docs/axum.md` has the whole picture.

use http::request::Parts;

use crate::rejection::WebSocketUpgradeRejection;
use crate::upgrade::WebSocketUpgrade;

impl<S: Send + Sync> axum_core::extract::FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Self::from_parts(parts)
    }
}

impl axum_core::response::IntoResponse for WebSocketUpgradeRejection {
    fn into_response(self) -> axum_core::response::Response {
        crate::IntoResponse::into_response(self).map(axum_core::body::Body::new)
    }
}
