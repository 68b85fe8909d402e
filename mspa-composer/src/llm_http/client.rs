//! The transport of the HTTP composer on [`ureq`] (HTTP/1.1, TLS by rustls with the ring
//! provider): the endpoint URL, one `POST` per attempt under one deadline and a body
//! size limit, redirects refused, no proxies; plus reading the server's error message,
//! `Retry-After` and the answer text of a chat-completions response.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

/// A checked `http://` or `https://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct HttpUrl {
    /// Whether the scheme is `https`.
    pub(super) tls: bool,
    /// Host name or IP (IPv6 without brackets).
    pub(super) host: String,
    /// The port (80 or 443 unless given).
    pub(super) port: u16,
    /// `host[:port]` as written (IPv6 in brackets).
    pub(super) authority: String,
    /// Path and query, starting with `/`.
    pub(super) path: String,
}

impl HttpUrl {
    /// Parses `http[s]://host[:port][/path]`; refuses other schemes, credentials in the
    /// URL and bad ports.
    pub(super) fn parse(url: &str) -> std::result::Result<Self, String> {
        let url = url.trim();
        let lower = url.to_ascii_lowercase();
        let (tls, rest) = if lower.starts_with("https://") {
            (true, &url["https://".len()..])
        } else if lower.starts_with("http://") {
            (false, &url["http://".len()..])
        } else {
            return Err(format!("`{url}` is not an http:// or https:// URL"));
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        let path = path.split('#').next().unwrap_or("/").to_string();
        let path = if path.is_empty() || path.starts_with('?') {
            format!("/{path}")
        } else {
            path
        };
        if authority.is_empty() {
            return Err(format!("`{url}` has no host"));
        }
        if authority.contains('@') {
            return Err(format!(
                "`{url}`: credentials in the URL are not supported (use api_key_env)"
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let end = v6
                .find(']')
                .ok_or_else(|| format!("`{url}`: unclosed `[` in the host"))?;
            let host = &v6[..end];
            let after = &v6[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(format!("`{url}`: unexpected `{after}` after the host")),
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(format!("`{url}` has no host"));
        }
        if host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "/\\?#[]@".contains(c))
        {
            return Err(format!("`{url}`: invalid characters in the host"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("`{url}`: invalid port `{p}`"))?,
            None if tls => 443,
            None => 80,
        };
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("`{url}`: whitespace in the path"));
        }
        Ok(HttpUrl {
            tls,
            host,
            port,
            authority: authority.to_string(),
            path,
        })
    }

    /// The URL as text.
    pub(super) fn display(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority, self.path)
    }
}

/// The chat-completions endpoint of a base URL.
pub(super) fn endpoint(base_url: &str) -> std::result::Result<HttpUrl, String> {
    let mut url = HttpUrl::parse(base_url)?;
    let (path, query) = match url.path.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (url.path.clone(), None),
    };
    if !path.trim_end_matches('/').ends_with("/chat/completions") {
        url.path = format!("{}/chat/completions", path.trim_end_matches('/'));
        if let Some(q) = query {
            url.path = format!("{}?{q}", url.path);
        }
    }
    Ok(url)
}

/// Reads the root certificates of a PEM file (every `CERTIFICATE` block).
pub(super) fn read_root_certs(
    path: &Path,
) -> std::result::Result<Vec<Certificate<'static>>, String> {
    // A CA bundle is small; a limit keeps a wrong path (a device, a huge file) harmless.
    const MAX_PEM_BYTES: u64 = 16 << 20;
    let meta = std::fs::metadata(path).map_err(|e| format!("`{}`: {e}", path.display()))?;
    if meta.len() > MAX_PEM_BYTES {
        return Err(format!(
            "`{}` is larger than {MAX_PEM_BYTES} bytes",
            path.display()
        ));
    }
    let pem = std::fs::read(path).map_err(|e| format!("`{}`: {e}", path.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(format!("`{}`: invalid PEM: {e}", path.display())),
        }
    }
    if certs.is_empty() {
        return Err(format!(
            "`{}` holds no PEM `CERTIFICATE` block",
            path.display()
        ));
    }
    Ok(certs)
}

/// A received response (status, the headers the composer reads, the whole body).
#[derive(Debug)]
pub(super) struct HttpResponse {
    /// The status code.
    pub(super) status: u16,
    /// The standard reason phrase of the status (empty when unknown).
    pub(super) reason: String,
    /// `Retry-After`, when present.
    retry_after: Option<String>,
    /// `Location`, when present.
    pub(super) location: Option<String>,
    /// The whole body (de-chunked).
    pub(super) body: Vec<u8>,
}

/// Why an exchange produced no response.
#[derive(Debug)]
pub(super) enum Failure {
    /// The deadline passed (retried).
    Timeout(String),
    /// Refused, reset, closed early, malformed (retried).
    Connection(String),
    /// Retrying cannot help: the certificate was not accepted, the body is over the
    /// limit.
    Fatal(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout(m) | Failure::Connection(m) | Failure::Fatal(m) => f.write_str(m),
        }
    }
}

/// One agent for every request of a composer (its connections are pooled).
pub(super) struct Transport {
    agent: ureq::Agent,
    timeout: Duration,
    max_body: usize,
}

impl Transport {
    /// An agent whose every call (resolving, connecting, TLS, sending, the whole answer)
    /// must end within `timeout`, that reads at most `max_body` bytes of a body, follows
    /// no redirect, uses no proxy and trusts `roots` (Mozilla's roots when `None`).
    pub(super) fn new(
        timeout: Duration,
        max_body: usize,
        roots: Option<Vec<Certificate<'static>>>,
    ) -> Self {
        let root_certs = match roots {
            Some(certs) => RootCerts::Specific(Arc::new(certs)),
            None => RootCerts::WebPki,
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .https_only(false)
            .user_agent(format!("mspa-composer/{}", env!("CARGO_PKG_VERSION")))
            .accept("application/json")
            .timeout_global(Some(timeout))
            .tls_config(TlsConfig::builder().root_certs(root_certs).build())
            .build()
            .new_agent();
        Transport {
            agent,
            timeout,
            max_body,
        }
    }

    /// Sends one `POST` with a JSON body and reads the whole response, all within the
    /// timeout.
    pub(super) fn post(
        &self,
        url: &HttpUrl,
        bearer: Option<&str>,
        body: &[u8],
    ) -> std::result::Result<HttpResponse, Failure> {
        let mut req = self
            .agent
            .post(url.display())
            .header("Content-Type", "application/json");
        if let Some(key) = bearer {
            req = req.header("Authorization", format!("Bearer {key}"));
        }
        let mut resp = req
            .send(body)
            .map_err(|e| self.failure(e, "sending the request or reading the response head"))?;
        let status = resp.status();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.trim().to_string())
        };
        let retry_after = header("retry-after");
        let location = header("location");
        let body = resp
            .body_mut()
            .with_config()
            .limit(self.max_body as u64)
            .read_to_vec()
            .map_err(|e| self.failure(e, "reading the response body"))?;
        Ok(HttpResponse {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("").to_string(),
            retry_after,
            location,
            body,
        })
    }

    fn failure(&self, e: ureq::Error, doing: &str) -> Failure {
        let secs = self.timeout.as_secs_f64();
        match e {
            ureq::Error::Timeout(t) => {
                Failure::Timeout(format!("timed out after {secs:.3} s ({t}) while {doing}"))
            }
            ureq::Error::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
            {
                Failure::Timeout(format!("timed out after {secs:.3} s ({io}) while {doing}"))
            }
            ureq::Error::BodyExceedsLimit(_) => Failure::Fatal(format!(
                "the response body is larger than {} bytes (max_response_bytes)",
                self.max_body
            )),
            e @ (ureq::Error::Rustls(_) | ureq::Error::Tls(_) | ureq::Error::Pem(_)) => {
                Failure::Fatal(format!("TLS: {e}"))
            }
            ureq::Error::Io(io) if tls_io_error(&io) => Failure::Fatal(format!("TLS: {io}")),
            other => Failure::Connection(format!("{doing}: {other}")),
        }
    }
}

/// Whether an I/O error wraps a rustls error (a handshake or certificate failure).
fn tls_io_error(e: &std::io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
}

/// The server's error message in an error body: OpenAI's `error.message`, a plain
/// `error` string (Ollama, llama.cpp), FastAPI's `detail` (vLLM), `message`, else the
/// text itself (cut to 300 characters).
pub(super) fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let found = [
            v.pointer("/error/message"),
            v.get("error"),
            v.get("detail"),
            v.get("message"),
        ]
        .into_iter()
        .flatten()
        .find(|x| !x.is_null());
        if let Some(x) = found {
            let s = match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            return s.chars().take(300).collect();
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(empty body)".into()
    } else {
        text.chars().take(300).collect()
    }
}

/// Reads `Retry-After` as seconds (HTTP dates are not supported and ignored).
pub(super) fn retry_after(resp: &HttpResponse) -> Option<Duration> {
    let v = resp.retry_after.as_deref()?.parse::<f64>().ok()?;
    // Capped here so that an absurd value cannot overflow a Duration; the config's
    // max_backoff_s caps it further.
    (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v.min(1e6)))
}

/// The text of `choices[0].message.content` (a string, or an array of text parts).
pub(super) fn answer_content(body: &[u8]) -> std::result::Result<String, String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the answer is not JSON ({e}): {}", error_message(body)))?;
    let msg = v
        .pointer("/choices/0/message")
        .ok_or_else(|| "the answer has no choices[0].message".to_string())?;
    match msg.get("content") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => Ok(parts
            .iter()
            .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
            .collect::<Vec<_>>()
            .join("")),
        _ => Err(format!(
            "choices[0].message has no text content (finish_reason {})",
            v.pointer("/choices/0/finish_reason")
                .unwrap_or(&Value::Null)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_http_and_https() {
        let u = endpoint("http://127.0.0.1:8000/v1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str(), u.tls),
            ("127.0.0.1", 8000, "/v1/chat/completions", false)
        );
        assert_eq!(u.display(), "http://127.0.0.1:8000/v1/chat/completions");
        let u = endpoint("http://localhost/v1/chat/completions").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/v1/chat/completions"));
        let u = endpoint("http://[::1]:11434/v1/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.authority.as_str()),
            ("::1", 11434, "[::1]:11434")
        );
        let u = endpoint("HTTPS://api.example.com/v1?api-version=2").unwrap();
        assert_eq!(
            (u.tls, u.port, u.path.as_str()),
            (true, 443, "/v1/chat/completions?api-version=2")
        );
        assert_eq!(
            u.display(),
            "https://api.example.com/v1/chat/completions?api-version=2"
        );
        assert!(endpoint("ftp://x").is_err());
        assert!(endpoint("http://host:99999/").is_err());
        assert!(endpoint("http://host:0/").is_err());
        assert!(
            endpoint("https://user:pw@host/")
                .unwrap_err()
                .contains("credentials")
        );
        assert!(endpoint("https:///v1").is_err());
    }

    #[test]
    fn error_messages_are_found_and_cut() {
        assert_eq!(
            error_message(br#"{"error": {"message": "bad key"}}"#),
            "bad key"
        );
        assert_eq!(error_message(br#"{"detail": "nope"}"#), "nope");
        assert_eq!(error_message(b""), "(empty body)");
        assert_eq!(error_message(&[b'x'; 1000]).len(), 300);
    }
}
