//! `wss://` with a self-signed certificate made at start-up.
//!
//! `cargo run --example tls --features tls`, then open
//! `https://localhost:3443/` in a browser (accept the certificate warning)
//! and run in its console:
//!
//! ```text
//! const ws = new WebSocket("wss://localhost:3443/ws");
//! ws.onmessage = (e) => console.log(e.data);
//! ws.onopen = () => ws.send("hello over TLS");
//! ```
//!
//! The certificate is written to `target/tls-example-cert.der` so that a
//! client can be told to trust it.

use std::sync::Arc;

use hyperws::routing::get;
use hyperws::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use hyperws::rustls::ServerConfig;
use hyperws::{Router, WebSocket};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    let cert = CertificateDer::from(generated.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    std::fs::create_dir_all("target")?;
    std::fs::write("target/tls-example-cert.der", &cert)?;
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;

    let app: Router = Router::new()
        .route(
            "/",
            get(|| async { "hello over TLS; open a WebSocket on /ws" }),
        )
        .websocket("/ws", |mut socket: WebSocket| async move {
            while let Some(Ok(msg)) = socket.recv().await {
                if msg.is_data() && socket.send(msg).await.is_err() {
                    break;
                }
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3443").await?;
    eprintln!("listening on https://localhost:3443 (wss://localhost:3443/ws)");
    hyperws::serve(listener, app)
        .tls(Arc::new(config))
        .with_graceful_shutdown(hyperws::shutdown_signal())
        .await?;
    Ok(())
}
