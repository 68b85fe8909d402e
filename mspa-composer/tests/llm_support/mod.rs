//! What the HTTP composer tests share: the TLS fixtures and server configuration,
//! and the HTTP replies a test server writes.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;

/// The fixture directory of the TLS files (made once with `openssl`; see README there).
pub fn tls_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// The server side of TLS: the fixture certificate for `127.0.0.1` and `localhost`,
/// issued by the fixture CA (`ca.pem`).
pub fn server_tls_config() -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(tls_fixture("server.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_file(tls_fixture("server-key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    Arc::new(config)
}

pub fn status(code: u16, reason: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut s = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s.push_str(body);
    s.into_bytes()
}

/// A chat completion whose message content is `content`.
pub fn completion(content: &str) -> String {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "test-model",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
    })
    .to_string()
}

/// For each of `users`, a query over all their tips, just after the last one.
pub fn whole_histories<'d>(
    ds: &'d mspa_core::Dataset,
    users: &[mspa_core::UserId],
) -> Vec<mspa_composer::composer::HistoryQuery<'d>> {
    users
        .iter()
        .map(|&u| {
            let tips = ds.user_events(u);
            let last = tips.iter().map(|e| e.timestamp_ms).max().unwrap_or(0);
            mspa_composer::composer::HistoryQuery {
                tips,
                at_ms: last + 1,
            }
        })
        .collect()
}
