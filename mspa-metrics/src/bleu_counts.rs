//! Per-segment BLEU statistics (lengths and clipped n-gram matches) with reusable buffers.
//!
//! A segment's reference tokens are interned into dense ids (an open-addressing table over
//! the token bytes); each reference n-gram, n = 1..=4, gets an entry in a second
//! open-addressing table keyed by (entry of the n-gram without its last token, id of that
//! token), compared exactly, so the counts are exact whatever the hashes do. An entry tracks the n-gram's largest count
//! in any single reference and, as the hypothesis is scanned, its count there: a
//! hypothesis occurrence is a clipped match while that count does not exceed the
//! reference maximum. Hypothesis tokens that are in no reference, and n-grams that
//! extend an n-gram in no reference, are never looked up.

use crate::bleu::{BleuConfig, BleuTokenizer, MAX_NGRAM_ORDER};
use crate::tokenize_13a::{for_each_token_13a, is_py_whitespace};

/// Sufficient statistics of one or more segments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Hypothesis length in tokens.
    pub(crate) sys_len: usize,
    /// Closest reference length in tokens.
    pub(crate) ref_len: usize,
    /// Clipped matches per order.
    pub(crate) correct: [usize; MAX_NGRAM_ORDER],
    /// Hypothesis n-grams per order.
    pub(crate) total: [usize; MAX_NGRAM_ORDER],
}

impl Stats {
    /// Sum of two statistics.
    pub(crate) fn add(mut self, o: Stats) -> Stats {
        self.sys_len += o.sys_len;
        self.ref_len += o.ref_len;
        for n in 0..MAX_NGRAM_ORDER {
            self.correct[n] += o.correct[n];
            self.total[n] += o.total[n];
        }
        self
    }
}

/// Id of a hypothesis token that is in no reference.
const ABSENT: usize = usize::MAX;

/// The parent of a unigram's entry.
const ROOT: usize = usize::MAX;

/// Multiplier of the hash mixing step (2^64 / golden ratio, odd).
const MIX: u64 = 0x9e37_79b9_7f4a_7c15;

/// One hash-mixing step. For a fixed `h` it is a bijection of `word` (xor, then a multiply
/// by an odd number), and the multiply comes last, so the top bits, which the tables
/// index with, depend on every input bit.
#[inline]
fn mix(h: u64, word: u64) -> u64 {
    (h.rotate_left(23) ^ word).wrapping_mul(MIX)
}

/// Up to 8 bytes as one word, injectively for a given length: bytes 0..4 and the last 4
/// (overlapping) for 4-8 bytes; the first, middle and last byte for 1-3 bytes.
#[inline]
fn pack_short(b: &[u8]) -> u64 {
    let n = b.len();
    let u32_at = |i: usize| {
        b.get(i..i + 4)
            .and_then(|w| w.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    };
    if n >= 4 {
        u64::from(u32_at(0)) | (u64::from(u32_at(n - 4)) << 32)
    } else if n > 0 {
        u64::from(b[0]) | (u64::from(b[n / 2]) << 8) | (u64::from(b[n - 1]) << 16)
    } else {
        0
    }
}

/// Hash of a token's bytes. For up to 8 bytes it is one [`mix`] of the length with
/// [`pack_short`], hence injective: equal hashes and lengths mean equal tokens.
#[inline]
fn hash_bytes(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    if n <= 8 {
        return mix(n as u64, pack_short(bytes));
    }
    let mut h = n as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        h = mix(h, chunk.try_into().map_or(0, u64::from_le_bytes));
    }
    let last = bytes.get(n - 8..).and_then(|w| w.try_into().ok());
    mix(h, last.map_or(0, u64::from_le_bytes))
}

/// An open-addressing index of a list of entries: slot values are entry index + 1, 0 is
/// empty. Kept at most half full, so probing always ends.
#[derive(Debug, Default, Clone)]
struct Slots {
    slots: Vec<usize>,
    /// `64 - log2(slots.len())`: a hash's home slot is `hash >> shift`.
    shift: u32,
}

impl Slots {
    /// Empties the index and sizes it for `n` entries.
    fn reset(&mut self, n: usize) {
        let len = (2 * n).max(16).next_power_of_two();
        self.slots.clear();
        self.slots.resize(len, 0);
        self.shift = 64 - len.trailing_zeros();
    }

    /// The slots to probe for `hash`, in order: (slot, entry index + 1 or 0).
    #[inline]
    fn probe(&self, hash: u64) -> impl Iterator<Item = (usize, usize)> + '_ {
        let mask = self.slots.len() - 1;
        let home = (hash >> self.shift) as usize;
        (0..self.slots.len()).map(move |k| {
            let s = (home + k) & mask;
            (s, self.slots[s])
        })
    }
}

/// An interned token: its hash, length and, beyond 8 bytes, where its bytes are in the
/// arena (shorter tokens are identified by hash and length).
#[derive(Debug, Clone, Copy)]
struct Token {
    hash: u64,
    len: usize,
    start: usize,
}

/// A reference n-gram (its longest proper prefix's entry and its last token) and its
/// counts.
#[derive(Debug, Clone, Copy)]
struct Gram {
    /// Entry of the n-gram without its last token ([`ROOT`] for unigrams).
    parent: usize,
    /// Id of the last token.
    last: usize,
    /// The reference `count` refers to.
    reference: usize,
    /// Count in reference `reference` so far.
    count: usize,
    /// Largest count in any single reference.
    max: usize,
    /// Count in the hypothesis so far.
    hyp: usize,
}

/// Reusable buffers that compute the statistics of one segment at a time.
#[derive(Debug, Default, Clone)]
pub(crate) struct SegmentCounter {
    token_slots: Slots,
    tokens: Vec<Token>,
    /// Bytes of the interned tokens longer than 8 bytes.
    arena: Vec<u8>,
    /// Token ids of every reference of the segment, one after the other.
    ref_ids: Vec<usize>,
    /// Length of each reference in tokens.
    ref_lens: Vec<usize>,
    /// Token ids of the hypothesis ([`ABSENT`] for tokens in no reference).
    hyp_ids: Vec<usize>,
    gram_slots: Slots,
    grams: Vec<Gram>,
}

/// Calls `emit` with each token of `line` under the tokenizer and case settings.
fn for_each_token(config: &BleuConfig, line: &str, emit: impl FnMut(&str)) {
    fn split(tokenizer: BleuTokenizer, line: &str, emit: impl FnMut(&str)) {
        match tokenizer {
            BleuTokenizer::Tok13a => for_each_token_13a(line, emit),
            BleuTokenizer::None => line
                .split(is_py_whitespace)
                .filter(|t| !t.is_empty())
                .for_each(emit),
        }
    }
    if config.lowercase {
        split(config.tokenizer, &line.to_lowercase(), emit);
    } else {
        split(config.tokenizer, line, emit);
    }
}

/// Number of n-grams of orders 1..=4 in `len` tokens.
fn ngram_count(len: usize) -> usize {
    (1..=MAX_NGRAM_ORDER)
        .map(|n| len.saturating_sub(n - 1))
        .sum()
}

impl SegmentCounter {
    /// The statistics of one hypothesis against its references.
    pub(crate) fn segment_stats<S: AsRef<str>>(
        &mut self,
        config: &BleuConfig,
        hypothesis: &str,
        references: &[S],
    ) -> Stats {
        // Intern the references' tokens.
        let ref_bytes: usize = references.iter().map(|r| r.as_ref().len()).sum();
        self.token_slots.reset(ref_bytes / 4);
        self.tokens.clear();
        self.arena.clear();
        self.ref_ids.clear();
        self.ref_lens.clear();
        for r in references {
            let start = self.ref_ids.len();
            for_each_token(config, r.as_ref(), |t| {
                let id = self.intern(t.as_bytes());
                self.ref_ids.push(id);
            });
            self.ref_lens.push(self.ref_ids.len() - start);
        }

        // Count the references' n-grams.
        self.gram_slots
            .reset(self.ref_lens.iter().map(|&l| ngram_count(l)).sum());
        self.grams.clear();
        let mut begin = 0;
        for r in 0..self.ref_lens.len() {
            let end = begin + self.ref_lens[r];
            for i in begin..end {
                let mut parent = ROOT;
                for k in i..end.min(i + MAX_NGRAM_ORDER) {
                    parent = self.add_ref_gram(r, parent, self.ref_ids[k]);
                }
            }
            begin = end;
        }

        // Match the hypothesis's n-grams.
        self.hyp_ids.clear();
        for_each_token(config, hypothesis, |t| {
            let id = self.find_token(t.as_bytes()).unwrap_or(ABSENT);
            self.hyp_ids.push(id);
        });
        let hyp_len = self.hyp_ids.len();
        let mut stats = Stats {
            sys_len: hyp_len,
            ref_len: closest_ref_len(hyp_len, self.ref_lens.iter().copied()),
            ..Stats::default()
        };
        for n in 1..=MAX_NGRAM_ORDER {
            stats.total[n - 1] = hyp_len.saturating_sub(n - 1);
        }
        for i in 0..hyp_len {
            let mut parent = ROOT;
            for (n, &id) in self.hyp_ids[i..hyp_len.min(i + MAX_NGRAM_ORDER)]
                .iter()
                .enumerate()
            {
                // An n-gram with a token in no reference, or extending an n-gram in no
                // reference, is in no reference.
                let Some(g) = (id != ABSENT).then(|| self.find_gram(parent, id)).flatten() else {
                    break;
                };
                let gram = &mut self.grams[g];
                gram.hyp += 1;
                if gram.hyp <= gram.max {
                    stats.correct[n] += 1;
                }
                parent = g;
            }
        }
        stats
    }

    /// Whether interned token `t` is the token `bytes` of hash `hash`.
    #[inline]
    fn is_token(&self, t: &Token, hash: u64, bytes: &[u8]) -> bool {
        t.hash == hash
            && t.len == bytes.len()
            && (t.len <= 8 || self.arena.get(t.start..t.start + t.len) == Some(bytes))
    }

    /// The id of reference token `bytes`, interning it if new.
    fn intern(&mut self, bytes: &[u8]) -> usize {
        let hash = hash_bytes(bytes);
        let mut free = 0;
        for (s, e) in self.token_slots.probe(hash) {
            if e == 0 {
                free = s;
                break;
            }
            if self.is_token(&self.tokens[e - 1], hash, bytes) {
                return e - 1;
            }
        }
        let id = self.tokens.len();
        let start = self.arena.len();
        if bytes.len() > 8 {
            self.arena.extend_from_slice(bytes);
        }
        self.tokens.push(Token {
            hash,
            len: bytes.len(),
            start,
        });
        self.token_slots.slots[free] = id + 1;
        if 2 * self.tokens.len() > self.token_slots.slots.len() {
            self.rehash_tokens();
        }
        id
    }

    /// Doubles the token index and re-inserts every token.
    fn rehash_tokens(&mut self) {
        self.token_slots.reset(self.tokens.len() * 2);
        for (id, t) in self.tokens.iter().enumerate() {
            let free = self.token_slots.probe(t.hash).find(|&(_, e)| e == 0);
            if let Some((s, _)) = free {
                self.token_slots.slots[s] = id + 1;
            }
        }
    }

    /// The id of token `bytes` if a reference has it.
    #[inline]
    fn find_token(&self, bytes: &[u8]) -> Option<usize> {
        let hash = hash_bytes(bytes);
        for (_, e) in self.token_slots.probe(hash) {
            if e == 0 {
                return None;
            }
            if self.is_token(&self.tokens[e - 1], hash, bytes) {
                return Some(e - 1);
            }
        }
        None
    }

    /// Counts, in reference `r`, the n-gram made of entry `parent`'s n-gram and token
    /// `last`; returns its entry.
    #[inline]
    fn add_ref_gram(&mut self, r: usize, parent: usize, last: usize) -> usize {
        let mut free = 0;
        for (s, e) in self.gram_slots.probe(mix(parent as u64, last as u64)) {
            if e == 0 {
                free = s;
                break;
            }
            let g = &mut self.grams[e - 1];
            if g.parent == parent && g.last == last {
                if g.reference != r {
                    g.reference = r;
                    g.count = 0;
                }
                g.count += 1;
                g.max = g.max.max(g.count);
                return e - 1;
            }
        }
        self.grams.push(Gram {
            parent,
            last,
            reference: r,
            count: 1,
            max: 1,
            hyp: 0,
        });
        self.gram_slots.slots[free] = self.grams.len();
        self.grams.len() - 1
    }

    /// The entry of the n-gram made of entry `parent`'s n-gram and token `last`, if a
    /// reference has it.
    #[inline]
    fn find_gram(&self, parent: usize, last: usize) -> Option<usize> {
        for (_, e) in self.gram_slots.probe(mix(parent as u64, last as u64)) {
            if e == 0 {
                return None;
            }
            let g = &self.grams[e - 1];
            if g.parent == parent && g.last == last {
                return Some(e - 1);
            }
        }
        None
    }
}

/// The reference length closest to `hyp_len`, the shorter one on ties.
pub(crate) fn closest_ref_len(hyp_len: usize, ref_lens: impl Iterator<Item = usize>) -> usize {
    let mut best: Option<(usize, usize)> = None; // (diff, len)
    for len in ref_lens {
        let diff = hyp_len.abs_diff(len);
        best = match best {
            Some((d, l)) if d < diff || (d == diff && l <= len) => Some((d, l)),
            _ => Some((diff, len)),
        };
    }
    best.map_or(0, |(_, l)| l)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;
    use crate::tokenize_13a::tokenize_13a;

    /// The statistics the obvious way: token strings, n-gram vectors, hash maps.
    fn reference_stats(hyp: &str, refs: &[String]) -> Stats {
        fn tokens(line: &str) -> Vec<String> {
            tokenize_13a(line)
                .split(' ')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect()
        }
        fn counts(toks: &[String]) -> HashMap<Vec<String>, usize> {
            let mut m = HashMap::new();
            for n in 1..=MAX_NGRAM_ORDER {
                for g in toks.windows(n) {
                    *m.entry(g.to_vec()).or_insert(0) += 1;
                }
            }
            m
        }
        let hyp = tokens(hyp);
        let refs: Vec<Vec<String>> = refs.iter().map(|r| tokens(r)).collect();
        let mut max: HashMap<Vec<String>, usize> = HashMap::new();
        for r in &refs {
            for (g, c) in counts(r) {
                let m = max.entry(g).or_insert(0);
                *m = (*m).max(c);
            }
        }
        let mut stats = Stats {
            sys_len: hyp.len(),
            ref_len: closest_ref_len(hyp.len(), refs.iter().map(Vec::len)),
            ..Stats::default()
        };
        for (g, c) in counts(&hyp) {
            stats.total[g.len() - 1] += c;
            stats.correct[g.len() - 1] += c.min(max.get(&g).copied().unwrap_or(0));
        }
        stats
    }

    fn check(counter: &mut SegmentCounter, hyp: &str, refs: &[String]) {
        let ours = counter.segment_stats(&BleuConfig::default(), hyp, refs);
        assert_eq!(ours, reference_stats(hyp, refs), "{hyp:?} {refs:?}");
    }

    #[test]
    fn clipping_across_references() {
        let mut counter = SegmentCounter::default();
        let refs = ["a a b a".to_string(), "a b b a b a".to_string()];
        let s = counter.segment_stats(&BleuConfig::default(), "a a a a b b b", &refs);
        // a: min(4, 3); b: min(3, 3); "a a": min(3, 1); "a b": 1; "b b": 1.
        assert_eq!(s.correct[0], 6);
        assert_eq!(s.correct[1], 3);
        check(&mut counter, "a a a a b b b", &refs);
        check(&mut counter, "", &refs);
        check(&mut counter, "a", &[String::new()]);
    }

    #[test]
    fn many_and_long_tokens() {
        // Forces the token index to grow, and tokens over 8 bytes that share their first
        // and last 8 bytes.
        let many: Vec<String> = (0..3000).map(|i| format!("t{i}")).collect();
        let long: Vec<String> = (0..200).map(|i| format!("abcdefgh{i}ijklmnop")).collect();
        let symbols = "!\"#$%()*+/:;=?@[]^_{|}~".chars().map(String::from);
        let mut counter = SegmentCounter::default();
        for words in [many, long, symbols.collect()] {
            let refs = [
                words.join(" "),
                words.iter().rev().cloned().collect::<Vec<_>>().join(""),
            ];
            let hyp: Vec<&str> = words.iter().step_by(3).map(String::as_str).collect();
            check(&mut counter, &hyp.join(" "), &refs);
            check(&mut counter, &words.join(" "), &refs[..1]);
        }
    }

    #[test]
    fn short_token_packing_is_injective() {
        let alphabet = [b'a', b'b', 0xc3, 0xa9, b'.'];
        let mut seen = std::collections::HashSet::new();
        let mut words: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..8 {
            words = words
                .iter()
                .flat_map(|w| alphabet.iter().map(move |&b| [w.as_slice(), &[b]].concat()))
                .collect();
            for w in &words {
                assert!(seen.insert((w.len(), hash_bytes(w))), "{w:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn matches_the_obvious_counts(
            hyp in "[ab c.,1-]{0,40}",
            refs in proptest::collection::vec("[ab c.,1-]{0,40}", 1..4),
        ) {
            let mut counter = SegmentCounter::default();
            let ours = counter.segment_stats(&BleuConfig::default(), &hyp, &refs);
            prop_assert_eq!(ours, reference_stats(&hyp, &refs));
            // The buffers carry nothing over between segments.
            let again = counter.segment_stats(&BleuConfig::default(), &hyp, &refs);
            prop_assert_eq!(again, ours);
        }
    }
}
