//! Model-file reader and validator: arbitrary bytes go through the safetensors container, the
//! graph JSON and the tensor rules; a file that validates is compiled and run for two steps.
//! Nothing may panic, abort or allocate beyond the memory limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snnsim::{Data, InputKind, Model, Precision};

fuzz_target!(|data: &[u8]| {
    // libFuzzer's RSS limit is 2 GiB: keep every engine allocation far below it.
    snnsim::set_memory_limit(Some(256 << 20)).unwrap();
    let Ok(mf) = snnsim::read_model_bytes(data) else {
        return;
    };
    let Ok(model) = Model::from_model_file(&mf) else {
        return;
    };
    let info = model.info();
    let n: usize = info.input_shape.iter().product();
    if n > 1 << 12 {
        return;
    }
    let names = info.node_names.clone();
    let record: Vec<String> = names
        .iter()
        .zip(&info.node_ops)
        .filter(|(_, op)| op.starts_with("dsr") || op.starts_with("dspike"))
        .map(|(n, _)| n.clone())
        .take(1)
        .collect();
    match (info.precision, info.input_kind) {
        (Precision::Float32, InputKind::Static) => {
            let x = vec![0.5f32; n];
            let _ = model.run_static(Data::F32(&x), 2, &record, Some(1));
        }
        (Precision::Int, InputKind::Static) => {
            let x = vec![3i32; n];
            let _ = model.run_static(Data::I32(&x), 2, &record, Some(1));
        }
        (Precision::Float32, InputKind::Events) => {
            let f = vec![1.0f32; 2 * n];
            let _ = model.run_frames(Data::F32(&f), 1, 2, &record, Some(1));
        }
        (Precision::Int, InputKind::Events) => {
            let f = vec![1i32; 2 * n];
            let _ = model.run_frames(Data::I32(&f), 1, 2, &record, Some(1));
        }
    }
});
