//! Weights files read at run time: the ONNX file `yolo export format=onnx` writes, or safetensors.
//!
//! Only the float tensors are kept, widened to f32, by name. ONNX exports carry BatchNorm already
//! folded into the convolutions; a safetensors state dict carries `bn.*` tensors, folded by the model
//! builder. Class names come from the ONNX metadata (`names`, a Python dict literal) when present.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use prost::Message;
use sha2::Digest;

mod onnx {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

/// A weights file that cannot be used, saying what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("reading weights {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("weights {path}: {reason}")]
    Format { path: String, reason: String },
    #[error("weights {path}: not a YOLOv8 detection model: {reason}")]
    NotYolo { path: String, reason: String },
}

/// One float tensor: dims and values in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

/// The float tensors of a weights file by name, and its metadata.
#[derive(Debug, Clone, Default)]
pub struct Weights {
    pub tensors: HashMap<String, RawTensor>,
    /// ONNX `metadata_props` or safetensors `__metadata__`.
    pub metadata: BTreeMap<String, String>,
    /// Where the weights came from, for messages.
    pub source: String,
    /// SHA-256 of the file, lowercase hex ("model hash" in metrics).
    pub sha256: String,
}

const ONNX_FLOAT: i32 = 1;
const ONNX_FLOAT16: i32 = 10;
const ONNX_BFLOAT16: i32 = 16;

fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exp = u32::from((bits >> 10) & 0x1f);
    let frac = u32::from(bits & 0x3ff);
    let value = match (exp, frac) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: renormalise.
            let shift = frac.leading_zeros() - 21;
            sign | ((127 - 15 + 1 - shift) << 23) | ((frac << shift) & 0x3ff) << 13
        }
        (0x1f, _) => sign | 0x7f80_0000 | (frac << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(value)
}

fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

fn floats(bytes: &[u8], width: usize, convert: impl Fn(&[u8]) -> f32) -> Vec<f32> {
    bytes.chunks_exact(width).map(convert).collect()
}

impl Weights {
    /// Reads an ONNX or safetensors file, told apart by content, not by name.
    pub fn load(path: &Path) -> Result<Self, WeightsError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| WeightsError::Read { path: shown.clone(), source })?;
        let mut weights = if looks_like_safetensors(&bytes) { Self::from_safetensors(&bytes, &shown)? } else { Self::from_onnx(&bytes, &shown)? };
        weights.sha256 = hex::encode(sha2::Sha256::digest(&bytes));
        if !weights.tensors.contains_key("model.0.conv.weight") {
            return Err(WeightsError::NotYolo { path: shown, reason: "no tensor model.0.conv.weight (the first convolution)".into() });
        }
        Ok(weights)
    }

    /// Decodes an ONNX model's float initializers.
    pub fn from_onnx(bytes: &[u8], shown: &str) -> Result<Self, WeightsError> {
        let format = |reason: String| WeightsError::Format { path: shown.to_owned(), reason };
        let model = onnx::ModelProto::decode(bytes).map_err(|e| format(format!("not an ONNX model, or truncated ({e})")))?;
        let graph = model.graph.ok_or_else(|| format("an ONNX model without a graph".into()))?;
        let mut tensors = HashMap::new();
        for t in graph.initializer {
            let name = t.name.unwrap_or_default();
            if t.data_location == Some(1) {
                return Err(format(format!("tensor {name} is stored in an external file, which is not supported")));
            }
            let dims: Vec<usize> = t.dims.iter().map(|&d| usize::try_from(d).unwrap_or(0)).collect();
            let raw = t.raw_data.unwrap_or_default();
            let data = match t.data_type.unwrap_or(0) {
                ONNX_FLOAT if !raw.is_empty() => floats(&raw, 4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                ONNX_FLOAT => t.float_data,
                ONNX_FLOAT16 if !raw.is_empty() => floats(&raw, 2, |b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
                ONNX_FLOAT16 => t.int32_data.iter().map(|&v| f16_to_f32(v as u16)).collect(),
                ONNX_BFLOAT16 if !raw.is_empty() => floats(&raw, 2, |b| bf16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
                _ => continue,
            };
            if data.len() != dims.iter().product::<usize>() {
                return Err(format(format!("tensor {name} holds {} values for dims {dims:?} (truncated?)", data.len())));
            }
            tensors.insert(name, RawTensor { dims, data });
        }
        // Exporters share one initializer between convolutions whose tensors are equal (the box
        // branches' biases start out identical): give each convolution's bias its own name again,
        // `X.bias` beside `X.weight`, from the Conv nodes' inputs.
        for node in &graph.node {
            if node.op_type.as_deref() != Some("Conv") || node.input.len() < 3 {
                continue;
            }
            let (weight, bias) = (&node.input[1], &node.input[2]);
            if let Some(stem) = weight.strip_suffix("weight") {
                let expected = format!("{stem}bias");
                if &expected != bias
                    && !tensors.contains_key(&expected)
                    && let Some(shared) = tensors.get(bias).cloned()
                {
                    tensors.insert(expected, shared);
                }
            }
        }
        let metadata = model.metadata_props.into_iter().map(|p| (p.key.unwrap_or_default(), p.value.unwrap_or_default())).collect();
        Ok(Self { tensors, metadata, source: shown.to_owned(), sha256: String::new() })
    }

    /// Decodes a safetensors file's F32, F16 and BF16 tensors.
    pub fn from_safetensors(bytes: &[u8], shown: &str) -> Result<Self, WeightsError> {
        let format = |reason: String| WeightsError::Format { path: shown.to_owned(), reason };
        let prefix: [u8; 8] = bytes.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(|| format("shorter than a safetensors header".into()))?;
        let header_len = u64::from_le_bytes(prefix) as usize;
        let header = bytes.get(8..8 + header_len).ok_or_else(|| format("safetensors header runs past the end (truncated?)".into()))?;
        let data = &bytes[8 + header_len..];
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(header).map_err(|e| format(format!("safetensors header is not JSON: {e}")))?;
        let mut weights = Self { source: shown.to_owned(), ..Self::default() };
        for (name, entry) in header {
            if name == "__metadata__" {
                if let Some(map) = entry.as_object() {
                    weights.metadata = map.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect();
                }
                continue;
            }
            let bad = || format(format!("tensor {name}: malformed entry"));
            let dtype = entry["dtype"].as_str().ok_or_else(bad)?;
            let dims: Vec<usize> = entry["shape"].as_array().ok_or_else(bad)?.iter().map(|d| d.as_u64().map(|d| d as usize)).collect::<Option<_>>().ok_or_else(bad)?;
            let offsets = entry["data_offsets"].as_array().ok_or_else(bad)?;
            let (begin, end) = (offsets.first().and_then(|v| v.as_u64()).ok_or_else(bad)? as usize, offsets.get(1).and_then(|v| v.as_u64()).ok_or_else(bad)? as usize);
            let slice = data.get(begin..end).ok_or_else(|| format(format!("tensor {name} runs past the end of the file (truncated?)")))?;
            let values = match dtype {
                "F32" => floats(slice, 4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                "F16" => floats(slice, 2, |b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
                "BF16" => floats(slice, 2, |b| bf16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
                _ => continue,
            };
            if values.len() != dims.iter().product::<usize>() {
                return Err(format(format!("tensor {name} holds {} values for dims {dims:?}", values.len())));
            }
            weights.tensors.insert(name, RawTensor { dims, data: values });
        }
        Ok(weights)
    }

    /// Class names from the ONNX metadata (`names`: `{0: 'person', 1: 'bicycle', ...}`), if present.
    pub fn class_names(&self) -> Option<Vec<String>> {
        parse_names(self.metadata.get("names")?)
    }
}

fn looks_like_safetensors(bytes: &[u8]) -> bool {
    bytes.len() >= 9 && bytes[8] == b'{' && u64::from_le_bytes(bytes[..8].try_into().expect("length checked")) < bytes.len() as u64
}

/// Parses ultralytics' Python dict literal of class names, `{0: 'person', 1: "dining table"}`.
fn parse_names(text: &str) -> Option<Vec<String>> {
    let body = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut names: Vec<(usize, String)> = Vec::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let (index, after) = rest.split_once(':')?;
        let index: usize = index.trim().parse().ok()?;
        let after = after.trim_start();
        let quote = after.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let end = after[1..].find(quote)? + 1;
        names.push((index, after[1..end].to_owned()));
        rest = after[end + 1..].trim_start().trim_start_matches(',').trim_start();
    }
    names.sort_by_key(|(i, _)| *i);
    names.iter().enumerate().all(|(i, (j, _))| i == *j).then(|| names.into_iter().map(|(_, n)| n).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_half_floats() {
        for (bits, value) in [(0x3c00u16, 1.0f32), (0xc000, -2.0), (0x3555, 0.333_251_95), (0x0001, 5.960_464_5e-8), (0x7bff, 65504.0), (0, 0.0)] {
            assert_eq!(f16_to_f32(bits), value, "{bits:#x}");
        }
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
    }

    #[test]
    fn reads_class_names_from_python_literals() {
        assert_eq!(parse_names("{0: 'person', 1: \"dining table\", 2: 'it''s'}"), None, "bad quoting is refused");
        assert_eq!(parse_names("{1: 'b', 0: 'a'}").unwrap(), ["a", "b"]);
        assert_eq!(parse_names("{0: 'person', 1: \"dining table\"}").unwrap(), ["person", "dining table"]);
        assert_eq!(parse_names("{0: 'a', 2: 'c'}"), None, "gaps are refused");
    }

    #[test]
    fn truncated_or_foreign_files_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("detector-weights-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fixture = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/yolov8n-random.onnx")).unwrap();
        let cut = dir.join("cut.onnx");
        std::fs::write(&cut, &fixture[..fixture.len() / 2]).unwrap();
        let err = Weights::load(&cut).unwrap_err().to_string();
        assert!(err.contains("truncated") && !err.contains('\n'), "{err}");
        let text = dir.join("notes.onnx");
        std::fs::write(&text, "hello, not a model").unwrap();
        let err = Weights::load(&text).unwrap_err().to_string();
        assert!(err.contains("not an ONNX model") || err.contains("not a YOLOv8"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
