//! Hostile input to the loaders: huge lines, fields and lists are refused with an error
//! that names the limit, the file and the line, and quotes at most a short excerpt of the
//! offending value; NaN amounts are refused where they enter; media paths that leave the
//! dataset root, through `..`, absolute paths or symbolic links, are refused naming the
//! author and the path.

use std::fs;
use std::path::Path;

use mspa_core::error::{MAX_QUOTED_CHARS, excerpt};
use mspa_core::loaders::limits::{
    MAX_FRAMES_PER_AUTHOR, MAX_LINE_BYTES, MAX_PATH_BYTES, MAX_TEXT_BYTES,
};
use mspa_core::{
    Author, CoreError, DataErrorKind, DatasetBuilder, ExternalId, load_kuailive, load_native,
    load_twitch,
};

const AUTHORS: &str = "{\"id\": \"a1\", \"title\": \"t\"}\n";
const TIPS: &str = "user_id,author_id,amount,timestamp_ms\nu1,a1,1,1000\n";

fn native_dir(authors: &str, tips: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("authors.jsonl"), authors).unwrap();
    fs::write(dir.path().join("tips.csv"), tips).unwrap();
    dir
}

/// Asserts a data error of `kind` on `line` of `file`, with a short message containing
/// every needle.
fn assert_short_error(
    err: CoreError,
    file: &str,
    line: u64,
    kind: DataErrorKind,
    needles: &[&str],
) {
    let text = err.to_string();
    assert_eq!(err.kind(), Some(kind), "{}", excerpt(&text));
    assert_eq!(err.line(), Some(line), "{}", excerpt(&text));
    assert!(
        text.len() < 600,
        "message of {} bytes: {}",
        text.len(),
        excerpt(&text)
    );
    assert!(text.contains(file), "{text}");
    for needle in needles {
        assert!(text.contains(needle), "`{text}` lacks `{needle}`");
    }
}

#[test]
fn excerpt_keeps_short_values_and_cuts_long_ones_on_char_boundaries() {
    assert_eq!(excerpt(""), "");
    let exact = "é".repeat(MAX_QUOTED_CHARS);
    assert_eq!(excerpt(&exact), exact);
    let long = "é".repeat(MAX_QUOTED_CHARS + 1);
    assert_eq!(
        excerpt(&long),
        format!("{}…({} bytes)", "é".repeat(MAX_QUOTED_CHARS), long.len())
    );
}

/// The case: a huge field in `tips.csv` was repeated whole in the error.
#[test]
fn huge_values_are_quoted_as_short_excerpts() {
    let huge = "9".repeat(200_000) + "x";
    let dir = native_dir(AUTHORS, &format!("{}u1,a1,{huge},5\n", &TIPS[..38]));
    let err = load_native(dir.path()).unwrap_err();
    assert_short_error(
        err,
        "tips.csv",
        2,
        DataErrorKind::InvalidAmount,
        &["amount", "…(200001 bytes)"],
    );
    let dir = native_dir(AUTHORS, &format!("{}u1,{huge},1,5\n", &TIPS[..38]));
    let err = load_native(dir.path()).unwrap_err();
    assert_short_error(
        err,
        "tips.csv",
        2,
        DataErrorKind::UnknownAuthor,
        &["author_id"],
    );
    let dir = native_dir(AUTHORS, &format!("{}u1,a1,1,{huge}\n", &TIPS[..38]));
    let err = load_native(dir.path()).unwrap_err();
    assert_short_error(err, "tips.csv", 2, DataErrorKind::InvalidTimestamp, &[]);
    // A header lacking a column lists what it found, cut short.
    let dir = native_dir(AUTHORS, &format!("{huge},b\n1,2\n"));
    let err = load_native(dir.path()).unwrap_err();
    assert_short_error(err, "tips.csv", 1, DataErrorKind::Malformed, &["user_id"]);
    // Duplicate and badly typed author ids.
    let id = "i".repeat(100_000);
    let line = format!("{{\"id\": \"{id}\"}}\n");
    let dir = native_dir(&format!("{line}{line}"), TIPS);
    let err = load_native(dir.path()).unwrap_err();
    assert_short_error(
        err,
        "authors.jsonl",
        2,
        DataErrorKind::DuplicateAuthor,
        &["line 1"],
    );
    let dir = native_dir(&format!("{{\"id\": [\"{id}\"]}}\n"), TIPS);
    let err = load_native(dir.path()).unwrap_err();
    assert_short_error(err, "authors.jsonl", 1, DataErrorKind::BadValue, &["id"]);
    let dir = native_dir(
        &format!("{{\"id\": 1, \"frames\": [\"../{}\"]}}\n", &id[..3000]),
        TIPS,
    );
    let err = load_native(dir.path()).unwrap_err();
    assert_short_error(
        err,
        "authors.jsonl",
        1,
        DataErrorKind::PathEscape,
        &["`..`"],
    );
    // Twitch and KuaiLive quote their values the same way.
    let dir = tempfile::tempdir().unwrap();
    let twitch = dir.path().join("100k.csv");
    fs::write(&twitch, format!("1,{huge},s,0,1\n")).unwrap();
    let err = load_twitch(&twitch).unwrap_err();
    assert_short_error(err, "100k.csv", 1, DataErrorKind::BadValue, &["stream"]);
    fs::write(
        dir.path().join("gift.csv"),
        format!("user_id,live_id,streamer_id,timestamp,gift_price\n1,2,3,4,{huge}\n"),
    )
    .unwrap();
    let err = load_kuailive(dir.path()).unwrap_err();
    assert_short_error(
        err,
        "gift.csv",
        2,
        DataErrorKind::InvalidAmount,
        &["gift_price"],
    );
}

#[test]
fn lines_longer_than_the_limit_are_refused() {
    let long = "7".repeat(MAX_LINE_BYTES + 1);
    let limit = format!("MAX_LINE_BYTES = {MAX_LINE_BYTES}");
    // A CSV line.
    let dir = native_dir(AUTHORS, &format!("{TIPS}u2,a1,1,{long}\n"));
    let err = load_native(dir.path()).unwrap_err();
    assert_short_error(err, "tips.csv", 3, DataErrorKind::TooLarge, &[&limit]);
    // A CSV row whose quoted field spans lines, each short.
    let spread = vec!["8".repeat(1000); MAX_LINE_BYTES / 1000 + 2].join("\n");
    let dir = native_dir(AUTHORS, &format!("{TIPS}u2,a1,1,\"{spread}\"\n"));
    let err = load_native(dir.path()).unwrap_err();
    assert_short_error(
        err,
        "tips.csv",
        3,
        DataErrorKind::TooLarge,
        &["row", &limit],
    );
    // A JSON line.
    let dir = native_dir(
        &format!("{AUTHORS}{{\"id\": 2, \"x\": \"{long}\"}}\n"),
        TIPS,
    );
    let err = load_native(dir.path()).unwrap_err();
    assert_short_error(err, "authors.jsonl", 2, DataErrorKind::TooLarge, &[&limit]);
    // Twitch, without a line break at the end.
    let dir = tempfile::tempdir().unwrap();
    let twitch = dir.path().join("full_a.csv");
    fs::write(&twitch, format!("1,2,s,0,1\n{long}")).unwrap();
    let err = load_twitch(&twitch).unwrap_err();
    assert_short_error(err, "full_a.csv", 2, DataErrorKind::TooLarge, &[&limit]);
    // A line exactly at the limit is fine (here: a padded header column).
    let header = format!(
        "user_id,author_id,amount,timestamp_ms,{}",
        "p".repeat(MAX_LINE_BYTES - 38)
    );
    assert_eq!(header.len(), MAX_LINE_BYTES);
    let dir = native_dir(AUTHORS, &format!("{header}\r\nu1,a1,1,1000,\n"));
    assert_eq!(load_native(dir.path()).unwrap().n_events(), 1);
}

#[test]
fn long_texts_many_frames_and_long_paths_are_refused() {
    let text = "d".repeat(MAX_TEXT_BYTES + 1);
    for field in ["name", "title", "description"] {
        let dir = native_dir(&format!("{{\"id\": 1, \"{field}\": \"{text}\"}}\n"), TIPS);
        let err = load_native(dir.path()).unwrap_err();
        let limit = format!("MAX_TEXT_BYTES = {MAX_TEXT_BYTES}");
        assert_short_error(
            err,
            "authors.jsonl",
            1,
            DataErrorKind::TooLarge,
            &[field, &limit],
        );
    }
    let ok_text = "d".repeat(MAX_TEXT_BYTES);
    let dir = native_dir(
        &format!("{{\"id\": \"a1\", \"description\": \"{ok_text}\"}}\n"),
        TIPS,
    );
    assert_eq!(
        load_native(dir.path()).unwrap().authors()[0].description,
        ok_text
    );

    let frames = vec!["\"f.png\""; MAX_FRAMES_PER_AUTHOR + 1].join(",");
    let dir = native_dir(&format!("{{\"id\": 1, \"frames\": [{frames}]}}\n"), TIPS);
    let err = load_native(dir.path()).unwrap_err();
    let limit = format!("MAX_FRAMES_PER_AUTHOR = {MAX_FRAMES_PER_AUTHOR}");
    assert_short_error(
        err,
        "authors.jsonl",
        1,
        DataErrorKind::TooLarge,
        &["frames", &limit],
    );
    let frames = vec!["\"f.png\""; MAX_FRAMES_PER_AUTHOR].join(",");
    let dir = native_dir(
        &format!("{{\"id\": \"a1\", \"frames\": [{frames}]}}\n"),
        TIPS,
    );
    assert_eq!(
        load_native(dir.path()).unwrap().authors()[0].frames.len(),
        MAX_FRAMES_PER_AUTHOR
    );

    let path = "p/".repeat(MAX_PATH_BYTES / 2) + "f.wav";
    let dir = native_dir(&format!("{{\"id\": 1, \"audio\": \"{path}\"}}\n"), TIPS);
    let err = load_native(dir.path()).unwrap_err();
    let limit = format!("MAX_PATH_BYTES = {MAX_PATH_BYTES}");
    assert_short_error(
        err,
        "authors.jsonl",
        1,
        DataErrorKind::TooLarge,
        &["audio", &limit],
    );
}

#[test]
fn non_finite_amounts_are_refused_where_they_enter() {
    for bad in ["NaN", "nan", "inf", "-inf", "infinity", "1e999"] {
        let dir = native_dir(AUTHORS, &format!("{}u1,a1,{bad},5\n", &TIPS[..38]));
        let err = load_native(dir.path()).unwrap_err();
        assert_short_error(
            err,
            "tips.csv",
            2,
            DataErrorKind::InvalidAmount,
            &["amount", bad],
        );
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("gift.csv"),
            format!("user_id,live_id,streamer_id,timestamp,gift_price\n1,2,3,4,{bad}\n"),
        )
        .unwrap();
        let err = load_kuailive(dir.path()).unwrap_err();
        assert_short_error(
            err,
            "gift.csv",
            2,
            DataErrorKind::InvalidAmount,
            &["gift_price"],
        );
    }
}

fn dataset_with(root: &Path, frames: &[&str]) -> (mspa_core::Dataset, Author) {
    let mut author = Author::bare(ExternalId::from("streamer7"));
    author.frames = frames
        .iter()
        .map(|f| std::path::PathBuf::from(*f))
        .collect();
    let mut b = DatasetBuilder::default();
    b.add_author(author.clone()).unwrap();
    (b.build(Some(root.to_path_buf())), author)
}

fn assert_escape(err: CoreError, rel: &str, needle: &str) {
    let text = err.to_string();
    assert!(matches!(err, CoreError::MediaPath { .. }), "{text}");
    assert!(text.contains("author `streamer7`"), "{text}");
    assert!(text.contains(rel), "{text}");
    assert!(text.contains(needle), "{text}");
}

#[test]
fn media_paths_resolve_inside_the_root_only() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("passwd"), b"root:x:0:0").unwrap();
    let root = tempfile::tempdir().unwrap();
    fs::create_dir(root.path().join("media")).unwrap();
    fs::write(root.path().join("media/f.png"), b"x").unwrap();
    let (ds, author) = dataset_with(
        root.path(),
        &[
            "media/f.png",
            "./media/f.png",
            "missing.png",
            "../x.png",
            "/etc/passwd",
        ],
    );
    let f = &author.frames;
    assert_eq!(
        ds.resolve_media(&author, &f[0]).unwrap(),
        root.path().join("media/f.png")
    );
    assert!(ds.resolve_media(&author, &f[1]).is_ok());
    // A missing file is for the reader to report.
    assert_eq!(
        ds.resolve_media(&author, &f[2]).unwrap(),
        root.path().join("missing.png")
    );
    assert_escape(
        ds.resolve_media(&author, &f[3]).unwrap_err(),
        "../x.png",
        "`..`",
    );
    assert_escape(
        ds.resolve_media(&author, &f[4]).unwrap_err(),
        "/etc/passwd",
        "absolute",
    );
    // Without a root (an in-memory dataset) paths are returned as they are.
    let mut b = DatasetBuilder::default();
    b.add_author(author.clone()).unwrap();
    assert_eq!(b.build(None).resolve_media(&author, &f[3]).unwrap(), f[3]);
}

/// The case: a frame that is a symbolic link to `/etc/passwd`.
#[cfg(unix)]
#[test]
fn symlinks_out_of_the_root_are_refused() {
    use std::os::unix::fs::symlink;
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("passwd");
    fs::write(&secret, b"root:x:0:0").unwrap();
    fs::create_dir(outside.path().join("dir")).unwrap();
    fs::write(outside.path().join("dir/f.png"), b"x").unwrap();
    let root = tempfile::tempdir().unwrap();
    let media = root.path().join("media");
    fs::create_dir(&media).unwrap();
    fs::write(media.join("real.png"), b"x").unwrap();
    symlink(&secret, media.join("evil.png")).unwrap();
    symlink(media.join("real.png"), media.join("alias.png")).unwrap();
    symlink("../media/real.png", media.join("relative.png")).unwrap();
    symlink(outside.path().join("dir"), root.path().join("linked")).unwrap();
    symlink("/etc/passwd", media.join("etc.png")).unwrap();
    let (ds, author) = dataset_with(
        root.path(),
        &[
            "media/evil.png",
            "media/alias.png",
            "media/relative.png",
            "linked/f.png",
            "media/etc.png",
        ],
    );
    let f = &author.frames;
    assert_escape(
        ds.resolve_media(&author, &f[0]).unwrap_err(),
        "media/evil.png",
        "outside the dataset root",
    );
    assert!(ds.resolve_media(&author, &f[1]).is_ok());
    assert!(ds.resolve_media(&author, &f[2]).is_ok());
    assert_escape(
        ds.resolve_media(&author, &f[3]).unwrap_err(),
        "linked/f.png",
        "outside the dataset root",
    );
    if Path::new("/etc/passwd").exists() {
        assert_escape(
            ds.resolve_media(&author, &f[4]).unwrap_err(),
            "media/etc.png",
            "/etc/passwd",
        );
    }
    // A dataset root reached through a link is fine: the check compares canonical paths.
    let alias_root = outside.path().join("root-link");
    symlink(root.path(), &alias_root).unwrap();
    let (ds, author) = dataset_with(&alias_root, &["media/real.png", "media/evil.png"]);
    assert!(ds.resolve_media(&author, &author.frames[0]).is_ok());
    assert!(ds.resolve_media(&author, &author.frames[1]).is_err());
}
