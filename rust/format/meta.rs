//! The training metadata of a network file (metadata key `"snnsim.meta"`,
//! docs/model-format.md §1.1). The engine does not use it, but it validates it, so that the one
//! validator of a file covers everything `snnsim.load` reads: every field is optional, a
//! malformed one is an error naming it.

use serde_json::{Map, Value as Json};

use super::graph::Graph;
use super::json::json_type;
use crate::error::{Result, SnnError};

/// Metadata key holding the training metadata.
pub(crate) const META_KEY: &str = "snnsim.meta";

fn err(msg: impl Into<String>) -> SnnError {
    SnnError::File(format!("metadata '{META_KEY}': {}", msg.into()))
}

fn pos_int(v: &Json) -> Option<u64> {
    v.as_u64().filter(|&n| n >= 1 && (v.is_u64() || v.is_i64()))
}

/// A JSON number (not a bool), as f64.
fn number(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// Validates the metadata text `text` of the graph `g`.
pub(crate) fn check_meta(text: &str, g: &Graph) -> Result<()> {
    let root: Json =
        serde_json::from_str(text).map_err(|e| err(format!("is not valid JSON: {e}")))?;
    let obj = root
        .as_object()
        .ok_or_else(|| err(format!("must be a JSON object, got {}", json_type(&root))))?;
    if let Some(v) = obj.get("version") {
        if !(v.is_u64() && v.as_u64() == Some(1)) {
            return Err(err(format!("unsupported field 'version' {v} (expected 1)")));
        }
    }
    if let Some(t) = obj.get("T") {
        if pos_int(t).is_none() {
            return Err(err(format!(
                "field 'T' must be an int >= 1 (time steps), got {t}"
            )));
        }
    }
    match obj.get("preprocess") {
        None | Some(Json::Null) => {}
        Some(p) => check_preprocess(p, &g.input.shape)?,
    }
    match obj.get("modules") {
        None | Some(Json::Null) => {}
        Some(Json::Object(m)) => {
            let mut stray: Vec<&str> = Vec::new();
            for (k, v) in m {
                let ok = v
                    .as_array()
                    .is_some_and(|a| a.iter().all(|x| x.is_string()));
                if !ok {
                    return Err(err(
                        "field 'modules' must map node names to lists of torch module names",
                    ));
                }
                if !g.nodes.iter().any(|n| n.name == *k) {
                    stray.push(k);
                }
            }
            if !stray.is_empty() {
                stray.sort_unstable();
                stray.truncate(5);
                return Err(err(format!(
                    "field 'modules' names unknown nodes {stray:?}"
                )));
            }
        }
        Some(_) => {
            return Err(err(
                "field 'modules' must map node names to lists of torch module names",
            ))
        }
    }
    match obj.get("source") {
        None | Some(Json::Null) | Some(Json::Object(_)) => {}
        Some(_) => return Err(err("field 'source' must be a JSON object")),
    }
    Ok(())
}

fn check_preprocess(p: &Json, input_shape: &[usize]) -> Result<()> {
    let pre: &Map<String, Json> = p.as_object().ok_or_else(|| {
        err(format!(
            "field 'preprocess' must be a JSON object, got {}",
            json_type(p)
        ))
    })?;
    const KNOWN: [&str; 5] = ["input_shape", "rescale", "mean", "std", "flatten"];
    let mut unknown: Vec<&str> = pre
        .keys()
        .map(String::as_str)
        .filter(|k| !KNOWN.contains(k))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        return Err(err(format!(
            "field 'preprocess' has unknown keys {unknown:?}"
        )));
    }
    let numel: u128 = input_shape.iter().map(|&d| d as u128).product();
    let shape: Vec<u64> = match pre.get("input_shape") {
        None => input_shape.iter().map(|&d| d as u64).collect(),
        Some(v) => {
            let dims: Option<Vec<u64>> = v
                .as_array()
                .filter(|a| !a.is_empty())
                .and_then(|a| a.iter().map(pos_int).collect());
            dims.ok_or_else(|| {
                err(format!(
                    "field 'preprocess.input_shape' must be a list of positive ints, got {v}"
                ))
            })?
        }
    };
    let n = shape
        .iter()
        .try_fold(1u128, |a, &d| a.checked_mul(d as u128));
    if n != Some(numel) {
        return Err(err(format!(
            "field 'preprocess.input_shape' {shape:?} does not hold the {numel} values of the \
             graph's input shape {input_shape:?}"
        )));
    }
    if let Some(r) = pre.get("rescale") {
        if !number(r).is_some_and(|x| x.is_finite() && x != 0.0) {
            return Err(err(format!(
                "field 'preprocess.rescale' must be a finite nonzero number, got {r}"
            )));
        }
    }
    let channels = if shape.len() == 3 { shape[0] } else { 1 };
    for key in ["mean", "std"] {
        match pre.get(key) {
            None | Some(Json::Null) => {}
            Some(v) => {
                let vals: Option<Vec<f64>> = v
                    .as_array()
                    .filter(|a| a.len() == 1 || a.len() as u64 == channels)
                    .and_then(|a| a.iter().map(number).collect());
                let ok = vals.is_some_and(|xs| {
                    xs.iter()
                        .all(|x| x.is_finite() && (key == "mean" || *x > 0.0))
                });
                if !ok {
                    let rule = if key == "std" {
                        "positive numbers"
                    } else {
                        "finite numbers"
                    };
                    return Err(err(format!(
                        "field 'preprocess.{key}' must be a list of 1 or {channels} {rule} (one \
                         per channel), got {v}"
                    )));
                }
            }
        }
    }
    if let Some(f) = pre.get("flatten") {
        if !f.is_boolean() {
            return Err(err(format!(
                "field 'preprocess.flatten' must be true or false, got {f}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::parse::parse_graph;

    fn graph() -> Graph {
        parse_graph(
            r#"{"version": 1, "precision": "float32",
                "input": {"shape": [1, 4, 4], "kind": "static"},
                "nodes": [{"name": "f", "op": "flatten", "inputs": ["input"]},
                          {"name": "out", "op": "integrate", "inputs": ["f"]}],
                "output": "out"}"#,
        )
        .unwrap()
    }

    #[test]
    fn valid_metadata() {
        let g = graph();
        for ok in [
            "{}",
            r#"{"version": 1, "T": 5, "source": {"x": 1}, "modules": null, "extra": [1]}"#,
            r#"{"preprocess": {"input_shape": [16], "rescale": 0.5, "mean": [0.1],
                "std": [0.3], "flatten": true}, "modules": {"out": ["fc"]}}"#,
            r#"{"preprocess": null}"#,
        ] {
            check_meta(ok, &g).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn malformed_fields_are_named() {
        let g = graph();
        for (bad, want) in [
            ("[]", "must be a JSON object"),
            ("{", "not valid JSON"),
            (r#"{"version": 1.0}"#, "'version'"),
            (r#"{"version": true}"#, "'version'"),
            (r#"{"T": 0}"#, "'T'"),
            (r#"{"T": 2.0}"#, "'T'"),
            (r#"{"T": null}"#, "'T'"),
            (r#"{"preprocess": {"bogus": 1}}"#, "unknown keys"),
            (
                r#"{"preprocess": {"input_shape": [15]}}"#,
                "does not hold the 16 values",
            ),
            (
                r#"{"preprocess": {"input_shape": [4294967296, 4294967296]}}"#,
                "does not hold",
            ),
            (r#"{"preprocess": {"rescale": 0}}"#, "'preprocess.rescale'"),
            (
                r#"{"preprocess": {"rescale": true}}"#,
                "'preprocess.rescale'",
            ),
            (r#"{"preprocess": {"std": [0.0]}}"#, "'preprocess.std'"),
            (r#"{"preprocess": {"mean": [1, 2]}}"#, "'preprocess.mean'"),
            (r#"{"preprocess": {"flatten": 1}}"#, "'preprocess.flatten'"),
            (
                r#"{"modules": {"ghost": ["x"]}}"#,
                "unknown nodes [\"ghost\"]",
            ),
            (r#"{"modules": {"out": "x"}}"#, "'modules'"),
            (r#"{"source": "dsr"}"#, "'source'"),
        ] {
            let e = check_meta(bad, &g).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("snnsim.meta"), "{bad}: {e}");
        }
    }
}
