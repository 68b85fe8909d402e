//! Author names, titles and descriptions.
//!
//! The text shows three attributes and only those: the category (a synonym from a
//! per-language list, the secondary category sometimes in the description), the format
//! (likewise) and the language (every word is in the author's language). Each category or
//! format mention names a random wrong value with probability `text_noise`, and a
//! non-English author mixes in an English phrase with the same probability. Energy, audio
//! style and visual style never show in text. Names carry no attribute at all.
//! All text is ASCII (accents dropped) so any tokenizer reads it.

use rand_chacha::ChaCha8Rng;

use super::attributes::{AuthorAttributes, CATEGORIES, FORMATS, LANGUAGES};
use super::sampling::{index, unit};

/// Per language (english, spanish, portuguese, french), per category, synonyms.
const CATEGORY_WORDS: [[[&str; 4]; CATEGORIES.len()]; 4] = [
    [
        ["music", "songs", "live set", "jam session"],
        ["dance", "choreo", "dancing", "dance moves"],
        ["gaming", "gameplay", "speedrun", "ranked games"],
        ["just chatting", "talk show", "podcast", "chat"],
        ["cooking", "recipes", "kitchen", "baking"],
        ["art", "drawing", "painting", "sketching"],
        ["sports", "workout", "fitness", "match day"],
        ["outdoors", "hiking", "travel", "nature walk"],
    ],
    [
        ["musica", "canciones", "concierto", "sesion musical"],
        ["baile", "coreografia", "bailando", "pasos de baile"],
        ["videojuegos", "partidas", "gameplay", "torneo"],
        ["charla", "platica", "conversacion", "tertulia"],
        ["cocina", "recetas", "cocinando", "reposteria"],
        ["arte", "dibujo", "pintura", "ilustracion"],
        ["deportes", "entrenamiento", "futbol", "ejercicio"],
        ["aire libre", "senderismo", "viaje", "naturaleza"],
    ],
    [
        ["musica", "cancoes", "show", "sessao musical"],
        ["danca", "coreografia", "dancando", "passos de danca"],
        ["jogos", "partidas", "gameplay", "campeonato"],
        ["papo", "conversa", "bate-papo", "prosa"],
        ["culinaria", "receitas", "cozinhando", "confeitaria"],
        ["arte", "desenho", "pintura", "ilustracao"],
        ["esportes", "treino", "futebol", "exercicios"],
        ["ao ar livre", "trilha", "viagem", "natureza"],
    ],
    [
        ["musique", "chansons", "concert", "session musicale"],
        ["danse", "choregraphie", "on danse", "pas de danse"],
        ["jeux video", "parties", "gameplay", "tournoi"],
        ["discussion", "causerie", "bavardage", "debat"],
        ["cuisine", "recettes", "patisserie", "on cuisine"],
        ["art", "dessin", "peinture", "illustration"],
        ["sport", "entrainement", "football", "exercices"],
        ["plein air", "randonnee", "voyage", "nature"],
    ],
];

/// Per language, per format, synonyms.
const FORMAT_WORDS: [[[&str; 3]; FORMATS.len()]; 4] = [
    [
        ["solo stream", "just me", "one on one"],
        ["collab", "with friends", "duo stream"],
        ["tutorial", "how to", "lesson"],
        ["challenge", "marathon", "contest"],
    ],
    [
        ["en solitario", "solo yo", "directo a solas"],
        ["colaboracion", "con amigos", "en duo"],
        ["tutorial", "como hacer", "leccion"],
        ["reto", "maraton", "concurso"],
    ],
    [
        ["sozinho", "so eu", "live a sos"],
        ["colaboracao", "com amigos", "em dupla"],
        ["tutorial", "como fazer", "aula"],
        ["desafio", "maratona", "competicao"],
    ],
    [
        ["en solo", "juste moi", "en tete a tete"],
        ["collaboration", "entre amis", "en duo"],
        ["tutoriel", "comment faire", "lecon"],
        ["defi", "marathon", "concours"],
    ],
];

/// Per language: greetings (language cue only).
const GREETINGS: [[&str; 5]; 4] = [
    [
        "hello everyone",
        "come hang out",
        "welcome back",
        "good vibes only",
        "thanks for the support",
    ],
    [
        "hola a todos",
        "vengan a pasar el rato",
        "bienvenidos de nuevo",
        "buena onda",
        "gracias por el apoyo",
    ],
    [
        "ola pessoal",
        "bora la",
        "bem-vindos de volta",
        "boas vibes",
        "obrigado pelo apoio",
    ],
    [
        "salut tout le monde",
        "venez passer un moment",
        "bon retour",
        "bonne ambiance",
        "merci pour le soutien",
    ],
];

/// Per language: time phrases (language cue only).
const WHEN: [[&str; 4]; 4] = [
    ["tonight", "today", "live now", "all day"],
    ["esta noche", "hoy", "en directo ahora", "todo el dia"],
    ["hoje a noite", "hoje", "ao vivo agora", "o dia todo"],
    [
        "ce soir",
        "aujourd'hui",
        "en direct maintenant",
        "toute la journee",
    ],
];

/// Per language: sentences naming the category (`{c}`).
const CATEGORY_SENTENCES: [[&str; 3]; 4] = [
    [
        "This channel is all about {c}.",
        "Daily {c} with the community.",
        "Expect lots of {c} here.",
    ],
    [
        "Este canal es todo sobre {c}.",
        "{c} cada dia con la comunidad.",
        "Aqui hay mucho de {c}.",
    ],
    [
        "Este canal e todo sobre {c}.",
        "{c} todo dia com a comunidade.",
        "Aqui tem muito de {c}.",
    ],
    [
        "Cette chaine parle de {c}.",
        "{c} tous les jours avec la communaute.",
        "Ici il y a beaucoup de {c}.",
    ],
];

/// Per language: sentences naming the format (`{f}`).
const FORMAT_SENTENCES: [[&str; 3]; 4] = [
    ["Today it is a {f}.", "Format: {f}.", "Join the {f}!"],
    ["Hoy toca {f}.", "Formato: {f}.", "Unete: {f}!"],
    ["Hoje tem {f}.", "Formato: {f}.", "Participe: {f}!"],
    [
        "Aujourd'hui c'est {f}.",
        "Format : {f}.",
        "Rejoignez-nous : {f} !",
    ],
];

/// Per language: a sentence naming the secondary category (`{c}`).
const ALSO_SENTENCES: [&str; 4] = [
    "Sometimes {c} too.",
    "A veces tambien {c}.",
    "As vezes tambem {c}.",
    "Parfois aussi {c}.",
];

const NAME_PARTS: [&str; 24] = [
    "nova", "kai", "luna", "rex", "mika", "zed", "pix", "jojo", "sol", "vex", "ari", "bo", "coco",
    "dax", "echo", "fen", "gigi", "hex", "ivy", "juno", "kiki", "lux", "milo", "nyx",
];

/// The three texts of one author.
pub(crate) struct AuthorText {
    pub name: String,
    pub title: String,
    pub description: String,
}

fn pick<'a>(rng: &mut ChaCha8Rng, words: &[&'a str]) -> &'a str {
    words[index(rng, words.len())]
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// A word for `value` from `rows` (one language's table, a row of words per value), or for
/// a random other value with probability `noise`.
fn noisy_word<const W: usize>(
    rng: &mut ChaCha8Rng,
    rows: &[[&'static str; W]],
    value: usize,
    noise: f64,
) -> &'static str {
    let v = if unit(rng) < noise {
        index(rng, rows.len())
    } else {
        value
    };
    pick(rng, &rows[v])
}

/// A category word for `category`, or for a random other one with probability `noise`.
fn category_word(rng: &mut ChaCha8Rng, lang: usize, category: usize, noise: f64) -> &'static str {
    noisy_word(rng, &CATEGORY_WORDS[lang], category, noise)
}

/// A format word for `format`, or for a random other one with probability `noise`.
fn format_word(rng: &mut ChaCha8Rng, lang: usize, format: usize, noise: f64) -> &'static str {
    noisy_word(rng, &FORMAT_WORDS[lang], format, noise)
}

/// A language-cue phrase table row: the author's language, or English with probability
/// `noise` (code-mixing).
fn cue_lang(rng: &mut ChaCha8Rng, lang: usize, noise: f64) -> usize {
    if lang != 0 && unit(rng) < noise {
        0
    } else {
        lang
    }
}

/// Writes the name, title and (unless `with_description` is false) description.
pub(crate) fn author_text(
    rng: &mut ChaCha8Rng,
    attrs: &AuthorAttributes,
    with_description: bool,
    noise: f64,
) -> AuthorText {
    let lang = attrs.language as usize;
    let name = format!(
        "{}{}{}",
        capitalize(pick(rng, &NAME_PARTS)),
        capitalize(pick(rng, &NAME_PARTS)),
        index(rng, 100)
    );

    let c = category_word(rng, lang, attrs.category as usize, noise);
    let f = format_word(rng, lang, attrs.format as usize, noise);
    let when_lang = cue_lang(rng, lang, noise);
    let when = pick(rng, &WHEN[when_lang]);
    let title = match index(rng, 4) {
        0 => format!("{} {f} {when}", capitalize(c)),
        1 => format!("{}: {c} {f}", capitalize(when)),
        2 => format!("{} | {f}", capitalize(c)),
        // Some titles leave the format out.
        _ => format!("{} {when}", capitalize(c)),
    };

    let description = if with_description {
        let greet_lang = cue_lang(rng, lang, noise);
        let greet = pick(rng, &GREETINGS[greet_lang]);
        let c = category_word(rng, lang, attrs.category as usize, noise);
        let f = format_word(rng, lang, attrs.format as usize, noise);
        let mut parts = vec![
            format!("{}!", capitalize(greet)),
            capitalize(&pick(rng, &CATEGORY_SENTENCES[lang]).replace("{c}", c)),
            capitalize(&pick(rng, &FORMAT_SENTENCES[lang]).replace("{f}", f)),
        ];
        if let Some(c2) = attrs.category2
            && unit(rng) < 0.7
        {
            let w = category_word(rng, lang, c2 as usize, noise);
            parts.push(ALSO_SENTENCES[lang].replace("{c}", w));
        }
        parts.join(" ")
    } else {
        String::new()
    };

    AuthorText {
        name,
        title,
        description,
    }
}

/// One attribute value and the phrases that name it in authors' titles and descriptions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextKeywords {
    /// The grammar field (`categories`, `format` or `language`).
    pub field: &'static str,
    /// The value of that field (e.g. `music`).
    pub value: &'static str,
    /// The phrases that name the value, lowercase, duplicates removed, in table order.
    pub phrases: Vec<&'static str>,
}

/// The fixed words of a sentence template: the pieces around its `{c}` / `{f}` slot,
/// trimmed of punctuation and spaces.
fn template_pieces(template: &'static str) -> impl Iterator<Item = &'static str> {
    template
        .split(['{', '}'])
        .filter(|p| *p != "c" && *p != "f")
        .map(|p| p.trim_matches(|ch: char| ch.is_ascii_punctuation() || ch == ' '))
        .filter(|p| !p.is_empty())
}

/// The vocabulary every author text is written from, grouped by the attribute value it
/// names (the keyword/synonym table behind titles and descriptions), for text baselines
/// that read attributes back from text:
///
/// * `categories`: every synonym of each category, over all four languages;
/// * `format`: every synonym of each format, over all four languages;
/// * `language`: every phrase written in that language (its category and format words,
///   greetings, time phrases, and the fixed words of its sentence templates).
///
/// A phrase may name several values of one field (`gameplay` is gaming in every language,
/// so it names all four languages); the texts' noise (`text_noise`) is not reflected here.
/// Phrases keep the table's case (templates start with a capital; compare lowercased).
pub fn text_keywords() -> Vec<TextKeywords> {
    fn dedup(words: impl IntoIterator<Item = &'static str>) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for w in words {
            if !out.contains(&w) {
                out.push(w);
            }
        }
        out
    }
    let mut out = Vec::new();
    for (c, &value) in CATEGORIES.iter().enumerate() {
        out.push(TextKeywords {
            field: "categories",
            value,
            phrases: dedup(
                CATEGORY_WORDS
                    .iter()
                    .flat_map(|lang| lang[c].iter().copied()),
            ),
        });
    }
    for (f, &value) in FORMATS.iter().enumerate() {
        out.push(TextKeywords {
            field: "format",
            value,
            phrases: dedup(FORMAT_WORDS.iter().flat_map(|lang| lang[f].iter().copied())),
        });
    }
    for (l, &value) in LANGUAGES.iter().enumerate() {
        let words = CATEGORY_WORDS[l]
            .iter()
            .flat_map(|w| w.iter().copied())
            .chain(FORMAT_WORDS[l].iter().flat_map(|w| w.iter().copied()))
            .chain(GREETINGS[l].iter().copied())
            .chain(WHEN[l].iter().copied())
            .chain(
                CATEGORY_SENTENCES[l]
                    .iter()
                    .flat_map(|t| template_pieces(t)),
            )
            .chain(FORMAT_SENTENCES[l].iter().flat_map(|t| template_pieces(t)))
            .chain(template_pieces(ALSO_SENTENCES[l]));
        out.push(TextKeywords {
            field: "language",
            value,
            phrases: dedup(words),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::sampling::entity_rng;
    use super::*;

    #[test]
    fn synth_text_is_ascii_and_names_the_category_without_noise() {
        let mut rng = entity_rng(1, 9, 9);
        for lang in 0..4u8 {
            for cat in 0..8u8 {
                let attrs = AuthorAttributes {
                    category: cat,
                    category2: Some((cat + 1) % 8),
                    energy: 0,
                    audio: 0,
                    visuals: 0,
                    language: lang,
                    format: 2,
                };
                let t = author_text(&mut rng, &attrs, true, 0.0);
                assert!(t.title.is_ascii() && t.description.is_ascii() && t.name.is_ascii());
                let text = format!("{} {}", t.title, t.description).to_lowercase();
                assert!(
                    CATEGORY_WORDS[lang as usize][cat as usize]
                        .iter()
                        .any(|w| text.contains(w)),
                    "{text}"
                );
            }
        }
        let attrs = AuthorAttributes {
            category: 0,
            category2: None,
            energy: 0,
            audio: 0,
            visuals: 0,
            language: 0,
            format: 0,
        };
        assert!(
            author_text(&mut rng, &attrs, false, 0.2)
                .description
                .is_empty()
        );
    }
}
