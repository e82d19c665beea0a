//! The state of one sample: a buffer per value and step of a chunk, the membranes, the output
//! spike counts and the scratch space of the ops; and where a sample's results go.

use super::network::{Kind, Network};
use crate::events::Binned;
use crate::kernels;
use crate::numeric::Value;

// ---------------------------------------------------------------------------------------------
// Per-sample state

/// One value at one step: dense elements, plus the nonzero indices (ascending) for sparse
/// values. `dirty` means `nz` does not describe the nonzeros of `d` (a dense write happened).
#[derive(Debug, Clone, Default)]
pub(crate) struct Buf<V> {
    pub(crate) d: Vec<V>,
    pub(crate) nz: Vec<u32>,
    pub(crate) dirty: bool,
}

impl<V: Value> Buf<V> {
    /// After a dense write: a sparse-kind value collects its nonzero list, any other kind is
    /// marked dirty (to be zeroed before its next sparse write).
    pub(crate) fn finish(&mut self, kind: Kind) {
        if kind == Kind::Sparse {
            kernels::collect_nonzero(&self.d, &mut self.nz);
            self.dirty = false;
        } else {
            self.dirty = true;
        }
    }

    /// Zeroes the value before a sparse write.
    pub(crate) fn clear_sparse(&mut self) {
        if self.dirty {
            self.d.fill(V::ZERO);
        } else {
            for &i in &self.nz {
                if let Some(d) = self.d.get_mut(i as usize) {
                    *d = V::ZERO;
                }
            }
        }
        self.nz.clear();
        self.dirty = false;
    }
}

/// Scratch buffers, sized once per state.
#[derive(Debug, Clone)]
pub(crate) struct Scratch<V: Value> {
    /// Active input indices per step of a chunk (dense inputs).
    pub(crate) rows: Vec<Vec<u32>>,
    /// Active input values per step of a chunk.
    pub(crate) xs: Vec<Vec<V>>,
    pub(crate) xs_w: Vec<V::Wide>,
    /// Wide accumulator; all zeros between uses where noted.
    pub(crate) acc_w: Vec<V::Wide>,
    pub(crate) mark: Vec<bool>,
    pub(crate) touched: Vec<u32>,
    /// Gather conv: where each input position's active channels start in the active list.
    pub(crate) starts: Vec<u32>,
    /// Active lists of the parts of a neuron layer split across threads.
    pub(crate) par_nz: Vec<Vec<u32>>,
    /// Dense int8 conv: the step's input as padded bytes, and which padded positions are
    /// occupied (`crate::kernels::vnni`).
    pub(crate) packed_x: Vec<u8>,
    pub(crate) packed_occ: Vec<u8>,
}

/// The state of one sample: every value (one buffer per step of a chunk), the membranes, the
/// output spike counts.
#[derive(Debug, Clone)]
pub(crate) struct SampleState<V: Value> {
    /// `[slot][step in chunk]`; static slots use index 0.
    pub(crate) bufs: Vec<Vec<Buf<V>>>,
    /// Membranes of spiking neurons (empty for other nodes; integrate keeps its membrane as its
    /// value, in every step's buffer of its slot).
    pub(crate) mem: Vec<Vec<V>>,
    /// Spikes of the output node per (internal) element, all steps so far.
    pub(crate) out_count: Vec<u64>,
    pub(crate) steps_done: usize,
    pub(crate) sc: Scratch<V>,
    /// Slots of delay nodes: zero again at step 0.
    pub(crate) delay_slots: Vec<usize>,
}

impl<V: Value> SampleState<V> {
    pub(crate) fn new(net: &Network<V>) -> Self {
        let chunk = net.chunk.max(1);
        let bufs = net
            .slot_len
            .iter()
            .map(|&n| {
                (0..chunk)
                    .map(|_| Buf {
                        d: vec![V::ZERO; n],
                        nz: Vec::new(),
                        dirty: false,
                    })
                    .collect()
            })
            .collect();
        let mem = net
            .nodes
            .iter()
            .map(|n| {
                if n.kind.has_state() {
                    vec![V::ZERO; n.len]
                } else {
                    Vec::new()
                }
            })
            .collect();
        let m = net.max_len;
        SampleState {
            bufs,
            mem,
            out_count: vec![0; net.nodes[net.output].len],
            steps_done: 0,
            sc: Scratch {
                rows: vec![Vec::new(); chunk],
                xs: vec![Vec::new(); chunk],
                xs_w: Vec::with_capacity(m),
                acc_w: vec![V::Wide::default(); m],
                mark: vec![false; m],
                touched: Vec::with_capacity(m),
                starts: Vec::new(),
                par_nz: Vec::new(),
                packed_x: Vec::new(),
                packed_occ: Vec::new(),
            },
            delay_slots: net.delays.iter().map(|d| d.dst).collect(),
        }
    }

    /// Back to step 0 (buffers keep their contents: every value is rewritten before it is
    /// read, and sparse writers clear what they wrote last; delays are zeroed).
    pub(crate) fn reset(&mut self) {
        for m in &mut self.mem {
            m.fill(V::ZERO);
        }
        self.out_count.fill(0);
        self.steps_done = 0;
        for &s in &self.delay_slots {
            for b in &mut self.bufs[s] {
                b.d.fill(V::ZERO);
                b.nz.clear();
                b.dirty = false;
            }
        }
    }
}

/// Input of one sample.
pub(crate) enum SampleInput<'a, V> {
    /// One sample in torch layout, applied at every step.
    Static(&'a [V]),
    /// `[T][n]` per-step input in torch layout.
    Frames(&'a [V]),
    /// Binned events.
    Events(Binned),
}

/// Where one sample writes its results (slices of the batch arrays, `[L][T]` for counts).
pub(crate) struct SampleOut<'a> {
    pub(crate) spikes: &'a mut [u64],
    pub(crate) sops: &'a mut [u64],
    pub(crate) macs: &'a mut [u64],
    pub(crate) aux: &'a mut [u64],
    pub(crate) su: &'a mut [u64],
    pub(crate) out_sum: &'a mut [f64],
    /// Per recorded node: `[T][n]` (torch order).
    pub(crate) rec: Vec<&'a mut [u8]>,
}

/// A node whose spikes are recorded: node index, internal -> torch index map.
pub(crate) struct RecSpec {
    pub(crate) node: usize,
    pub(crate) map: Vec<u32>,
}
