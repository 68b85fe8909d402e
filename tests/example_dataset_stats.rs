//! Runs the `dataset_stats` example on tiny datasets of each format.

mod common;

use std::fs;

#[test]
fn dataset_stats_json_on_a_native_dataset() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("authors.jsonl"),
        "{\"id\": \"a\"}\n{\"id\": \"b\"}\n{\"id\": \"unused\"}\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("tips.csv"),
        "user_id,author_id,amount,timestamp_ms\n1,a,2,100\n1,b,3,200\n1,a,5,300\n2,b,1,150\n",
    )
    .unwrap();
    let out = common::run_example(
        "dataset_stats",
        &[
            "--format",
            "native",
            "--path",
            dir.path().to_str().unwrap(),
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    assert_eq!(v["users"], 2);
    assert_eq!(v["authors"], 2);
    assert_eq!(v["events"], 4);
    assert_eq!(v["first_timestamp"], 100);
    assert_eq!(v["last_timestamp"], 300);
    assert_eq!(v["total_amount"], 11.0);
    assert_eq!(v["split"]["train"], 2);
    assert_eq!(v["split"]["valid"], 1);
    assert_eq!(v["split"]["test"], 1);
}

#[test]
fn dataset_stats_table_on_twitch_and_kuailive() {
    let dir = tempfile::tempdir().unwrap();
    let twitch = dir.path().join("100k.csv");
    fs::write(
        &twitch,
        "1,33842865744,mithrain,154,156\n2,33846768288,alptv,166,169\n",
    )
    .unwrap();
    let out = common::run_example(
        "dataset_stats",
        &["--format", "twitch", "--path", twitch.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(common::stdout(&out).contains("events            2"));

    let kl = dir.path().join("kuailive");
    fs::create_dir(&kl).unwrap();
    fs::write(
        kl.join("gift.csv"),
        "user_id,live_id,streamer_id,timestamp,gift_price\n1,2,3,1700000000000,9.5\n",
    )
    .unwrap();
    let out = common::run_example(
        "dataset_stats",
        &[
            "--format",
            "kuailive",
            "--path",
            kl.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    assert_eq!(v["total_amount"], 9.5);
}

#[test]
fn dataset_stats_bad_file_fails_cleanly_naming_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let twitch = dir.path().join("bad.csv");
    fs::write(&twitch, "1,2,a,3,4\n1,2,a,5,x\n").unwrap();
    let out = common::run_example(
        "dataset_stats",
        &["--format", "twitch", "--path", twitch.to_str().unwrap()],
    );
    common::assert_clean_failure(&out);
    let err = common::stderr(&out);
    assert!(err.contains("bad.csv:2") && err.contains("stop"), "{err}");

    let out = common::run_example("dataset_stats", &["--device", "tpu", "--path", "x"]);
    common::assert_clean_failure(&out);
    assert!(common::stderr(&out).contains("unknown device"));
    let out = common::run_example("dataset_stats", &["--format", "parquet", "--path", "x"]);
    common::assert_clean_failure(&out);
    let out = common::run_example(
        "dataset_stats",
        &["--format", "native", "--path", "/nonexistent/dir"],
    );
    common::assert_clean_failure(&out);
}
