//! Reading a network file: a safetensors container whose metadata key `"snnsim.graph"` holds
//! the graph JSON (docs/model-format.md §1). Truncated or corrupt input is an error, never a
//! panic.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensorError, SafeTensors};

use super::graph::Graph;
use super::meta::{check_meta, META_KEY};
use super::parse::parse_graph;
use super::tensors::{take_params, NodeParams, Tensor, TensorData};
use crate::error::{Result, SnnError};

/// Metadata key holding the graph JSON.
pub(crate) const GRAPH_KEY: &str = "snnsim.graph";
/// Metadata key holding the format tag.
pub(crate) const FORMAT_KEY: &str = "format";
/// Value of the format tag.
pub(crate) const FORMAT_VALUE: &str = "snnsim";

/// A parsed and validated network file.
#[derive(Debug, Clone)]
pub struct ModelFile {
    pub graph: Graph,
    /// Tensors per node, in the topological order of `graph.nodes`.
    pub params: Vec<NodeParams>,
}

/// Reads and validates a network file from disk.
pub(crate) fn read_path(path: &Path) -> Result<ModelFile> {
    let bytes = std::fs::read(path).map_err(|e| SnnError::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    })?;
    read_bytes(&bytes)
}

/// A container error of the safetensors layer, in words that say what is wrong with the file.
fn container_err(e: SafeTensorError, bytes: &[u8]) -> SnnError {
    let header_len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]));
    let len = bytes.len();
    SnnError::File(match e {
        SafeTensorError::HeaderTooSmall => format!(
            "the file is {len} bytes, too short to be a safetensors file (it starts with an \
             8-byte header length)"
        ),
        SafeTensorError::HeaderTooLarge => format!(
            "header length {} is larger than safetensors allows (100 MB); not a safetensors \
             file?",
            header_len.unwrap_or(0)
        ),
        SafeTensorError::InvalidHeaderLength => format!(
            "header length {} exceeds the file size {len} (truncated, or not a safetensors file)",
            header_len.unwrap_or(0)
        ),
        SafeTensorError::InvalidHeader(_)
        | SafeTensorError::InvalidHeaderStart
        | SafeTensorError::InvalidHeaderDeserialization(_)
        | SafeTensorError::JsonError(_) => format!(
            "the safetensors header is not valid JSON of tensor entries ({e}); not a \
             safetensors file?"
        ),
        other => format!("corrupt tensor data: {other}"),
    })
}

/// Reads and validates a network file from its bytes.
pub fn read_bytes(bytes: &[u8]) -> Result<ModelFile> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| container_err(e, bytes))?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| container_err(e, bytes))?;
    let md = meta.metadata().as_ref().ok_or_else(|| {
        SnnError::File(format!(
            "the file has no metadata (expected the keys '{FORMAT_KEY}' and '{GRAPH_KEY}'; \
             not an snnsim model file?)"
        ))
    })?;
    match md.get(FORMAT_KEY) {
        Some(f) if f == FORMAT_VALUE => {}
        Some(f) => {
            return Err(SnnError::File(format!(
                "metadata key '{FORMAT_KEY}' is '{f}', expected '{FORMAT_VALUE}' (not an snnsim \
                 model file?)"
            )))
        }
        None => {
            return Err(SnnError::File(format!(
                "metadata key '{FORMAT_KEY}' is missing (expected '{FORMAT_VALUE}'; not an \
                 snnsim model file?)"
            )))
        }
    }
    let graph_json = md.get(GRAPH_KEY).ok_or_else(|| {
        SnnError::File(format!(
            "metadata key '{GRAPH_KEY}' (the graph JSON) is missing"
        ))
    })?;
    let graph = parse_graph(graph_json)?;
    if let Some(meta) = md.get(META_KEY) {
        check_meta(meta, &graph)?;
    }

    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (name, view) in st.iter() {
        let data = decode(view.dtype(), view.data());
        tensors.insert(
            name.to_string(),
            Tensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    let params = take_params(&graph, tensors)?;
    Ok(ModelFile { graph, params })
}

/// Little-endian element decoding (the data of a safetensors file need not be aligned).
fn decode(dtype: Dtype, bytes: &[u8]) -> TensorData {
    match dtype {
        Dtype::F32 => TensorData::F32(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        Dtype::I32 => TensorData::I32(
            bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        Dtype::I16 => TensorData::I16(
            bytes
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect(),
        ),
        Dtype::I8 => TensorData::I8(bytes.iter().map(|&b| b as i8).collect()),
        other => TensorData::Other(format!("{other:?}")),
    }
}

/// Builds a network file in memory (used by tests, benches and tools written in Rust).
/// `tensors` are `(name, tensor)` pairs; `graph_json` is the graph JSON text.
pub fn write_bytes(graph_json: &str, tensors: &[(String, Tensor)]) -> Result<Vec<u8>> {
    struct Owned {
        dtype: Dtype,
        shape: Vec<usize>,
        data: Vec<u8>,
    }
    impl safetensors::View for &Owned {
        fn dtype(&self) -> Dtype {
            self.dtype
        }
        fn shape(&self) -> &[usize] {
            &self.shape
        }
        fn data(&self) -> std::borrow::Cow<'_, [u8]> {
            std::borrow::Cow::Borrowed(&self.data)
        }
        fn data_len(&self) -> usize {
            self.data.len()
        }
    }
    let mut owned: Vec<(String, Owned)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let (dtype, data) = match &t.data {
            TensorData::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            TensorData::I32(v) => (Dtype::I32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            TensorData::I16(v) => (Dtype::I16, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            TensorData::I8(v) => (Dtype::I8, v.iter().map(|&x| x as u8).collect()),
            TensorData::Other(s) => {
                return Err(SnnError::File(format!("cannot write dtype {s}")));
            }
        };
        owned.push((
            name.clone(),
            Owned {
                dtype,
                shape: t.shape.clone(),
                data,
            },
        ));
    }
    let mut md = HashMap::new();
    md.insert(FORMAT_KEY.to_string(), FORMAT_VALUE.to_string());
    md.insert(GRAPH_KEY.to_string(), graph_json.to_string());
    safetensors::serialize(owned.iter().map(|(n, o)| (n.as_str(), o)), Some(md))
        .map_err(|e| SnnError::File(format!("cannot serialise: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{NetBuilder, Rng};

    fn small() -> Vec<u8> {
        let mut nb = NetBuilder::new(true, &[2, 4, 4], "static");
        let mut rng = Rng::new(1);
        nb.conv(
            "c",
            "input",
            2,
            [3, 3],
            [1, 1],
            [1, 1],
            rng.ints(36, -3, 3),
            Some(vec![1, 2]),
        );
        nb.dsr_if("n", "c", vec![4], vec![2]);
        nb.flatten("f", "n");
        nb.linear("fc", "f", 3, rng.ints(96, -2, 2), None);
        nb.integrate("out", "fc");
        nb.bytes()
    }

    #[test]
    fn round_trip_from_bytes_and_path() {
        let bytes = small();
        let a = read_bytes(&bytes).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.snn.safetensors");
        std::fs::write(&p, &bytes).unwrap();
        let b = read_path(&p).unwrap();
        assert_eq!(a.graph, b.graph);
        assert_eq!(a.params.len(), 5);
        let e = read_path(&dir.path().join("missing.snn.safetensors")).unwrap_err();
        assert!(e.to_string().contains("cannot read model file"));
    }

    #[test]
    fn truncated_and_corrupted_files_are_errors_not_panics() {
        let bytes = small();
        for n in 0..bytes.len() {
            assert!(read_bytes(&bytes[..n]).is_err(), "prefix {n} accepted");
        }
        let mut rng = Rng::new(2);
        for _ in 0..2000 {
            let mut b = bytes.clone();
            for _ in 0..rng.int(1, 4) {
                let i = rng.int(0, b.len() as i64 - 1) as usize;
                b[i] = rng.int(0, 255) as u8;
            }
            // any outcome but a panic is fine (a flip inside tensor data may still be valid)
            if let Ok(mf) = read_bytes(&b) {
                let _ = crate::engine::Model::from_model_file(&mf);
            }
        }
        assert!(read_bytes(b"").is_err());
        assert!(read_bytes(&[0xff; 16]).is_err());
    }

    #[test]
    fn missing_metadata_and_wrong_format() {
        let e = read_bytes(
            &safetensors::serialize(
                Vec::<(&str, safetensors::tensor::TensorView<'_>)>::new(),
                None,
            )
            .unwrap(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("snnsim.graph"), "{e}");
        let mut md = HashMap::new();
        md.insert("format".to_string(), "pt".to_string());
        md.insert(GRAPH_KEY.to_string(), "{}".to_string());
        let b = safetensors::serialize(
            Vec::<(&str, safetensors::tensor::TensorView<'_>)>::new(),
            Some(md),
        )
        .unwrap();
        assert!(read_bytes(&b).unwrap_err().to_string().contains("'format'"));
    }

    #[test]
    fn format_key_is_required() {
        let mut nb = NetBuilder::new(false, &[3], "static");
        nb.linear("fc", "input", 2, vec![1; 6], None);
        nb.integrate("out", "fc");
        let (g, _) = nb.parts();
        let mut md = HashMap::new();
        md.insert(GRAPH_KEY.to_string(), g.to_string());
        let b = safetensors::serialize(
            Vec::<(&str, safetensors::tensor::TensorView<'_>)>::new(),
            Some(md),
        )
        .unwrap();
        let e = read_bytes(&b).unwrap_err().to_string();
        assert!(e.contains("'format' is missing"), "{e}");
    }

    #[test]
    fn neuron_parameter_signs() {
        // dspike_lif needs fire > 0 like the DSR neurons; gain_m may be negative (as float gain)
        let mut nb = NetBuilder::new(true, &[3], "static");
        nb.linear("fc", "input", 2, vec![1; 6], None);
        nb.dspike("sn", "fc", vec![0], vec![3], 2);
        let e = read_bytes(&nb.bytes()).unwrap_err().to_string();
        assert!(
            e.contains("node 'sn': tensor 'fire'") && e.contains(">= 1"),
            "{e}"
        );
        let mut nb = NetBuilder::new(true, &[3], "static");
        nb.linear("fc", "input", 2, vec![1; 6], None);
        nb.dsr_lif("sn", "fc", vec![4], vec![2], vec![3], vec![-5], 2);
        assert!(read_bytes(&nb.bytes()).is_ok());
    }

    #[test]
    fn container_errors_say_what_is_wrong() {
        let bytes = small();
        let e = read_bytes(&bytes[..5]).unwrap_err().to_string();
        assert!(e.contains("5 bytes, too short"), "{e}");
        let e = read_bytes(&bytes[..40]).unwrap_err().to_string();
        assert!(e.contains("exceeds the file size 40"), "{e}");
        let mut b = 4u64.to_le_bytes().to_vec();
        b.extend_from_slice(b"[12]");
        let e = read_bytes(&b).unwrap_err().to_string();
        assert!(e.contains("header is not valid JSON"), "{e}");
        let e = read_bytes(&bytes[..bytes.len() - 1])
            .unwrap_err()
            .to_string();
        assert!(e.contains("corrupt tensor data"), "{e}");
    }
}
