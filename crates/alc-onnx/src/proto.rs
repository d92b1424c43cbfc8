//! A bounded reader and writer of the protobuf wire format for the subset of
//! `onnx.proto` (proto2) this crate edits.
//!
//! Every message keeps the fields it does not model as raw bytes (tag included), in the
//! order they came, and the writer puts them back between the modelled fields by field
//! number. Modelled optional scalars remember whether they were present (proto2 writes
//! a present default value), and repeated scalars remember whether they came packed.
//! With protobuf's canonical field order (what every protobuf library writes) a parsed
//! model serializes to the same bytes.
//!
//! Bounds: every length is checked against the bytes that remain in the enclosing
//! message before anything is allocated, so no allocation exceeds the input's size;
//! message nesting is limited to [`MAX_DEPTH`]; errors name the field and the absolute
//! offset.

use crate::OnnxError;

/// Deepest message nesting accepted (a graph in a node attribute in a graph … counts
/// three levels per subgraph). Real models stay far below it.
pub const MAX_DEPTH: usize = 64;

/// Protobuf's own limit on a serialized message (2 GiB); larger models use external
/// data, which this crate does not read.
pub const MAX_MODEL_BYTES: usize = i32::MAX as usize;

// ---------------------------------------------------------------------------------------
// Data types (TensorProto.DataType).

/// `TensorProto.DataType` values used here.
pub mod dtype {
    pub const FLOAT: i32 = 1;
    pub const UINT8: i32 = 2;
    pub const INT8: i32 = 3;
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
    pub const BOOL: i32 = 9;
    pub const FLOAT16: i32 = 10;
    pub const DOUBLE: i32 = 11;

    /// Bytes of one element in `raw_data`, for the fixed-size types.
    pub fn size(t: i32) -> Option<usize> {
        Some(match t {
            FLOAT | INT32 | 12 => 4,
            UINT8 | INT8 | BOOL => 1,
            4 | 5 | FLOAT16 | 16 => 2,
            INT64 | DOUBLE | 13 => 8,
            _ => return None,
        })
    }

    /// The ONNX name of a data type, for messages.
    pub fn name(t: i32) -> String {
        match t {
            FLOAT => "float".into(),
            UINT8 => "uint8".into(),
            INT8 => "int8".into(),
            INT32 => "int32".into(),
            INT64 => "int64".into(),
            BOOL => "bool".into(),
            FLOAT16 => "float16".into(),
            DOUBLE => "double".into(),
            other => format!("data type {other}"),
        }
    }
}

/// `AttributeProto.AttributeType` values.
pub mod attr_type {
    pub const FLOAT: i32 = 1;
    pub const INT: i32 = 2;
    pub const STRING: i32 = 3;
    pub const TENSOR: i32 = 4;
    pub const GRAPH: i32 = 5;
    pub const FLOATS: i32 = 6;
    pub const INTS: i32 = 7;
}

// ---------------------------------------------------------------------------------------
// Messages.

/// Fields a message does not model: `(field number, raw bytes including the tag)`, in
/// the order they were read.
pub type Unknown = Vec<(u32, Vec<u8>)>;

/// `ModelProto`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    pub ir_version: i64,
    pub opset_import: Vec<OpsetId>,
    pub producer_name: String,
    pub producer_version: String,
    pub graph: Option<Graph>,
    pub unknown: Unknown,
    pub(crate) explicit: u64,
}

/// `OperatorSetIdProto`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpsetId {
    pub domain: String,
    pub version: i64,
    pub unknown: Unknown,
    pub(crate) explicit: u64,
}

/// `GraphProto`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub node: Vec<Node>,
    pub name: String,
    pub initializer: Vec<Tensor>,
    pub input: Vec<ValueInfo>,
    pub output: Vec<ValueInfo>,
    pub value_info: Vec<ValueInfo>,
    pub unknown: Unknown,
    pub(crate) explicit: u64,
}

/// `NodeProto`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Node {
    pub input: Vec<String>,
    pub output: Vec<String>,
    pub name: String,
    pub op_type: String,
    pub attribute: Vec<Attribute>,
    pub domain: String,
    pub unknown: Unknown,
    pub(crate) explicit: u64,
}

/// `AttributeProto` (sparse tensors, type protos and `ref_attr_name` are kept as
/// unknown fields).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub f: f32,
    pub i: i64,
    pub s: Vec<u8>,
    pub t: Option<Tensor>,
    pub g: Option<Graph>,
    pub floats: Vec<f32>,
    pub ints: Vec<i64>,
    pub strings: Vec<Vec<u8>>,
    pub tensors: Vec<Tensor>,
    pub graphs: Vec<Graph>,
    /// `AttributeType` (field 20); see [`attr_type`].
    pub ty: i32,
    pub unknown: Unknown,
    pub(crate) explicit: u64,
    pub(crate) flip: u64,
}

/// `TensorProto` (segment, string/double/uint64 data, external data and data location
/// are kept as unknown fields).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tensor {
    pub dims: Vec<i64>,
    /// See [`dtype`].
    pub data_type: i32,
    pub float_data: Vec<f32>,
    pub int32_data: Vec<i32>,
    pub int64_data: Vec<i64>,
    pub name: String,
    pub raw_data: Vec<u8>,
    pub unknown: Unknown,
    pub(crate) explicit: u64,
    pub(crate) flip: u64,
}

/// `ValueInfoProto`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValueInfo {
    pub name: String,
    pub ty: Option<TypeProto>,
    pub unknown: Unknown,
    pub(crate) explicit: u64,
}

/// `TypeProto` (only the tensor case is modelled; the others stay unknown fields).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TypeProto {
    pub tensor_type: Option<TensorType>,
    pub unknown: Unknown,
}

/// `TypeProto.Tensor`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TensorType {
    pub elem_type: i32,
    pub shape: Option<Shape>,
    pub unknown: Unknown,
    pub(crate) explicit: u64,
}

/// `TensorShapeProto`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Shape {
    pub dim: Vec<Dim>,
    pub unknown: Unknown,
}

/// `TensorShapeProto.Dimension`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dim {
    pub value: DimValue,
    pub unknown: Unknown,
}

/// The `value` oneof of a dimension.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum DimValue {
    #[default]
    Unset,
    Value(i64),
    Param(String),
}

// ---------------------------------------------------------------------------------------
// Convenience constructors and accessors.

impl Model {
    /// Parse a serialized `ModelProto`.
    pub fn parse(bytes: &[u8]) -> Result<Model, OnnxError> {
        if bytes.len() > MAX_MODEL_BYTES {
            return Err(OnnxError::TooLarge {
                len: bytes.len() as u64,
            });
        }
        let mut r = Reader::new(bytes, 0, 0);
        Model::decode(&mut r)
    }

    /// Serialize to protobuf bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(encoded_len(self));
        self.encode(&mut out);
        out
    }

    /// The serialized size in bytes.
    pub fn encoded_len(&self) -> usize {
        encoded_len(self)
    }

    /// The version imported for `domain` ("" is the default ONNX domain).
    pub fn opset(&self, domain: &str) -> Option<i64> {
        self.opset_import
            .iter()
            .find(|o| o.domain == domain || (domain == "ai.onnx" && o.domain.is_empty()))
            .map(|o| o.version)
    }
}

impl OpsetId {
    pub fn new(domain: &str, version: i64) -> OpsetId {
        OpsetId {
            domain: domain.into(),
            version,
            // The domain is written even when empty, as onnx.helper does.
            explicit: 1 << 1,
            ..Default::default()
        }
    }
}

impl Node {
    /// A node of the default domain.
    pub fn new(op_type: &str, name: &str, input: &[&str], output: &[&str]) -> Node {
        Node {
            input: input.iter().map(|s| s.to_string()).collect(),
            output: output.iter().map(|s| s.to_string()).collect(),
            name: name.into(),
            op_type: op_type.into(),
            ..Default::default()
        }
    }

    /// Add an attribute (builder style).
    pub fn with(mut self, a: Attribute) -> Node {
        self.attribute.push(a);
        self
    }

    /// The attribute called `name`.
    pub fn attr(&self, name: &str) -> Option<&Attribute> {
        self.attribute.iter().find(|a| a.name == name)
    }

    /// An INT attribute, or `default` when absent.
    pub fn attr_i(&self, name: &str, default: i64) -> i64 {
        self.attr(name).map_or(default, |a| a.i)
    }

    /// A FLOAT attribute, or `default` when absent.
    pub fn attr_f(&self, name: &str, default: f32) -> f32 {
        self.attr(name).map_or(default, |a| a.f)
    }
}

impl Attribute {
    pub fn int(name: &str, i: i64) -> Attribute {
        Attribute {
            name: name.into(),
            i,
            ty: attr_type::INT,
            explicit: 1 << 3,
            ..Default::default()
        }
    }
    pub fn float(name: &str, f: f32) -> Attribute {
        Attribute {
            name: name.into(),
            f,
            ty: attr_type::FLOAT,
            explicit: 1 << 2,
            ..Default::default()
        }
    }
    pub fn ints(name: &str, ints: &[i64]) -> Attribute {
        Attribute {
            name: name.into(),
            ints: ints.to_vec(),
            ty: attr_type::INTS,
            ..Default::default()
        }
    }
    pub fn tensor(name: &str, t: Tensor) -> Attribute {
        Attribute {
            name: name.into(),
            t: Some(t),
            ty: attr_type::TENSOR,
            ..Default::default()
        }
    }
}

impl Tensor {
    fn with_raw(name: &str, dims: &[i64], data_type: i32, raw_data: Vec<u8>) -> Tensor {
        Tensor {
            dims: dims.to_vec(),
            data_type,
            name: name.into(),
            raw_data,
            // raw_data is written even when empty (a tensor with a zero dimension).
            explicit: 1 << 9,
            ..Default::default()
        }
    }

    /// An f32 tensor stored in `raw_data`.
    pub fn from_f32(name: &str, dims: &[i64], data: &[f32]) -> Tensor {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor::with_raw(name, dims, dtype::FLOAT, raw)
    }

    /// An int64 tensor stored in `raw_data`.
    pub fn from_i64(name: &str, dims: &[i64], data: &[i64]) -> Tensor {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor::with_raw(name, dims, dtype::INT64, raw)
    }

    /// An int8 tensor stored in `raw_data`.
    pub fn from_i8(name: &str, dims: &[i64], data: &[i8]) -> Tensor {
        let raw = data.iter().map(|&v| v as u8).collect();
        Tensor::with_raw(name, dims, dtype::INT8, raw)
    }

    /// A uint8 tensor stored in `raw_data`.
    pub fn from_u8(name: &str, dims: &[i64], data: &[u8]) -> Tensor {
        Tensor::with_raw(name, dims, dtype::UINT8, data.to_vec())
    }

    /// Whether the data lives in another file (`data_location` = EXTERNAL, field 14).
    pub fn is_external(&self) -> bool {
        self.unknown
            .iter()
            .any(|(f, raw)| *f == 14 && raw.get(1).is_some_and(|&v| v == 1))
    }

    /// The number of elements `dims` describes; `None` for a negative dimension or an
    /// overflowing product.
    pub fn element_count(&self) -> Option<usize> {
        self.dims.iter().try_fold(1usize, |acc, &d| {
            usize::try_from(d).ok().and_then(|d| acc.checked_mul(d))
        })
    }

    /// The values of an f32 tensor (from `raw_data` or `float_data`), checked against
    /// `dims`.
    pub fn to_f32(&self) -> Result<Vec<f32>, OnnxError> {
        let bad = |what: String| OnnxError::BadTensor {
            name: self.name.clone(),
            what,
        };
        if self.data_type != dtype::FLOAT {
            return Err(bad(format!(
                "holds {}, expected float",
                dtype::name(self.data_type)
            )));
        }
        if self.is_external() {
            return Err(bad(
                "its data is in an external file; re-save the model with the weights inside it (onnx.save(..., save_as_external_data=False))".into(),
            ));
        }
        let n = self
            .element_count()
            .ok_or_else(|| bad(format!("invalid dims {:?}", self.dims)))?;
        let values: Vec<f32> = if !self.raw_data.is_empty() || self.float_data.is_empty() {
            if self.raw_data.len() != n.saturating_mul(4) {
                return Err(bad(format!(
                    "raw_data has {} bytes, dims {:?} need {}",
                    self.raw_data.len(),
                    self.dims,
                    n.saturating_mul(4)
                )));
            }
            self.raw_data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        } else {
            if self.float_data.len() != n {
                return Err(bad(format!(
                    "float_data has {} values, dims {:?} need {n}",
                    self.float_data.len(),
                    self.dims
                )));
            }
            self.float_data.clone()
        };
        Ok(values)
    }
}

impl ValueInfo {
    /// A tensor value with a shape: `Ok(n)` is a fixed size, `Err(s)` a named one.
    pub fn tensor(name: &str, elem_type: i32, dims: &[Result<i64, &str>]) -> ValueInfo {
        let dim = dims
            .iter()
            .map(|d| Dim {
                value: match d {
                    Ok(v) => DimValue::Value(*v),
                    Err(p) => DimValue::Param(p.to_string()),
                },
                unknown: Vec::new(),
            })
            .collect();
        ValueInfo {
            name: name.into(),
            ty: Some(TypeProto {
                tensor_type: Some(TensorType {
                    elem_type,
                    shape: Some(Shape {
                        dim,
                        unknown: Vec::new(),
                    }),
                    unknown: Vec::new(),
                    // elem_type is required; written even if 0 (undefined).
                    explicit: 1 << 1,
                }),
                unknown: Vec::new(),
            }),
            ..Default::default()
        }
    }

    /// The tensor element type, if the value is a tensor with a type.
    pub fn elem_type(&self) -> Option<i32> {
        self.tensor_type().map(|t| t.elem_type)
    }

    /// The tensor type, if any.
    pub fn tensor_type(&self) -> Option<&TensorType> {
        self.ty.as_ref().and_then(|t| t.tensor_type.as_ref())
    }

    /// The dimensions, if the value is a tensor with a known rank.
    pub fn dims(&self) -> Option<&[Dim]> {
        self.tensor_type()
            .and_then(|t| t.shape.as_ref())
            .map(|s| s.dim.as_slice())
    }
}

// ---------------------------------------------------------------------------------------
// Wire format: reading.

const WT_VARINT: u8 = 0;
const WT_I64: u8 = 1;
const WT_LEN: u8 = 2;
const WT_I32: u8 = 5;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Absolute offset of `buf[0]` in the input, for messages.
    base: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize, depth: usize) -> Self {
        Reader {
            buf,
            pos: 0,
            base,
            depth,
        }
    }

    fn offset(&self) -> u64 {
        (self.base + self.pos) as u64
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn corrupt(&self, field: &'static str, what: impl Into<String>) -> OnnxError {
        OnnxError::Corrupt {
            field,
            offset: self.offset(),
            what: what.into(),
        }
    }

    fn varint(&mut self, field: &'static str) -> Result<u64, OnnxError> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.corrupt(field, "the data ends inside a varint"));
            };
            if i == 9 && b > 1 {
                return Err(self.corrupt(field, "a varint longer than 64 bits"));
            }
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.corrupt(field, "a varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], OnnxError> {
        let left = self.buf.len() - self.pos;
        if n > left {
            return Err(OnnxError::Truncated {
                field,
                offset: self.offset(),
                need: n as u64,
                left: left as u64,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn fixed32(&mut self, field: &'static str) -> Result<u32, OnnxError> {
        let b = self.take(4, field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A length-delimited payload; returns it and its absolute offset.
    fn len_delimited(&mut self, field: &'static str) -> Result<(&'a [u8], usize), OnnxError> {
        let n = self.varint(field)?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        let at = self.base + self.pos;
        Ok((self.take(n, field)?, at))
    }

    /// A tag: `(field number, wire type, offset of the tag within buf)`.
    fn tag(&mut self, msg: &'static str) -> Result<(u32, u8, usize), OnnxError> {
        let start = self.pos;
        let t = self.varint(msg)?;
        let field = t >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            self.pos = start;
            return Err(self.corrupt(msg, format!("invalid field number {field}")));
        }
        Ok((field as u32, (t & 7) as u8, start))
    }

    /// Skip a field's payload of wire type `wt`.
    fn skip(&mut self, wt: u8, field: &'static str) -> Result<(), OnnxError> {
        match wt {
            WT_VARINT => {
                self.varint(field)?;
            }
            WT_I64 => {
                self.take(8, field)?;
            }
            WT_LEN => {
                self.len_delimited(field)?;
            }
            WT_I32 => {
                self.take(4, field)?;
            }
            other => {
                return Err(self.corrupt(
                    field,
                    format!("wire type {other} (groups or invalid) is not supported"),
                ))
            }
        }
        Ok(())
    }

    fn expect(&self, wt: u8, want: u8, field: &'static str) -> Result<(), OnnxError> {
        if wt != want {
            return Err(self.corrupt(field, format!("wire type {wt}, expected {want}")));
        }
        Ok(())
    }

    fn string(&mut self, wt: u8, field: &'static str) -> Result<String, OnnxError> {
        self.expect(wt, WT_LEN, field)?;
        let (b, at) = self.len_delimited(field)?;
        String::from_utf8(b.to_vec()).map_err(|_| OnnxError::Corrupt {
            field,
            offset: at as u64,
            what: "the string is not valid UTF-8".into(),
        })
    }

    fn bytes(&mut self, wt: u8, field: &'static str) -> Result<Vec<u8>, OnnxError> {
        self.expect(wt, WT_LEN, field)?;
        Ok(self.len_delimited(field)?.0.to_vec())
    }

    fn int64(&mut self, wt: u8, field: &'static str) -> Result<i64, OnnxError> {
        self.expect(wt, WT_VARINT, field)?;
        Ok(self.varint(field)? as i64)
    }

    fn int32(&mut self, wt: u8, field: &'static str) -> Result<i32, OnnxError> {
        self.expect(wt, WT_VARINT, field)?;
        Ok(self.varint(field)? as i32)
    }

    /// A nested message; checks the depth limit.
    fn message<T: Decode>(&mut self, wt: u8, field: &'static str) -> Result<T, OnnxError> {
        self.expect(wt, WT_LEN, field)?;
        if self.depth + 1 > MAX_DEPTH {
            return Err(self.corrupt(
                field,
                format!("messages nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        let (b, at) = self.len_delimited(field)?;
        let mut sub = Reader::new(b, at, self.depth + 1);
        T::decode(&mut sub)
    }

    /// A repeated varint field, packed or not; returns whether it was packed.
    fn repeated_varint(
        &mut self,
        wt: u8,
        field: &'static str,
        out: &mut Vec<u64>,
    ) -> Result<bool, OnnxError> {
        if wt == WT_LEN {
            let (b, at) = self.len_delimited(field)?;
            let mut sub = Reader::new(b, at, self.depth);
            while !sub.done() {
                out.push(sub.varint(field)?);
            }
            Ok(true)
        } else {
            self.expect(wt, WT_VARINT, field)?;
            out.push(self.varint(field)?);
            Ok(false)
        }
    }

    /// A repeated fixed32 field (float), packed or not; returns whether it was packed.
    fn repeated_fixed32(
        &mut self,
        wt: u8,
        field: &'static str,
        out: &mut Vec<f32>,
    ) -> Result<bool, OnnxError> {
        if wt == WT_LEN {
            let (b, _) = self.len_delimited(field)?;
            if b.len() % 4 != 0 {
                return Err(self.corrupt(
                    field,
                    format!("packed floats of {} bytes (not a multiple of 4)", b.len()),
                ));
            }
            out.extend(
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
            Ok(true)
        } else {
            self.expect(wt, WT_I32, field)?;
            out.push(f32::from_bits(self.fixed32(field)?));
            Ok(false)
        }
    }
}

trait Decode: Sized {
    fn decode(r: &mut Reader<'_>) -> Result<Self, OnnxError>;
}

/// Keep an unknown field's raw bytes.
fn keep_unknown(
    r: &mut Reader<'_>,
    unknown: &mut Unknown,
    field: u32,
    wt: u8,
    start: usize,
    name: &'static str,
) -> Result<(), OnnxError> {
    r.skip(wt, name)?;
    unknown.push((field, r.buf[start..r.pos].to_vec()));
    Ok(())
}

fn set_flip(flip: &mut u64, field: u32, packed: bool, declared_packed: bool) {
    if packed != declared_packed {
        *flip |= 1 << field;
    } else {
        *flip &= !(1 << field);
    }
}

impl Decode for Model {
    fn decode(r: &mut Reader<'_>) -> Result<Self, OnnxError> {
        let mut m = Model::default();
        while !r.done() {
            let (f, wt, start) = r.tag("ModelProto")?;
            match f {
                1 => m.ir_version = r.int64(wt, "ModelProto.ir_version")?,
                2 => m.producer_name = r.string(wt, "ModelProto.producer_name")?,
                3 => m.producer_version = r.string(wt, "ModelProto.producer_version")?,
                7 => m.graph = Some(r.message(wt, "ModelProto.graph")?),
                8 => m
                    .opset_import
                    .push(r.message(wt, "ModelProto.opset_import")?),
                _ => {
                    keep_unknown(r, &mut m.unknown, f, wt, start, "ModelProto")?;
                    continue;
                }
            }
            m.explicit |= 1 << f;
        }
        Ok(m)
    }
}

impl Decode for OpsetId {
    fn decode(r: &mut Reader<'_>) -> Result<Self, OnnxError> {
        let mut m = OpsetId::default();
        while !r.done() {
            let (f, wt, start) = r.tag("OperatorSetIdProto")?;
            match f {
                1 => m.domain = r.string(wt, "OperatorSetIdProto.domain")?,
                2 => m.version = r.int64(wt, "OperatorSetIdProto.version")?,
                _ => {
                    keep_unknown(r, &mut m.unknown, f, wt, start, "OperatorSetIdProto")?;
                    continue;
                }
            }
            m.explicit |= 1 << f;
        }
        Ok(m)
    }
}

impl Decode for Graph {
    fn decode(r: &mut Reader<'_>) -> Result<Self, OnnxError> {
        let mut m = Graph::default();
        while !r.done() {
            let (f, wt, start) = r.tag("GraphProto")?;
            match f {
                1 => m.node.push(r.message(wt, "GraphProto.node")?),
                2 => m.name = r.string(wt, "GraphProto.name")?,
                5 => m.initializer.push(r.message(wt, "GraphProto.initializer")?),
                11 => m.input.push(r.message(wt, "GraphProto.input")?),
                12 => m.output.push(r.message(wt, "GraphProto.output")?),
                13 => m.value_info.push(r.message(wt, "GraphProto.value_info")?),
                _ => {
                    keep_unknown(r, &mut m.unknown, f, wt, start, "GraphProto")?;
                    continue;
                }
            }
            m.explicit |= 1 << f;
        }
        Ok(m)
    }
}

impl Decode for Node {
    fn decode(r: &mut Reader<'_>) -> Result<Self, OnnxError> {
        let mut m = Node::default();
        while !r.done() {
            let (f, wt, start) = r.tag("NodeProto")?;
            match f {
                1 => m.input.push(r.string(wt, "NodeProto.input")?),
                2 => m.output.push(r.string(wt, "NodeProto.output")?),
                3 => m.name = r.string(wt, "NodeProto.name")?,
                4 => m.op_type = r.string(wt, "NodeProto.op_type")?,
                5 => m.attribute.push(r.message(wt, "NodeProto.attribute")?),
                7 => m.domain = r.string(wt, "NodeProto.domain")?,
                _ => {
                    keep_unknown(r, &mut m.unknown, f, wt, start, "NodeProto")?;
                    continue;
                }
            }
            m.explicit |= 1 << f;
        }
        Ok(m)
    }
}

impl Decode for Attribute {
    fn decode(r: &mut Reader<'_>) -> Result<Self, OnnxError> {
        let mut m = Attribute::default();
        while !r.done() {
            let (f, wt, start) = r.tag("AttributeProto")?;
            match f {
                1 => m.name = r.string(wt, "AttributeProto.name")?,
                2 => {
                    r.expect(wt, WT_I32, "AttributeProto.f")?;
                    m.f = f32::from_bits(r.fixed32("AttributeProto.f")?);
                }
                3 => m.i = r.int64(wt, "AttributeProto.i")?,
                4 => m.s = r.bytes(wt, "AttributeProto.s")?,
                5 => m.t = Some(r.message(wt, "AttributeProto.t")?),
                6 => m.g = Some(r.message(wt, "AttributeProto.g")?),
                7 => {
                    let p = r.repeated_fixed32(wt, "AttributeProto.floats", &mut m.floats)?;
                    set_flip(&mut m.flip, f, p, false);
                }
                8 => {
                    let mut v = Vec::new();
                    let p = r.repeated_varint(wt, "AttributeProto.ints", &mut v)?;
                    m.ints.extend(v.into_iter().map(|x| x as i64));
                    set_flip(&mut m.flip, f, p, false);
                }
                9 => m.strings.push(r.bytes(wt, "AttributeProto.strings")?),
                10 => m.tensors.push(r.message(wt, "AttributeProto.tensors")?),
                11 => m.graphs.push(r.message(wt, "AttributeProto.graphs")?),
                20 => m.ty = r.int32(wt, "AttributeProto.type")?,
                _ => {
                    keep_unknown(r, &mut m.unknown, f, wt, start, "AttributeProto")?;
                    continue;
                }
            }
            m.explicit |= 1 << f;
        }
        Ok(m)
    }
}

impl Decode for Tensor {
    fn decode(r: &mut Reader<'_>) -> Result<Self, OnnxError> {
        let mut m = Tensor::default();
        while !r.done() {
            let (f, wt, start) = r.tag("TensorProto")?;
            match f {
                1 => {
                    let mut v = Vec::new();
                    let p = r.repeated_varint(wt, "TensorProto.dims", &mut v)?;
                    m.dims.extend(v.into_iter().map(|x| x as i64));
                    set_flip(&mut m.flip, f, p, false);
                }
                2 => m.data_type = r.int32(wt, "TensorProto.data_type")?,
                4 => {
                    let p = r.repeated_fixed32(wt, "TensorProto.float_data", &mut m.float_data)?;
                    set_flip(&mut m.flip, f, p, true);
                }
                5 => {
                    let mut v = Vec::new();
                    let p = r.repeated_varint(wt, "TensorProto.int32_data", &mut v)?;
                    m.int32_data.extend(v.into_iter().map(|x| x as i32));
                    set_flip(&mut m.flip, f, p, true);
                }
                7 => {
                    let mut v = Vec::new();
                    let p = r.repeated_varint(wt, "TensorProto.int64_data", &mut v)?;
                    m.int64_data.extend(v.into_iter().map(|x| x as i64));
                    set_flip(&mut m.flip, f, p, true);
                }
                8 => m.name = r.string(wt, "TensorProto.name")?,
                9 => m.raw_data = r.bytes(wt, "TensorProto.raw_data")?,
                _ => {
                    keep_unknown(r, &mut m.unknown, f, wt, start, "TensorProto")?;
                    continue;
                }
            }
            m.explicit |= 1 << f;
        }
        Ok(m)
    }
}

impl Decode for ValueInfo {
    fn decode(r: &mut Reader<'_>) -> Result<Self, OnnxError> {
        let mut m = ValueInfo::default();
        while !r.done() {
            let (f, wt, start) = r.tag("ValueInfoProto")?;
            match f {
                1 => m.name = r.string(wt, "ValueInfoProto.name")?,
                2 => m.ty = Some(r.message(wt, "ValueInfoProto.type")?),
                _ => {
                    keep_unknown(r, &mut m.unknown, f, wt, start, "ValueInfoProto")?;
                    continue;
                }
            }
            m.explicit |= 1 << f;
        }
        Ok(m)
    }
}

impl Decode for TypeProto {
    fn decode(r: &mut Reader<'_>) -> Result<Self, OnnxError> {
        let mut m = TypeProto::default();
        while !r.done() {
            let (f, wt, start) = r.tag("TypeProto")?;
            match f {
                1 => m.tensor_type = Some(r.message(wt, "TypeProto.tensor_type")?),
                _ => keep_unknown(r, &mut m.unknown, f, wt, start, "TypeProto")?,
            }
        }
        Ok(m)
    }
}

impl Decode for TensorType {
    fn decode(r: &mut Reader<'_>) -> Result<Self, OnnxError> {
        let mut m = TensorType::default();
        while !r.done() {
            let (f, wt, start) = r.tag("TypeProto.Tensor")?;
            match f {
                1 => m.elem_type = r.int32(wt, "TypeProto.Tensor.elem_type")?,
                2 => m.shape = Some(r.message(wt, "TypeProto.Tensor.shape")?),
                _ => {
                    keep_unknown(r, &mut m.unknown, f, wt, start, "TypeProto.Tensor")?;
                    continue;
                }
            }
            m.explicit |= 1 << f;
        }
        Ok(m)
    }
}

impl Decode for Shape {
    fn decode(r: &mut Reader<'_>) -> Result<Self, OnnxError> {
        let mut m = Shape::default();
        while !r.done() {
            let (f, wt, start) = r.tag("TensorShapeProto")?;
            match f {
                1 => m.dim.push(r.message(wt, "TensorShapeProto.dim")?),
                _ => keep_unknown(r, &mut m.unknown, f, wt, start, "TensorShapeProto")?,
            }
        }
        Ok(m)
    }
}

impl Decode for Dim {
    fn decode(r: &mut Reader<'_>) -> Result<Self, OnnxError> {
        let mut m = Dim::default();
        while !r.done() {
            let (f, wt, start) = r.tag("TensorShapeProto.Dimension")?;
            match f {
                1 => m.value = DimValue::Value(r.int64(wt, "Dimension.dim_value")?),
                2 => m.value = DimValue::Param(r.string(wt, "Dimension.dim_param")?),
                _ => keep_unknown(r, &mut m.unknown, f, wt, start, "Dimension")?,
            }
        }
        Ok(m)
    }
}

// ---------------------------------------------------------------------------------------
// Wire format: writing.

/// Where encoded bytes go: a buffer, or a counter that only adds up lengths.
trait Sink {
    fn put(&mut self, b: &[u8]);
    fn put_byte(&mut self, b: u8) {
        self.put(&[b]);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
}

struct Counter(usize);

impl Sink for Counter {
    fn put(&mut self, b: &[u8]) {
        self.0 += b.len();
    }
    fn put_byte(&mut self, _: u8) {
        self.0 += 1;
    }
}

trait Encode {
    fn encode(&self, s: &mut dyn Sink);
}

fn encoded_len(m: &dyn Encode) -> usize {
    let mut c = Counter(0);
    m.encode(&mut c);
    c.0
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(s: &mut dyn Sink, mut v: u64) {
    while v >= 0x80 {
        s.put_byte((v as u8) | 0x80);
        v >>= 7;
    }
    s.put_byte(v as u8);
}

fn put_tag(s: &mut dyn Sink, field: u32, wt: u8) {
    put_varint(s, (u64::from(field) << 3) | u64::from(wt));
}

fn put_bytes(s: &mut dyn Sink, field: u32, b: &[u8]) {
    put_tag(s, field, WT_LEN);
    put_varint(s, b.len() as u64);
    s.put(b);
}

fn put_int(s: &mut dyn Sink, field: u32, v: i64) {
    put_tag(s, field, WT_VARINT);
    put_varint(s, v as u64);
}

fn put_msg(s: &mut dyn Sink, field: u32, m: &dyn Encode) {
    put_tag(s, field, WT_LEN);
    put_varint(s, encoded_len(m) as u64);
    m.encode(s);
}

fn put_varints(s: &mut dyn Sink, field: u32, vals: &[u64], packed: bool) {
    if vals.is_empty() {
        return;
    }
    if packed {
        put_tag(s, field, WT_LEN);
        put_varint(s, vals.iter().map(|&v| varint_len(v) as u64).sum());
        for &v in vals {
            put_varint(s, v);
        }
    } else {
        for &v in vals {
            put_int(s, field, v as i64);
        }
    }
}

fn put_floats(s: &mut dyn Sink, field: u32, vals: &[f32], packed: bool) {
    if vals.is_empty() {
        return;
    }
    if packed {
        put_tag(s, field, WT_LEN);
        put_varint(s, vals.len() as u64 * 4);
        for v in vals {
            s.put(&v.to_le_bytes());
        }
    } else {
        for v in vals {
            put_tag(s, field, WT_I32);
            s.put(&v.to_le_bytes());
        }
    }
}

/// Writes the unknown fields in between the modelled ones, by field number.
struct Merge<'a> {
    unknown: &'a Unknown,
    next: usize,
}

impl<'a> Merge<'a> {
    fn new(unknown: &'a Unknown) -> Self {
        Merge { unknown, next: 0 }
    }
    /// Write the unknown fields numbered below `field`.
    fn before(&mut self, s: &mut dyn Sink, field: u32) {
        while let Some((f, raw)) = self.unknown.get(self.next) {
            if *f >= field {
                break;
            }
            s.put(raw);
            self.next += 1;
        }
    }
    fn rest(&mut self, s: &mut dyn Sink) {
        self.before(s, u32::MAX);
    }
}

fn has(explicit: u64, field: u32) -> bool {
    explicit & (1 << field) != 0
}

fn put_str_opt(s: &mut dyn Sink, explicit: u64, field: u32, v: &str) {
    if !v.is_empty() || has(explicit, field) {
        put_bytes(s, field, v.as_bytes());
    }
}

fn put_int_opt(s: &mut dyn Sink, explicit: u64, field: u32, v: i64) {
    if v != 0 || has(explicit, field) {
        put_int(s, field, v);
    }
}

impl Encode for Model {
    fn encode(&self, s: &mut dyn Sink) {
        let mut u = Merge::new(&self.unknown);
        u.before(s, 1);
        put_int_opt(s, self.explicit, 1, self.ir_version);
        u.before(s, 2);
        put_str_opt(s, self.explicit, 2, &self.producer_name);
        u.before(s, 3);
        put_str_opt(s, self.explicit, 3, &self.producer_version);
        u.before(s, 7);
        if let Some(g) = &self.graph {
            put_msg(s, 7, g);
        }
        u.before(s, 8);
        for o in &self.opset_import {
            put_msg(s, 8, o);
        }
        u.rest(s);
    }
}

impl Encode for OpsetId {
    fn encode(&self, s: &mut dyn Sink) {
        let mut u = Merge::new(&self.unknown);
        u.before(s, 1);
        put_str_opt(s, self.explicit, 1, &self.domain);
        u.before(s, 2);
        put_int_opt(s, self.explicit, 2, self.version);
        u.rest(s);
    }
}

impl Encode for Graph {
    fn encode(&self, s: &mut dyn Sink) {
        let mut u = Merge::new(&self.unknown);
        u.before(s, 1);
        for n in &self.node {
            put_msg(s, 1, n);
        }
        u.before(s, 2);
        put_str_opt(s, self.explicit, 2, &self.name);
        u.before(s, 5);
        for t in &self.initializer {
            put_msg(s, 5, t);
        }
        u.before(s, 11);
        for v in &self.input {
            put_msg(s, 11, v);
        }
        u.before(s, 12);
        for v in &self.output {
            put_msg(s, 12, v);
        }
        u.before(s, 13);
        for v in &self.value_info {
            put_msg(s, 13, v);
        }
        u.rest(s);
    }
}

impl Encode for Node {
    fn encode(&self, s: &mut dyn Sink) {
        let mut u = Merge::new(&self.unknown);
        u.before(s, 1);
        for i in &self.input {
            put_bytes(s, 1, i.as_bytes());
        }
        u.before(s, 2);
        for o in &self.output {
            put_bytes(s, 2, o.as_bytes());
        }
        u.before(s, 3);
        put_str_opt(s, self.explicit, 3, &self.name);
        u.before(s, 4);
        put_str_opt(s, self.explicit, 4, &self.op_type);
        u.before(s, 5);
        for a in &self.attribute {
            put_msg(s, 5, a);
        }
        u.before(s, 7);
        put_str_opt(s, self.explicit, 7, &self.domain);
        u.rest(s);
    }
}

impl Encode for Attribute {
    fn encode(&self, s: &mut dyn Sink) {
        let e = self.explicit;
        let mut u = Merge::new(&self.unknown);
        u.before(s, 1);
        put_str_opt(s, e, 1, &self.name);
        u.before(s, 2);
        if self.f.to_bits() != 0 || has(e, 2) {
            put_tag(s, 2, WT_I32);
            s.put(&self.f.to_le_bytes());
        }
        u.before(s, 3);
        put_int_opt(s, e, 3, self.i);
        u.before(s, 4);
        if !self.s.is_empty() || has(e, 4) {
            put_bytes(s, 4, &self.s);
        }
        u.before(s, 5);
        if let Some(t) = &self.t {
            put_msg(s, 5, t);
        }
        u.before(s, 6);
        if let Some(g) = &self.g {
            put_msg(s, 6, g);
        }
        u.before(s, 7);
        put_floats(s, 7, &self.floats, has(self.flip, 7));
        u.before(s, 8);
        let ints: Vec<u64> = self.ints.iter().map(|&v| v as u64).collect();
        put_varints(s, 8, &ints, has(self.flip, 8));
        u.before(s, 9);
        for v in &self.strings {
            put_bytes(s, 9, v);
        }
        u.before(s, 10);
        for t in &self.tensors {
            put_msg(s, 10, t);
        }
        u.before(s, 11);
        for g in &self.graphs {
            put_msg(s, 11, g);
        }
        u.before(s, 20);
        put_int_opt(s, e, 20, i64::from(self.ty));
        u.rest(s);
    }
}

impl Encode for Tensor {
    fn encode(&self, s: &mut dyn Sink) {
        let e = self.explicit;
        let mut u = Merge::new(&self.unknown);
        u.before(s, 1);
        let dims: Vec<u64> = self.dims.iter().map(|&v| v as u64).collect();
        put_varints(s, 1, &dims, has(self.flip, 1));
        u.before(s, 2);
        put_int_opt(s, e, 2, i64::from(self.data_type));
        u.before(s, 4);
        put_floats(s, 4, &self.float_data, !has(self.flip, 4));
        u.before(s, 5);
        let v: Vec<u64> = self
            .int32_data
            .iter()
            .map(|&v| i64::from(v) as u64)
            .collect();
        put_varints(s, 5, &v, !has(self.flip, 5));
        u.before(s, 7);
        let v: Vec<u64> = self.int64_data.iter().map(|&v| v as u64).collect();
        put_varints(s, 7, &v, !has(self.flip, 7));
        u.before(s, 8);
        put_str_opt(s, e, 8, &self.name);
        u.before(s, 9);
        if !self.raw_data.is_empty() || has(e, 9) {
            put_bytes(s, 9, &self.raw_data);
        }
        u.rest(s);
    }
}

impl Encode for ValueInfo {
    fn encode(&self, s: &mut dyn Sink) {
        let mut u = Merge::new(&self.unknown);
        u.before(s, 1);
        put_str_opt(s, self.explicit, 1, &self.name);
        u.before(s, 2);
        if let Some(t) = &self.ty {
            put_msg(s, 2, t);
        }
        u.rest(s);
    }
}

impl Encode for TypeProto {
    fn encode(&self, s: &mut dyn Sink) {
        let mut u = Merge::new(&self.unknown);
        u.before(s, 1);
        if let Some(t) = &self.tensor_type {
            put_msg(s, 1, t);
        }
        u.rest(s);
    }
}

impl Encode for TensorType {
    fn encode(&self, s: &mut dyn Sink) {
        let mut u = Merge::new(&self.unknown);
        u.before(s, 1);
        put_int_opt(s, self.explicit, 1, i64::from(self.elem_type));
        u.before(s, 2);
        if let Some(sh) = &self.shape {
            put_msg(s, 2, sh);
        }
        u.rest(s);
    }
}

impl Encode for Shape {
    fn encode(&self, s: &mut dyn Sink) {
        let mut u = Merge::new(&self.unknown);
        u.before(s, 1);
        for d in &self.dim {
            put_msg(s, 1, d);
        }
        u.rest(s);
    }
}

impl Encode for Dim {
    fn encode(&self, s: &mut dyn Sink) {
        let mut u = Merge::new(&self.unknown);
        u.before(s, 1);
        if let DimValue::Value(v) = &self.value {
            put_int(s, 1, *v);
        }
        u.before(s, 2);
        if let DimValue::Param(p) = &self.value {
            put_bytes(s, 2, p.as_bytes());
        }
        u.rest(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v));
            let mut r = Reader::new(&b, 0, 0);
            assert_eq!(r.varint("t").unwrap(), v);
            assert!(r.done());
        }
    }

    #[test]
    fn overlong_varint_is_an_error() {
        let b = [0xffu8; 11];
        let mut r = Reader::new(&b, 0, 0);
        assert!(r.varint("t").is_err());
    }

    #[test]
    fn unknown_fields_and_packing_survive() {
        // A tensor with an unknown doc_string (12) after raw_data (9), dims unpacked,
        // an explicit empty name, and a model with metadata_props (14).
        let mut t = Vec::new();
        put_int(&mut t, 1, 2);
        put_int(&mut t, 1, 3);
        put_int(&mut t, 2, 1);
        put_bytes(&mut t, 8, b"");
        put_bytes(&mut t, 9, &[0u8; 24]);
        put_bytes(&mut t, 12, b"doc");
        let mut g = Vec::new();
        put_bytes(&mut g, 5, &t);
        let mut m = Vec::new();
        put_int(&mut m, 1, 8);
        put_bytes(&mut m, 7, &g);
        put_bytes(&mut m, 14, b"\x0a\x01k\x12\x01v");
        let model = Model::parse(&m).unwrap();
        let t0 = &model.graph.as_ref().unwrap().initializer[0];
        assert_eq!(t0.dims, vec![2, 3]);
        assert_eq!(t0.to_f32().unwrap().len(), 6);
        assert_eq!(model.to_bytes(), m);
        assert_eq!(model.encoded_len(), m.len());
    }

    #[test]
    fn deep_nesting_is_refused() {
        // Graph → node → attribute(g) → graph … beyond MAX_DEPTH.
        let mut g: Vec<u8> = Vec::new();
        for _ in 0..MAX_DEPTH {
            let mut a = Vec::new();
            put_bytes(&mut a, 6, &g);
            let mut n = Vec::new();
            put_bytes(&mut n, 5, &a);
            let mut gg = Vec::new();
            put_bytes(&mut gg, 1, &n);
            g = gg;
        }
        let mut m = Vec::new();
        put_bytes(&mut m, 7, &g);
        let e = Model::parse(&m).unwrap_err().to_string();
        assert!(e.contains("nested deeper"), "{e}");
    }
}
