//! The MLLM as the composers' teacher: it writes the texts of a seeded sample of the
//! leak-free training pairs, in the schema derived from the data, and the learned
//! composer is distilled from them; with a cache, a second run sends no request.

#![cfg(feature = "llm-http")]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mspa::composer::composer::ComposeContext;
use mspa::composer::llm_http::LlmHttpConfig;
use mspa::composer::schema::{FieldKind, PreferenceFields};
use mspa::composer::template::{DeriveConfig, derive_vocabulary};
use mspa::core::Split;
use mspa::core::synth::{SyntheticWorldConfig, generate};
use mspa::pipeline::{ComposerTeacher, PipelineConfig, fit_composers};

/// Serves every request with `answer` as the chat completion's content; counts requests.
fn serve(answer: String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = Vec::new();
            let mut tmp = [0u8; 8192];
            // Read the head and the body (Content-Length).
            loop {
                let Ok(n) = stream.read(&mut tmp) else { break };
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&tmp[..n]);
                let text = String::from_utf8_lossy(&buf);
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            seen.fetch_add(1, Ordering::SeqCst);
            let body = serde_json::json!({
                "id": "x", "object": "chat.completion", "model": "teacher",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": answer}}],
            })
            .to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, count)
}

#[test]
fn an_mllm_teaches_a_sample_and_the_cache_makes_the_rerun_free() {
    let dir = tempfile::tempdir().unwrap();
    let world = SyntheticWorldConfig {
        seed: 5,
        users: 40,
        authors: 12,
        frames_per_author: 1,
        frame_size: 16,
        audio_seconds: 0.25,
        ..Default::default()
    };
    generate(&world, dir.path()).unwrap();
    let dataset = mspa::core::load_native(dir.path()).unwrap();
    let split = Split::leave_last_out(&dataset);
    // The answer: the first value of every field of the schema derived from the data.
    let (schema, _) = derive_vocabulary(&dataset, &DeriveConfig::default()).unwrap();
    let mut answer = serde_json::Map::new();
    let mut values = Vec::new();
    for f in &schema.fields {
        let vs: Vec<String> = match &f.kind {
            FieldKind::List { values, .. } => vec![values[0].clone()],
            FieldKind::Tuple { slots } => slots.iter().map(|s| s[0].clone()).collect(),
        };
        answer.insert(f.name.clone(), serde_json::json!(vs));
        values.push(vs);
    }
    let text = schema.render(&PreferenceFields { values });
    let (url, requests) = serve(serde_json::Value::Object(answer).to_string());

    let mut config = PipelineConfig::default().with_seed(5);
    config.composer.epochs = 1;
    config.teacher = ComposerTeacher::Mllm {
        config: LlmHttpConfig {
            base_url: url,
            model: "teacher".into(),
            api_key_env: None,
            cache_dir: Some(dir.path().join("mllm-cache")),
            ..LlmHttpConfig::default()
        },
        max_pairs: 6,
    };
    // Stand-in features: the composers only need their shape here.
    let features =
        vec![mspa::modal::features::AuthorFeatures::empty([4, 4, 4]); dataset.n_authors()];
    let ctx = ComposeContext {
        dataset: &dataset,
        features: Some(&features),
        text_encoder: None,
    };
    let device = mspa::modal::device_from_name("flex").unwrap();
    let fit = || fit_composers(&config, &ctx, None, &split, &device, &mut |_, _, _, _| {});
    let stage = fit().unwrap();
    assert!(
        stage.teacher.contains("MLLM `teacher`"),
        "{}",
        stage.teacher
    );
    assert_eq!(stage.pairs.train.len(), 6);
    for p in &stage.pairs.train {
        assert_eq!(p.reference, text);
    }
    assert_eq!(stage.learned.schema(), &schema);
    let first = requests.load(Ordering::SeqCst);
    assert!((1..=6).contains(&first), "{first} requests");

    let again = fit().unwrap();
    assert_eq!(again.pairs, stage.pairs);
    assert_eq!(
        requests.load(Ordering::SeqCst),
        first,
        "the cache answers the rerun"
    );
}
