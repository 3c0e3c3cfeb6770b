//! The accepted handshake: the policy checks that come last (origin,
//! required subprotocol, the WebSocket cap), the response, and the
//! session task that takes the upgraded connection once hyper lets go of
//! it.

use std::future::Future;

#[cfg(feature = "deflate")]
use http::{header, HeaderValue};

use super::{OnFailedUpgrade, WebSocketUpgrade};
use crate::error::Error;
use crate::lifecycle::Lifecycle;
use crate::message::Utf8Bytes;
use crate::rejection::{
    ConnectionNotUpgradable, NoMatchingProtocol, OriginRefused, TooManyWebSockets,
    WebSocketUpgradeRejection,
};
use crate::response::Response;
use crate::socket::WebSocket;
use crate::transport::Transport;

impl<F> WebSocketUpgrade<F> {
    /// The response to send, and the session spawned to wait for the
    /// upgrade; or the policy's refusal.
    pub(super) fn accept<C, Fut>(self, callback: C) -> Result<Response, WebSocketUpgradeRejection>
    where
        C: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
        F: OnFailedUpgrade,
    {
        if self.duplicate_origin
            || !self
                .config
                .origin
                .allows_header(self.origin.as_ref(), self.host.as_deref())
        {
            return Err(OriginRefused.into());
        }
        if self.config.require_protocol && self.selected.is_none() {
            return Err(NoMatchingProtocol.into());
        }
        // Lifecycle run as tokio tasks; without a runtime, refuse rather than panic.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("WebSocketUpgrade::on_upgrade was called outside a tokio runtime");
            return Err(ConnectionNotUpgradable.into());
        };
        let admission = match &self.lifecycle {
            Some(lifecycle) => Some(lifecycle.admit().ok_or(TooManyWebSockets)?),
            None => None,
        };
        let protocol: Option<Utf8Bytes> = self.selected_protocol().map(Utf8Bytes::from);
        #[allow(unused_mut)]
        let mut response = self.response(protocol.as_deref());
        #[cfg(feature = "deflate")]
        let deflate = self.selected_deflate().and_then(|params| {
            let header = HeaderValue::from_str(&params.response()).ok()?;
            response
                .headers_mut()
                .insert(header::SEC_WEBSOCKET_EXTENSIONS, header);
            Some((params, self.config.deflate?))
        });

        let Self {
            config,
            on_upgrade,
            on_failed_upgrade,
            peer_addr,
            lifecycle,
            span,
            ..
        } = self;
        if let Some(protocol) = &protocol {
            span.record("protocol", protocol.as_str());
        }
        let transport_config = config.transport();
        let write_limit = config.write_limit();
        let keepalive = config.ping_interval.map(|i| (i, config.pong_timeout));
        let shutdown = lifecycle.as_ref().map(Lifecycle::shutdown);
        let unwrap_io = lifecycle.as_ref().and_then(|l| l.unwrap_io);
        let socket_span = span.clone();
        let session = async move {
            // Held for the session's life: its place under the limit.
            let _admission = admission;
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(err) => return on_failed_upgrade.call(Error::upgrade(err)),
            };
            #[allow(unused_mut)]
            let (mut transport, mut prefix) = Transport::new(upgraded, unwrap_io);
            #[cfg(feature = "deflate")]
            if let Some((params, settings)) = deflate {
                let max_frame = transport_config.max_frame_size.unwrap_or(usize::MAX);
                let layer = crate::deflate::Layer::new(params, settings, max_frame);
                prefix = transport.with_deflate(layer, prefix);
            }
            let keepalive = keepalive.map(|(i, t)| crate::keepalive::Keepalive::new(i, t));
            let socket = WebSocket::new(
                transport,
                prefix,
                transport_config,
                write_limit,
                protocol,
                peer_addr,
                crate::telemetry::SocketTelemetry::new(socket_span),
            )
            .with_shutdown(shutdown)
            .with_keepalive(keepalive);
            #[cfg(feature = "deflate")]
            let socket = socket.with_deflate(deflate);
            callback(socket).await;
        };
        // Without a subscriber that wants the span, the session runs bare.
        let tracker = lifecycle.map(|l| l.tracker);
        if span.is_disabled() {
            spawn(&runtime, tracker, session);
        } else {
            spawn(
                &runtime,
                tracker,
                tracing::Instrument::instrument(session, span),
            );
        }
        Ok(response)
    }
}

/// Runs a session, under the server's tracker when there is one.
fn spawn<Fut>(
    runtime: &tokio::runtime::Handle,
    tracker: Option<tokio_util::task::TaskTracker>,
    session: Fut,
) where
    Fut: Future<Output = ()> + Send + 'static,
{
    match tracker {
        Some(tracker) => runtime.spawn(tracker.track_future(session)),
        None => runtime.spawn(session),
    };
}
