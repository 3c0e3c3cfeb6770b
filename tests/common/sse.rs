//! An SSE request with hyper's own client, over HTTP/1.1 or HTTP/2 (prior
//! knowledge) on a fresh TCP connection.

use std::net::SocketAddr;

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// `GET path` on `addr` over `version`, with `Last-Event-ID` when given.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    last_event_id: Option<String>,
    version: http::Version,
) -> http::Response<Incoming> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = Request::get(format!("http://{addr}{path}"));
    if let Some(last) = last_event_id {
        req = req.header("last-event-id", last);
    }
    let req = req.body(Empty::<Bytes>::new()).unwrap();
    if version == http::Version::HTTP_2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        send.send_request(req).await.unwrap()
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        send.send_request(req).await.unwrap()
    }
}
