//! What a CPU model's step gives each sequence from its LM head's rows (`[wanted,
//! vocab]`, one row for each sequence that wants logits): the rows themselves
//! (`forward`), or, for a greedy sequence (`Pick::Argmax`), its token taken from the row
//! where it lies (`step`): no vocabulary-sized copy of the row (1.5 MB a step at 8
//! sequences of a 49k vocabulary) and no argmax on the engine's thread.

use crate::top_logits::argmax;
use crate::{BatchInput, ModelError, Next, Pick};
use candle_core::{CpuStorage, Storage, Tensor};
use rayon::prelude::*;

/// The rows of the sequences that want logits, `wanted` (their indices in `batch.seqs`,
/// in the rows' order), as `forward` returns them: an empty vector for the others.
pub(crate) fn logits_of(
    rows: Option<(Tensor, Vec<usize>)>,
    num_seqs: usize,
) -> Result<Vec<Vec<f32>>, ModelError> {
    let mut logits = vec![Vec::new(); num_seqs];
    if let Some((rows, wanted)) = rows {
        for (s, row) in wanted.into_iter().zip(rows.to_vec2::<f32>()?) {
            logits[s] = row;
        }
    }
    Ok(logits)
}

/// As `logits_of`, with each greedy sequence's token instead of its row (the rows in
/// parallel); rows off the CPU are copied out as they are.
pub(crate) fn picks_of(
    rows: Option<(Tensor, Vec<usize>)>,
    batch: &BatchInput,
) -> Result<Vec<Next>, ModelError> {
    let mut next = vec![Next::Logits(Vec::new()); batch.seqs.len()];
    let Some((rows, wanted)) = rows else {
        return Ok(next);
    };
    let vocab = rows.dim(1)?;
    let (storage, layout) = rows.storage_and_layout();
    let values = match (&*storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(v)), Some((start, end))) => &v[start..end],
        _ => {
            drop(storage);
            for (s, row) in wanted.into_iter().zip(rows.to_vec2::<f32>()?) {
                next[s] = Next::Logits(row);
            }
            return Ok(next);
        }
    };
    let picked: Vec<Next> = wanted
        .par_iter()
        .zip(values.par_chunks(vocab.max(1)))
        .map(|(&s, row)| match batch.seqs.get(s).map(|q| q.pick) {
            Some(Pick::Argmax) => Next::Token(argmax(row)),
            _ => Next::Logits(row.to_vec()),
        })
        .collect();
    for (s, n) in wanted.into_iter().zip(picked) {
        next[s] = n;
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeqInput;
    use candle_core::Device;

    fn batch(picks: [Pick; 3]) -> BatchInput {
        BatchInput {
            seqs: picks
                .into_iter()
                .map(|pick| SeqInput {
                    block_table: Vec::new(),
                    num_computed: 0,
                    num_new: 1,
                    needs_logits: true,
                    pick,
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Sequences 0 and 2 want logits (rows 0 and 1): a greedy one gets the first index
    /// of its row's largest value, the others their rows, the one that wanted none an
    /// empty row; `forward`'s form gives every wanted row whole.
    #[test]
    fn greedy_sequences_get_their_token_the_others_their_row() {
        let rows = vec![0.5f32, 3.0, -1.0, 3.0, 0.0, 2.0, f32::NAN, 2.5, -4.0, 1.0];
        let t = || Tensor::from_vec(rows.clone(), (2, 5), &Device::Cpu).expect("rows");
        let bits = |n: &Next| match n {
            Next::Logits(v) => v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            other => panic!("{other:?} is no row"),
        };
        let row_bits = |r: &[f32]| r.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let b = batch([Pick::Argmax, Pick::Argmax, Pick::Row]);
        let next = picks_of(Some((t(), vec![0, 2])), &b).expect("picks");
        assert_eq!(next[0], Next::Token(1), "the first of two largest");
        assert_eq!(next[1], Next::Logits(Vec::new()));
        assert_eq!(bits(&next[2]), row_bits(&rows[5..]));
        let b = batch([Pick::Row, Pick::Row, Pick::Argmax]);
        let next = picks_of(Some((t(), vec![0, 2])), &b).expect("picks");
        assert_eq!(bits(&next[0]), row_bits(&rows[..5]));
        assert_eq!(next[2], Next::Token(2), "NaN ignored");
        let all = logits_of(Some((t(), vec![0, 2])), 3).expect("logits");
        assert_eq!(row_bits(&all[0]), row_bits(&rows[..5]));
        assert!(all[1].is_empty());
        assert_eq!(row_bits(&all[2]), row_bits(&rows[5..]));
        assert_eq!(picks_of(None, &b).expect("none").len(), 3);
    }
}
