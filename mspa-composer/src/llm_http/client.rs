//! A small HTTP/1.1 client on `std::net::TcpStream`: one `POST` per connection
//! (`Connection: close`), `Content-Length`, chunked and read-to-close bodies, one absolute
//! deadline per attempt; plus reading the server's error message, `Retry-After` and the
//! answer text of a chat-completions response. Plain HTTP only.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A parsed `http://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct HttpUrl {
    /// Host name or IP (IPv6 without brackets).
    host: String,
    port: u16,
    /// `Host` header value.
    authority: String,
    /// Path and query, starting with `/`.
    path: String,
}

impl HttpUrl {
    /// Parses `http://host[:port][/path]`; refuses https, credentials and bad ports.
    fn parse(url: &str) -> std::result::Result<Self, String> {
        let url = url.trim();
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("https://") {
            return Err(format!(
                "`{url}`: https is not supported (no TLS); use the server's plain-HTTP \
                 address or a local TLS-terminating proxy"
            ));
        }
        if !lower.starts_with("http://") {
            return Err(format!("`{url}` is not an http:// URL"));
        }
        let rest = &url["http://".len()..];
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        let path = path.split('#').next().unwrap_or("/").to_string();
        if authority.is_empty() {
            return Err(format!("`{url}` has no host"));
        }
        if authority.contains('@') {
            return Err(format!(
                "`{url}`: credentials in the URL are not supported (use api_key)"
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
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("`{url}`: invalid port `{p}`"))?,
            None => 80,
        };
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("`{url}`: whitespace in the path"));
        }
        Ok(HttpUrl {
            host,
            port,
            authority: authority.to_string(),
            path,
        })
    }

    /// The URL as text.
    pub(super) fn display(&self) -> String {
        format!("http://{}{}", self.authority, self.path)
    }
}

/// The chat-completions endpoint of a base URL.
pub(super) fn endpoint(base_url: &str) -> std::result::Result<HttpUrl, String> {
    let mut url = HttpUrl::parse(base_url)?;
    if !url
        .path
        .trim_end_matches('/')
        .ends_with("/chat/completions")
    {
        let (path, query) = match url.path.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (url.path.clone(), None),
        };
        url.path = format!("{}/chat/completions", path.trim_end_matches('/'));
        if let Some(q) = query {
            url.path = format!("{}?{q}", url.path);
        }
    }
    Ok(url)
}

/// A received response.
#[derive(Debug)]
pub(super) struct HttpResponse {
    /// The status code.
    pub(super) status: u16,
    /// The reason phrase.
    pub(super) reason: String,
    /// Header names lowercased.
    headers: Vec<(String, String)>,
    /// The whole body (de-chunked).
    pub(super) body: Vec<u8>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why an exchange produced no response.
#[derive(Debug)]
pub(super) enum Failure {
    /// The deadline passed.
    Timeout(String),
    /// Refused, reset, closed early, malformed.
    Connection(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout(m) | Failure::Connection(m) => f.write_str(m),
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// A buffered reader over a stream with an absolute deadline.
struct Reader<'a> {
    stream: &'a TcpStream,
    buf: Vec<u8>,
    pos: usize,
    deadline: Instant,
    timeout: Duration,
}

impl Reader<'_> {
    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads more bytes; `Ok(0)` at the end of the stream.
    fn fill(&mut self) -> std::result::Result<usize, Failure> {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut tmp = [0u8; 16 * 1024];
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.timed_out());
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| Failure::Connection(format!("setting the read timeout: {e}")))?;
            match (&mut &*self.stream).read(&mut tmp) {
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => return Err(self.timed_out()),
                Err(e) => return Err(Failure::Connection(format!("reading the response: {e}"))),
            }
        }
    }

    fn timed_out(&self) -> Failure {
        Failure::Timeout(format!(
            "timed out after {:.3} s waiting for the response",
            self.timeout.as_secs_f64()
        ))
    }

    /// One line without its CRLF (or LF), at most `max` bytes.
    fn line(&mut self, max: usize) -> std::result::Result<String, Failure> {
        loop {
            if let Some(i) = self.available().iter().position(|&b| b == b'\n') {
                let raw = &self.buf[self.pos..self.pos + i];
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                let line = String::from_utf8_lossy(raw).into_owned();
                self.pos += i + 1;
                return Ok(line);
            }
            if self.available().len() > max {
                return Err(Failure::Connection(format!(
                    "a response line is longer than {max} bytes"
                )));
            }
            if self.fill()? == 0 {
                return Err(Failure::Connection(
                    "the connection closed in the middle of the response head".into(),
                ));
            }
        }
    }

    fn exact(&mut self, n: usize) -> std::result::Result<Vec<u8>, Failure> {
        while self.available().len() < n {
            if self.fill()? == 0 {
                return Err(Failure::Connection(format!(
                    "the connection closed after {} of {n} body bytes",
                    self.available().len()
                )));
            }
        }
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(out)
    }

    fn to_end(&mut self, max: usize) -> std::result::Result<Vec<u8>, Failure> {
        while self.fill()? > 0 {
            if self.available().len() > max {
                return Err(Failure::Connection(format!(
                    "the response body is larger than {max} bytes"
                )));
            }
        }
        let out = self.available().to_vec();
        self.pos = self.buf.len();
        Ok(out)
    }

    fn chunked(&mut self, max: usize) -> std::result::Result<Vec<u8>, Failure> {
        let mut body = Vec::new();
        loop {
            let line = self.line(8 * 1024)?;
            let size_str = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_str, 16)
                .map_err(|_| Failure::Connection(format!("invalid chunk size line `{line}`")))?;
            if size == 0 {
                // Trailer fields until an empty line.
                for _ in 0..256 {
                    if self.line(8 * 1024)?.is_empty() {
                        return Ok(body);
                    }
                }
                return Err(Failure::Connection("too many trailer fields".into()));
            }
            if body.len() + size > max {
                return Err(Failure::Connection(format!(
                    "the response body is larger than {max} bytes"
                )));
            }
            body.extend_from_slice(&self.exact(size)?);
            let end = self.line(8 * 1024)?;
            if !end.is_empty() {
                return Err(Failure::Connection("a chunk does not end with CRLF".into()));
            }
        }
    }
}

/// Sends one `POST` with a JSON body and reads the whole response, all within `timeout`.
pub(super) fn post(
    url: &HttpUrl,
    extra_headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
    max_body: usize,
) -> std::result::Result<HttpResponse, Failure> {
    let start = Instant::now();
    let deadline = start + timeout;
    let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| Failure::Connection(format!("resolving `{}`: {e}", url.host)))?
        .collect();
    let mut last = format!("`{}` resolves to no address", url.host);
    let mut stream = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::Timeout(format!(
                "timed out after {:.3} s connecting to {addr}",
                timeout.as_secs_f64()
            )));
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) if is_timeout(&e) => {
                return Err(Failure::Timeout(format!(
                    "timed out after {:.3} s connecting to {addr}",
                    timeout.as_secs_f64()
                )));
            }
            Err(e) => last = format!("connecting to {addr}: {e}"),
        }
    }
    let stream = stream.ok_or(Failure::Connection(last))?;
    let _ = stream.set_nodelay(true);

    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: mspa-composer/{}\r\n\
         Content-Type: application/json\r\nAccept: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        url.path,
        url.authority,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    for (k, v) in extra_headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");

    // Send; a server may answer (e.g. 401, 413) and close before reading everything, so
    // a failed write still tries to read a response.
    let mut write_error = None;
    for part in [head.as_bytes(), body] {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::Timeout(format!(
                "timed out after {:.3} s sending the request",
                timeout.as_secs_f64()
            )));
        }
        let _ = stream.set_write_timeout(Some(left));
        if let Err(e) = (&mut &stream).write_all(part) {
            if is_timeout(&e) {
                return Err(Failure::Timeout(format!(
                    "timed out after {:.3} s sending the request",
                    timeout.as_secs_f64()
                )));
            }
            write_error = Some(format!("sending the request: {e}"));
            break;
        }
    }
    let _ = (&mut &stream).flush();

    let mut reader = Reader {
        stream: &stream,
        buf: Vec::new(),
        pos: 0,
        deadline,
        timeout,
    };
    let result = read_response(&mut reader, max_body);
    match (result, write_error) {
        (Ok(r), _) => Ok(r),
        (Err(Failure::Connection(_)), Some(w)) => Err(Failure::Connection(w)),
        (Err(e), _) => Err(e),
    }
}

fn read_response(
    r: &mut Reader<'_>,
    max_body: usize,
) -> std::result::Result<HttpResponse, Failure> {
    loop {
        let status_line = r.line(16 * 1024)?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        if !version.starts_with("HTTP/") {
            return Err(Failure::Connection(format!(
                "not an HTTP response: `{}`",
                status_line.chars().take(80).collect::<String>()
            )));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .filter(|s| (100..1000).contains(s))
            .ok_or_else(|| Failure::Connection(format!("invalid status line `{status_line}`")))?;
        let reason = parts.next().unwrap_or("").trim().to_string();
        let mut headers = Vec::new();
        loop {
            let line = r.line(16 * 1024)?;
            if line.is_empty() {
                break;
            }
            if headers.len() >= 256 {
                return Err(Failure::Connection("more than 256 response headers".into()));
            }
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| Failure::Connection(format!("malformed header line `{line}`")))?;
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        // Interim responses (100 Continue, 103 Early Hints) precede the real one.
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let mut resp = HttpResponse {
            status,
            reason,
            headers,
            body: Vec::new(),
        };
        if status == 204 || status == 304 {
            return Ok(resp);
        }
        let chunked = resp
            .header("transfer-encoding")
            .and_then(|te| te.rsplit(',').next())
            .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        resp.body = if chunked {
            r.chunked(max_body)?
        } else if let Some(len) = resp.header("content-length") {
            let n: usize = len
                .trim()
                .parse()
                .map_err(|_| Failure::Connection(format!("invalid Content-Length `{len}`")))?;
            if n > max_body {
                return Err(Failure::Connection(format!(
                    "the response body ({n} bytes) is larger than {max_body} bytes"
                )));
            }
            r.exact(n)?
        } else {
            r.to_end(max_body)?
        };
        return Ok(resp);
    }
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
            return match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
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
    let v = resp.header("retry-after")?.trim().parse::<f64>().ok()?;
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
    fn urls_parse_and_https_is_refused() {
        let u = endpoint("http://127.0.0.1:8000/v1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8000, "/v1/chat/completions")
        );
        let u = endpoint("http://localhost/v1/chat/completions").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/v1/chat/completions"));
        let u = endpoint("http://[::1]:11434/v1/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.authority.as_str()),
            ("::1", 11434, "[::1]:11434")
        );
        assert!(
            endpoint("https://api.example.com/v1")
                .unwrap_err()
                .contains("https")
        );
        assert!(endpoint("ftp://x").is_err());
        assert!(endpoint("http://host:99999/").is_err());
    }
}
