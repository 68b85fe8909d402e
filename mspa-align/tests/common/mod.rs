//! Shared test helpers: author features built from a synthetic world's latent
//! attributes (a fast stand-in for the media extractor).

#![allow(dead_code)]

use mspa_align::data::SplitMix64;
use mspa_core::synth::Truth;
use mspa_core::{Dataset, ExternalId};
use mspa_modal::features::AuthorFeatures;

fn one_hot(out: &mut Vec<f32>, k: usize, i: usize) {
    out.extend((0..k).map(|j| if j == i { 1.0 } else { 0.0 }));
}

/// Features from the world's latent attributes, each shown in the modality where the
/// world shows it, plus noise (a stand-in for the media extractor).
pub fn features(ds: &Dataset, truth: &Truth, seed: u64) -> Vec<AuthorFeatures> {
    let mut rng = SplitMix64::new(seed);
    let mut out = vec![AuthorFeatures::empty([21, 13, 21]); ds.n_authors()];
    for a in truth.authors() {
        let id = ds.author_by_external(&ExternalId::parse(&a.id)).unwrap();
        let at = &a.attributes;
        let (mut v, mut au, mut t) = (Vec::new(), Vec::new(), Vec::new());
        one_hot(&mut v, 8, at.category as usize);
        one_hot(&mut v, 5, at.visuals as usize);
        one_hot(&mut v, 4, at.format as usize);
        one_hot(&mut v, 4, at.energy as usize);
        one_hot(&mut au, 5, at.audio as usize);
        one_hot(&mut au, 4, at.energy as usize);
        one_hot(&mut au, 4, 0);
        one_hot(&mut t, 8, at.category as usize);
        one_hot(&mut t, 4, at.language as usize);
        one_hot(&mut t, 4, at.format as usize);
        one_hot(&mut t, 5, 0);
        for x in v.iter_mut().chain(au.iter_mut()).chain(t.iter_mut()) {
            *x += 0.3 * rng.normal() as f32;
        }
        let f = &mut out[id.index()];
        f.present = [a.has_frames, a.has_audio, true];
        if a.has_frames {
            f.visual = v;
        }
        if a.has_audio {
            f.audio = au;
        }
        f.text = t;
    }
    out
}
