//! Tests of graph parsing, shape inference and tensor validation.

use std::collections::HashMap;

use serde_json::{json, Value as Json};

use super::parse::parse_graph;
use super::tensors::take_params;
use super::*;

fn base() -> Json {
    json!({
        "version": 1,
        "precision": "float32",
        "input": {"shape": [2, 6, 6], "kind": "static"},
        "nodes": [
            {"name": "c1", "op": "conv2d", "inputs": ["input"], "in_channels": 2,
             "out_channels": 3, "kernel": [3, 3], "stride": [1, 1], "padding": [1, 1]},
            {"name": "n1", "op": "dsr_if", "inputs": ["c1"]},
            {"name": "p1", "op": "sumpool2d", "inputs": ["n1"], "kernel": [2, 2], "stride": [2, 2]},
            {"name": "f", "op": "flatten", "inputs": ["p1"]},
            {"name": "fc", "op": "linear", "inputs": ["f"], "in_features": 27, "out_features": 4},
            {"name": "out", "op": "integrate", "inputs": ["fc"]}
        ],
        "output": "out"
    })
}

fn err_of(g: &Json) -> String {
    parse_graph(&g.to_string()).unwrap_err().to_string()
}

#[test]
fn valid_graph_shapes_and_order() {
    let g = parse_graph(&base().to_string()).unwrap();
    let shapes: Vec<Vec<usize>> = g.nodes.iter().map(|n| n.shape.clone()).collect();
    assert_eq!(
        shapes,
        vec![
            vec![3, 6, 6],
            vec![3, 6, 6],
            vec![3, 3, 3],
            vec![27],
            vec![4],
            vec![4]
        ]
    );
    assert_eq!(g.output, 5);
}

#[test]
fn topological_sort_of_shuffled_nodes() {
    let mut j = base();
    let nodes = j["nodes"].as_array_mut().unwrap();
    nodes.reverse();
    let g = parse_graph(&j.to_string()).unwrap();
    let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, vec!["c1", "n1", "p1", "f", "fc", "out"]);
    assert_eq!(g.nodes[g.output].name, "out");
    // inputs are resolved to the sorted positions
    assert_eq!(g.nodes[1].inputs, vec![Src::Node(0)]);
    assert_eq!(g.nodes[0].inputs, vec![Src::Input]);
}

#[test]
fn structural_errors() {
    let mut j = base();
    j["nodes"][1]["inputs"] = json!(["nope"]);
    assert!(err_of(&j).contains("unknown input 'nope'"));

    let mut j = base();
    j["nodes"][2]["name"] = json!("n1");
    assert!(err_of(&j).contains("duplicate node name 'n1'"));

    let mut j = base();
    j["nodes"][0]["name"] = json!("input");
    assert!(err_of(&j).contains("reserved"));

    let mut j = base();
    j["nodes"][0]["name"] = json!("bad name!");
    assert!(err_of(&j).contains("invalid name"));

    let mut j = base();
    j["nodes"][0]["inputs"] = json!(["out"]);
    let e = err_of(&j);
    assert!(e.contains("cycle"), "{e}");

    let mut j = base();
    j["nodes"][1]["op"] = json!("relu");
    assert!(err_of(&j).contains("unknown op 'relu'"));

    let mut j = base();
    j["output"] = json!("fc");
    let e = err_of(&j);
    assert!(
        e.contains("output node 'fc'") && e.contains("linear"),
        "{e}"
    );

    let mut j = base();
    j["output"] = json!("zzz");
    assert!(err_of(&j).contains("unknown node 'zzz'"));

    let mut j = base();
    j["version"] = json!(2);
    assert!(err_of(&j).contains("version"));

    let mut j = base();
    j["precision"] = json!("int8");
    assert!(err_of(&j).contains("precision"));

    assert!(parse_graph("{not json")
        .unwrap_err()
        .to_string()
        .contains("does not parse"));
    assert!(parse_graph("[]").is_err());

    let mut j = base();
    j["nodes"][1]["inputs"] = json!(["c1", "c1"]);
    assert!(err_of(&j).contains("exactly 1 input"));
}

#[test]
fn attribute_and_shape_errors() {
    let mut j = base();
    j["nodes"][4]["in_features"] = json!(26);
    let e = err_of(&j);
    assert!(e.contains("'fc'") && e.contains("in_features = 26"), "{e}");

    let mut j = base();
    j["nodes"][0]["kernel"] = json!([3.0, 3]);
    let e = err_of(&j);
    assert!(e.contains("'c1'") && e.contains("kernel"), "{e}");

    let mut j = base();
    j["nodes"][0]["stride"] = json!([0, 1]);
    assert!(err_of(&j).contains("out of range"));

    let mut j = base();
    j["nodes"][0].as_object_mut().unwrap().remove("padding");
    assert!(err_of(&j).contains("missing attribute 'padding'"));

    let mut j = base();
    j["nodes"][0]["in_channels"] = json!(3);
    assert!(err_of(&j).contains("in_channels"));

    let mut j = base();
    j["nodes"][2]["kernel"] = json!([7, 7]);
    assert!(err_of(&j).contains("larger than the input"));

    // linear on a [C,H,W] input
    let mut j = base();
    j["nodes"][4]["inputs"] = json!(["p1"]);
    assert!(err_of(&j).contains("linear needs a [F] input"));

    // int precision needs weight_bits and f
    let mut j = base();
    j["precision"] = json!("int");
    assert!(err_of(&j).contains("weight_bits"));
    j["nodes"][0]["weight_bits"] = json!(5);
    assert!(err_of(&j).contains("4, 8 or 16"));

    // add of different shapes
    let mut j = base();
    j["nodes"].as_array_mut().unwrap().push(json!(
        {"name": "a", "op": "add", "inputs": ["fc", "f"]}));
    assert!(err_of(&j).contains("identical shapes"));

    // events input must be [C,H,W] with C in {1, 2}
    let mut j = base();
    j["input"] = json!({"shape": [3, 6, 6], "kind": "events"});
    assert!(err_of(&j).contains("C in {1, 2}"));
    let mut j = base();
    j["input"]["scale"] = json!(-1.0);
    assert!(err_of(&j).contains("scale"));
}

#[test]
fn input_signed_field() {
    // absent or null: signed [-128, 127] (files written before the field existed)
    let g = parse_graph(&base().to_string()).unwrap();
    assert!(g.input.signed);
    assert_eq!(g.input.int_range(), (-128, 127));
    let mut j = base();
    j["input"]["signed"] = Json::Null;
    assert!(parse_graph(&j.to_string()).unwrap().input.signed);
    // false: unsigned [0, 255]
    let mut j = base();
    j["input"]["signed"] = json!(false);
    let g = parse_graph(&j.to_string()).unwrap();
    assert!(!g.input.signed);
    assert_eq!(g.input.int_range(), (0, 255));
    j["input"]["signed"] = json!(true);
    assert!(parse_graph(&j.to_string()).unwrap().input.signed);
    // anything but a boolean is refused, naming the field
    for bad in [
        json!(0),
        json!(1),
        json!("false"),
        json!([false]),
        json!(0.5),
    ] {
        let mut j = base();
        j["input"]["signed"] = bad.clone();
        let e = err_of(&j);
        assert!(
            e.contains("input.signed must be true or false"),
            "{bad}: {e}"
        );
    }
}

fn tensor_f32(shape: &[usize], v: f32) -> Tensor {
    Tensor {
        shape: shape.to_vec(),
        data: TensorData::F32(vec![v; shape.iter().product()]),
    }
}

fn good_tensors() -> HashMap<String, Tensor> {
    let mut t = HashMap::new();
    t.insert("c1.weight".into(), tensor_f32(&[3, 2, 3, 3], 0.1));
    t.insert("n1.theta".into(), tensor_f32(&[3], 1.0));
    t.insert("n1.fire".into(), tensor_f32(&[1], 0.5));
    t.insert("fc.weight".into(), tensor_f32(&[4, 27], 0.1));
    t.insert("fc.bias".into(), tensor_f32(&[4], 0.0));
    t
}

#[test]
fn tensor_validation() {
    let g = parse_graph(&base().to_string()).unwrap();
    let p = take_params(&g, good_tensors()).unwrap();
    assert!(p[0].get("weight").is_some() && p[0].get("bias").is_none());

    let check = |edit: &dyn Fn(&mut HashMap<String, Tensor>), want: &str| {
        let mut t = good_tensors();
        edit(&mut t);
        let e = take_params(&g, t).unwrap_err().to_string();
        assert!(e.contains(want), "expected '{want}' in: {e}");
    };
    check(
        &|t| {
            t.remove("n1.theta");
        },
        "node 'n1': tensor 'theta' (stored as 'n1.theta'): missing",
    );
    check(
        &|t| {
            t.insert("fc.weight".into(), tensor_f32(&[27, 4], 0.1));
        },
        "(stored as 'fc.weight'): shape [27, 4] where [4, 27]",
    );
    check(
        &|t| {
            t.insert("fc.bias".into(), tensor_f32(&[1], 0.1));
        },
        "(stored as 'fc.bias'): shape [1] where [4]",
    );
    check(
        &|t| {
            t.insert("n1.fire".into(), tensor_f32(&[2], 0.5));
        },
        "[3] or [1]",
    );
    check(
        &|t| {
            t.insert("n1.theta".into(), tensor_f32(&[3], 0.0));
        },
        "must be > 0",
    );
    check(
        &|t| {
            t.insert("n1.fire".into(), tensor_f32(&[1], f32::NAN));
        },
        "not finite",
    );
    check(
        &|t| {
            t.insert("fc.weight".into(), tensor_f32(&[4, 27], f32::INFINITY));
        },
        "not finite",
    );
    check(
        &|t| {
            t.insert(
                "n1.theta".into(),
                Tensor {
                    shape: vec![3],
                    data: TensorData::I32(vec![1, 1, 1]),
                },
            );
        },
        "dtype I32 (int32) where float32 precision needs F32 (float32)",
    );
    check(
        &|t| {
            t.insert("fc.wieght".into(), tensor_f32(&[4, 27], 0.1));
        },
        "'fc.wieght'",
    );
}

#[test]
fn int_tensor_validation() {
    let mut j = base();
    j["precision"] = json!("int");
    j["nodes"][0]["weight_bits"] = json!(4);
    j["nodes"][4]["weight_bits"] = json!(16);
    let g = parse_graph(&j.to_string()).unwrap();
    let good = || {
        let mut t = HashMap::new();
        t.insert(
            "c1.weight".into(),
            Tensor {
                shape: vec![3, 2, 3, 3],
                data: TensorData::I8(vec![-8; 54]),
            },
        );
        t.insert(
            "n1.theta".into(),
            Tensor {
                shape: vec![1],
                data: TensorData::I32(vec![6]),
            },
        );
        t.insert(
            "n1.fire".into(),
            Tensor {
                shape: vec![1],
                data: TensorData::I32(vec![3]),
            },
        );
        t.insert(
            "fc.weight".into(),
            Tensor {
                shape: vec![4, 27],
                data: TensorData::I16(vec![300; 108]),
            },
        );
        t
    };
    assert!(take_params(&g, good()).is_ok());
    let mut t = good();
    t.insert(
        "c1.weight".into(),
        Tensor {
            shape: vec![3, 2, 3, 3],
            data: TensorData::I8(vec![8; 54]),
        },
    );
    assert!(take_params(&g, t)
        .unwrap_err()
        .to_string()
        .contains("int4 range"));
    let mut t = good();
    t.insert(
        "fc.weight".into(),
        Tensor {
            shape: vec![4, 27],
            data: TensorData::I8(vec![1; 108]),
        },
    );
    let e = take_params(&g, t).unwrap_err().to_string();
    assert!(e.contains("needs I16 (int16) (weight_bits = 16)"), "{e}");
    let mut t = good();
    t.insert(
        "n1.fire".into(),
        Tensor {
            shape: vec![1],
            data: TensorData::I32(vec![0]),
        },
    );
    assert!(take_params(&g, t).unwrap_err().to_string().contains(">= 1"));
    let mut t = good();
    t.insert(
        "n1.fire".into(),
        Tensor {
            shape: vec![1],
            data: TensorData::Other("F64".into()),
        },
    );
    assert!(take_params(&g, t)
        .unwrap_err()
        .to_string()
        .contains("dtype F64"));
}

// The rules on which the Python and Rust validators once disagreed (one validator now: this one).
#[test]
fn rules_once_disputed() {
    let refused = |edit: &dyn Fn(&mut Json), want: &str| {
        let mut j = base();
        edit(&mut j);
        let e = err_of(&j);
        assert!(e.contains(want), "expected '{want}' in: {e}");
    };
    refused(&|j| j["version"] = json!(1.0), "version");
    refused(&|j| j["version"] = json!(true), "version");
    refused(
        &|j| {
            j["input"].as_object_mut().unwrap().remove("kind");
        },
        "kind",
    );
    refused(
        &|j| j["nodes"][0]["stride"] = json!([1, (1i64 << 30) + 1]),
        "out of range",
    );
    // deeply nested JSON is refused by the parser's depth limit (128), never a stack overflow
    for depth in [500usize, 100_000] {
        let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let e = parse_graph(&text).unwrap_err().to_string();
        assert!(
            e.contains("does not parse") && e.contains("recursion"),
            "{e}"
        );
    }
}

#[test]
fn int_rules_once_disputed() {
    let mut j = base();
    j["precision"] = json!("int");
    j["nodes"][2] = json!({"name": "p1", "op": "avgpool2d", "inputs": ["n1"], "kernel": [2, 2],
                           "stride": [2, 2], "m": -1, "f": 2});
    j["nodes"][0]["weight_bits"] = json!(8);
    j["nodes"][4]["weight_bits"] = json!(8);
    let e = err_of(&j);
    assert!(
        e.contains("'m' = -1") && e.contains("[0, 2147483647]"),
        "{e}"
    );
}

fn recurrent_1d() -> Json {
    json!({
        "version": 1,
        "precision": "float32",
        "input": {"shape": [2, 10], "kind": "sequence"},
        "nodes": [
            {"name": "prev", "op": "delay", "inputs": ["sn"], "shape": [8]},
            {"name": "c1", "op": "conv1d", "inputs": ["input"], "in_channels": 2,
             "out_channels": 3, "kernel": 3, "stride": 2, "padding": 1},
            {"name": "n1", "op": "dsr_if", "inputs": ["c1"]},
            {"name": "p1", "op": "sumpool1d", "inputs": ["n1"], "kernel": 2, "stride": 1},
            {"name": "f", "op": "flatten", "inputs": ["p1"]},
            {"name": "fc", "op": "linear", "inputs": ["f"], "in_features": 12, "out_features": 8},
            {"name": "rec", "op": "linear", "inputs": ["prev"], "in_features": 8, "out_features": 8},
            {"name": "sum", "op": "add", "inputs": ["fc", "rec"]},
            {"name": "sn", "op": "dsr_if", "inputs": ["sum"]}
        ],
        "output": "sn"
    })
}

#[test]
fn one_d_ops_and_a_cycle_through_a_delay() {
    let g = parse_graph(&recurrent_1d().to_string()).unwrap();
    let shape = |name: &str| {
        g.nodes
            .iter()
            .find(|n| n.name == name)
            .map(|n| n.shape.clone())
            .unwrap()
    };
    assert_eq!(g.input.kind, InputKind::Sequence);
    assert_eq!(shape("c1"), vec![3, 5]);
    assert_eq!(shape("p1"), vec![3, 4]);
    assert_eq!(shape("prev"), vec![8]);
    // the delay reads a later node: its input is not an edge of the order
    let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names[0], "prev");
    assert_eq!(*names.last().unwrap(), "sn");
}

#[test]
fn delay_and_one_d_errors() {
    let mut j = recurrent_1d();
    j["nodes"][0]["inputs"] = json!(["f"]);
    assert!(
        err_of(&j).contains("differs from the shape [12]"),
        "{}",
        err_of(&j)
    );
    let mut j = recurrent_1d();
    j["nodes"][0]["inputs"] = json!(["prev"]);
    assert!(err_of(&j).contains("do not chain"), "{}", err_of(&j));
    let mut j = recurrent_1d();
    j["nodes"][0]["shape"] = json!("8");
    assert!(err_of(&j).contains("'shape'"), "{}", err_of(&j));
    // a cycle that does not pass through the delay
    let mut j = recurrent_1d();
    j["nodes"][6]["inputs"] = json!(["sn"]);
    assert!(err_of(&j).contains("cycle"), "{}", err_of(&j));
    let mut j = recurrent_1d();
    j["nodes"][1]["kernel"] = json!([3]);
    assert!(err_of(&j).contains("'kernel'"), "{}", err_of(&j));
    let mut j = recurrent_1d();
    j["input"]["shape"] = json!([2, 4, 10]);
    assert!(err_of(&j).contains("[C, L]"), "{}", err_of(&j));
    let mut j = recurrent_1d();
    j["input"]["kind"] = json!("events");
    j["input"]["shape"] = json!([3, 10]);
    assert!(err_of(&j).contains("C in {1, 2}"), "{}", err_of(&j));
    j["input"]["shape"] = json!([2, 10]);
    assert!(parse_graph(&j.to_string()).is_ok());
}
