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

/// A certificate for localhost and its key, as PEM files in a directory
/// of their own; and a client configuration trusting the certificate.
fn pem_files(name: &str) -> (std::path::PathBuf, ClientConfig) {
    let dir = std::env::temp_dir().join(format!("hyperws-tls-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("chain.pem"), generated.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), generated.signing_key.serialize_pem()).unwrap();
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(generated.cert.der().to_vec()))
        .unwrap();
    let client = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (dir, client)
}

/// Runs the TLS example to its end with these arguments: exit code and
/// what it wrote to stderr.
fn tls_example_fails(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let out = std::process::Command::new(common::example_path("tls"))
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[cfg(feature = "router")]
#[tokio::test]
async fn the_tls_example_serves_a_certificate_from_pem_files() {
    let (dir, client) = pem_files("good");
    let mut command = std::process::Command::new(common::example_path("tls"));
    command
        .arg("--cert")
        .arg(dir.join("chain.pem"))
        .arg("--key")
        .arg(dir.join("key.pem"))
        .args(["--listen", "127.0.0.1:0"]);
    let example = common::start_example(command);
    let tls = tls_connect(example.addr, client, &[b"http/1.1"]).await;
    let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/ws", tls)
        .await
        .unwrap();
    ws.send(ts::Message::text("from files")).await.unwrap();
    let back = timeout(TIMEOUT, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(back, ts::Message::text("from files"));
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(feature = "router")]
#[test]
fn the_tls_example_names_the_file_that_is_wrong() {
    let (dir, _) = pem_files("bad");
    let (other, _) = pem_files("other");
    let chain = dir.join("chain.pem");
    let key = dir.join("key.pem");
    let missing = dir.join("missing.pem");
    let cert = std::ffi::OsStr::new("--cert");
    let key_flag = std::ffi::OsStr::new("--key");

    let (code, err) = tls_example_fails(&[cert, missing.as_os_str(), key_flag, key.as_os_str()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("missing.pem") && err.contains("No such file"),
        "{err}"
    );

    // A key where the chain should be, and the other way round.
    let (code, err) = tls_example_fails(&[cert, key.as_os_str(), key_flag, key.as_os_str()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("key.pem holds no certificate"), "{err}");
    let (code, err) = tls_example_fails(&[cert, chain.as_os_str(), key_flag, chain.as_os_str()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("chain.pem holds no private key"), "{err}");

    // Another certificate's key.
    let stranger = other.join("key.pem");
    let (code, err) = tls_example_fails(&[cert, chain.as_os_str(), key_flag, stranger.as_os_str()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("does not belong to the certificate"), "{err}");

    // Half the pair: a usage error.
    let (code, err) = tls_example_fails(&[cert, chain.as_os_str()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--cert needs --key") && err.contains("usage:"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(other);
}
