//! `wss://` with a certificate from PEM files, or a self-signed one made at
//! start-up when none is given.
//!
//! ```text
//! cargo run --example tls --features tls -- --cert fullchain.pem --key privkey.pem
//! cargo run --example tls --features tls            # self-signed, for trying it out
//! ```
//!
//! `--cert` is the certificate chain (the server's certificate first, then
//! its intermediates), `--key` its private key (PKCS#8, PKCS#1 or SEC1),
//! both PEM, as Let's Encrypt and `openssl` write them. A file that is
//! missing, holds no certificate or key, or a key that does not belong to
//! the certificate, stops it with a message naming the file.
//!
//! Self-signed, it writes the certificate to `target/tls-example-cert.pem`
//! so that a client can be told to trust it; or open
//! `https://localhost:3443/` in a browser (accept the warning) and run in
//! its console:
//!
//! ```text
//! const ws = new WebSocket("wss://localhost:3443/ws");
//! ws.onmessage = (e) => console.log(e.data);
//! ws.onopen = () => ws.send("hello over TLS");
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyperws::routing::get;
use hyperws::rustls::pki_types::pem::PemObject;
use hyperws::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use hyperws::rustls::ServerConfig;
use hyperws::{Router, WebSocket};

const USAGE: &str = "usage: tls [--cert CHAIN.pem --key KEY.pem] [--listen ADDR]

  --cert FILE     the certificate chain, PEM (server certificate first)
  --key FILE      its private key, PEM (PKCS#8, PKCS#1 or SEC1)
  --listen ADDR   where to listen (default 127.0.0.1:3443)
  -h, --help      this text

Without --cert and --key, a self-signed certificate for localhost is made
and written to target/tls-example-cert.pem.";

struct Options {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    listen: String,
}

/// Prints `why` and the usage, and exits 2: the command line is wrong.
fn wrong(why: &str) -> ! {
    eprintln!("tls: {why}\n\n{USAGE}");
    std::process::exit(2);
}

/// Prints `why` and exits 1: the command line was fine, the files not.
fn fail(why: String) -> ! {
    eprintln!("tls: {why}");
    std::process::exit(1);
}

fn options() -> Options {
    let mut options = Options {
        cert: None,
        key: None,
        listen: "127.0.0.1:3443".to_owned(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--cert" | "--key" | "--listen" => {
                let Some(value) = args.next() else {
                    wrong(&format!("{arg} needs a value"));
                };
                match arg.as_str() {
                    "--cert" => options.cert = Some(value.into()),
                    "--key" => options.key = Some(value.into()),
                    _ => options.listen = value,
                }
            }
            other => wrong(&format!("unknown option {other}")),
        }
    }
    options
}

/// The certificate chain in `path`, or why not.
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    std::fs::metadata(path).map_err(|err| format!("cannot read the certificate {shown}: {err}"))?;
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| format!("cannot read the certificate {shown}: {err}"))?;
    if chain.is_empty() {
        return Err(format!(
            "{shown} holds no certificate (expected -----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(chain)
}

/// The private key in `path`, or why not.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let shown = path.display();
    std::fs::metadata(path).map_err(|err| format!("cannot read the key {shown}: {err}"))?;
    PrivateKeyDer::from_pem_file(path).map_err(|err| match err {
        hyperws::rustls::pki_types::pem::Error::NoItemsFound => format!(
            "{shown} holds no private key (expected -----BEGIN PRIVATE KEY-----, \
             RSA PRIVATE KEY or EC PRIVATE KEY)"
        ),
        err => format!("cannot read the key {shown}: {err}"),
    })
}

/// The server's TLS configuration from the files given, or self-signed.
fn tls_config(options: &Options) -> Result<ServerConfig, String> {
    let (chain, key) = match (&options.cert, &options.key) {
        (Some(cert), Some(key)) => {
            let chain = read_chain(cert)?;
            let key = read_key(key)?;
            (chain, key)
        }
        (None, None) => self_signed()?,
        (Some(_), None) => wrong("--cert needs --key"),
        (None, Some(_)) => wrong("--key needs --cert"),
    };
    ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|err| match (&options.cert, &options.key, err) {
            (Some(cert), Some(key), hyperws::rustls::Error::InconsistentKeys(_)) => format!(
                "the key {} does not belong to the certificate {}",
                key.display(),
                cert.display()
            ),
            (_, _, err) => format!("unusable certificate or key: {err}"),
        })
}

/// A certificate for localhost and 127.0.0.1, written out for clients.
fn self_signed() -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(|err| format!("cannot make a certificate: {err}"))?;
    let written = Path::new("target").join("tls-example-cert.pem");
    std::fs::create_dir_all("target")
        .and_then(|()| std::fs::write(&written, generated.cert.pem()))
        .map_err(|err| format!("cannot write {}: {err}", written.display()))?;
    eprintln!("self-signed certificate written to {}", written.display());
    let cert = CertificateDer::from(generated.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    Ok((vec![cert], key))
}

#[tokio::main]
async fn main() {
    let options = options();
    let config = tls_config(&options).unwrap_or_else(|why| fail(why));

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
    let listener = tokio::net::TcpListener::bind(&options.listen)
        .await
        .unwrap_or_else(|err| fail(format!("cannot listen on {}: {err}", options.listen)));
    match listener.local_addr() {
        Ok(addr) => eprintln!("listening on https://{addr} (wss://{addr}/ws)"),
        Err(err) => eprintln!("listening, on an unknown address: {err}"),
    }
    let served = hyperws::serve(listener, app)
        .tls(Arc::new(config))
        .with_graceful_shutdown(hyperws::shutdown_signal())
        .await;
    if let Err(err) = served {
        fail(err.to_string());
    }
}
