//! Raw request bytes, parsed as HTTP/1.1 and handed to the opening-handshake
//! validation: it must answer every input with an upgrade or a rejection
//! whose response is well formed, and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = parsed.parse(data) else {
        return;
    };
    let mut builder = http::Request::builder()
        .method(parsed.method.unwrap_or("GET"))
        .uri(parsed.path.unwrap_or("/"))
        .version(if parsed.version == Some(0) {
            http::Version::HTTP_10
        } else {
            http::Version::HTTP_11
        });
    for header in parsed.headers.iter() {
        builder = builder.header(header.name, header.value);
    }
    let Ok(mut req) = builder.body(()) else {
        return;
    };
    // An upgrade handle, as hyper's server would put there.
    let on_upgrade = hyper::upgrade::on(&mut req);
    req.extensions_mut().insert(on_upgrade);
    match hyperws::WebSocketUpgrade::from_request(&mut req) {
        Ok(ws) => {
            let offered: Vec<String> = ws.requested_protocols().map(str::to_owned).collect();
            let ws = ws.protocols(["chat.v2", "chat.v1"]);
            if let Some(chosen) = ws.selected_protocol() {
                assert!(offered.iter().any(|p| p == chosen), "chose what was not offered");
            }
        }
        Err(rejection) => {
            let res = hyperws::IntoResponse::into_response(rejection);
            assert!(res.status().is_client_error() || res.status().is_server_error());
        }
    }
});
