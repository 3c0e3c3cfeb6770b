//! `wss://` round trips with a client that trusts a certificate generated
//! for the test.
#![cfg(feature = "tls")]

mod common;

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use hyperws::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use hyperws::rustls::{ClientConfig, RootCertStore, ServerConfig};
use hyperws::Router;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite as ts;

use common::TIMEOUT;

/// A server on a loopback port with a fresh certificate, and a client
/// configuration trusting it.
async fn start() -> (std::net::SocketAddr, ClientConfig) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = CertificateDer::from(generated.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    let server = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();

    let router: Router = Router::new().websocket("/ws", common::echo);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { hyperws::serve(listener, router).tls(Arc::new(server)).await });
    (addr, client)
}

async fn tls_connect(
    addr: std::net::SocketAddr,
    mut client: ClientConfig,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    client.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    timeout(
        TIMEOUT,
        TlsConnector::from(Arc::new(client)).connect(name, tcp),
    )
    .await
    .unwrap()
    .unwrap()
}

#[tokio::test]
async fn wss_round_trip() {
    let (addr, client) = start().await;
    let tls = tls_connect(addr, client, &[b"http/1.1"]).await;
    let (mut ws, res) = tokio_tungstenite::client_async("wss://localhost/ws", tls)
        .await
        .unwrap();
    assert_eq!(res.status(), 101);
    for msg in [
        ts::Message::text("secret"),
        ts::Message::binary(vec![7u8; 300_000]),
    ] {
        ws.send(msg.clone()).await.unwrap();
        assert_eq!(
            timeout(TIMEOUT, ws.next()).await.unwrap().unwrap().unwrap(),
            msg
        );
    }
}

#[tokio::test]
async fn alpn_offers_h2_and_http_1_1() {
    let (addr, client) = start().await;
    let tls = tls_connect(addr, client.clone(), &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let tls = tls_connect(addr, client, &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn an_untrusted_client_cannot_connect() {
    let (addr, _) = start().await;
    let client = ClientConfig::builder()
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let res = TlsConnector::from(Arc::new(client))
        .connect(name, tcp)
        .await;
    assert!(res.is_err(), "a client without the certificate must fail");
}
