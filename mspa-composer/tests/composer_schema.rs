//! The preference schema: render/parse round trips (property-tested with a seeded
//! generator), parse errors with byte positions, unknown values, tokens, grammar walks.

use mspa_composer::ComposerError;
use mspa_composer::schema::{FieldKind, FieldSpec, PreferenceFields, PreferenceSchema, TokenKind};

/// SplitMix64: a small seeded generator for property tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }
}

/// A value that is not in any vocabulary: letters, digits, inner spaces, dashes, and
/// sometimes non-ASCII letters.
fn unknown_value(rng: &mut Rng) -> String {
    const ALPHABET: &[&str] = &["a", "b", "z", "q", "7", "-", " ", "é", "ß", "日", "x"];
    loop {
        let len = 1 + rng.below(8);
        let s: String = (0..len)
            .map(|_| ALPHABET[rng.below(ALPHABET.len())])
            .collect();
        if s.trim() == s && !s.is_empty() && !(s.starts_with('<') && s.ends_with('>')) {
            return format!("u{s}");
        }
    }
}

/// A random valid preference for `schema`; with probability `unknown`, a value is
/// replaced by an out-of-vocabulary one.
fn random_fields(schema: &PreferenceSchema, rng: &mut Rng, unknown: f64) -> PreferenceFields {
    let mut values = Vec::new();
    for f in &schema.fields {
        match &f.kind {
            FieldKind::List { values: vocab, max } => {
                let n = 1 + rng.below(*max);
                let mut chosen: Vec<String> = Vec::new();
                while chosen.len() < n {
                    let v = if rng.chance(unknown) {
                        unknown_value(rng)
                    } else {
                        vocab[rng.below(vocab.len())].clone()
                    };
                    if !chosen.contains(&v) {
                        chosen.push(v);
                    }
                }
                values.push(chosen);
            }
            FieldKind::Tuple { slots } => values.push(
                slots
                    .iter()
                    .map(|s| {
                        if rng.chance(unknown) {
                            unknown_value(rng)
                        } else {
                            s[rng.below(s.len())].clone()
                        }
                    })
                    .collect(),
            ),
        }
    }
    PreferenceFields { values }
}

/// A second schema unlike the synthetic one: a tuple first, a list of max 3, a one-slot
/// tuple, multi-word values.
fn other_schema() -> PreferenceSchema {
    PreferenceSchema::new(vec![
        FieldSpec::tuple(
            "budget",
            &[&["low", "high"], &["daily", "weekly", "monthly"]],
        ),
        FieldSpec::list(
            "genres",
            &["hip hop", "jazz", "lo-fi beats", "k-pop", "metal"],
            3,
        ),
        FieldSpec::tuple("mood", &[&["calm", "hype"]]),
        FieldSpec::list("platform", &["mobile", "desktop"], 1),
    ])
    .unwrap()
}

#[test]
fn composer_schema_matches_the_synthetic_world_grammar() {
    let schema = world_schema();
    let names: Vec<&str> = schema.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "categories",
            "energy",
            "audio",
            "visuals",
            "language",
            "format",
            "tipping"
        ]
    );
    assert_eq!(schema.field_index("language"), Some(4));
    assert_eq!(schema.field_index("nope"), None);
    let text = "categories: music, dance | energy: high | audio: electronic | visuals: neon | \
                language: english | format: solo | tipping: frequent, generous";
    let p = schema.parse(text).unwrap();
    assert_eq!(p.values[0], ["music", "dance"]);
    assert_eq!(p.values[6], ["frequent", "generous"]);
    assert_eq!(p.get(&schema, "energy").unwrap(), ["high"]);
    assert_eq!(schema.render(&p), text);
    assert!(schema.unknown_values(&p).is_empty());

    // Every text the world's own renderer accepts parses, and every random valid
    // preference the schema renders is accepted by the world's parser.
    let mut rng = Rng(7);
    for _ in 0..500 {
        let p = random_fields(&schema, &mut rng, 0.0);
        let text = schema.render(&p);
        let world = mspa_core::synth::parse_reference(&text).unwrap();
        assert_eq!(world.frequency, p.values[6][0]);
        assert_eq!(schema.parse(&text).unwrap(), p);
    }
    // Multi-hot: one slot per vocabulary value.
    let hot = schema.multi_hot(&p);
    assert_eq!(hot.len(), 8 + 3 + 5 + 5 + 4 + 4 + 3 + 3);
    assert_eq!(hot.iter().sum::<f32>(), 9.0);
    assert_eq!(hot[0], 1.0); // music
    assert_eq!(hot[1], 1.0); // dance
}

#[test]
fn composer_schema_round_trips_random_preferences() {
    for (seed, schema) in [(1u64, world_schema()), (2, other_schema())] {
        let mut rng = Rng(seed);
        for case in 0..3000 {
            let unknown = if case % 2 == 0 { 0.0 } else { 0.3 };
            let p = random_fields(&schema, &mut rng, unknown);
            let text = schema.render(&p);
            let back = schema
                .parse(&text)
                .unwrap_or_else(|e| panic!("case {case}: `{text}`: {e}"));
            assert_eq!(back, p, "case {case}: `{text}`");
            // Trailing newline is fine.
            assert_eq!(schema.parse(&format!("{text}\n")).unwrap(), p);

            // Tokens: known values round trip exactly; unknown ones become `<unk>`.
            let tokens = schema.encode(&p);
            assert_eq!(*tokens.last().unwrap(), PreferenceSchema::EOS);
            assert!(!tokens.contains(&PreferenceSchema::BOS));
            assert!(tokens.iter().all(|&t| (t as usize) < schema.vocab_size()));
            let decoded = schema.decode(&tokens).unwrap();
            let unknown = schema.unknown_values(&p);
            if unknown.is_empty() {
                assert_eq!(decoded, p, "case {case}");
            } else {
                for (k, values) in decoded.values.iter().enumerate() {
                    for v in values {
                        assert!(
                            p.values[k].contains(v) || v == "<unk>",
                            "case {case}: {v} in field {k}"
                        );
                    }
                }
            }
            // A leading BOS is skipped.
            let mut with_bos = vec![PreferenceSchema::BOS];
            with_bos.extend(&tokens);
            assert_eq!(schema.decode(&with_bos).unwrap(), decoded);
        }
    }
}

#[test]
fn composer_schema_keeps_unknown_values() {
    let schema = world_schema();
    let text = "categories: jazz, music | energy: very high | audio: electronic | visuals: neon | \
                language: klingon | format: solo | tipping: sometimes, generous";
    let p = schema.parse(text).unwrap();
    assert_eq!(p.values[0], ["jazz", "music"]);
    assert_eq!(p.values[1], ["very high"]);
    assert_eq!(schema.render(&p), text);
    let unknown = schema.unknown_values(&p);
    assert_eq!(
        unknown,
        vec![
            (0, "jazz".to_string()),
            (1, "very high".to_string()),
            (4, "klingon".to_string()),
            (6, "sometimes".to_string()),
        ]
    );
    let tokens = schema.encode(&p);
    assert_eq!(schema.token_text(tokens[0]), "categories=<unk>");
    assert_eq!(schema.token_text(tokens[1]), "categories=music");
    assert_eq!(schema.token_text(tokens[2]), "categories=<end>");
    let decoded = schema.decode(&tokens).unwrap();
    assert_eq!(decoded.values[0], ["<unk>", "music"]);
    assert_eq!(decoded.values[6], ["<unk>", "generous"]);
    // Unknown values get no multi-hot slot.
    assert_eq!(schema.multi_hot(&p).iter().sum::<f32>(), 5.0);
}

#[test]
fn composer_schema_parse_errors_say_where_and_why() {
    let schema = world_schema();
    let good = "categories: music | energy: high | audio: rock | visuals: neon | language: english | format: solo | tipping: rare, modest";
    assert!(schema.parse(good).is_ok());
    let at = |needle: &str| good.find(needle).unwrap();
    let cases: Vec<(String, usize, &str)> = vec![
        (String::new(), 0, "expected field `categories`"),
        (
            "categories: music".into(),
            17,
            "ends after field `categories`",
        ),
        (
            good.replace("energy: high", "enrgy: high"),
            at("energy"),
            "expected field `energy`, found `enrgy`",
        ),
        (
            good.replace("energy: high", "energy:high"),
            at("energy") + 6,
            "expected `: ` after field name `energy`",
        ),
        (
            good.replace("categories: music", "categories: music, dance, art"),
            at("music") + "music, dance, ".len(),
            "more than 2 values",
        ),
        (
            good.replace("categories: music", "categories: music, music"),
            at("music") + "music, ".len(),
            "repeats",
        ),
        (
            good.replace("categories: music", "categories: "),
            "categories: ".len(),
            "empty value",
        ),
        (
            good.replace("categories: music", "categories: music, "),
            "categories: music, ".len(),
            "empty value",
        ),
        (
            good.replace("tipping: rare, modest", "tipping: rare"),
            good.len() - ", modest".len(),
            "exactly 2 values, found 1",
        ),
        (
            good.replace("tipping: rare, modest", "tipping: rare, modest, extra"),
            at("rare") + "rare, modest, ".len(),
            "extra",
        ),
        (
            good.replace(" | energy", " |energy"),
            at(" | energy") + 1,
            "`|` inside a value of field `categories`",
        ),
        (
            good.replace("energy: high | audio: rock", "audio: rock | energy: high"),
            at("energy"),
            "expected field `energy`, found `audio`",
        ),
        (
            good.replace("music | energy: high", "music energy: high"),
            at("music") + "music energy".len(),
            "`:` inside a value",
        ),
        (
            good.replace("music", "music,dance"),
            at("music") + 5,
            "`,` inside a value",
        ),
        (
            good.replace("music", " music"),
            at("music"),
            "surrounding whitespace",
        ),
        (
            format!("{good} | extra: x"),
            good.len() + 1,
            "after the last field",
        ),
    ];
    for (text, position, message) in cases {
        match schema.parse(&text) {
            Err(ComposerError::Parse {
                position: p,
                message: m,
            }) => {
                assert_eq!(p, position, "`{text}`: {m}");
                assert!(m.contains(message), "`{text}`: `{m}` lacks `{message}`");
            }
            other => panic!("`{text}`: expected a parse error, got {other:?}"),
        }
    }
    // The Display form carries the position.
    let e = schema.parse("categories: music | energy high").unwrap_err();
    assert!(e.to_string().contains("byte 26"), "{e}");
    // Byte offsets, not character offsets.
    let e = schema.parse("categories: café, café").unwrap_err();
    match e {
        ComposerError::Parse { position, .. } => assert_eq!(position, "categories: café, ".len()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn composer_schema_tokens_are_field_scoped() {
    let schema = world_schema();
    // 3 specials; lists: values + unk + end; tipping: 2 slots of 3 values + unk.
    assert_eq!(
        schema.vocab_size(),
        3 + (8 + 2) + (3 + 2) + (5 + 2) + (5 + 2) + (4 + 2) + (4 + 2) + 2 * (3 + 1)
    );
    assert_eq!(schema.token_text(PreferenceSchema::PAD), "<pad>");
    assert_eq!(schema.token_text(PreferenceSchema::BOS), "<bos>");
    assert_eq!(schema.token_text(PreferenceSchema::EOS), "<eos>");
    assert_eq!(schema.token_text(3), "categories=music");
    assert_eq!(schema.token_text(u32::MAX), "<invalid>");
    let mut texts = std::collections::HashSet::new();
    for t in 0..schema.vocab_size() as u32 {
        assert!(
            texts.insert(schema.token_text(t).to_string()),
            "duplicate token text"
        );
        match schema.token_kind(t).unwrap() {
            TokenKind::Value { field, slot, value } => {
                let v = &schema.fields[field].slot_values()[slot][value];
                assert_eq!(schema.value_token(field, slot, v), Some(t));
            }
            TokenKind::Unk { field, slot } => assert_eq!(schema.unk_token(field, slot), t),
            TokenKind::EndOfField { field } => assert_eq!(schema.end_token(field), Some(t)),
            TokenKind::Pad | TokenKind::Bos | TokenKind::Eos => assert!(t < 3),
        }
    }
    assert_eq!(
        schema.token_text(schema.value_token(6, 0, "rare").unwrap()),
        "tipping.0=rare"
    );
    assert_eq!(schema.end_token(6), None);
    let p = schema
        .parse("categories: gaming | energy: low | audio: rock | visuals: dark | language: french | format: collab | tipping: rare, modest")
        .unwrap();
    let tokens = schema.encode(&p);
    let texts: Vec<&str> = tokens.iter().map(|&t| schema.token_text(t)).collect();
    assert_eq!(
        texts,
        [
            "categories=gaming",
            "categories=<end>",
            "energy=low",
            "energy=<end>",
            "audio=rock",
            "audio=<end>",
            "visuals=dark",
            "visuals=<end>",
            "language=french",
            "language=<end>",
            "format=collab",
            "format=<end>",
            "tipping.0=rare",
            "tipping.1=modest",
            "<eos>"
        ]
    );
    // Decoding errors name the token index.
    let mut bad = tokens.clone();
    bad[2] = schema.value_token(0, 0, "music").unwrap();
    match schema.decode(&bad).unwrap_err() {
        ComposerError::Parse { position, message } => {
            assert_eq!(position, 2, "{message}");
            assert!(message.contains("energy"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let err = schema.decode(&tokens[..5]).unwrap_err();
    assert!(err.to_string().contains("without EOS"), "{err}");
    // A sequence without EOS but with every field complete decodes.
    assert_eq!(schema.decode(&tokens[..tokens.len() - 1]).unwrap(), p);
}

/// Random walks through the grammar: always decodable, always parsable after rendering,
/// never longer than the bound, and disallowed tokens are refused.
fn random_walks(schema: &PreferenceSchema, seed: u64, walks: usize) {
    let mut rng = Rng(seed);
    let bound: usize = schema
        .fields
        .iter()
        .map(|f| match &f.kind {
            FieldKind::List { max, .. } => max + 1,
            FieldKind::Tuple { slots } => slots.len(),
        })
        .sum::<usize>()
        + 1;
    let vocab = schema.vocab_size() as u32;
    let mut lengths = std::collections::HashSet::new();
    for walk in 0..walks {
        let mut state = schema.grammar();
        let mut tokens = Vec::new();
        while !state.is_complete() {
            let allowed = state.allowed(schema);
            assert!(
                !allowed.is_empty(),
                "walk {walk}: dead end after {tokens:?}"
            );
            assert!(allowed.windows(2).all(|w| w[0] < w[1]));
            // A random disallowed token is refused and leaves the state as it was.
            let bad = rng.below(vocab as usize) as u32;
            if !allowed.contains(&bad) {
                let before = state.clone();
                assert!(!state.is_allowed(schema, bad));
                assert!(
                    state.advance(schema, bad).is_err(),
                    "walk {walk}: took {bad}"
                );
                assert_eq!(state, before);
            } else {
                assert!(state.is_allowed(schema, bad));
            }
            // Prefer ending lists early half of the time, so short and long lists occur.
            let tok = allowed[rng.below(allowed.len())];
            state.advance(schema, tok).unwrap();
            tokens.push(tok);
            assert!(tokens.len() <= bound, "walk {walk}: too long: {tokens:?}");
        }
        assert_eq!(state.allowed(schema), vec![PreferenceSchema::PAD]);
        state.advance(schema, PreferenceSchema::PAD).unwrap();
        assert!(state.advance(schema, PreferenceSchema::EOS).is_err());
        lengths.insert(tokens.len());
        let p = schema.decode(&tokens).unwrap();
        assert!(schema.unknown_values(&p).is_empty());
        let text = schema.render(&p);
        let back = schema
            .parse(&text)
            .unwrap_or_else(|e| panic!("walk {walk}: `{text}`: {e}"));
        assert_eq!(back, p);
        assert_eq!(schema.encode(&p), tokens, "walk {walk}");
    }
    assert!(lengths.len() > 1, "walks should vary in length");
}

#[test]
fn composer_schema_grammar_walks_always_parse() {
    random_walks(&world_schema(), 11, 3000);
    random_walks(&other_schema(), 12, 3000);
    // The start state allows exactly the first field's values.
    let schema = world_schema();
    let start = schema.grammar().allowed(&schema);
    assert_eq!(start, (3..11).collect::<Vec<u32>>());
    assert!(!start.contains(&schema.unk_token(0, 0)));
}

#[test]
fn composer_schema_reads_json_config_and_rejects_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let schema = other_schema();
    let path = dir.path().join("schema.json");
    std::fs::write(&path, schema.to_json()).unwrap();
    let back = PreferenceSchema::from_json_file(&path).unwrap();
    assert_eq!(back, schema);
    assert_eq!(back.vocab_size(), schema.vocab_size());
    // serde directly, too.
    let via_serde: PreferenceSchema = serde_json::from_str(&schema.to_json()).unwrap();
    assert_eq!(via_serde, schema);
    let json = serde_json::to_string(&world_schema()).unwrap();
    assert!(json.contains(r#""type":"list""#), "{json}");

    let bad = [
        (r#"{"fields": []}"#, "at least one field"),
        (
            r#"{"fields": [{"name": "a", "kind": {"type": "list", "values": ["x"], "max": 2}}]}"#,
            "max",
        ),
        (
            r#"{"fields": [{"name": "a", "kind": {"type": "list", "values": ["x", "x"], "max": 1}}]}"#,
            "appears twice",
        ),
        (
            r#"{"fields": [{"name": "a", "kind": {"type": "list", "values": ["x, y"], "max": 1}}]}"#,
            "reserved",
        ),
        (
            r#"{"fields": [{"name": "a", "kind": {"type": "tuple", "slots": []}}]}"#,
            "at least one slot",
        ),
        (
            r#"{"fields": [{"name": "a", "kind": {"type": "tuple", "slots": [["<unk>"]]}}]}"#,
            "special token",
        ),
        (
            r#"{"fields": [{"name": "a", "kind": {"type": "list", "values": ["x"], "max": 1}}, {"name": "a", "kind": {"type": "list", "values": ["y"], "max": 1}}]}"#,
            "appears twice",
        ),
        (r#"{"fields": [{"name": "a"}]}"#, "kind"),
    ];
    for (json, needle) in bad {
        std::fs::write(&path, json).unwrap();
        let err = PreferenceSchema::from_json_file(&path).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(needle), "{json}: {text}");
        assert!(text.contains("schema.json"), "{json}: {text}");
        assert!(serde_json::from_str::<PreferenceSchema>(json).is_err());
    }
    let missing = PreferenceSchema::from_json_file(dir.path().join("nope.json")).unwrap_err();
    assert!(matches!(missing, ComposerError::Io { .. }), "{missing:?}");
}

/// The synthetic world's reference grammar as a schema (the world publishes it as JSON).
fn world_schema() -> PreferenceSchema {
    PreferenceSchema::from_json(&mspa_core::synth::reference::schema_json()).unwrap()
}
