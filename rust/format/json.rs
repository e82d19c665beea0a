//! Reading typed fields from `serde_json` values, with messages that name the node and the
//! field that is wrong.

use serde_json::{Map, Value as Json};

use crate::error::{Result, SnnError};

pub(crate) fn graph_err(msg: impl Into<String>) -> SnnError {
    SnnError::Graph(msg.into())
}

pub(crate) fn json_type(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Json::Number(_) => "a float",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

pub(crate) struct NodeCtx<'a> {
    pub name: &'a str,
    pub op: &'a str,
    pub obj: &'a Map<String, Json>,
}

impl NodeCtx<'_> {
    pub(crate) fn err(&self, msg: impl Into<String>) -> SnnError {
        SnnError::node(self.name, self.op, msg)
    }

    pub(crate) fn int_opt(&self, key: &str) -> Result<Option<i64>> {
        match self.obj.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Number(n)) => match n.as_i64() {
                Some(v) => Ok(Some(v)),
                None => Err(self.err(format!(
                    "attribute '{key}' must be a JSON integer in the int64 range, got {n}"
                ))),
            },
            Some(v) => Err(self.err(format!(
                "attribute '{key}' must be a JSON integer, got {}",
                json_type(v)
            ))),
        }
    }

    pub(crate) fn int_req(&self, key: &str) -> Result<i64> {
        self.int_opt(key)?
            .ok_or_else(|| self.err(format!("missing integer attribute '{key}'")))
    }

    /// A required integer attribute in `[lo, hi]`.
    pub(crate) fn int_range(&self, key: &str, lo: i64, hi: i64) -> Result<i64> {
        let v = self.int_req(key)?;
        if v < lo || v > hi {
            return Err(self.err(format!(
                "attribute '{key}' = {v} is out of range [{lo}, {hi}]"
            )));
        }
        Ok(v)
    }

    /// A required `[a, b]` pair of integers, each in `[lo, hi]`.
    pub(crate) fn pair(&self, key: &str, lo: i64, hi: i64) -> Result<[usize; 2]> {
        let v = self
            .obj
            .get(key)
            .ok_or_else(|| self.err(format!("missing attribute '{key}' ([h, w])")))?;
        let arr = v.as_array().ok_or_else(|| {
            self.err(format!(
                "attribute '{key}' must be an array [h, w] of integers, got {}",
                json_type(v)
            ))
        })?;
        if arr.len() != 2 {
            return Err(self.err(format!(
                "attribute '{key}' must have 2 elements [h, w], got {}",
                arr.len()
            )));
        }
        let mut out = [0usize; 2];
        for (i, e) in arr.iter().enumerate() {
            let x = e
                .as_i64()
                .filter(|_| e.is_i64() || e.is_u64())
                .ok_or_else(|| {
                    self.err(format!(
                        "attribute '{key}'[{i}] must be a JSON integer, got {}",
                        json_type(e)
                    ))
                })?;
            if x < lo || x > hi {
                return Err(self.err(format!(
                    "attribute '{key}'[{i}] = {x} is out of range [{lo}, {hi}]"
                )));
            }
            out[i] = x as usize;
        }
        Ok(out)
    }

    /// A required array of integers (a shape), each in `[lo, hi]`, with 1 to 3 entries.
    pub(crate) fn shape(&self, key: &str, lo: i64, hi: i64) -> Result<Vec<usize>> {
        let v = self
            .obj
            .get(key)
            .ok_or_else(|| self.err(format!("missing attribute '{key}' (a shape)")))?;
        let arr = v
            .as_array()
            .filter(|a| (1..=3).contains(&a.len()))
            .ok_or_else(|| {
                self.err(format!(
                    "attribute '{key}' must be an array of 1 to 3 integers, got {v}"
                ))
            })?;
        let mut out = Vec::with_capacity(arr.len());
        for (i, e) in arr.iter().enumerate() {
            let x = e
                .as_i64()
                .filter(|_| e.is_i64() || e.is_u64())
                .filter(|x| (lo..=hi).contains(x))
                .ok_or_else(|| {
                    self.err(format!(
                        "attribute '{key}'[{i}] must be a JSON integer in [{lo}, {hi}], got {e}"
                    ))
                })?;
            out.push(x as usize);
        }
        Ok(out)
    }
}
