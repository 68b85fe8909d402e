use std::io::Cursor;

use super::*;

fn check(container: Container, bytes: &[u8]) -> std::result::Result<(), String> {
    match check_declared_sizes(container, Cursor::new(bytes), 0, bytes.len() as u64) {
        Ok(()) => Ok(()),
        Err(GuardError::Declared(m)) => Err(m),
        Err(GuardError::Io(e)) => panic!("read error on an in-memory file: {e}"),
    }
}

fn refused(container: Container, bytes: &[u8], needle: &str) {
    match check(container, bytes) {
        Err(m) => assert!(m.contains(needle), "`{m}` does not mention `{needle}`"),
        Ok(()) => panic!("accepted; expected a refusal mentioning `{needle}`"),
    }
}

// ------------------------------------------------------------ MP4

fn bx(typ: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(typ);
    v.extend_from_slice(payload);
    v
}

/// A full box: version and flags (0), then `payload`.
fn full(typ: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    bx(typ, &[&[0u8; 4][..], payload].concat())
}

fn words(w: &[u32]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_be_bytes()).collect()
}

/// ftyp, then moov/trak/mdia/minf/stbl holding `tables`, then a 64-byte mdat.
fn mp4(tables: &[Vec<u8>]) -> Vec<u8> {
    let stbl = bx(b"stbl", &tables.concat());
    let minf = bx(b"minf", &stbl);
    let mdia = bx(b"mdia", &[full(b"hdlr", &[0u8; 21]), minf].concat());
    let moov = bx(b"moov", &bx(b"trak", &mdia));
    [bx(b"ftyp", b"M4A \0\0\0\0"), moov, bx(b"mdat", &[0u8; 64])].concat()
}

fn good_tables() -> Vec<Vec<u8>> {
    vec![
        full(b"stts", &words(&[1, 2, 1024])),
        full(b"stsc", &words(&[1, 1, 2, 1])),
        full(b"stsz", &words(&[0, 2, 30, 34])),
        full(b"stco", &words(&[1, 100])),
    ]
}

#[test]
fn a_minimal_mp4_passes() {
    check(Container::Mp4, &mp4(&good_tables())).unwrap();
    // Constant sample sizes and 64-bit chunk offsets too.
    let mut t = good_tables();
    t[2] = full(b"stsz", &words(&[32, 2]));
    t[3] = full(b"co64", &words(&[1, 0, 100]));
    check(Container::Mp4, &mp4(&t)).unwrap();
}

#[test]
fn mp4_tables_with_more_entries_than_their_box_are_refused() {
    for (i, name, table) in [
        (3, "stco", full(b"stco", &words(&[0x77c7_ffe7, 100]))),
        (3, "co64", full(b"co64", &words(&[2, 0, 100]))),
        (0, "stts", full(b"stts", &words(&[u32::MAX, 2, 1024]))),
        (1, "stsc", full(b"stsc", &words(&[2, 1, 2, 1]))),
        (2, "stsz", full(b"stsz", &words(&[0, 3, 30, 34]))),
        (3, "stco", full(b"stco", &[])),
    ] {
        let mut t = good_tables();
        t[i] = table;
        refused(Container::Mp4, &mp4(&t), name);
    }
}

#[test]
fn mp4_samples_larger_than_the_file_are_refused() {
    let mut t = good_tables();
    t[2] = full(b"stsz", &words(&[0, 2, 30, u32::MAX]));
    refused(
        Container::Mp4,
        &mp4(&t),
        "sample 2 declares 4294967295 bytes",
    );
    t[2] = full(b"stsz", &words(&[1 << 30, 2]));
    refused(Container::Mp4, &mp4(&t), "the constant sample size");
}

#[test]
fn mp4_boxes_larger_than_their_parent_or_the_file_are_refused() {
    let good = mp4(&good_tables());
    // The mdat (last, 72 bytes) declares a gigabyte.
    let mut bad = good.clone();
    let at = bad.len() - 72;
    bad[at..at + 4].copy_from_slice(&(1u32 << 30).to_be_bytes());
    refused(Container::Mp4, &bad, "box `mdat`");
    // A box inside moov that declares more than the rest of moov.
    let moov = bx(b"moov", &bx(b"udta", &bx(b"meta", &[0u8; 4])));
    let mut bad = [bx(b"ftyp", b"M4A \0\0\0\0"), moov].concat();
    let udta = 16 + 8;
    bad[udta..udta + 4].copy_from_slice(&1000u32.to_be_bytes());
    refused(Container::Mp4, &bad, "remain in box `moov`");
    // An hdlr inside udta/meta/ that overruns its meta.
    let meta = full(b"meta", &full(b"hdlr", &[0u8; 30]));
    let mut meta = meta;
    meta[12..16].copy_from_slice(&0x4000_0000u32.to_be_bytes());
    let bad = [
        bx(b"ftyp", b"M4A \0\0\0\0"),
        bx(b"moov", &bx(b"udta", &meta)),
    ]
    .concat();
    refused(Container::Mp4, &bad, "box `hdlr`");
    // An ilst item whose data atom overruns the item.
    let mut item = bx(b"\xa9nam", &full(b"data", b"title"));
    item[8..12].copy_from_slice(&0x0100_0000u32.to_be_bytes());
    let bad = [
        bx(b"ftyp", b"M4A \0\0\0\0"),
        bx(b"moov", &bx(b"udta", &full(b"meta", &bx(b"ilst", &item)))),
    ]
    .concat();
    refused(Container::Mp4, &bad, "box `data`");
    // A box smaller than its own header.
    let mut bad = good;
    bad[0..4].copy_from_slice(&3u32.to_be_bytes());
    refused(Container::Mp4, &bad, "less than its header");
}

#[test]
fn mp4_fragments_declaring_huge_samples_are_refused() {
    let ftyp = bx(b"ftyp", b"iso5\0\0\0\0");
    let moof = |traf: Vec<u8>| [ftyp.clone(), bx(b"moof", &bx(b"traf", &traf))].concat();
    // trun with sizes present (flags 0x200): two samples.
    let trun = |count: u32, sizes: &[u32]| {
        let mut v = 0x200u32.to_be_bytes().to_vec();
        v.extend(words(&[count]));
        v.extend(words(sizes));
        bx(b"trun", &v)
    };
    check(Container::Mp4, &moof(trun(2, &[10, 20]))).unwrap();
    refused(Container::Mp4, &moof(trun(2, &[10, u32::MAX])), "sample 2");
    refused(Container::Mp4, &moof(trun(1 << 30, &[10, 20])), "trun");
    // tfhd with a default sample size (flags 0x10).
    let tfhd = |size: u32| {
        let mut v = 0x10u32.to_be_bytes().to_vec();
        v.extend(words(&[1, size]));
        bx(b"tfhd", &v)
    };
    check(Container::Mp4, &moof(tfhd(40))).unwrap();
    refused(Container::Mp4, &moof(tfhd(u32::MAX)), "default sample size");
    // trex in mvex.
    let trex = full(b"trex", &words(&[1, 1, 1024, u32::MAX, 0]));
    let bad = [ftyp.clone(), bx(b"moov", &bx(b"mvex", &trex))].concat();
    refused(Container::Mp4, &bad, "trex");
}

// ------------------------------------------------------------ FLAC

fn block(kind: u8, last: bool, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut v = vec![kind | if last { 0x80 } else { 0 }, len[1], len[2], len[3]];
    v.extend_from_slice(payload);
    v
}

fn le(n: u32) -> [u8; 4] {
    n.to_le_bytes()
}

/// A Vorbis comment body with `comments` (each with its true length).
fn comments(comments: &[&[u8]]) -> Vec<u8> {
    let mut v = [&le(4)[..], b"mspa", &le(comments.len() as u32)].concat();
    for c in comments {
        v.extend_from_slice(&le(c.len() as u32));
        v.extend_from_slice(c);
    }
    v
}

/// A picture block body: MIME type, description and data of the given lengths, with
/// `data_len` declared for the data.
fn picture(data_len: u32, data: &[u8]) -> Vec<u8> {
    let mut v = words(&[3, 9]);
    v.extend_from_slice(b"image/png");
    v.extend(words(&[0, 1, 1, 24, 0, data_len]));
    v.extend_from_slice(data);
    v
}

fn flac(blocks: &[Vec<u8>]) -> Vec<u8> {
    let mut v = b"fLaC".to_vec();
    v.extend(block(0, false, &[0u8; 34]));
    v.extend(blocks.concat());
    v.extend_from_slice(&[0xff, 0xf8, 0, 0]);
    v
}

fn base64_encode(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |a, (i, &x)| a | u32::from(x) << (16 - 8 * i));
        for i in 0..=c.len() {
            s.push(char::from(A[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    s
}

#[test]
fn flac_metadata_that_fits_passes() {
    let art = format!(
        "METADATA_BLOCK_PICTURE={}",
        base64_encode(&picture(3, b"png"))
    );
    let bytes = flac(&[
        block(4, false, &comments(&[b"TITLE=tone", art.as_bytes()])),
        block(6, true, &picture(3, b"png")),
    ]);
    check(Container::Flac, &bytes).unwrap();
}

#[test]
fn flac_metadata_declaring_more_than_exists_is_refused() {
    // A picture whose data length is 3 GB.
    let bytes = flac(&[block(6, true, &picture(3_200_000_000, b"png"))]);
    refused(Container::Flac, &bytes, "PICTURE");
    // A Vorbis comment of 3.4 GB.
    let mut body = comments(&[b"TITLE=tone"]);
    body[12..16].copy_from_slice(&le(3_400_000_000));
    refused(
        Container::Flac,
        &flac(&[block(4, true, &body)]),
        "comment 1",
    );
    // More comments than the block could hold.
    let mut body = comments(&[b"TITLE=tone"]);
    body[8..12].copy_from_slice(&le(u32::MAX));
    refused(Container::Flac, &flac(&[block(4, true, &body)]), "comments");
    // A picture hidden in a METADATA_BLOCK_PICTURE comment, as base64.
    let art = format!(
        "metadata_block_picture={}",
        base64_encode(&picture(u32::MAX, b"png"))
    );
    let bytes = flac(&[block(4, true, &comments(&[art.as_bytes()]))]);
    refused(Container::Flac, &bytes, "METADATA_BLOCK_PICTURE");
    // A block longer than the file.
    let mut bytes = flac(&[block(2, true, b"appl")]);
    bytes[4 + 38 + 1..4 + 38 + 4].copy_from_slice(&[0xff, 0xff, 0xff]);
    refused(Container::Flac, &bytes, "APPLICATION");
}

#[test]
fn base64_decodes_like_symphonia() {
    for (text, plain) in [
        ("", &b""[..]),
        ("Zg==", b"f"),
        ("Zm8", b"fo"),
        ("Zm9v", b"foo"),
        ("Zm9vYg", b"foob"),
        ("Zm9vYmE=", b"fooba"),
    ] {
        assert_eq!(base64(text).as_deref(), Some(plain), "{text}");
    }
    for bad in ["a", "ab!c", "ab=c"] {
        assert_eq!(base64(bad), None, "{bad}");
    }
    assert_eq!(
        base64(&base64_encode(&[0, 255, 7, 9])).unwrap(),
        [0, 255, 7, 9]
    );
}

// ------------------------------------------------------------ Ogg

/// One Ogg page of `serial` holding whole `packets` (no CRC: not checked here).
fn page(serial: u32, first: bool, packets: &[&[u8]]) -> Vec<u8> {
    let mut table = Vec::new();
    for p in packets {
        table.extend(std::iter::repeat_n(255u8, p.len() / 255));
        table.push((p.len() % 255) as u8);
    }
    let mut v = b"OggS\0".to_vec();
    v.push(if first { 2 } else { 0 });
    v.extend_from_slice(&[0u8; 8]);
    v.extend_from_slice(&serial.to_le_bytes());
    v.extend_from_slice(&[0u8; 8]);
    v.push(table.len() as u8);
    v.extend(table);
    for p in packets {
        v.extend_from_slice(p);
    }
    v
}

#[test]
fn ogg_comment_headers_must_fit_in_their_packet() {
    let ident = [&b"\x01vorbis"[..], &[0u8; 23]].concat();
    let comment = |body: Vec<u8>| [&b"\x03vorbis"[..], &body, &[1u8]].concat();
    let audio = [0u8; 40];
    let ogg = |c: Vec<u8>| {
        [
            page(7, true, &[&ident]),
            page(7, false, &[&comment(c), &audio]),
        ]
        .concat()
    };
    check(Container::Ogg, &ogg(comments(&[b"TITLE=tone"]))).unwrap();
    let mut body = comments(&[b"TITLE=tone"]);
    body[12..16].copy_from_slice(&le(0xffff_fff0));
    refused(Container::Ogg, &ogg(body), "Vorbis comment header");
    // The same bytes as an audio packet of another stream are not metadata.
    let mut body = comments(&[b"TITLE=tone"]);
    body[12..16].copy_from_slice(&le(0xffff_fff0));
    let other = [
        page(7, true, &[b"\x02something else"]),
        page(7, false, &[&comment(body)]),
    ]
    .concat();
    check(Container::Ogg, &other).unwrap();
    // Opus tags.
    let tags = [&b"OpusTags"[..], &comments(&[b"TITLE=tone"])].concat();
    let mut bad = tags.clone();
    bad[8..12].copy_from_slice(&le(u32::MAX));
    let opus = |t: &[u8]| [page(3, true, &[b"OpusHead\x01\x02"]), page(3, false, &[t])].concat();
    check(Container::Ogg, &opus(&tags)).unwrap();
    refused(Container::Ogg, &opus(&bad), "OpusTags");
    // Ogg FLAC picture block.
    let head = [
        &b"\x7fFLAC\x01\x00\x00\x01fLaC"[..],
        &block(0, false, &[0u8; 34]),
    ]
    .concat();
    let pic = block(6, true, &picture(u32::MAX, b"png"));
    let bytes = [page(5, true, &[&head]), page(5, false, &[&pic])].concat();
    refused(Container::Ogg, &bytes, "FLAC PICTURE");
}

#[test]
fn ogg_pages_must_fit_in_the_file() {
    let ident = [&b"\x01vorbis"[..], &[0u8; 23]].concat();
    let bytes = page(7, true, &[&ident, &[0u8; 600]]);
    refused(
        Container::Ogg,
        &bytes[..bytes.len() - 1],
        "Ogg page at byte 0",
    );
    let junk = [bytes.clone(), b"junk".repeat(10)].concat();
    refused(Container::Ogg, &junk, "no page starts");
}

// ------------------------------------------------------------ WAV, ID3v2

#[test]
fn wav_chunks_before_the_data_must_fit_in_the_file() {
    let mut wav = b"RIFF\0\0\0\0WAVE".to_vec();
    wav.extend_from_slice(b"fmt \x10\0\0\0");
    wav.extend_from_slice(&[1, 0, 1, 0, 0x80, 0x3e, 0, 0, 0, 0x7d, 0, 0, 2, 0, 16, 0]);
    let list = [&b"LIST"[..], &le(12), b"INFOINAM", &le(0)].concat();
    let data = [&b"data"[..], &le(4), &[0u8; 4]].concat();
    check(
        Container::Wav,
        &[wav.clone(), list.clone(), data.clone()].concat(),
    )
    .unwrap();
    let mut bad = list;
    bad[4..8].copy_from_slice(&le(0x7fff_ffff));
    refused(
        Container::Wav,
        &[wav, bad, data].concat(),
        "WAV chunk `LIST`",
    );
}

#[test]
fn id3v2_tags_are_skipped_and_must_fit_in_the_file() {
    let tag = |size: [u8; 4]| [&b"ID3\x04\x00\x00"[..], &size, &[0u8; 20]].concat();
    let file = [tag([0, 0, 0, 20]), b"fLaC".to_vec()].concat();
    let skip = |b: &[u8]| skip_id3v2(Cursor::new(b), b.len() as u64);
    assert_eq!(skip(&file).unwrap(), 30);
    assert_eq!(skip(b"fLaC\0\0\0\0\0\0\0\0").unwrap(), 0);
    match skip(&tag([0x7f, 0x7f, 0x7f, 0x7f])) {
        Err(GuardError::Declared(m)) => assert!(m.contains("ID3v2 tag"), "{m}"),
        other => panic!("{other:?}"),
    }
}
