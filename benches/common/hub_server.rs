//! The hub server of the broadcast benches: the connection that sends
//! "pub" first publishes, and every other message it sends goes to the
//! other members of the one room every connection joins, as a chat's
//! would (one tokio worker). With a backplane, the room spans processes.

use hyperws::hub::HubBuilder;
use hyperws::{Config, Router, WebSocket};

/// `hub` is called on the server's runtime (a backplane's task runs there).
pub(crate) fn serve(addr: &str, path: &str, hub: impl FnOnce() -> HubBuilder, config: Config) {
    let rt = super::setup::server_runtime();
    rt.block_on(async {
        let hub = hub().build();
        let app: Router = Router::new()
            .websocket(path, move |socket: WebSocket| {
                let hub = hub.clone();
                async move {
                    let (conn, mut inbox) = hub.connect(socket);
                    conn.join("room");
                    let mut publisher = false;
                    while let Some(Ok(msg)) = inbox.recv().await {
                        if msg.as_text() == Some("pub") {
                            publisher = true;
                        } else if publisher && msg.is_data() {
                            conn.to("room").send(msg);
                        }
                    }
                }
            })
            .websocket_config(config);
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        hyperws::serve(listener, app).await.unwrap();
    });
}
