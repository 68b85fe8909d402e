#![cfg(feature = "llm-http")]
//! The `llm-http` composer against a scripted HTTP and HTTPS server on 127.0.0.1: the
//! request (model, json_schema response format, base64 frames, bearer token), repairs of
//! a sloppy answer, retries on 429/5xx with Retry-After and backoff, timeouts of a silent
//! server, immediate failure on 401, chunked answers, batches, config errors; HTTPS with
//! a private CA (and refusal of an untrusted certificate), the answer cache (a second run
//! sends nothing, a stopped job resumes), hostile servers (slow drip, endless and huge
//! bodies, invalid JSON, redirects to another host, endless headers) and the API key
//! from the environment, kept out of errors, caches and serialised configs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mspa_composer::ComposerError;
use mspa_composer::composer::{ComposeContext, Composer, HistoryQuery};
use mspa_composer::llm_http::{LlmHttpComposer, LlmHttpConfig, RepairKind};
use mspa_composer::schema::{FieldKind, PreferenceSchema};
use mspa_core::synth::{SyntheticWorldConfig, generate};
use mspa_core::{AuthorId, Dataset, TipEvent, UserId};
use serde_json::{Value, json};

mod llm_support;
use llm_support::{completion, server_tls_config, status, tls_fixture, whole_histories};

// ---------------------------------------------------------------------------------------
// A scripted server
// ---------------------------------------------------------------------------------------

/// What the server does with one connection.
#[derive(Clone)]
enum Reply {
    /// Sends these bytes and closes.
    Raw(Vec<u8>),
    /// Reads the request and never answers (holds the connection open).
    Hang,
    /// Sends these bytes, then one more byte every `every` (a slow drip that never ends).
    Drip(Vec<u8>, Duration),
    /// Sends these bytes, then `0` bytes in 64 KiB writes (as chunks when the flag is
    /// set) until the client stops reading or `cap` bytes went out (a body that is "a
    /// gigabyte").
    Flood(Vec<u8>, u64, bool),
}

/// One request the server received.
#[derive(Clone, Debug)]
struct Recorded {
    /// Request line and headers.
    head: String,
    body: Vec<u8>,
}

impl Recorded {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the request body is JSON")
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// A plain TCP or a TLS connection of the server.
trait Conn: Read + Write + Send {
    /// Ends the connection cleanly (TLS: `close_notify`).
    fn finish(&mut self) {
        let _ = self.flush();
    }
}

impl Conn for TcpStream {}

impl Conn for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn finish(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
    }
}

struct Server {
    addr: SocketAddr,
    tls: bool,
    requests: Arc<Mutex<Vec<Recorded>>>,
    /// Bytes written by `Flood` and `Drip` replies.
    sent: Arc<AtomicU64>,
}

impl Server {
    /// Answers connection `i` with `script[i]` over plain HTTP; once the script is used
    /// up, with a 500 that names the problem (so a test that sends too much fails
    /// visibly).
    fn start(script: Vec<Reply>) -> Server {
        Self::start_with(script, None)
    }

    /// The same over HTTPS.
    fn start_tls(script: Vec<Reply>) -> Server {
        Self::start_with(script, Some(server_tls_config()))
    }

    fn start_with(script: Vec<Reply>, tls: Option<Arc<rustls::ServerConfig>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(AtomicU64::new(0));
        let (rec, sent_by) = (requests.clone(), sent.clone());
        let is_tls = tls.is_some();
        std::thread::spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { continue };
                let reply = script.get(i).cloned();
                let (rec, sent, tls) = (rec.clone(), sent_by.clone(), tls.clone());
                // One thread per connection: a hanging or flooding reply does not block
                // the next connection.
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut conn: Box<dyn Conn> = match tls {
                        Some(cfg) => match rustls::ServerConnection::new(cfg) {
                            Ok(c) => Box::new(rustls::StreamOwned::new(c, stream)),
                            Err(_) => return,
                        },
                        None => Box::new(stream),
                    };
                    let Some(req) = read_request(&mut *conn) else {
                        return;
                    };
                    rec.lock().unwrap().push(req);
                    serve(&mut *conn, reply, &sent);
                });
            }
        });
        Server {
            addr,
            tls: is_tls,
            requests,
            sent,
        }
    }

    fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/v1", self.addr)
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(conn: &mut dyn Conn, reply: Option<Reply>, sent: &AtomicU64) {
    match reply {
        Some(Reply::Raw(bytes)) => {
            let _ = conn.write_all(&bytes);
            conn.finish();
        }
        Some(Reply::Hang) => std::thread::sleep(Duration::from_secs(60)),
        Some(Reply::Drip(head, every)) => {
            if conn.write_all(&head).and_then(|()| conn.flush()).is_err() {
                return;
            }
            // At most 10 minutes; the client gives up long before.
            for _ in 0..(600_000 / every.as_millis().max(1)) {
                std::thread::sleep(every);
                if conn.write_all(b" ").and_then(|()| conn.flush()).is_err() {
                    return;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        Some(Reply::Flood(head, cap, chunked)) => {
            if conn.write_all(&head).is_err() {
                return;
            }
            let zeros = if chunked {
                let mut c = b"10000\r\n".to_vec();
                c.extend(std::iter::repeat_n(b'0', 64 * 1024));
                c.extend_from_slice(b"\r\n");
                c
            } else {
                vec![b'0'; 64 * 1024]
            };
            while sent.load(Ordering::Relaxed) < cap {
                if conn.write_all(&zeros).is_err() {
                    return;
                }
                sent.fetch_add(zeros.len() as u64, Ordering::Relaxed);
            }
        }
        None => {
            let _ = conn.write_all(&status(
                500,
                "Script Ended",
                &[],
                "{\"error\": \"script ended\"}",
            ));
            conn.finish();
        }
    }
}

fn read_request(stream: &mut dyn Conn) -> Option<Recorded> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut tmp).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut tmp).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Some(Recorded { head, body })
}

fn ok(content: &str) -> Reply {
    Reply::Raw(status(200, "OK", &[], &completion(content)))
}

/// The same answer with chunked transfer encoding: small chunks, a chunk extension and a
/// trailer field.
fn ok_chunked(content: &str) -> Reply {
    let body = completion(content);
    let mut s = String::from(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    );
    let bytes = body.as_bytes();
    for (i, chunk) in bytes.chunks(37).enumerate() {
        if i == 1 {
            s.push_str(&format!("{:X};note=x\r\n", chunk.len()));
        } else {
            s.push_str(&format!("{:x}\r\n", chunk.len()));
        }
        s.push_str(std::str::from_utf8(chunk).unwrap());
        s.push_str("\r\n");
    }
    s.push_str("0\r\nX-Trailer: done\r\n\r\n");
    Reply::Raw(s.into_bytes())
}

// ---------------------------------------------------------------------------------------
// World and helpers
// ---------------------------------------------------------------------------------------

fn world() -> (tempfile::TempDir, Dataset) {
    let dir = tempfile::tempdir().unwrap();
    let config = SyntheticWorldConfig {
        seed: 7,
        authors: 6,
        users: 10,
        audio_seconds: 0.25,
        frames_per_author: 2,
        frame_size: 16,
        frame_dropout: 0.0,
        ..SyntheticWorldConfig::default()
    };
    generate(&config, dir.path()).unwrap();
    let ds = mspa_core::load_native(dir.path()).unwrap();
    (dir, ds)
}

/// The user with the most tips, and a query over all of them a day after the last.
fn busiest(ds: &Dataset) -> (UserId, HistoryQuery<'_>) {
    let user = ds
        .users()
        .max_by_key(|&u| (ds.user_events(u).len(), std::cmp::Reverse(u.0)))
        .unwrap();
    let tips = ds.user_events(user);
    assert!(
        tips.len() >= 2,
        "the world's busiest user has {} tips",
        tips.len()
    );
    let last = tips.iter().map(|e| e.timestamp_ms).max().unwrap();
    (
        user,
        HistoryQuery {
            tips,
            at_ms: last + 86_400_000,
        },
    )
}

fn ctx(ds: &Dataset) -> ComposeContext<'_> {
    ComposeContext {
        dataset: ds,
        features: None,
        text_encoder: None,
    }
}

fn config(server: &Server) -> LlmHttpConfig {
    LlmHttpConfig {
        base_url: server.base_url(),
        model: "test-model".into(),
        timeout_s: 5.0,
        max_retries: 2,
        backoff_base_s: 0.01,
        max_backoff_s: 0.2,
        // Independent of the environment of whoever runs the tests.
        api_key_env: None,
        ca_cert_pem: server.tls.then(|| tls_fixture("ca.pem")),
        ..LlmHttpConfig::default()
    }
}

/// A schema-valid answer: the first value of each list field (the first two where the
/// field allows two), the last value of each tuple slot.
fn valid_answer(schema: &PreferenceSchema) -> (String, String) {
    let mut obj = serde_json::Map::new();
    let mut values = Vec::new();
    for f in &schema.fields {
        let vs: Vec<String> = match &f.kind {
            FieldKind::List { values, max } => values.iter().take((*max).min(2)).cloned().collect(),
            FieldKind::Tuple { slots } => slots.iter().map(|s| s.last().unwrap().clone()).collect(),
        };
        obj.insert(f.name.clone(), json!(vs));
        values.push(vs);
    }
    let text = schema.render(&mspa_composer::schema::PreferenceFields { values });
    (Value::Object(obj).to_string(), text)
}

/// An independent base64 decoder (standard alphabet, padding).
fn b64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a') as u32 + 26,
            b'0'..=b'9' => (c - b'0') as u32 + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes = s.as_bytes();
    assert_eq!(bytes.len() % 4, 0, "base64 length");
    let mut out = Vec::new();
    for q in bytes.chunks(4) {
        let pad = q.iter().filter(|&&c| c == b'=').count();
        let mut n = 0u32;
        for &c in q {
            n = (n << 6) | if c == b'=' { 0 } else { val(c) };
        }
        let three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&three[..3 - pad]);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn llm_http_valid_answer_and_request_contents() {
    let (_dir, ds) = world();
    let schema = world_schema();
    let (answer, expected_text) = valid_answer(&schema);
    let server = Server::start(vec![ok(&answer)]);
    let cfg = LlmHttpConfig {
        api_key: Some("sk-test-123".into()),
        max_frames: 3,
        frames_per_author: 1,
        ..config(&server)
    };
    let composer = LlmHttpComposer::new(cfg, schema.clone()).unwrap();
    assert_eq!(composer.name(), "llm-http");
    assert!(composer.endpoint().ends_with("/v1/chat/completions"));
    let (_, query) = busiest(&ds);
    let out = composer.compose_detailed(&ctx(&ds), query).unwrap();

    // The preference.
    assert_eq!(out.attempts, 1);
    assert!(out.repairs.is_empty(), "{:?}", out.repairs);
    assert_eq!(out.preference.text, expected_text);
    assert_eq!(
        schema.parse(&out.preference.text).unwrap(),
        out.preference.fields
    );
    assert_eq!(
        out.preference.embedding,
        schema.multi_hot(&out.preference.fields)
    );
    let n_listed: usize = out.preference.fields.values.iter().map(|v| v.len()).sum();
    assert_eq!(out.preference.evidence.len(), n_listed);
    for ev in &out.preference.evidence {
        for &i in &ev.tips {
            let a = ds.author(query.tips[i].author);
            let text = format!("{} {}", a.title, a.description).to_lowercase();
            assert!(
                text.contains(&ev.value),
                "tip {i} does not support {}",
                ev.value
            );
        }
    }

    // The request.
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert!(
        req.head.starts_with("POST /v1/chat/completions HTTP/1.1"),
        "{}",
        req.head
    );
    assert_eq!(
        req.header("authorization").as_deref(),
        Some("Bearer sk-test-123")
    );
    assert_eq!(
        req.header("content-type").as_deref(),
        Some("application/json")
    );
    let body = req.json();
    assert_eq!(body["model"], "test-model");
    let rf = &body["response_format"];
    assert_eq!(rf["type"], "json_schema");
    assert_eq!(rf["json_schema"]["name"], "preference");
    let js = &rf["json_schema"]["schema"];
    assert_eq!(js["type"], "object");
    for f in &schema.fields {
        let p = &js["properties"][&f.name];
        assert_eq!(p["type"], "array", "{}", f.name);
        match &f.kind {
            FieldKind::List { values, max } => {
                assert_eq!(p["maxItems"], json!(max));
                assert_eq!(p["items"]["enum"], json!(values));
            }
            FieldKind::Tuple { slots } => {
                assert_eq!(p["minItems"], json!(slots.len()));
                assert_eq!(p["maxItems"], json!(slots.len()));
                assert_eq!(p["prefixItems"].as_array().unwrap().len(), slots.len());
                assert_eq!(p["prefixItems"][0]["enum"], json!(slots[0]));
            }
        }
        assert!(js["required"].as_array().unwrap().contains(&json!(f.name)));
    }
    let system = body["messages"][0]["content"].as_str().unwrap();
    assert_eq!(body["messages"][0]["role"], "system");
    for f in &schema.fields {
        assert!(
            system.contains(&format!("\"{}\"", f.name)),
            "system prompt lacks {}",
            f.name
        );
    }
    assert!(system.contains("\"electronic\""));
    let parts = body["messages"][1]["content"].as_array().unwrap();
    let text = parts[0]["text"].as_str().unwrap();

    // Authors ranked by tips, then total, then id: the same ranking computed here.
    let mut per: Vec<(AuthorId, usize, f64)> = Vec::new();
    for e in query.tips {
        match per.iter_mut().find(|p| p.0 == e.author) {
            Some(p) => {
                p.1 += 1;
                p.2 += e.amount;
            }
            None => per.push((e.author, 1, e.amount)),
        }
    }
    per.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then(b.2.total_cmp(&a.2))
            .then(a.0.0.cmp(&b.0.0))
    });
    let top = ds.author(per[0].0);
    assert!(text.contains(&format!("tips: {}", per[0].1)), "{text}");
    assert!(
        text.contains(&format!("total amount: {:.2}", per[0].2)),
        "{text}"
    );
    assert!(
        text.contains("1.0 days ago"),
        "the last tip is a day old: {text}"
    );
    if !top.title.is_empty() {
        assert!(text.contains(&top.title), "{text}");
    }

    // Images: the first frame of each of the 3 most tipped authors, as base64 PNG.
    let expected: Vec<Vec<u8>> = per
        .iter()
        .filter_map(|p| ds.author(p.0).frames.first())
        .take(3)
        .map(|rel| std::fs::read(ds.media_path(rel)).unwrap())
        .collect();
    let urls: Vec<&str> = parts
        .iter()
        .filter(|p| p["type"] == "image_url")
        .map(|p| p["image_url"]["url"].as_str().unwrap())
        .collect();
    assert_eq!(urls.len(), expected.len().min(3));
    assert_eq!(out.frames_sent, urls.len());
    assert!(!urls.is_empty());
    for (url, want) in urls.iter().zip(&expected) {
        let data = url
            .strip_prefix("data:image/png;base64,")
            .expect("a PNG data URL");
        let bytes = b64_decode(data);
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert_eq!(&bytes, want);
    }
    let stats = composer.stats();
    assert_eq!(
        (stats.requests, stats.answers, stats.repaired_answers),
        (1, 1, 0)
    );
}

#[test]
fn llm_http_repairs_a_sloppy_answer() {
    let (_dir, ds) = world();
    let schema = world_schema();
    let sloppy = "Sure! Here is the viewer's preference:\n```json\n{\n  \"Categories \": [\"MUSIC\", \" Dance\", \"cooking\", \"music\"],\n  \"energy\": \"High\",\n  \"audio\": [\"electronica\"],\n  \"visuals\": [\"glitter\"],\n  \"language\": [\"englsh\"],\n  \"mood\": [\"happy\"],\n  \"tipping\": [\"Frequent\", \"generous\", \"extra\"]\n}\n```\nHope this helps {not json}.";
    let server = Server::start(vec![ok(sloppy)]);
    let mut cfg = config(&server);
    cfg.fallback.insert("visuals".into(), vec!["dark".into()]);
    let composer = LlmHttpComposer::new(cfg, schema.clone()).unwrap();
    let (_, query) = busiest(&ds);
    let out = composer.compose_detailed(&ctx(&ds), query).unwrap();
    assert_eq!(
        out.preference.text,
        "categories: music, dance | energy: high | audio: electronic | visuals: dark | \
         language: english | format: solo | tipping: frequent, generous"
    );
    assert_eq!(
        schema.parse(&out.preference.text).unwrap(),
        out.preference.fields
    );
    let has = |field: &str, kind: RepairKind| {
        assert!(
            out.repairs
                .iter()
                .any(|r| r.field == field && r.kind == kind),
            "missing repair {field} {kind:?} in {:#?}",
            out.repairs
        )
    };
    let s = |x: &str| x.to_string();
    has(
        "categories",
        RepairKind::RenamedField {
            from: s("Categories "),
        },
    );
    has(
        "categories",
        RepairKind::Normalised {
            from: s("MUSIC"),
            to: s("music"),
        },
    );
    has(
        "categories",
        RepairKind::Normalised {
            from: s(" Dance"),
            to: s("dance"),
        },
    );
    has(
        "categories",
        RepairKind::DroppedExtra {
            value: s("cooking"),
        },
    );
    has(
        "categories",
        RepairKind::DroppedDuplicate { value: s("music") },
    );
    has(
        "energy",
        RepairKind::Reshaped {
            from: s("\"High\""),
        },
    );
    has(
        "energy",
        RepairKind::Normalised {
            from: s("High"),
            to: s("high"),
        },
    );
    has(
        "audio",
        RepairKind::Matched {
            from: s("electronica"),
            to: s("electronic"),
        },
    );
    has(
        "visuals",
        RepairKind::DroppedUnknown {
            value: s("glitter"),
        },
    );
    has(
        "visuals",
        RepairKind::Filled {
            slot: None,
            values: vec![s("dark")],
        },
    );
    has(
        "language",
        RepairKind::Matched {
            from: s("englsh"),
            to: s("english"),
        },
    );
    has(
        "format",
        RepairKind::Filled {
            slot: None,
            values: vec![s("solo")],
        },
    );
    has("mood", RepairKind::UnknownField);
    has(
        "tipping",
        RepairKind::Normalised {
            from: s("Frequent"),
            to: s("frequent"),
        },
    );
    has("tipping", RepairKind::DroppedExtra { value: s("extra") });
    assert_eq!(out.repairs.len(), 15, "{:#?}", out.repairs);
    for r in &out.repairs {
        assert!(!r.to_string().is_empty());
    }
    let stats = composer.stats();
    assert_eq!(
        (stats.answers, stats.repaired_answers, stats.repairs),
        (1, 1, 15)
    );

    // The same repair without a server, and a missing tuple slot.
    let (fields, repairs) = composer.repair("{\"tipping\": [\"rare\"]}").unwrap();
    assert_eq!(fields.values[6], ["rare", "modest"]);
    assert!(repairs.contains(&mspa_composer::llm_http::Repair {
        field: s("tipping"),
        kind: RepairKind::Filled {
            slot: Some(1),
            values: vec![s("modest")]
        },
    }));
    assert!(matches!(
        composer.repair("no json here"),
        Err(ComposerError::Parse { .. })
    ));
}

#[test]
fn llm_http_retries_429_with_retry_after_and_5xx_with_backoff() {
    let (_dir, ds) = world();
    let schema = world_schema();
    let (answer, text) = valid_answer(&schema);
    let (_, query) = busiest(&ds);

    // 429 with Retry-After: 0, then 200. The backoff would be 5 s: Retry-After wins.
    let server = Server::start(vec![
        Reply::Raw(status(
            429,
            "Too Many Requests",
            &[("Retry-After", "0")],
            "{\"error\": {\"message\": \"slow down\"}}",
        )),
        ok(&answer),
    ]);
    let cfg = LlmHttpConfig {
        backoff_base_s: 5.0,
        max_backoff_s: 10.0,
        ..config(&server)
    };
    let composer = LlmHttpComposer::new(cfg, schema.clone()).unwrap();
    let t = Instant::now();
    let out = composer.compose_detailed(&ctx(&ds), query).unwrap();
    // Well below the 5 s backoff that ignoring Retry-After: 0 would cost (loose for
    // loaded CI machines).
    assert!(
        t.elapsed() < Duration::from_millis(4500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(out.attempts, 2);
    assert_eq!(out.preference.text, text);
    assert_eq!(server.requests().len(), 2);
    assert_eq!(composer.stats().retries, 1);

    // 500 twice, then 200; a 503 whose Retry-After (100 s) is capped by max_backoff_s.
    let err500 = status(
        500,
        "Internal Server Error",
        &[],
        "{\"error\": {\"message\": \"overloaded\"}}",
    );
    let server = Server::start(vec![
        Reply::Raw(err500.clone()),
        Reply::Raw(status(
            503,
            "Service Unavailable",
            &[("Retry-After", "100")],
            "busy",
        )),
        Reply::Raw(err500.clone()),
        ok(&answer),
    ]);
    let cfg = LlmHttpConfig {
        max_retries: 3,
        backoff_base_s: 0.02,
        max_backoff_s: 0.1,
        ..config(&server)
    };
    let composer = LlmHttpComposer::new(cfg, schema.clone()).unwrap();
    let t = Instant::now();
    let out = composer.compose_detailed(&ctx(&ds), query).unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(20 + 100 + 80),
        "backoff was not waited: {took:?}"
    );
    // Retry-After: 100 is capped at 0.1 s; far below 100 s even on a loaded machine.
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_eq!(out.attempts, 4);
    assert_eq!(out.preference.text, text);

    // 500 forever: the error after max_retries names the status and the message.
    let server = Server::start(vec![Reply::Raw(err500.clone()); 2]);
    let cfg = LlmHttpConfig {
        max_retries: 1,
        ..config(&server)
    };
    let composer = LlmHttpComposer::new(cfg, schema.clone()).unwrap();
    let err = composer.compose(&ctx(&ds), query).unwrap_err();
    match &err {
        ComposerError::Http {
            status, attempts, ..
        } => {
            assert_eq!((*status, *attempts), (Some(500), 2));
        }
        other => panic!("expected Http, got {other:?}"),
    }
    assert!(
        err.to_string().contains("500") && err.to_string().contains("overloaded"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 2);
    assert_eq!(composer.stats().failures, 1);

    // An answer without a JSON object is retried too.
    let server = Server::start(vec![ok("I cannot tell."), ok(&answer)]);
    let composer = LlmHttpComposer::new(config(&server), schema.clone()).unwrap();
    let out = composer.compose_detailed(&ctx(&ds), query).unwrap();
    assert_eq!(
        (out.attempts, out.preference.text.as_str()),
        (2, text.as_str())
    );
}

#[test]
fn llm_http_silent_server_times_out_without_hanging() {
    let (_dir, ds) = world();
    let (_, query) = busiest(&ds);
    let server = Server::start(vec![Reply::Hang, Reply::Hang, Reply::Hang]);
    let cfg = LlmHttpConfig {
        timeout_s: 0.3,
        max_retries: 2,
        backoff_base_s: 0.01,
        ..config(&server)
    };
    let composer = LlmHttpComposer::new(cfg, world_schema()).unwrap();
    let t = Instant::now();
    let err = composer.compose(&ctx(&ds), query).unwrap_err();
    let took = t.elapsed();
    // 3 attempts of 0.3 s plus 0.01 + 0.02 s of backoff.
    assert!(took >= Duration::from_millis(900), "{took:?}");
    // Bounded: a client without timeouts would hang here forever.
    assert!(took < Duration::from_secs(10), "{took:?}");
    match &err {
        ComposerError::Http {
            status,
            attempts,
            message,
            ..
        } => {
            assert_eq!((*status, *attempts), (None, 3));
            assert!(message.contains("timed out"), "{message}");
        }
        other => panic!("expected Http, got {other:?}"),
    }
    assert_eq!(server.requests().len(), 3);

    // A refused connection fails fast too.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = LlmHttpConfig {
        base_url: format!("http://127.0.0.1:{port}/v1"),
        max_retries: 1,
        backoff_base_s: 0.01,
        timeout_s: 1.0,
        ..LlmHttpConfig::default()
    };
    let composer = LlmHttpComposer::new(cfg, world_schema()).unwrap();
    let t = Instant::now();
    let err = composer.compose(&ctx(&ds), query).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(
        matches!(
            err,
            ComposerError::Http {
                status: None,
                attempts: 2,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn llm_http_401_fails_at_once() {
    let (_dir, ds) = world();
    let (_, query) = busiest(&ds);
    let server = Server::start(vec![Reply::Raw(status(
        401,
        "Unauthorized",
        &[],
        "{\"error\": {\"message\": \"Invalid API key provided\", \"type\": \"invalid_request_error\"}}",
    ))]);
    let cfg = LlmHttpConfig {
        max_retries: 3,
        ..config(&server)
    };
    let composer = LlmHttpComposer::new(cfg, world_schema()).unwrap();
    let err = composer.compose(&ctx(&ds), query).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("401") && msg.contains("Invalid API key provided"),
        "{msg}"
    );
    assert!(
        matches!(
            err,
            ComposerError::Http {
                status: Some(401),
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.requests().len(), 1);
    assert_eq!(composer.stats().retries, 0);
}

#[test]
fn llm_http_reads_chunked_answers_and_batches() {
    let (_dir, ds) = world();
    let schema = world_schema();
    let (answer, text) = valid_answer(&schema);
    let (_, query) = busiest(&ds);
    let server = Server::start(vec![ok_chunked(&answer)]);
    let composer = LlmHttpComposer::new(config(&server), schema.clone()).unwrap();
    let out = composer.compose_detailed(&ctx(&ds), query).unwrap();
    assert_eq!(out.preference.text, text);
    assert!(out.repairs.is_empty());

    // A batch of three histories (one of them cold) over concurrent requests.
    let users: Vec<UserId> = ds.users().take(2).collect();
    let cold: [TipEvent; 0] = [];
    let mut queries: Vec<HistoryQuery<'_>> = users
        .iter()
        .map(|&u| HistoryQuery {
            tips: ds.user_events(u),
            at_ms: ds
                .user_events(u)
                .iter()
                .map(|e| e.timestamp_ms)
                .max()
                .unwrap_or(0)
                + 1,
        })
        .collect();
    queries.push(HistoryQuery {
        tips: &cold,
        at_ms: 0,
    });
    let server = Server::start(vec![ok_chunked(&answer), ok(&answer), ok_chunked(&answer)]);
    let cfg = LlmHttpConfig {
        concurrency: 3,
        ..config(&server)
    };
    let composer = LlmHttpComposer::new(cfg, schema.clone()).unwrap();
    let prefs = composer.compose_batch(&ctx(&ds), &queries).unwrap();
    assert_eq!(prefs.len(), 3);
    assert!(prefs.iter().all(|p| p.text == text));
    assert!(prefs[2].evidence.iter().all(|e| e.tips.is_empty()));
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    assert!(
        reqs.iter()
            .any(|r| r.json()["messages"][1]["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("has not tipped anyone")),
        "the cold history's request says so"
    );
}

#[test]
fn llm_http_config_errors() {
    let schema = world_schema();
    let bad = |cfg: LlmHttpConfig, field: &str| match LlmHttpComposer::new(cfg, schema.clone()) {
        Err(ComposerError::Config { field: f, message }) => {
            assert_eq!(f, field, "{message}");
            message
        }
        other => panic!("expected a Config error on {field}, got {other:?}"),
    };
    let msg = bad(
        LlmHttpConfig {
            base_url: "ftp://api.example.com/v1".into(),
            ..LlmHttpConfig::default()
        },
        "base_url",
    );
    assert!(msg.contains("https://"), "{msg}");
    bad(
        LlmHttpConfig {
            base_url: "https://user:secret@api.example.com/v1".into(),
            ..LlmHttpConfig::default()
        },
        "base_url",
    );
    // https is accepted (Mozilla's roots by default).
    let c = LlmHttpComposer::new(
        LlmHttpConfig {
            base_url: "https://api.example.com/v1".into(),
            ..LlmHttpConfig::default()
        },
        schema.clone(),
    )
    .unwrap();
    assert_eq!(c.endpoint(), "https://api.example.com/v1/chat/completions");
    // A CA file that is missing or holds no certificate.
    let msg = bad(
        LlmHttpConfig {
            ca_cert_pem: Some(tls_fixture("no-such-file.pem")),
            ..LlmHttpConfig::default()
        },
        "ca_cert_pem",
    );
    assert!(msg.contains("no-such-file.pem"), "{msg}");
    let msg = bad(
        LlmHttpConfig {
            ca_cert_pem: Some(tls_fixture("server-key.pem")),
            ..LlmHttpConfig::default()
        },
        "ca_cert_pem",
    );
    assert!(msg.contains("CERTIFICATE"), "{msg}");
    bad(
        LlmHttpConfig {
            api_key_env: Some("A=B".into()),
            ..LlmHttpConfig::default()
        },
        "api_key_env",
    );
    bad(
        LlmHttpConfig {
            model: " ".into(),
            ..LlmHttpConfig::default()
        },
        "model",
    );
    bad(
        LlmHttpConfig {
            timeout_s: 0.0,
            ..LlmHttpConfig::default()
        },
        "timeout_s",
    );
    let mut cfg = LlmHttpConfig::default();
    cfg.fallback.insert("energy".into(), vec!["extreme".into()]);
    bad(cfg, "fallback.energy");
    let mut cfg = LlmHttpConfig::default();
    cfg.fallback.insert("tipping".into(), vec!["rare".into()]);
    bad(cfg, "fallback.tipping");
    let mut cfg = LlmHttpConfig::default();
    cfg.fallback.insert("mood".into(), vec!["calm".into()]);
    bad(cfg, "fallback.mood");

    // The API key never shows in Debug output nor in the serialised config (which is
    // what reports write); everything else round-trips through JSON.
    let cfg = LlmHttpConfig {
        api_key: Some("sk-secret".into()),
        cache_dir: Some("cache/llm".into()),
        ..LlmHttpConfig::default()
    };
    assert!(!format!("{cfg:?}").contains("sk-secret"));
    let composer = LlmHttpComposer::new(
        LlmHttpConfig {
            cache_dir: None,
            ..cfg.clone()
        },
        schema.clone(),
    )
    .unwrap();
    assert!(!format!("{composer:?}").contains("sk-secret"));
    let json = serde_json::to_string(&cfg).unwrap();
    assert!(!json.contains("sk-secret"), "{json}");
    let back: LlmHttpConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back.api_key, None);
    assert_eq!(
        back,
        LlmHttpConfig {
            api_key: None,
            ..cfg.clone()
        }
    );
    // A key given in the JSON is still read.
    let with_key: LlmHttpConfig = serde_json::from_str("{\"api_key\": \"sk-x\"}").unwrap();
    assert_eq!(with_key.api_key.as_deref(), Some("sk-x"));
    let partial: LlmHttpConfig = serde_json::from_str("{\"model\": \"llama3\"}").unwrap();
    assert_eq!(partial.model, "llama3");
    assert_eq!(partial.max_retries, LlmHttpConfig::default().max_retries);
}

#[test]
fn llm_http_https_with_a_private_ca_and_a_cache_that_makes_reruns_free() {
    let (_dir, ds) = world();
    let schema = world_schema();
    let (answer, text) = valid_answer(&schema);
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().join("llm-cache");
    const KEY_VAR: &str = "MSPA_TEST_LLM_HTTP_KEY";
    const KEY: &str = "sk-env-0123456789abcdef";
    // SAFETY: a variable that only this test reads or writes; Rust's std serialises its
    // own environment accesses.
    unsafe { std::env::set_var(KEY_VAR, KEY) };

    // Three users with tips: three different requests.
    let users: Vec<UserId> = ds
        .users()
        .filter(|&u| !ds.user_events(u).is_empty())
        .take(3)
        .collect();
    assert_eq!(users.len(), 3);
    let queries = whole_histories(&ds, &users);

    let server = Server::start_tls(vec![ok(&answer); 8]);
    assert!(server.base_url().starts_with("https://127.0.0.1:"));
    let cfg = LlmHttpConfig {
        api_key_env: Some(KEY_VAR.into()),
        cache_dir: Some(cache_dir.clone()),
        concurrency: 2,
        ..config(&server)
    };

    // A job that stopped after its first history.
    let composer = LlmHttpComposer::new(cfg.clone(), schema.clone()).unwrap();
    assert!(composer.endpoint().starts_with("https://"));
    let first = composer.compose_detailed(&ctx(&ds), queries[0]).unwrap();
    assert_eq!((first.attempts, first.cached), (1, false));
    assert_eq!(first.preference.text, text);
    assert_eq!(server.requests().len(), 1);
    assert_eq!(composer.stats().cache_writes, 1);

    // It resumes: only the two histories without an answer are sent.
    let composer = LlmHttpComposer::new(cfg.clone(), schema.clone()).unwrap();
    let resumed = composer
        .compose_batch_detailed(&ctx(&ds), &queries)
        .unwrap();
    assert_eq!(server.requests().len(), 3);
    assert_eq!(
        resumed.iter().map(|c| c.cached).collect::<Vec<_>>(),
        [true, false, false]
    );
    assert_eq!(resumed[0].attempts, 0);
    assert_eq!(resumed[0].preference, first.preference);
    let s = composer.stats();
    assert_eq!(
        (s.requests, s.cache_hits, s.cache_writes, s.cache_errors),
        (2, 1, 2, 0)
    );

    // A rerun sends no request at all and composes the same preferences.
    let composer = LlmHttpComposer::new(cfg.clone(), schema.clone()).unwrap();
    let rerun = composer
        .compose_batch_detailed(&ctx(&ds), &queries)
        .unwrap();
    assert_eq!(server.requests().len(), 3, "the rerun sent a request");
    let s = composer.stats();
    assert_eq!((s.requests, s.cache_hits, s.answers), (0, 3, 3));
    assert!(rerun.iter().all(|c| c.cached && c.attempts == 0));
    for (a, b) in rerun.iter().zip(&resumed) {
        assert_eq!(a.preference, b.preference);
        assert_eq!(a.content, b.content);
    }

    // The key came from the environment, over TLS; it is in no cache file.
    for r in server.requests() {
        assert_eq!(r.header("authorization"), Some(format!("Bearer {KEY}")));
        assert!(r.head.starts_with("POST /v1/chat/completions HTTP/1.1"));
    }
    let mut files: Vec<String> = std::fs::read_dir(&cache_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    for f in &files {
        assert!(f.ends_with(".json") && f.len() == 64 + 5, "{f}");
        let bytes = std::fs::read(cache_dir.join(f)).unwrap();
        let entry: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(entry["model"], "test-model");
        assert!(!String::from_utf8_lossy(&bytes).contains(KEY));
    }

    // Another key does not change the cache key; another request does.
    let composer = LlmHttpComposer::new(
        LlmHttpConfig {
            api_key: Some("sk-other".into()),
            ..cfg.clone()
        },
        schema.clone(),
    )
    .unwrap();
    assert!(
        composer
            .compose_detailed(&ctx(&ds), queries[1])
            .unwrap()
            .cached
    );
    let composer = LlmHttpComposer::new(
        LlmHttpConfig {
            temperature: 0.5,
            ..cfg.clone()
        },
        schema.clone(),
    )
    .unwrap();
    let warm = composer.compose_detailed(&ctx(&ds), queries[1]).unwrap();
    assert_eq!((warm.cached, warm.attempts), (false, 1));
    assert_eq!(server.requests().len(), 4);

    // A damaged entry is a miss (asked again and rewritten), not an error.
    for f in &files {
        std::fs::write(cache_dir.join(f), b"{\"format\": ").unwrap();
    }
    let composer = LlmHttpComposer::new(cfg.clone(), schema.clone()).unwrap();
    let out = composer.compose_detailed(&ctx(&ds), queries[2]).unwrap();
    assert_eq!(
        (out.cached, out.preference.text.as_str()),
        (false, text.as_str())
    );
    assert_eq!(server.requests().len(), 5);
    assert!(
        composer
            .compose_detailed(&ctx(&ds), queries[2])
            .unwrap()
            .cached
    );
}

#[test]
fn llm_http_https_refuses_an_untrusted_certificate() {
    let (_dir, ds) = world();
    let (_, query) = busiest(&ds);
    let (answer, _) = valid_answer(&world_schema());
    let server = Server::start_tls(vec![ok(&answer); 4]);
    // Trusting another CA, and Mozilla's roots: both refuse the certificate at once
    // (a certificate does not get better on retry) and send nothing.
    for ca in [Some(tls_fixture("other-ca.pem")), None] {
        let cfg = LlmHttpConfig {
            ca_cert_pem: ca.clone(),
            max_retries: 3,
            backoff_base_s: 1.0,
            ..config(&server)
        };
        let composer = LlmHttpComposer::new(cfg, world_schema()).unwrap();
        let t = Instant::now();
        let err = composer.compose(&ctx(&ds), query).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                ComposerError::Http {
                    status: None,
                    attempts: 1,
                    ..
                }
            ),
            "{ca:?}: {err:?}"
        );
        assert!(msg.to_lowercase().contains("certificate"), "{msg}");
        eprintln!("untrusted ({ca:?}): {msg}");
    }
    assert!(server.requests().is_empty());
}

#[test]
fn llm_http_hostile_servers_fail_in_bounded_time_with_clear_errors() {
    let (_dir, ds) = world();
    let (_, query) = busiest(&ds);
    let (answer, _) = valid_answer(&world_schema());
    let hostile = |server: &Server, retries: u32| LlmHttpConfig {
        timeout_s: 1.0,
        max_retries: retries,
        backoff_base_s: 0.01,
        max_response_bytes: 64 * 1024,
        ..config(server)
    };
    let run = |server: &Server, retries: u32| {
        let composer = LlmHttpComposer::new(hostile(server, retries), world_schema()).unwrap();
        let t = Instant::now();
        let err = composer.compose(&ctx(&ds), query).unwrap_err();
        let took = t.elapsed();
        match err {
            ComposerError::Http {
                status,
                attempts,
                message,
                ..
            } => {
                eprintln!("hostile: {attempts} attempt(s), {took:?}: {message}");
                (status, attempts, message, took)
            }
            other => panic!("expected Http, got {other:?}"),
        }
    };

    // A slow drip of the body, and of the head: the whole answer must come within the
    // timeout, however steadily bytes arrive.
    for head in [
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
        "HTTP/1.1 200 OK\r\nX-Slow: ",
    ] {
        let server = Server::start(vec![Reply::Drip(
            head.as_bytes().to_vec(),
            Duration::from_millis(50),
        )]);
        let (code, attempts, message, took) = run(&server, 0);
        assert_eq!((code, attempts), (None, 1));
        assert!(message.contains("timed out"), "{message}");
        assert!(took >= Duration::from_millis(900), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert!(
            server.sent.load(Ordering::Relaxed) >= 5,
            "the drip did not run"
        );
    }

    // A "gigabyte" body: declared, chunked and read-to-close. Reading stops at
    // max_response_bytes, fails at once (no retry) and names the limit.
    const GIB: u64 = 1 << 30;
    for (head, chunked) in [
        (
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {GIB}\r\n\r\n"),
            false,
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_string(),
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
                .to_string(),
            false,
        ),
    ] {
        let server = Server::start(vec![Reply::Flood(head.into_bytes(), GIB, chunked); 3]);
        let (code, attempts, message, took) = run(&server, 2);
        assert_eq!((code, attempts), (None, 1), "{message}");
        assert!(message.contains("max_response_bytes"), "{message}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        std::thread::sleep(Duration::from_millis(100));
        let sent = server.sent.load(Ordering::Relaxed);
        assert!(sent < 64 << 20, "the client read {sent} bytes");
        assert_eq!(server.requests().len(), 1);
    }

    // Endless response headers: refused by the header size limit.
    let server = Server::start(vec![Reply::Flood(
        b"HTTP/1.1 200 OK\r\nX-Filler: ".to_vec(),
        GIB,
        false,
    )]);
    let (code, attempts, message, took) = run(&server, 0);
    assert_eq!((code, attempts), (None, 1));
    assert!(message.contains("header"), "{message}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // Invalid JSON in a 200: retried, then a clear error.
    let bad = Reply::Raw(status(200, "OK", &[], "{\"choices\": [{\"message\": "));
    let server = Server::start(vec![bad.clone(), bad]);
    let (code, attempts, message, _) = run(&server, 1);
    assert_eq!((code, attempts), (Some(200), 2));
    assert!(message.contains("not JSON"), "{message}");

    // A redirect to another host is not followed: the key never goes there.
    let elsewhere = Server::start(vec![ok(&answer)]);
    let location = format!("http://{}/v1/chat/completions", elsewhere.addr);
    let server = Server::start(vec![Reply::Raw(status(
        307,
        "Temporary Redirect",
        &[("Location", &location)],
        "",
    ))]);
    let (code, attempts, message, _) = run(&server, 3);
    assert_eq!((code, attempts), (Some(307), 1));
    assert!(
        message.contains("redirect") && message.contains(&location),
        "{message}"
    );
    assert!(elsewhere.requests().is_empty());
}

#[test]
fn llm_http_api_key_stays_out_of_errors() {
    let (_dir, ds) = world();
    let (_, query) = busiest(&ds);
    const KEY: &str = "sk-leak-9876543210";
    let echo = format!(
        "{{\"error\": {{\"message\": \"Incorrect API key provided: {KEY}. You sent Bearer {KEY}\"}}}}"
    );
    let server = Server::start(vec![
        Reply::Raw(status(401, "Unauthorized", &[], &echo)),
        Reply::Raw(status(500, "Internal Server Error", &[], &echo)),
        Reply::Raw(status(500, "Internal Server Error", &[], &echo)),
    ]);
    for retries in [0, 1] {
        let cfg = LlmHttpConfig {
            api_key: Some(KEY.into()),
            max_retries: retries,
            ..config(&server)
        };
        let composer = LlmHttpComposer::new(cfg, world_schema()).unwrap();
        let err = composer.compose(&ctx(&ds), query).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains(KEY), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
        assert!(!format!("{composer:?}").contains(KEY));
    }
    assert_eq!(server.requests().len(), 3);
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.header("authorization") == Some(format!("Bearer {KEY}")))
    );
}

/// The synthetic world's reference grammar as a schema (the world publishes it as JSON).
fn world_schema() -> PreferenceSchema {
    PreferenceSchema::from_json(&mspa_core::synth::reference::schema_json()).unwrap()
}
