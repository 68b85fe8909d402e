//! The multi-hot view of a preference: one 0/1 entry per vocabulary value (the target of
//! the learned composer's value head, and the embedding of composers without a text
//! encoder).

use super::{PreferenceFields, PreferenceSchema};

impl PreferenceSchema {
    /// The size of [`PreferenceSchema::multi_hot`]: all vocabulary values of all fields
    /// (and slots).
    pub fn n_values(&self) -> usize {
        self.fields.iter().map(|f| f.n_values()).sum()
    }

    /// A multi-hot vector over every vocabulary value (field by field, slot by slot):
    /// 1 for each listed known value, 0 elsewhere; unknown values are ignored.
    pub fn multi_hot(&self, p: &PreferenceFields) -> Vec<f32> {
        let mut out = vec![0.0f32; self.n_values()];
        for (k, values) in p.values.iter().enumerate().take(self.fields.len()) {
            let slots = self.fields[k].slot_values();
            for (i, v) in values.iter().enumerate() {
                let slot = if self.fields[k].is_list() { 0 } else { i };
                if let Some(idx) = self.value_index(k, slot, v) {
                    let before: usize = slots[..slot].iter().map(|s| s.len()).sum();
                    out[self.hot_offset[k] + before + idx] = 1.0;
                }
            }
        }
        out
    }
}
