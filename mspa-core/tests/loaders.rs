//! Each loader on small files in its format, and on malformed ones: the error names the
//! file, the line and the field.

use std::fs;
use std::path::Path;

use mspa_core::{CoreError, DataErrorKind, ExternalId, load_kuailive, load_native, load_twitch};

fn write(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).unwrap();
}

const AUTHORS: &str = r#"{"id": "a1", "name": "Nova", "title": "Synthwave night", "description": "neon beats", "frames": ["media/a1/f0.png", "./media/a1/f1.png"], "audio": "media/a1/clip.wav"}
{"id": 2, "name": "Rex", "title": "", "description": "", "frames": [], "audio": null}

{"id": "03", "name": "Zed"}
"#;

const TIPS: &str = "user_id,author_id,amount,timestamp_ms
u1,a1,5.0,3000
u1,2,1.5,1000
7,a1,0,2000
u1,03,2,2000
";

fn native_dir(authors: &str, tips: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "authors.jsonl", authors);
    write(dir.path(), "tips.csv", tips);
    dir
}

/// Asserts a data error of the given kind on the given line and field, whose message
/// names the file.
fn assert_data_error(
    err: CoreError,
    file: &str,
    line: u64,
    field: Option<&str>,
    kind: DataErrorKind,
) {
    let text = err.to_string();
    match &err {
        CoreError::Data {
            file: f,
            line: l,
            field: fd,
            kind: k,
            ..
        } => {
            assert!(f.ends_with(file), "{text}");
            assert_eq!(*l, line, "{text}");
            assert_eq!(fd.as_deref(), field, "{text}");
            assert_eq!(*k, kind, "{text}");
        }
        other => panic!("expected a data error, got {other}"),
    }
    assert!(
        text.contains(file) && text.contains(&format!(":{line}:")),
        "{text}"
    );
    if let Some(field) = field {
        assert!(text.contains(field), "{text}");
    }
}

#[test]
fn native_loads_authors_tips_and_orders_by_time() {
    let dir = native_dir(AUTHORS, TIPS);
    let ds = load_native(dir.path()).unwrap();
    assert_eq!(ds.n_authors(), 3);
    assert_eq!(ds.n_users(), 2);
    assert_eq!(ds.n_events(), 4);
    let a1 = ds.author_by_external(&ExternalId::from("a1")).unwrap();
    let author = ds.author(a1);
    assert_eq!(author.title, "Synthwave night");
    assert_eq!(author.frames[1], Path::new("media/a1/f1.png"));
    assert_eq!(
        ds.media_path(author.audio.as_ref().unwrap()),
        dir.path().join("media/a1/clip.wav")
    );
    // Integer 2 in JSON and "2" in CSV are one id; "03" stays a string.
    assert!(ds.author_by_external(&ExternalId::Int(2)).is_some());
    assert!(
        ds.author_by_external(&ExternalId::Str("03".into()))
            .is_some()
    );
    let u1 = ds.user_by_external(&ExternalId::from("u1")).unwrap();
    let times: Vec<i64> = ds.user_events(u1).iter().map(|e| e.timestamp_ms).collect();
    assert_eq!(times, vec![1000, 2000, 3000]);
    assert_eq!(ds.user_events(u1)[2].amount, 5.0);
}

#[test]
fn native_columns_may_come_in_any_order() {
    let tips = "timestamp_ms,amount,author_id,user_id,extra\n5,1.0,a1,u,x\n";
    let dir = native_dir(AUTHORS, tips);
    let ds = load_native(dir.path()).unwrap();
    assert_eq!(ds.events()[0].timestamp_ms, 5);
}

#[test]
fn native_unknown_author_names_line_and_field() {
    let dir = native_dir(
        AUTHORS,
        "user_id,author_id,amount,timestamp_ms\nu,a1,1,1\nu,ghost,1,2\n",
    );
    let err = load_native(dir.path()).unwrap_err();
    assert_data_error(
        err,
        "tips.csv",
        3,
        Some("author_id"),
        DataErrorKind::UnknownAuthor,
    );
}

#[test]
fn native_bad_amounts_and_timestamps_are_refused() {
    for (amount, ts, field, kind) in [
        ("-1", "5", "amount", DataErrorKind::InvalidAmount),
        ("NaN", "5", "amount", DataErrorKind::InvalidAmount),
        ("inf", "5", "amount", DataErrorKind::InvalidAmount),
        ("abc", "5", "amount", DataErrorKind::InvalidAmount),
        (
            "1",
            "yesterday",
            "timestamp_ms",
            DataErrorKind::InvalidTimestamp,
        ),
        ("1", "1.5", "timestamp_ms", DataErrorKind::InvalidTimestamp),
        ("1", "", "timestamp_ms", DataErrorKind::Missing),
    ] {
        let tips = format!(
            "user_id,author_id,amount,timestamp_ms\nu,a1,1,1\nu,a1,1,2\nu,a1,{amount},{ts}\n"
        );
        let dir = native_dir(AUTHORS, &tips);
        let err = load_native(dir.path()).unwrap_err();
        assert_data_error(err, "tips.csv", 4, Some(field), kind);
    }
}

#[test]
fn native_integral_float_timestamps_are_accepted() {
    let dir = native_dir(
        AUTHORS,
        "user_id,author_id,amount,timestamp_ms\nu,a1,1,1700000000000.0\n",
    );
    let ds = load_native(dir.path()).unwrap();
    assert_eq!(ds.events()[0].timestamp_ms, 1_700_000_000_000);
}

#[test]
fn native_duplicate_author_names_both_lines() {
    let authors = "{\"id\": \"a\"}\n{\"id\": \"b\"}\n{\"id\": \"a\"}\n";
    let dir = native_dir(authors, "user_id,author_id,amount,timestamp_ms\n");
    let err = load_native(dir.path()).unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");
    assert_data_error(
        err,
        "authors.jsonl",
        3,
        Some("id"),
        DataErrorKind::DuplicateAuthor,
    );
}

#[test]
fn native_media_paths_may_not_escape_the_root() {
    for (field, json) in [
        ("frames", r#"{"id": "a", "frames": ["../../etc/passwd"]}"#),
        (
            "frames",
            r#"{"id": "a", "frames": ["ok.png", "/abs/x.png"]}"#,
        ),
        ("audio", r#"{"id": "a", "audio": "media/../../x.wav"}"#),
        ("audio", r#"{"id": "a", "audio": "/tmp/x.wav"}"#),
    ] {
        let authors = format!("{{\"id\": \"z\"}}\n{json}\n");
        let dir = native_dir(&authors, "user_id,author_id,amount,timestamp_ms\n");
        let err = load_native(dir.path()).unwrap_err();
        assert_data_error(
            err,
            "authors.jsonl",
            2,
            Some(field),
            DataErrorKind::PathEscape,
        );
    }
}

#[test]
fn native_malformed_lines_are_errors() {
    let cases = [
        (
            "{\"id\": \"a\"}\nnot json\n",
            2,
            None,
            DataErrorKind::Malformed,
        ),
        (
            "{\"name\": \"no id\"}\n",
            1,
            Some("id"),
            DataErrorKind::Missing,
        ),
        ("{\"id\": 1.5}\n", 1, Some("id"), DataErrorKind::BadValue),
        (
            "{\"id\": \"a\", \"title\": 3}\n",
            1,
            Some("title"),
            DataErrorKind::BadValue,
        ),
        (
            "{\"id\": \"a\", \"frames\": \"x.png\"}\n",
            1,
            Some("frames"),
            DataErrorKind::BadValue,
        ),
        ("[1, 2]\n", 1, None, DataErrorKind::Malformed),
    ];
    for (authors, line, field, kind) in cases {
        let dir = native_dir(authors, "user_id,author_id,amount,timestamp_ms\n");
        let err = load_native(dir.path()).unwrap_err();
        assert_data_error(err, "authors.jsonl", line, field, kind);
    }
}

#[test]
fn native_bad_tips_header_and_ragged_rows() {
    let dir = native_dir(AUTHORS, "user,author,amount,time\nu,a1,1,1\n");
    let err = load_native(dir.path()).unwrap_err();
    assert_data_error(
        err,
        "tips.csv",
        1,
        Some("user_id"),
        DataErrorKind::Malformed,
    );

    let dir = native_dir(
        AUTHORS,
        "user_id,author_id,amount,timestamp_ms\nu,a1,1,1\nu,a1,1\n",
    );
    let err = load_native(dir.path()).unwrap_err();
    assert_data_error(err, "tips.csv", 3, None, DataErrorKind::Malformed);
}

#[test]
fn native_missing_file_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "authors.jsonl", AUTHORS);
    let err = load_native(dir.path()).unwrap_err();
    assert!(matches!(err, CoreError::Io { .. }));
    assert!(err.to_string().contains("tips.csv"), "{err}");
}

#[test]
fn twitch_maps_sessions_to_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("100k.csv");
    // The stream id needs 64 bits.
    write(
        dir.path(),
        "100k.csv",
        "1,33842865744,mithrain,154,156\n1,33846768288,alptv,166,169\n2,33886469056,mithrain,118,120\n1,34887283200,mithrain,10,11\n",
    );
    let ds = load_twitch(&path).unwrap();
    assert_eq!((ds.n_users(), ds.n_authors(), ds.n_events()), (2, 2, 4));
    let u1 = ds.user_by_external(&ExternalId::Int(1)).unwrap();
    let ev = ds.user_events(u1);
    assert_eq!(ev[0].timestamp_ms, 10 * 600_000);
    assert_eq!(ev[0].amount, 1.0);
    assert_eq!(ev[1].amount, 2.0);
    let mithrain = ds
        .author_by_external(&ExternalId::from("mithrain"))
        .unwrap();
    assert_eq!(ev[0].author, mithrain);
}

#[test]
fn twitch_malformed_rows_name_the_line() {
    let cases = [
        ("1,2,a,3,4\n1,2,a,3\n", 2, None, DataErrorKind::Malformed),
        (
            "1,2,a,3,4\n1,x,a,3,4\n",
            2,
            Some("stream"),
            DataErrorKind::BadValue,
        ),
        (
            "1,2,a,3,4\n1,2,a,5,4\n",
            2,
            Some("stop"),
            DataErrorKind::InvalidAmount,
        ),
        (
            "1,2,a,-3,4\n",
            1,
            Some("start"),
            DataErrorKind::InvalidTimestamp,
        ),
        (
            "1,2,a,3,4\n\n1,2,,3,4\n",
            3,
            Some("streamer"),
            DataErrorKind::Missing,
        ),
    ];
    for (text, line, field, kind) in cases {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "t.csv", text);
        let err = load_twitch(&dir.path().join("t.csv")).unwrap_err();
        assert_data_error(err, "t.csv", line, field, kind);
    }
}

#[test]
fn kuailive_reads_gifts_streamers_and_rooms() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "gift.csv",
        "user_id,live_id,streamer_id,timestamp,gift_price\n10,500,77,1700000000000,3\n10,501,88,1700000005000,10\n11,500,77,1700000001000,1\n",
    );
    write(
        dir.path(),
        "streamer.csv",
        "streamer_id,gender,age\n77,F,25-30\n99,M,18-24\n",
    );
    write(
        dir.path(),
        "room.csv",
        "p_date,live_id,streamer_id,live_type,start_timestamp,end_timestamp,live_content_category,live_name_id\n20250501,500,77,1,0,1,music,5\n20250502,502,77,1,0,1,dance,6\n20250503,503,77,1,0,1,music,7\n",
    );
    let ds = load_kuailive(dir.path()).unwrap();
    assert_eq!(ds.n_events(), 3);
    assert_eq!(ds.n_users(), 2);
    assert_eq!(
        ds.n_authors(),
        3,
        "77 and 99 from streamer.csv, 88 only from gifts"
    );
    let a77 = ds.author(ds.author_by_external(&ExternalId::Int(77)).unwrap());
    assert_eq!(a77.title, "music");
    assert!(a77.description.contains("gender: F"), "{}", a77.description);
    assert!(
        a77.description.contains("content categories: music, dance"),
        "{}",
        a77.description
    );
    let total: f64 = ds.events().iter().map(|e| e.amount).sum();
    assert_eq!(total, 14.0);
}

#[test]
fn kuailive_bad_rows_name_file_line_field() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "gift.csv",
        "user_id,live_id,streamer_id,timestamp,gift_price\n10,500,77,1700000000000,3\n10,500,77,1700000000000,-3\n",
    );
    let err = load_kuailive(dir.path()).unwrap_err();
    assert_data_error(
        err,
        "gift.csv",
        3,
        Some("gift_price"),
        DataErrorKind::InvalidAmount,
    );

    write(
        dir.path(),
        "gift.csv",
        "user_id,live_id,streamer_id,timestamp,gift_price\n10,500,77,soon,3\n",
    );
    let err = load_kuailive(dir.path()).unwrap_err();
    assert_data_error(
        err,
        "gift.csv",
        2,
        Some("timestamp"),
        DataErrorKind::InvalidTimestamp,
    );

    write(
        dir.path(),
        "gift.csv",
        "user_id,live_id,streamer_id,timestamp,gift_price\n",
    );
    write(dir.path(), "streamer.csv", "streamer_id,age\n1,2\n1,3\n");
    let err = load_kuailive(dir.path()).unwrap_err();
    assert_data_error(
        err,
        "streamer.csv",
        3,
        Some("streamer_id"),
        DataErrorKind::DuplicateAuthor,
    );
}

#[test]
fn progress_is_reported_on_large_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..70_000 {
        text.push_str(&format!("{},{},s{},{},{}\n", i % 97, i, i % 13, i, i + 1));
    }
    write(dir.path(), "big.csv", &text);
    let mut reports = Vec::new();
    let ds = mspa_core::loaders::load(
        mspa_core::Format::Twitch,
        &dir.path().join("big.csv"),
        &mut |p| reports.push(p),
    )
    .unwrap();
    assert_eq!(ds.n_events(), 70_000);
    assert!(!reports.is_empty());
    assert!(reports[0].bytes > 0 && reports[0].bytes <= reports[0].total_bytes);
}

#[test]
fn csv_quoting_bom_crlf_and_blank_lines() {
    let tips = "\u{feff}user_id,author_id,amount,timestamp_ms\r\n\"Doe, \"\"J\"\"\",a1,1,5\r\n\r\n\"multi\nline\",a1,2,6\r\nu,a1,\"3\",7\r\n";
    let dir = native_dir(AUTHORS, tips);
    let ds = load_native(dir.path()).unwrap();
    assert_eq!(ds.n_events(), 3);
    assert!(
        ds.user_by_external(&ExternalId::Str("Doe, \"J\"".into()))
            .is_some()
    );
    assert!(
        ds.user_by_external(&ExternalId::Str("multi\nline".into()))
            .is_some()
    );
    // Line numbers stay exact after blank lines and multi-line fields.
    let tips = "user_id,author_id,amount,timestamp_ms\n\nu,a1,1,5\n\"x\ny\",a1,1,6\nu,a1,-1,7\n";
    let err = load_native(native_dir(AUTHORS, tips).path()).unwrap_err();
    assert_data_error(
        err,
        "tips.csv",
        6,
        Some("amount"),
        DataErrorKind::InvalidAmount,
    );
    let err = load_native(
        native_dir(
            AUTHORS,
            "user_id,author_id,amount,timestamp_ms\n\"open,a1,1,5\n",
        )
        .path(),
    )
    .unwrap_err();
    assert_data_error(err, "tips.csv", 2, None, DataErrorKind::Malformed);
}

/// The line of every error is the line the bad row starts on, also after blank lines,
/// lines of spaces, CRLF endings and quoted fields spanning lines. A loader built on the
/// `csv` crate's `StringRecord::position().line()` as it comes fails this: csv 1.4 reports
/// the lines given in the comments (the position where it began looking for the record,
/// counting `\n` only as far as it has consumed them), and a line of spaces becomes a
/// one-field record there instead of a skipped blank.
#[test]
fn csv_line_numbers_survive_blank_lines_and_crlf() {
    let header = "user_id,author_id,amount,timestamp_ms";
    let cases = [
        // csv 1.4: line 2.
        (format!("{header}\r\nu,a1,1,5\r\nu,a1,-1,7\r\n"), 3),
        // csv 1.4: line 5.
        (format!("{header}\n\n\nu,a1,1,5\n\nu,a1,-1,7\n"), 6),
        // csv 1.4: line 3.
        (
            format!("{header}\r\n\"x\r\ny\",a1,1,5\r\n\r\nu,a1,-1,7\r\n"),
            5,
        ),
        // csv 1.4: a one-field record on line 2 (a width error).
        (format!("{header}\n   \nu,a1,-1,7\n"), 3),
    ];
    for (tips, line) in cases {
        let err = load_native(native_dir(AUTHORS, &tips).path()).unwrap_err();
        assert_data_error(
            err,
            "tips.csv",
            line,
            Some("amount"),
            DataErrorKind::InvalidAmount,
        );
    }
    // Headerless Twitch rows after a leading blank line; csv 1.4: line 2.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "t.csv", "\r\n1,2,a,3,4\r\n\r\n1,2,a,5,4\r\n");
    let err = load_twitch(&dir.path().join("t.csv")).unwrap_err();
    assert_data_error(err, "t.csv", 4, Some("stop"), DataErrorKind::InvalidAmount);
}
