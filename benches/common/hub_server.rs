//! The hub server of the broadcast benches: the connection that sends
//! "pub" first publishes, and every other message it sends goes to
//! everyone else through the hub (one tokio worker). Every connection is a
//! member of one room.

use hyperws::hub::HubBuilder;
use hyperws::{Config, Router, WebSocket};

pub(crate) fn serve(addr: &str, path: &str, hub: HubBuilder, config: Config) {
    let rt = super::setup::server_runtime();
    rt.block_on(async {
        let hub = hub.build();
        let app: Router = Router::new()
            .websocket(path, move |socket: WebSocket| {
                let hub = hub.clone();
                async move {
                    let (conn, mut inbox) = hub.connect(socket);
                    // Every member in one room, as a chat's would be.
                    conn.join("all");
                    let mut publisher = false;
                    while let Some(Ok(msg)) = inbox.recv().await {
                        if msg.as_text() == Some("pub") {
                            publisher = true;
                        } else if publisher && msg.is_data() {
                            hub.except(conn.id()).send(msg);
                        }
                    }
                }
            })
            .websocket_config(config);
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        hyperws::serve(listener, app).await.unwrap();
    });
}
