//! The value kind (static, sparse, dense) of every slot per input kind, computed once when a
//! network is compiled (doc §3).

use crate::engine::network::{DelayLink, Kind, Node, Op, Plan};
use crate::format::OpKind;

/// Value kinds of every slot when the input has kind `input` (doc §3). A delay has its
/// source's kind (dense for a static source: zero at the first step, then the value); as a
/// source may depend on its delay, delays start sparse and turn dense until that holds.
pub(super) fn plan<V>(
    nodes: &[Node<V>],
    delays: &[DelayLink],
    n_slots: usize,
    input: Kind,
) -> Plan {
    let mut delay_kind: Vec<Kind> = vec![Kind::Sparse; delays.len()];
    loop {
        let p = plan_once(nodes, delays, &delay_kind, n_slots, input);
        let mut changed = false;
        for (d, dk) in delays.iter().zip(delay_kind.iter_mut()) {
            let want = match p.slot_kind[d.src] {
                Kind::Sparse => Kind::Sparse,
                _ => Kind::Dense,
            };
            if want != *dk {
                *dk = want;
                changed = true;
            }
        }
        if !changed {
            return p;
        }
    }
}

fn plan_once<V>(
    nodes: &[Node<V>],
    delays: &[DelayLink],
    delay_kind: &[Kind],
    n_slots: usize,
    input: Kind,
) -> Plan {
    let mut k = vec![Kind::Dense; n_slots];
    k[0] = input;
    for (ni, n) in nodes.iter().enumerate() {
        if matches!(n.op, Op::Delay) {
            let i = delays.iter().position(|d| d.node == ni).unwrap_or(0);
            k[n.slot] = delay_kind.get(i).copied().unwrap_or(Kind::Dense);
            continue;
        }
        let ins: Vec<Kind> = n.inputs.iter().map(|&s| k[s]).collect();
        let all = |want: Kind| ins.iter().all(|&x| x == want);
        let kind = match &n.op {
            Op::Flatten => ins[0],
            Op::Linear(_) | Op::Conv(_) => {
                if all(Kind::Static) {
                    Kind::Static
                } else {
                    Kind::Dense
                }
            }
            Op::Pool(_) | Op::Add(_) => {
                if all(Kind::Static) {
                    Kind::Static
                } else if all(Kind::Sparse) {
                    Kind::Sparse
                } else {
                    Kind::Dense
                }
            }
            Op::Scale(s) => {
                if all(Kind::Static) {
                    Kind::Static
                } else if all(Kind::Sparse) && s.zero_shift {
                    Kind::Sparse
                } else {
                    Kind::Dense
                }
            }
            Op::Neuron(_) => {
                if n.kind == OpKind::Integrate {
                    Kind::Dense
                } else {
                    Kind::Sparse
                }
            }
            Op::Delay => Kind::Dense,
        };
        k[n.slot] = kind;
    }
    Plan { slot_kind: k }
}
