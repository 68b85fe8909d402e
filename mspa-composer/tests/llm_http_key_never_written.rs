#![cfg(feature = "llm-http")]
//! The API key of the `llm-http` composer is read from the environment and never written:
//! not into the answer cache, not into error messages, not into the `Debug` output or the
//! JSON of the config, the composer, its compositions or its statistics. A local HTTPS
//! server answers several users with failures that produce messages (a 500, a 429, a body
//! that is not JSON, an answer without a JSON object, a 418, a 401, a redirect), each
//! echoing the key and its base64 form back, and one valid answer that quotes them too;
//! then every file under the job's folder (recursively), every message and every `Debug`
//! text is searched for the key, in plain text and in base64 at any alignment. The
//! server must have received the key (so the test cannot pass because it was never used).
//!
//! The crate logs nothing itself; `ureq` redacts every header but a fixed list of
//! harmless ones (`Authorization` is not among them) in what it logs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mspa_composer::composer::{ComposeContext, Composer};
use mspa_composer::llm_http::{LlmHttpComposer, LlmHttpConfig};
use mspa_composer::schema::{FieldKind, PreferenceSchema};
use mspa_core::UserId;
use mspa_core::synth::{SyntheticWorldConfig, generate};
use serde_json::json;

mod llm_support;
use llm_support::{completion, server_tls_config, status, tls_fixture, whole_histories};

/// The key: distinctive, so that any copy of it is found.
const KEY: &str = "sk-mspa-NeverWritten-5f2c9e71a0b3d846";
/// The variable it is read from (only this test reads or writes it).
const KEY_VAR: &str = "MSPA_TEST_LLM_KEY_NEVER_WRITTEN";

// ---------------------------------------------------------------------------------------
// Base64 forms of the key
// ---------------------------------------------------------------------------------------

fn base64(data: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=c.len() {
            out.push(char::from(alphabet[((n >> (18 - 6 * i)) & 63) as usize]));
        }
        for _ in c.len()..3 {
            out.push('=');
        }
    }
    out
}

/// The parts of the base64 text of the key that appear in the base64 of *any* text
/// containing it, whatever its offset (0, 1 or 2 bytes after a 3-byte boundary), in the
/// standard and the URL-safe alphabet: the characters that depend only on the key's
/// bytes.
fn key_base64_forms() -> Vec<String> {
    const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut forms = Vec::new();
    for alphabet in [STD, URL] {
        for offset in 0..3usize {
            let mut data = vec![0u8; offset];
            data.extend_from_slice(KEY.as_bytes());
            let text = base64(&data, alphabet);
            // Characters touched by the prefix bytes, and by the bytes after the key.
            let skip = (offset * 8).div_ceil(6);
            let end = ((offset + KEY.len()) * 8) / 6;
            let form = text[skip..end].to_string();
            if !forms.contains(&form) {
                forms.push(form);
            }
        }
    }
    forms
}

/// Every form of the key found in `text`.
fn leaks(text: &[u8], forms: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for form in std::iter::once(KEY.to_string()).chain(forms.iter().cloned()) {
        if text.windows(form.len()).any(|w| w == form.as_bytes()) {
            found.push(form);
        }
    }
    found
}

// ---------------------------------------------------------------------------------------
// A scripted HTTPS server
// ---------------------------------------------------------------------------------------

/// One request the server received: the request line and the headers.
#[derive(Clone, Debug)]
struct Recorded {
    head: String,
}

impl Recorded {
    fn authorization(&self) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("authorization")
                .then(|| v.trim().to_string())
        })
    }
}

/// An HTTPS server on 127.0.0.1 that answers connection `i` with `script[i]` (then with
/// 500s) and records each request's head.
struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Server {
    fn start(script: Vec<Vec<u8>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let rec = requests.clone();
        let tls = server_tls_config();
        std::thread::spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { continue };
                let reply = script.get(i).cloned().unwrap_or_else(|| {
                    status(500, "Script Ended", &[], "{\"error\": \"script ended\"}")
                });
                let (rec, tls) = (rec.clone(), tls.clone());
                std::thread::spawn(move || serve(stream, tls, &rec, &reply));
            }
        });
        Server { addr, requests }
    }

    fn base_url(&self) -> String {
        format!("https://{}/v1", self.addr)
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(
    stream: TcpStream,
    tls: Arc<rustls::ServerConfig>,
    rec: &Mutex<Vec<Recorded>>,
    reply: &[u8],
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(conn) = rustls::ServerConnection::new(tls) else {
        return;
    };
    let mut conn = rustls::StreamOwned::new(conn, stream);
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match conn.read(&mut tmp) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
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
    let mut have = buf.len() - head_end - 4;
    while have < len {
        match conn.read(&mut tmp) {
            Ok(0) | Err(_) => return,
            Ok(n) => have += n,
        }
    }
    rec.lock().unwrap().push(Recorded { head });
    let _ = conn.write_all(reply);
    conn.conn.send_close_notify();
    let _ = conn.flush();
}

/// A schema-valid answer object (the first value of each field, per slot for tuples).
fn valid_answer(schema: &PreferenceSchema) -> serde_json::Map<String, serde_json::Value> {
    let mut obj = serde_json::Map::new();
    for f in &schema.fields {
        let vs: Vec<String> = match &f.kind {
            FieldKind::List { values, .. } => vec![values[0].clone()],
            FieldKind::Tuple { slots } => slots.iter().map(|s| s[0].clone()).collect(),
        };
        obj.insert(f.name.clone(), json!(vs));
    }
    obj
}

// ---------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------

#[test]
fn llm_http_api_key_is_never_written_anywhere() {
    let job = tempfile::tempdir().unwrap();
    let world_dir = job.path().join("world");
    let cache_dir = job.path().join("out").join("llm-cache");
    let config = SyntheticWorldConfig {
        seed: 11,
        authors: 6,
        users: 12,
        audio_seconds: 0.25,
        frames_per_author: 1,
        frame_size: 16,
        frame_dropout: 0.0,
        ..SyntheticWorldConfig::default()
    };
    generate(&config, &world_dir).unwrap();
    let ds = mspa_core::load_native(&world_dir).unwrap();
    let schema = PreferenceSchema::from_json(&mspa_core::synth::reference::schema_json()).unwrap();
    let forms = key_base64_forms();
    // SAFETY: a variable only this test reads or writes; std serialises its own
    // environment accesses.
    unsafe { std::env::set_var(KEY_VAR, KEY) };

    // What a careless server sends back: the key and its base64 form.
    let b64 = base64(
        format!("Bearer {KEY}").as_bytes(),
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    );
    let echo = format!(
        "{{\"error\": {{\"message\": \"bad request from {KEY} (Authorization: Bearer {KEY}; \
         base64 {b64})\"}}}}"
    );
    let mut answer = valid_answer(&schema);
    answer.insert("note".into(), json!(format!("your key is {KEY}, {b64}")));
    let answer = serde_json::Value::Object(answer).to_string();
    let location = format!("https://elsewhere.example/v1?key={KEY}&b64={b64}");
    let script = vec![
        // User 1: two server errors (one retry), then the error.
        status(500, "Internal Server Error", &[], &echo),
        status(503, "Service Unavailable", &[], &echo),
        // User 2: a body that is not JSON, then an answer without a JSON object.
        status(200, "OK", &[], &format!("not json: {KEY} {b64}")),
        status(
            200,
            "OK",
            &[],
            &completion(&format!("I cannot answer, {KEY} {b64}")),
        ),
        // User 3: a status that is not retried.
        status(418, "I'm a teapot", &[], &echo),
        // User 4: 429 with Retry-After, then a valid answer quoting the key (cached).
        status(429, "Too Many Requests", &[("Retry-After", "0")], &echo),
        status(200, "OK", &[], &completion(&answer)),
        // User 5: unauthorised.
        status(401, "Unauthorized", &[], &echo),
        // User 6: a redirect whose target quotes the key.
        status(302, "Found", &[("Location", &location)], &echo),
    ];
    let server = Server::start(script);
    let cfg = LlmHttpConfig {
        base_url: server.base_url(),
        model: "test-model".into(),
        timeout_s: 5.0,
        max_retries: 1,
        backoff_base_s: 0.01,
        max_backoff_s: 0.05,
        api_key_env: Some(KEY_VAR.into()),
        ca_cert_pem: Some(tls_fixture("ca.pem")),
        cache_dir: Some(cache_dir.clone()),
        concurrency: 1,
        ..LlmHttpConfig::default()
    };

    let users: Vec<UserId> = ds
        .users()
        .filter(|&u| !ds.user_events(u).is_empty())
        .take(6)
        .collect();
    assert_eq!(users.len(), 6, "the world has too few users with tips");
    let queries = whole_histories(&ds, &users);
    let ctx = ComposeContext {
        dataset: &ds,
        features: None,
        text_encoder: None,
    };

    // Everything the job printed or could print.
    let mut texts: Vec<String> = Vec::new();
    let composer = LlmHttpComposer::new(cfg.clone(), schema.clone()).unwrap();
    texts.push(format!("{cfg:?}"));
    texts.push(format!("{:?}", composer.config()));
    texts.push(format!("{composer:?}"));
    texts.push(serde_json::to_string(&cfg).unwrap());
    texts.push(serde_json::to_string(composer.config()).unwrap());
    let expect_ok = [false, false, false, true, false, false];
    for (i, query) in queries.iter().enumerate() {
        match composer.compose_detailed(&ctx, *query) {
            Ok(c) => {
                assert!(expect_ok[i], "user {i}: composed, expected an error");
                texts.push(format!("{c:?}"));
                texts.push(c.content.clone());
                texts.push(c.preference.text.clone());
            }
            Err(e) => {
                assert!(!expect_ok[i], "user {i}: {e}");
                texts.push(e.to_string());
                texts.push(format!("{e:?}"));
            }
        }
    }
    let stats = composer.stats();
    texts.push(format!("{stats:?}"));
    texts.push(serde_json::to_string(&stats).unwrap());
    assert_eq!(stats.answers, 1, "{stats:?}");
    assert_eq!(stats.cache_writes, 1, "{stats:?}");

    // A rerun answers user 4 from the cache (and the others fail again on 500s).
    let rerun = LlmHttpComposer::new(cfg.clone(), schema.clone()).unwrap();
    let cached = rerun.compose_detailed(&ctx, queries[3]).unwrap();
    assert!(cached.cached);
    texts.push(format!("{cached:?}"));
    let batch = rerun.compose_batch(&ctx, &queries);
    match batch {
        Ok(prefs) => texts.push(format!("{prefs:?}")),
        Err(e) => {
            texts.push(e.to_string());
            texts.push(format!("{e:?}"));
        }
    }
    texts.push(format!("{rerun:?}"));

    // The key was used: every request carried it, over TLS.
    let requests = server.requests();
    assert!(requests.len() >= 9, "{} requests", requests.len());
    for r in &requests {
        assert_eq!(
            r.authorization(),
            Some(format!("Bearer {KEY}")),
            "{}",
            r.head
        );
    }
    // The texts hold what the server said, with the key taken out.
    let all = texts.join("\n");
    assert!(all.contains("I'm a teapot") || all.contains("418"), "{all}");
    assert!(all.contains("<redacted>"), "{all}");

    // No text and no file of the job holds the key, in any form.
    let mut found = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        for form in leaks(t.as_bytes(), &forms) {
            found.push(format!("text {i} holds `{form}`: {t}"));
        }
    }
    let mut files = Vec::new();
    let mut stack = vec![job.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    let cache_files: Vec<&PathBuf> = files.iter().filter(|p| p.starts_with(&cache_dir)).collect();
    assert_eq!(cache_files.len(), 1, "{cache_files:?}");
    for p in &files {
        let bytes = std::fs::read(p).unwrap();
        for form in leaks(&bytes, &forms) {
            found.push(format!("{} holds `{form}`", p.display()));
        }
    }
    assert!(found.is_empty(), "the key was written: {found:#?}");
}
