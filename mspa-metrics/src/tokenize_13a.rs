//! sacrebleu's default `13a` tokenizer (the mteval-v13a rules), reimplemented.
//!
//! Steps, in sacrebleu's order, applied to the right-stripped line:
//! 1. drop `<skipped>`, join `-\n` line breaks, turn remaining `\n` into spaces;
//! 2. unescape `&quot;`, `&amp;`, `&lt;`, `&gt;` (in that order);
//! 3. pad the line with a space on each side, then put spaces around every character in
//!    `{|}~ [\]^_` `` ` `` ` !"#$%&` `()*+` `:;<=>?@` `/`;
//! 4. split `.`/`,` from a preceding non-digit, then from a following non-digit, then split
//!    `-` from a preceding digit (each rule scans left to right without overlapping
//!    matches, as Python's `re.sub` does);
//! 5. collapse whitespace (Python's definition of whitespace).
//!
//! Steps 3-5 run as one scan that hands out tokens as slices of the line, without
//! building the padded intermediate strings. The scan relies on two facts about the rules
//! of step 4, which only insert spaces:
//!
//! * Every symbol of step 3 ends up as a token of its own, and whitespace or a symbol
//!   separates "words" that the rules of step 4 treat independently (a word's neighbours
//!   are whitespace, which is neither a digit, `.`, `,` nor `-`).
//! * Within a word, the rules only cut around maximal runs of `.`/`,` and around a `-`
//!   that follows a digit. For a run of `L` periods/commas preceded by `x` and followed by
//!   `y` (whitespace at the word's ends), `re.sub`'s left-to-right matching cuts between
//!   every two characters of the run; before the run unless `x` and `y` are digits and
//!   `L == 1`; and after the run if `y` is not a digit or `L` is odd exactly when `x` is
//!   not a digit. A `-` after a digit is cut on both sides.
//!
//! The tests check the scan against a literal implementation of the rules.

/// Whether `c` is whitespace for Python's `str.split()` / `str.strip()`.
///
/// Python counts the information separators U+001C..U+001F as whitespace; Rust does not.
#[inline]
pub(crate) fn is_py_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Characters the first 13a rule surrounds with spaces.
#[inline]
const fn is_13a_symbol(c: char) -> bool {
    matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/')
}

/// Class of an ASCII byte: part of a word.
const WORD: u8 = 0;
/// Class of an ASCII byte: `.`, `,` or `-`, which the rules of step 4 may cut around.
const SPECIAL: u8 = 1;
/// Class of an ASCII byte: Python whitespace.
const SPACE: u8 = 2;
/// Class of an ASCII byte: a symbol of step 3 (a token of its own).
const SYMBOL: u8 = 3;

/// Class of a byte of a non-ASCII character (decoded to classify it).
const NON_ASCII: u8 = 4;

/// The class of every byte.
static BYTE_CLASS: [u8; 256] = byte_classes();

const fn byte_classes() -> [u8; 256] {
    let mut table = [NON_ASCII; 256];
    let mut i = 0;
    while i < 128 {
        let c = i as u8 as char;
        table[i] = if matches!(i, 0x09..=0x0d | 0x1c..=0x20) {
            SPACE
        } else if is_13a_symbol(c) {
            SYMBOL
        } else if matches!(c, '.' | ',' | '-') {
            SPECIAL
        } else {
            WORD
        };
        i += 1;
    }
    table
}

/// Tokenizes one line exactly as sacrebleu's BLEU does by default
/// (`Tokenizer13a()(line.rstrip())`) and returns the tokens joined by single spaces.
///
/// ```
/// use mspa_metrics::tokenize_13a;
/// assert_eq!(tokenize_13a("Hello,world!How are you?I'm fine."), "Hello , world ! How are you ? I'm fine .");
/// assert_eq!(tokenize_13a("scored 2-3, 1.5 points."), "scored 2 - 3 , 1.5 points .");
/// ```
pub fn tokenize_13a(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + line.len() / 4);
    for_each_token_13a(line, |token| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(token);
    });
    out
}

/// Calls `emit` with each 13a token of `line` (never empty, never containing whitespace),
/// in order: the tokens of [`tokenize_13a`] without the joined string.
pub(crate) fn for_each_token_13a(line: &str, mut emit: impl FnMut(&str)) {
    let line = line.trim_end_matches(is_py_whitespace);
    // Steps 1-2 can only change lines holding `\n`, `&` or `<` (of `<skipped>`).
    if may_need_unescape(line.as_bytes()) {
        scan(&unescape(line), &mut emit);
    } else {
        scan(line, &mut emit);
    }
}

/// Whether `bytes` holds a `\n`, `&` or `<`, eight bytes at a time.
fn may_need_unescape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Non-zero exactly when some byte of `v` is zero.
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let hit = |w: u64| {
        zero_byte(w ^ (ONES * u64::from(b'\n')))
            | zero_byte(w ^ (ONES * u64::from(b'&')))
            | zero_byte(w ^ (ONES * u64::from(b'<')))
            != 0
    };
    let mut chunks = bytes.chunks_exact(8);
    let mut found = false;
    for chunk in &mut chunks {
        found |= hit(chunk.try_into().map_or(0, u64::from_le_bytes));
    }
    found
        || chunks
            .remainder()
            .iter()
            .any(|b| matches!(b, b'\n' | b'&' | b'<'))
}

/// Steps 1-2: `<skipped>`, line breaks and the four HTML entities.
fn unescape(line: &str) -> String {
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    line
}

/// `line[start..end]`, or `""` where that is not a slice of `line` (never, for the
/// character boundaries the scans produce).
#[inline]
fn piece(line: &str, start: usize, end: usize) -> &str {
    line.get(start..end).unwrap_or("")
}

/// Steps 3-5: splits at whitespace and symbols (symbols are tokens), then cuts each word
/// by the rules of step 4.
fn scan(line: &str, emit: &mut impl FnMut(&str)) {
    let bytes = line.as_bytes();
    let mut word_start = 0;
    let mut special = false;
    let mut i = 0;
    loop {
        while bytes
            .get(i)
            .is_some_and(|&b| BYTE_CLASS[usize::from(b)] == WORD)
        {
            i += 1;
        }
        let Some(&b) = bytes.get(i) else {
            break;
        };
        let (class, width) = match BYTE_CLASS[usize::from(b)] {
            NON_ASCII => match line.get(i..).and_then(|rest| rest.chars().next()) {
                Some(c) if is_py_whitespace(c) => (SPACE, c.len_utf8()),
                Some(c) => (WORD, c.len_utf8()),
                None => (WORD, 1),
            },
            class => (class, 1),
        };
        match class {
            WORD => {}
            SPECIAL => special = true,
            _ => {
                split_word(piece(line, word_start, i), special, emit);
                if class == SYMBOL {
                    emit(piece(line, i, i + 1));
                }
                word_start = i + width;
                special = false;
            }
        }
        i += width;
    }
    split_word(piece(line, word_start, bytes.len()), special, emit);
}

/// Emits the tokens of one word (no whitespace, no symbols) under the rules of step 4;
/// `special` says whether it holds any `.`, `,` or `-`.
fn split_word(word: &str, special: bool, emit: &mut impl FnMut(&str)) {
    if word.is_empty() {
        return;
    }
    if !special {
        emit(word);
        return;
    }
    let bytes = word.as_bytes();
    let is_digit = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_digit);
    let is_period_comma = |i: usize| matches!(bytes.get(i), Some(b'.' | b','));
    // Start of the token under construction.
    let mut start = 0;
    let mut cut = |at: usize| {
        let token = (at > start).then(|| piece(word, start, at));
        start = start.max(at);
        token
    };
    let mut i = 0;
    while i < bytes.len() {
        if is_period_comma(i) {
            let run = i;
            while is_period_comma(i) {
                i += 1;
            }
            let len = i - run;
            let x_digit = run > 0 && is_digit(run - 1);
            let y_digit = is_digit(i);
            if !x_digit || len >= 2 || !y_digit {
                emit_some(cut(run), emit);
            }
            for k in run + 1..i {
                emit_some(cut(k), emit);
            }
            if !y_digit || (len % 2 == 1) != x_digit {
                emit_some(cut(i), emit);
            }
        } else {
            if bytes[i] == b'-' && i > 0 && is_digit(i - 1) {
                emit_some(cut(i), emit);
                emit_some(cut(i + 1), emit);
            }
            i += 1;
        }
    }
    emit_some(cut(bytes.len()), emit);
}

/// Emits `token` if there is one.
#[inline]
fn emit_some(token: Option<&str>, emit: &mut impl FnMut(&str)) {
    if let Some(token) = token {
        emit(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The literal rules: sacrebleu's steps on a padded `Vec<char>`, one `re.sub` at a time.
    fn reference_13a(line: &str) -> String {
        fn pair_rule(
            chars: &[char],
            matches: impl Fn(char, char) -> bool,
            emit: impl Fn(char, char, &mut Vec<char>),
        ) -> Vec<char> {
            let mut out = Vec::with_capacity(chars.len() + 8);
            let mut i = 0;
            while i < chars.len() {
                if i + 1 < chars.len() && matches(chars[i], chars[i + 1]) {
                    emit(chars[i], chars[i + 1], &mut out);
                    i += 2;
                } else {
                    out.push(chars[i]);
                    i += 1;
                }
            }
            out
        }
        let line = unescape(line.trim_end_matches(is_py_whitespace));
        let mut a = vec![' '];
        for c in line.chars() {
            if is_13a_symbol(c) {
                a.extend([' ', c, ' ']);
            } else {
                a.push(c);
            }
        }
        a.push(' ');
        let digit = |c: char| c.is_ascii_digit();
        let pc = |c: char| c == '.' || c == ',';
        let b = pair_rule(
            &a,
            |x, y| !digit(x) && pc(y),
            |x, y, o| o.extend([x, ' ', y, ' ']),
        );
        let a = pair_rule(
            &b,
            |x, y| pc(x) && !digit(y),
            |x, y, o| o.extend([' ', x, ' ', y]),
        );
        let b = pair_rule(
            &a,
            |x, y| digit(x) && y == '-',
            |x, y, o| o.extend([x, ' ', y, ' ']),
        );
        let joined: String = b.into_iter().collect();
        let tokens: Vec<&str> = joined
            .split(is_py_whitespace)
            .filter(|t| !t.is_empty())
            .collect();
        tokens.join(" ")
    }

    #[test]
    fn rules() {
        let cases = [
            (
                "Tom &amp; Jerry &quot;hi&quot; &lt;x&gt;",
                "Tom & Jerry \" hi \" < x >",
            ),
            ("&amp;quot;", "& quot ;"),
            ("state-of-the-art 2-3", "state-of-the-art 2 - 3"),
            ("a..b", "a . . b"),
            ("1,000.5 and 3.", "1,000.5 and 3 ."),
            ("  the   cat\tsat  ", "the cat sat"),
            ("line-\nbreak<skipped>\nnext", "linebreak next"),
            ("end-\n", "end-"),
            ("x\u{1f}y\u{a0}z", "x y z"),
            ("", ""),
            (
                "..5 5..3 a.5 5.a 1--2 3-. ,,,x 9,,,9",
                ". .5 5 . . 3 a . 5 5 . a 1 - -2 3 - . , , , x 9 , , ,9",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(tokenize_13a(input), expected, "{input:?}");
            assert_eq!(reference_13a(input), expected, "{input:?}");
        }
    }

    #[test]
    fn ascii_classes_match_definitions() {
        for b in 0u8..128 {
            let c = char::from(b);
            let class = BYTE_CLASS[usize::from(b)];
            assert_eq!(class == SPACE, is_py_whitespace(c), "{b:#x}");
            if class != SPACE {
                assert_eq!(class == SYMBOL, is_13a_symbol(c), "{b:#x}");
            }
        }
    }

    #[test]
    fn exhaustive_short_words_match_the_rules() {
        // Every string of up to 6 characters over the characters the rules care about.
        let alphabet = ['1', 'a', '.', ',', '-', ' ', '!'];
        let mut stack = vec![String::new()];
        while let Some(s) = stack.pop() {
            assert_eq!(tokenize_13a(&s), reference_13a(&s), "{s:?}");
            if s.chars().count() < 6 {
                for c in alphabet {
                    stack.push(format!("{s}{c}"));
                }
            }
        }
    }

    proptest! {
        #[test]
        fn scan_matches_the_rules(line in "[0-9a-zé.,\\-' \t\n\u{a0}\u{1c}&;<>!qtuolgampskid]{0,40}") {
            prop_assert_eq!(tokenize_13a(&line), reference_13a(&line));
        }
    }
}
