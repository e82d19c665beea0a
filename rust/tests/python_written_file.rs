//! The crate alone reads network files that the Python package wrote
//! (`tests/fixtures/make_fixtures.py`) and reproduces the torch reference's results stored
//! beside them: predictions, outputs and per-layer spike/SOP/MAC totals.

use std::path::PathBuf;

use serde_json::Value;
use snnsim::{Data, Model, Precision};

fn fixture(name: &str) -> (Model, Value) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let model = Model::load(dir.join(format!("{name}.snn.safetensors")))
        .unwrap_or_else(|e| panic!("loading {name}: {e}"));
    let text =
        std::fs::read_to_string(dir.join(format!("{name}.expected.json"))).expect("expected json");
    (model, serde_json::from_str(&text).expect("valid json"))
}

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("u64"))
        .collect()
}

fn check(name: &str) {
    let (model, want) = fixture(name);
    let steps = want["steps"].as_u64().expect("steps") as usize;
    let input = want["input"].as_array().expect("input");
    let result = match model.info().precision {
        Precision::Int => {
            let x: Vec<i32> = input
                .iter()
                .map(|v| v.as_i64().expect("int input") as i32)
                .collect();
            model.run_static(Data::I32(&x), steps, &[], Some(1))
        }
        Precision::Float32 => {
            let x: Vec<f32> = input
                .iter()
                .map(|v| v.as_f64().expect("float input") as f32)
                .collect();
            model.run_static(Data::F32(&x), steps, &[], Some(1))
        }
    }
    .expect("run");

    let names: Vec<String> = want["node_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(model.info().node_names, names, "{name}: node order");
    let pred: Vec<i64> = want["prediction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(result.prediction, pred, "{name}: predictions");
    let out: Vec<f64> = want["output_sum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(result.output_sum, out, "{name}: output sums");

    let (b, l, t) = (result.batch, result.n_nodes, result.steps);
    let per_layer = |flat: &[u64]| -> Vec<u64> {
        (0..l)
            .map(|li| {
                (0..b)
                    .flat_map(|bi| (0..t).map(move |ti| (bi * l + li) * t + ti))
                    .map(|i| flat[i])
                    .sum()
            })
            .collect()
    };
    let totals = &want["per_layer_totals"];
    assert_eq!(
        per_layer(&result.counts.spikes),
        u64s(&totals["spikes"]),
        "{name}: spikes"
    );
    assert_eq!(
        per_layer(&result.counts.sops),
        u64s(&totals["sops"]),
        "{name}: sops"
    );
    assert_eq!(
        per_layer(&result.counts.macs),
        u64s(&totals["macs"]),
        "{name}: macs"
    );
}

#[test]
fn int8_conv_residual_network_written_by_python() {
    check("conv_int8");
}

#[test]
fn float32_mlp_written_by_python() {
    check("mlp_float32");
}
