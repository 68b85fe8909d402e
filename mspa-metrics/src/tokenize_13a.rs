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

/// Whether `c` is whitespace for Python's `str.split()` / `str.strip()`.
///
/// Python counts the information separators U+001C..U+001F as whitespace; Rust does not.
#[inline]
pub(crate) fn is_py_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Characters the first 13a rule surrounds with spaces.
#[inline]
fn is_13a_symbol(c: char) -> bool {
    matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/')
}

/// Applies `rule(prev, cur)` over pairs of adjacent characters the way `re.sub` applies a
/// two-character pattern: left to right, a match consumes both characters.
fn pair_rule(
    chars: &[char],
    matches: impl Fn(char, char) -> bool,
    out: &mut Vec<char>,
    emit: impl Fn(char, char, &mut Vec<char>),
) {
    out.clear();
    let mut i = 0;
    while i < chars.len() {
        if i + 1 < chars.len() && matches(chars[i], chars[i + 1]) {
            emit(chars[i], chars[i + 1], out);
            i += 2;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
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
    let line = line.trim_end_matches(is_py_whitespace);
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

    let mut a: Vec<char> = Vec::with_capacity(line.len() * 2 + 2);
    a.push(' ');
    for c in line.chars() {
        if is_13a_symbol(c) {
            a.extend([' ', c, ' ']);
        } else {
            a.push(c);
        }
    }
    a.push(' ');

    let digit = |c: char| c.is_ascii_digit();
    let period_comma = |c: char| c == '.' || c == ',';
    let mut b = Vec::with_capacity(a.len() + 16);
    // ([^0-9])([\.,]) -> "\1 \2 "
    pair_rule(
        &a,
        |x, y| !digit(x) && period_comma(y),
        &mut b,
        |x, y, o| o.extend([x, ' ', y, ' ']),
    );
    // ([\.,])([^0-9]) -> " \1 \2"
    pair_rule(
        &b,
        |x, y| period_comma(x) && !digit(y),
        &mut a,
        |x, y, o| o.extend([' ', x, ' ', y]),
    );
    // ([0-9])(-) -> "\1 \2 "
    pair_rule(
        &a,
        |x, y| digit(x) && y == '-',
        &mut b,
        |x, y, o| o.extend([x, ' ', y, ' ']),
    );

    let joined: String = b.into_iter().collect();
    let mut out = String::with_capacity(joined.len());
    for tok in joined.split(is_py_whitespace).filter(|t| !t.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(tok);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ];
        for (input, expected) in cases {
            assert_eq!(tokenize_13a(input), expected, "{input:?}");
        }
    }
}
