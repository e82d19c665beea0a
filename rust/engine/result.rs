//! The results of a run: outputs, predictions, exact counts, recorded spikes; how they are
//! allocated (bounded before allocating) and split into one slice per sample.

use super::network::Network;
use super::state::{RecSpec, SampleOut};
use crate::error::{zeros, Result, SnnError};

/// Exact operation counts, each `[B][L][T]` (row-major).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub spikes: Vec<u64>,
    pub sops: Vec<u64>,
    pub macs: Vec<u64>,
    pub aux_ops: Vec<u64>,
    pub state_updates: Vec<u64>,
}

/// Spikes of one recorded node: `data` is `[B][T][*shape]` in torch layout, 0/1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// Result of a run (docs/model-format.md §4-5).
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    pub batch: usize,
    pub steps: usize,
    pub n_nodes: usize,
    pub n_out: usize,
    /// `[B][n_out]`: spike count / steps (neuron output) or `V / steps` (integrate).
    pub output: Vec<f64>,
    /// `[B][n_out]`: spike count over the steps, or the membrane `V` (integrate).
    pub output_sum: Vec<f64>,
    /// `[B]`: argmax of `output`, first index on ties.
    pub prediction: Vec<i64>,
    pub counts: Counts,
    pub record: Vec<Recording>,
}

pub(crate) fn finish_outputs(res: &mut RunResult, steps_total: &[usize]) {
    let n = res.n_out;
    if n == 0 {
        return;
    }
    for (b, ((out, sums), pred)) in res
        .output
        .chunks_mut(n)
        .zip(res.output_sum.chunks(n))
        .zip(res.prediction.iter_mut())
        .enumerate()
    {
        let s = steps_total.get(b).copied().unwrap_or(1).max(1) as f64;
        // argmax, the first index on ties
        let mut best = (0usize, f64::NEG_INFINITY);
        for (k, (o, &sum)) in out.iter_mut().zip(sums).enumerate() {
            *o = sum / s;
            if k == 0 || *o > best.1 {
                best = (k, *o);
            }
        }
        *pred = best.0 as i64;
    }
}

/// The zeroed result arrays of a run (sizes checked against the memory limit by the caller,
/// see `limits`); an allocation failure is an error, not an abort.
pub(crate) fn new_result<V>(
    net: &Network<V>,
    batch: usize,
    steps: usize,
    rec: &[RecSpec],
) -> Result<RunResult> {
    let l = net.nodes.len();
    let n_out = net.nodes[net.output].len;
    let too_large = || SnnError::limit("steps", "batch x nodes x steps overflows");
    let per = l
        .checked_mul(steps)
        .and_then(|v| v.checked_mul(batch))
        .ok_or_else(too_large)?;
    let outs = batch.checked_mul(n_out).ok_or_else(too_large)?;
    let mut record = Vec::with_capacity(rec.len());
    for r in rec {
        let node = &net.nodes[r.node];
        let size = node
            .len
            .checked_mul(steps)
            .and_then(|v| v.checked_mul(batch))
            .ok_or_else(|| SnnError::limit("record", "the recording size overflows"))?;
        record.push(Recording {
            name: node.name.clone(),
            shape: node.shape.clone(),
            data: zeros(size, "record", &format!("the recording of '{}'", node.name))?,
        });
    }
    let counts = |what: &str| zeros::<u64>(per, "steps", what);
    Ok(RunResult {
        batch,
        steps,
        n_nodes: l,
        n_out,
        output: zeros(outs, "steps", "outputs")?,
        output_sum: zeros(outs, "steps", "outputs")?,
        prediction: zeros(batch, "steps", "predictions")?,
        counts: Counts {
            spikes: counts("spike counts")?,
            sops: counts("sop counts")?,
            macs: counts("mac counts")?,
            aux_ops: counts("aux_op counts")?,
            state_updates: counts("state_update counts")?,
        },
        record,
    })
}

/// Splits the batch arrays of `res` into per-sample output slices.
pub(crate) fn split_outputs<'a>(
    res: &'a mut RunResult,
    steps: usize,
) -> Result<Vec<SampleOut<'a>>> {
    let b = res.batch;
    let lt = res.n_nodes * steps;
    let n_out = res.n_out;
    let mut rec_iters: Vec<_> = res
        .record
        .iter_mut()
        .map(|r| {
            let per = r.data.len() / b.max(1);
            r.data.chunks_mut(per.max(1))
        })
        .collect();
    let c = &mut res.counts;
    let mut outs = Vec::with_capacity(b);
    let mut it = c
        .spikes
        .chunks_mut(lt.max(1))
        .zip(c.sops.chunks_mut(lt.max(1)))
        .zip(c.macs.chunks_mut(lt.max(1)))
        .zip(c.aux_ops.chunks_mut(lt.max(1)))
        .zip(c.state_updates.chunks_mut(lt.max(1)))
        .zip(res.output_sum.chunks_mut(n_out.max(1)));
    for _ in 0..b {
        let (((((spikes, sops), macs), aux), su), out_sum) = it
            .next()
            .ok_or_else(|| SnnError::Internal("result arrays too short".into()))?;
        let mut rec = Vec::with_capacity(rec_iters.len());
        for r in rec_iters.iter_mut() {
            rec.push(
                r.next()
                    .ok_or_else(|| SnnError::Internal("record arrays too short".into()))?,
            );
        }
        outs.push(SampleOut {
            spikes,
            sops,
            macs,
            aux,
            su,
            out_sum,
            rec,
        });
    }
    Ok(outs)
}
