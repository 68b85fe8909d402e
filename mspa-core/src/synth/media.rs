//! PNG frames and WAV clips.
//!
//! Frames (square RGB, `frame_size` pixels) show:
//! * **visual style** as the palette of background and shapes (neon: saturated colours on
//!   near-black; pastel: light tints; dark: dim, desaturated; natural: greens, browns and
//!   sky blue; monochrome: greys);
//! * **category** as the kind of shape drawn (music: circles, dance: diamonds, gaming:
//!   squares, talk: wide ellipses, cooking: rings, art: triangles, sports: plus signs,
//!   outdoor: wide "mountains" standing on the lower half);
//! * **energy** as overall brightness (low 0.5, medium 0.75, high 1.0, jittered);
//! * **format** as a texture/layout overlay (solo: none, collab: split screen with a
//!   divider, tutorial: grid lines, challenge: diagonal stripes).
//!
//! Clips (mono, 16-bit PCM, `sample_rate` Hz) show:
//! * **audio style** as timbre and rhythm (electronic: square bass with a four-on-the-floor
//!   kick and off-beat hats; acoustic: plucked, decaying harmonics on a syncopated pattern;
//!   vocal: a vibrato voice with vowel formants in syllables; ambient: a slowly swelling
//!   detuned chord, no beat; rock: a driven saw power chord with kick and backbeat snare);
//! * **energy** as tempo (about 78, 110 or 142 BPM) and loudness (peak about 0.28, 0.5 or
//!   0.78 of full scale).
//!
//! Both get `media_noise` (pixel noise, hiss). Everything is computed from the author's own
//! generator, and PNG/WAV encoding is deterministic, so the bytes depend only on the seed.

use std::f64::consts::TAU;

use image::ImageEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use rand_chacha::ChaCha8Rng;

use super::attributes::AuthorAttributes;
use super::sampling::{index, uniform, unit};

type Rgb = [f64; 3];

/// Background colour and four shape colours per visual style.
const PALETTES: [(Rgb, [Rgb; 4]); 5] = [
    // neon
    (
        [12.0, 6.0, 34.0],
        [
            [255.0, 20.0, 200.0],
            [0.0, 255.0, 235.0],
            [180.0, 255.0, 0.0],
            [255.0, 120.0, 0.0],
        ],
    ),
    // pastel
    (
        [246.0, 228.0, 238.0],
        [
            [255.0, 182.0, 203.0],
            [193.0, 174.0, 255.0],
            [170.0, 238.0, 210.0],
            [255.0, 238.0, 170.0],
        ],
    ),
    // dark
    (
        [16.0, 16.0, 22.0],
        [
            [92.0, 24.0, 34.0],
            [40.0, 52.0, 92.0],
            [72.0, 72.0, 82.0],
            [118.0, 92.0, 44.0],
        ],
    ),
    // natural
    (
        [128.0, 176.0, 214.0],
        [
            [60.0, 122.0, 52.0],
            [140.0, 100.0, 60.0],
            [96.0, 160.0, 70.0],
            [204.0, 182.0, 122.0],
        ],
    ),
    // monochrome
    (
        [200.0, 200.0, 200.0],
        [
            [28.0, 28.0, 28.0],
            [96.0, 96.0, 96.0],
            [150.0, 150.0, 150.0],
            [240.0, 240.0, 240.0],
        ],
    ),
];

const BRIGHTNESS: [f64; 3] = [0.5, 0.75, 1.0];
const TEMPO_BPM: [f64; 3] = [78.0, 110.0, 142.0];
const LOUDNESS: [f64; 3] = [0.28, 0.5, 0.78];

/// Per-author look, shared by its frames.
struct FrameStyle {
    background: Rgb,
    palette: [Rgb; 4],
    brightness: f64,
    category: u8,
    format: u8,
}

struct Shape {
    cx: f64,
    cy: f64,
    r: f64,
    color: Rgb,
}

fn jitter(rng: &mut ChaCha8Rng, c: Rgb, amount: f64) -> Rgb {
    [
        c[0] + uniform(rng, -amount, amount),
        c[1] + uniform(rng, -amount, amount),
        c[2] + uniform(rng, -amount, amount),
    ]
}

fn blend(a: Rgb, b: Rgb, t: f64) -> Rgb {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

/// Whether the point at normalised offset (dx, dy) from a shape's centre lies inside it.
fn inside(category: u8, dx: f64, dy: f64) -> bool {
    match category {
        0 => dx * dx + dy * dy <= 1.0,
        1 => dx.abs() + dy.abs() <= 1.0,
        2 => dx.abs().max(dy.abs()) <= 0.8,
        3 => (dx / 1.35).powi(2) + (dy / 0.7).powi(2) <= 1.0,
        4 => {
            let d2 = dx * dx + dy * dy;
            (0.36..=1.0).contains(&d2)
        }
        5 => (-1.0..=0.8).contains(&dy) && dx.abs() <= (dy + 1.0) / 1.8,
        6 => (dx.abs() <= 0.3 && dy.abs() <= 1.0) || (dy.abs() <= 0.3 && dx.abs() <= 1.0),
        _ => (-1.0..=1.0).contains(&dy) && dx.abs() / 1.7 <= (dy + 1.0) / 2.0,
    }
}

/// Renders all frames of one author as RGB8 buffers.
pub(crate) fn render_frames(
    rng: &mut ChaCha8Rng,
    attrs: &AuthorAttributes,
    size: u32,
    count: usize,
    noise: f64,
) -> Vec<Vec<u8>> {
    let (bg, pal) = PALETTES[attrs.visuals as usize];
    let style = FrameStyle {
        background: jitter(rng, bg, 14.0),
        palette: [
            jitter(rng, pal[0], 18.0),
            jitter(rng, pal[1], 18.0),
            jitter(rng, pal[2], 18.0),
            jitter(rng, pal[3], 18.0),
        ],
        brightness: BRIGHTNESS[attrs.energy as usize] * uniform(rng, 0.92, 1.08),
        category: attrs.category,
        format: attrs.format,
    };
    (0..count)
        .map(|_| render_frame(rng, &style, size, noise))
        .collect()
}

fn render_frame(rng: &mut ChaCha8Rng, style: &FrameStyle, size: u32, noise: f64) -> Vec<u8> {
    let s = f64::from(size);
    let n_shapes = 3 + index(rng, 3);
    let shapes: Vec<Shape> = (0..n_shapes)
        .map(|_| {
            let r = s * uniform(rng, 0.1, 0.22);
            let cy = if style.category == 7 {
                uniform(rng, 0.55, 0.85) * s
            } else {
                uniform(rng, 0.15, 0.85) * s
            };
            Shape {
                cx: uniform(rng, 0.15, 0.85) * s,
                cy,
                r,
                color: style.palette[index(rng, 4)],
            }
        })
        .collect();
    let bottom = blend(style.background, [0.0; 3], 0.3);
    let grid = (size / 8).max(2);
    let stripe = (size / 10).max(2);
    let noise_amp = 60.0 * noise;
    let mut buf = Vec::with_capacity((size * size * 3) as usize);
    for y in 0..size {
        let row_bg = blend(style.background, bottom, f64::from(y) / s);
        for x in 0..size {
            let mut c = row_bg;
            match style.format {
                1 if x >= size / 2 => c = blend(c, [0.0; 3], 0.15),
                2 if x % grid == 0 || y % grid == 0 => c = blend(c, style.palette[3], 0.35),
                3 if ((x + y) / stripe).is_multiple_of(2) => c = blend(c, style.palette[1], 0.2),
                _ => {}
            }
            let (fx, fy) = (f64::from(x) + 0.5, f64::from(y) + 0.5);
            for sh in &shapes {
                if inside(style.category, (fx - sh.cx) / sh.r, (fy - sh.cy) / sh.r) {
                    c = sh.color;
                }
            }
            if style.format == 1 && (x == size / 2 || x + 1 == size / 2) {
                c = style.palette[0];
            }
            for ch in c {
                let v = ch * style.brightness + noise_amp * (2.0 * unit(rng) - 1.0);
                buf.push(v.round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    buf
}

/// Encodes an RGB8 buffer as PNG bytes (deterministic for a given buffer).
pub(crate) fn encode_png(rgb: &[u8], size: u32) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Sub)
        .write_image(rgb, size, size, image::ExtendedColorType::Rgb8)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Renders one author's clip as samples in `[-1, 1]`.
pub(crate) fn render_clip(
    rng: &mut ChaCha8Rng,
    attrs: &AuthorAttributes,
    n: usize,
    sample_rate: u32,
    noise: f64,
) -> Vec<f64> {
    let sr = f64::from(sample_rate);
    let energy = attrs.energy as usize;
    let bpm = TEMPO_BPM[energy] + uniform(rng, -8.0, 8.0);
    let loudness = LOUDNESS[energy] * uniform(rng, 0.9, 1.1);
    let beat = 60.0 / bpm;
    let root = 110.0 * 2f64.powf(index(rng, 12) as f64 / 12.0);
    const SCALE: [f64; 5] = [0.0, 3.0, 5.0, 7.0, 10.0];
    let n_beats = (n as f64 / sr / beat).ceil() as usize + 2;
    // One note per half beat, from a minor pentatonic scale.
    let notes: Vec<f64> = (0..2 * n_beats)
        .map(|_| root * 2f64.powf(SCALE[index(rng, 5)] / 12.0))
        .collect();
    // Vowel formant weights for the vocal style (harmonics 1..=6).
    const VOWELS: [[f64; 6]; 3] = [
        [1.0, 0.8, 0.6, 0.2, 0.1, 0.05],
        [1.0, 0.3, 0.1, 0.5, 0.4, 0.1],
        [1.0, 0.5, 0.7, 0.3, 0.05, 0.2],
    ];
    let vowels: Vec<usize> = (0..2 * n_beats).map(|_| index(rng, 3)).collect();
    // Syncopated pluck pattern on half beats for the acoustic style.
    const PLUCKS: [bool; 8] = [true, false, true, true, false, true, false, true];

    let mut out = Vec::with_capacity(n);
    let mut phase = 0.0f64;
    for i in 0..n {
        let t = i as f64 / sr;
        let b = (t / beat).floor();
        let tb = t - b * beat; // time since the beat
        let bi = b as usize;
        let half = beat / 2.0;
        let hi = (t / half).floor() as usize; // half-beat index
        let th = t - hi as f64 * half; // time since the half beat
        let note = notes[hi.min(notes.len() - 1)];
        let x = match attrs.audio {
            0 => {
                // electronic
                let w = TAU * note * 0.5 * t;
                let bass =
                    (w.sin() + (3.0 * w).sin() / 3.0 + (5.0 * w).sin() / 5.0) * (-th * 5.0).exp();
                let kick_phase = TAU * (50.0 * tb + 70.0 * (1.0 - (-30.0 * tb).exp()) / 30.0);
                let kick = kick_phase.sin() * (-tb * 14.0).exp();
                let hat = if hi % 2 == 1 {
                    (2.0 * unit(rng) - 1.0) * (-th * 60.0).exp()
                } else {
                    0.0
                };
                0.45 * bass + 0.55 * kick + 0.2 * hat
            }
            1 => {
                // acoustic: find the last pluck at or before this half beat
                let mut k = hi;
                while k > 0 && !PLUCKS[k % 8] {
                    k -= 1;
                }
                let since = t - k as f64 * half;
                let f = notes[k.min(notes.len() - 1)] * 2.0;
                let mut v = 0.0;
                for h in 1..=4 {
                    let hf = h as f64;
                    v += (TAU * hf * f * t).sin() / (hf * hf) * (-since * (3.0 + hf)).exp();
                }
                0.8 * v
            }
            2 => {
                // vocal
                let f0 = note * 2.0 * (1.0 + 0.015 * (TAU * 5.5 * t).sin());
                phase += TAU * f0 / sr;
                let wts = VOWELS[vowels[hi.min(vowels.len() - 1)]];
                let mut v = 0.0;
                for (h, w) in wts.iter().enumerate() {
                    v += w * ((h + 1) as f64 * phase).sin();
                }
                let syl = (th / (half * 0.85)).min(1.0);
                let env = (std::f64::consts::PI * syl).sin().powi(2);
                0.4 * v * env
            }
            3 => {
                // ambient: detuned chord with a slow swell tied to the tempo
                let lfo = 0.55 + 0.45 * (TAU * (bpm / 60.0 / 4.0) * t).sin();
                let mut v = 0.0;
                for (ratio, det) in [(1.0, 1.003), (1.5, 0.997), (2.0, 1.002)] {
                    v += (TAU * root * ratio * det * t).sin();
                }
                0.33 * v * lfo
            }
            _ => {
                // rock: driven power chord chugs, kick on 1 and 3, snare on 2 and 4
                let saw = |f: f64| 2.0 * ((f * t).fract()) - 1.0;
                let chord = (3.0 * (saw(note) + saw(note * 1.5))).tanh() * (-th * 4.0).exp();
                let kick = if bi.is_multiple_of(2) {
                    (TAU * 60.0 * tb).sin() * (-tb * 14.0).exp()
                } else {
                    0.0
                };
                let snare = if bi % 2 == 1 {
                    (2.0 * unit(rng) - 1.0) * (-tb * 18.0).exp()
                } else {
                    0.0
                };
                0.45 * chord + 0.4 * kick + 0.35 * snare
            }
        };
        let hiss = 0.08 * noise * (2.0 * unit(rng) - 1.0);
        out.push((x * loudness + hiss).clamp(-1.0, 1.0));
    }
    out
}

/// Encodes samples in `[-1, 1]` as a mono 16-bit PCM WAV file.
pub(crate) fn encode_wav(samples: &[f64], sample_rate: u32) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * 2).to_le_bytes()); // byte rate
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for &s in samples {
        let v = (s * 32767.0).round().clamp(-32768.0, 32767.0) as i16;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::sampling::entity_rng;
    use super::*;

    fn attrs(energy: u8, audio: u8, visuals: u8) -> AuthorAttributes {
        AuthorAttributes {
            category: 0,
            category2: None,
            energy,
            audio,
            visuals,
            language: 0,
            format: 0,
        }
    }

    fn mean(v: &[u8]) -> f64 {
        v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64
    }

    #[test]
    fn synth_energy_shows_in_brightness_and_loudness() {
        let mut rng = entity_rng(5, 5, 5);
        let low = render_frames(&mut rng, &attrs(0, 0, 4), 32, 2, 0.1);
        let high = render_frames(&mut rng, &attrs(2, 0, 4), 32, 2, 0.1);
        assert!(mean(&high[0]) > mean(&low[0]) * 1.3);
        for style in 0..5u8 {
            let rms = |e: u8, rng: &mut ChaCha8Rng| {
                let s = render_clip(rng, &attrs(e, style, 0), 16_000, 16_000, 0.1);
                (s.iter().map(|x| x * x).sum::<f64>() / s.len() as f64).sqrt()
            };
            let (lo, hi) = (rms(0, &mut rng), rms(2, &mut rng));
            assert!(hi > lo * 1.5, "style {style}: {lo} {hi}");
            assert!(hi < 1.0 && lo > 0.01);
        }
    }

    #[test]
    fn synth_wav_header_is_well_formed() {
        let wav = encode_wav(&[0.0, 0.5, -1.0], 16_000);
        assert_eq!(wav.len(), 44 + 6);
        assert_eq!(&wav[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(wav[4..8].try_into().unwrap()), 42);
        assert_eq!(i16::from_le_bytes(wav[46..48].try_into().unwrap()), 16384);
        assert_eq!(i16::from_le_bytes(wav[48..50].try_into().unwrap()), -32767);
    }
}
