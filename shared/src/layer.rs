//! Layer definitions: the kinds of layer a bitspike model holds, their geometry and shape rules.
//!
//! A model is a list of layers over a list of tensors. Tensor 0 is the network input; layer `i`
//! produces tensor `i + 1` and reads one earlier tensor (two for [`LayerKind::Add`]), so the graph
//! is acyclic by construction and the layer order is an execution order. The last tensor is the
//! network output.
//!
//! Activations are stored **HWC** (channels last, one byte per code), the layout CMSIS-NN and
//! TFLite Micro use on Cortex-M. Convolution weights are **OHWI** (`[out_c][kh][kw][in_c/groups]`),
//! dense weights `[out][in]` with `in` the HWC-flattened input index. The trainer works in NCHW and
//! permutes at export.

/// What a layer computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum LayerKind {
    /// 2-D convolution with stride, symmetric zero padding and groups (depthwise when
    /// `groups == in_c == out_c`). Weights `[out_c][kh][kw][in_c/groups]`, i32 bias per output
    /// channel, per-channel requantization.
    Conv2d = 1,
    /// Fully connected layer over the HWC-flattened input. Weights `[out][in]`.
    Dense = 2,
    /// Average pooling over a window; padding counts as zero and the divisor is always `kh * kw`
    /// (PyTorch's `count_include_pad=True`), folded into the requantization multiplier.
    AvgPool = 3,
    /// Max pooling over a window; padded positions are ignored. Codes pass through unscaled, so the
    /// output has the input's level count and scale.
    MaxPool = 4,
    /// Mean over all spatial positions, per channel: the sum, then requantization with `1/(h*w)`
    /// folded into the multiplier.
    GlobalAvgPool = 5,
    /// Residual add of two tensors of one shape: `acc = a * wa + b * wb (+ bias)` with integer
    /// weights that carry the ratio of the two input scales and an optional i32 bias per channel
    /// (it undoes the inputs' zero points), then requantization.
    Add = 6,
    /// Reshape to `1 x 1 x (h*w*c)`; moves no data (the output shares the input's memory).
    Flatten = 7,
}

impl LayerKind {
    /// Decode a kind byte from the model file.
    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Conv2d,
            2 => Self::Dense,
            3 => Self::AvgPool,
            4 => Self::MaxPool,
            5 => Self::GlobalAvgPool,
            6 => Self::Add,
            7 => Self::Flatten,
            _ => return None,
        })
    }

    /// Whether the layer carries packed weights.
    pub const fn has_weights(self) -> bool {
        matches!(self, Self::Conv2d | Self::Dense)
    }

    /// Whether the layer ends with per-channel requantization.
    pub const fn requantizes(self) -> bool {
        !matches!(self, Self::MaxPool | Self::Flatten)
    }

    /// Whether the layer uses the window fields (kernel, stride, padding).
    pub const fn has_window(self) -> bool {
        matches!(self, Self::Conv2d | Self::AvgPool | Self::MaxPool)
    }

    /// A short lowercase name, as used in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Conv2d => "conv2d",
            Self::Dense => "dense",
            Self::AvgPool => "avgpool",
            Self::MaxPool => "maxpool",
            Self::GlobalAvgPool => "gap",
            Self::Add => "add",
            Self::Flatten => "flatten",
        }
    }
}

/// A tensor's shape in HWC order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Shape {
    /// Height.
    pub h: u16,
    /// Width.
    pub w: u16,
    /// Channels (features for a vector).
    pub c: u16,
}

impl Shape {
    /// A shape from height, width and channels.
    pub const fn new(h: u16, w: u16, c: u16) -> Self {
        Self { h, w, c }
    }

    /// A `1 x 1 x n` vector shape.
    pub const fn vector(n: u16) -> Self {
        Self { h: 1, w: 1, c: n }
    }

    /// Number of elements, saturating at `usize::MAX` (on a 32-bit target a corrupt shape could
    /// overflow; the format reader refuses tensors above [`crate::format::MAX_TENSOR_ELEMS`]).
    pub const fn len(&self) -> usize {
        (self.h as usize)
            .saturating_mul(self.w as usize)
            .saturating_mul(self.c as usize)
    }

    /// Whether the shape has no elements.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How a tensor's elements are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum Dtype {
    /// Unsigned activation codes `0..=L`, one byte each.
    Code = 0,
    /// Raw i32 accumulators (little-endian, four bytes each); only the network output may be raw,
    /// so that the final logits keep their full precision.
    Acc32 = 1,
}

impl Dtype {
    /// Decode a dtype byte.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Code),
            1 => Some(Self::Acc32),
            _ => None,
        }
    }

    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            Self::Code => 1,
            Self::Acc32 => 4,
        }
    }
}

/// Temporal alignment between spiking layers with different timesteps (QAC section 4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum Align {
    /// Averaging expansion, QAC eq. 12-13 (the default): the spike count of the previous layer
    /// divided by its timesteps is a constant input current for every step of this layer.
    Average = 0,
    /// Replication: each step takes the previous layer's nearest step by integer indexing.
    Replicate = 1,
    /// Truncation: step `t` takes the previous layer's step `t`, missing steps are silent.
    Truncate = 2,
}

impl Align {
    /// Decode an alignment byte.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Average),
            1 => Some(Self::Replicate),
            2 => Some(Self::Truncate),
            _ => None,
        }
    }
}

/// A sliding window: kernel size, stride and symmetric zero padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Window {
    /// Kernel height.
    pub kh: u8,
    /// Kernel width.
    pub kw: u8,
    /// Vertical stride.
    pub sh: u8,
    /// Horizontal stride.
    pub sw: u8,
    /// Zero rows added above and below.
    pub ph: u8,
    /// Zero columns added left and right.
    pub pw: u8,
}

impl Window {
    /// A square window with equal stride and padding in both directions.
    pub const fn square(k: u8, stride: u8, pad: u8) -> Self {
        Self {
            kh: k,
            kw: k,
            sh: stride,
            sw: stride,
            ph: pad,
            pw: pad,
        }
    }

    /// Output size along one axis: `(n + 2p - k) / s + 1`, or `None` when the window does not fit
    /// or a parameter is zero.
    pub const fn out_dim(n: u16, k: u8, s: u8, p: u8) -> Option<u16> {
        if k == 0 || s == 0 {
            return None;
        }
        let padded = n as u32 + 2 * p as u32;
        if padded < k as u32 {
            return None;
        }
        let o = (padded - k as u32) / s as u32 + 1;
        if o > u16::MAX as u32 {
            None
        } else {
            Some(o as u16)
        }
    }
}

/// The geometry of one layer: everything its shape rules and cost models need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Geometry {
    /// The layer's kind.
    pub kind: LayerKind,
    /// Window (used by convolution and the windowed pools).
    pub window: Window,
    /// Groups (convolution only; 1 elsewhere).
    pub groups: u16,
    /// Shape of the (first) input.
    pub input: Shape,
    /// Shape of the output.
    pub output: Shape,
}

/// Why a layer's shapes do not chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ShapeError {
    /// A kernel size or stride is zero, a pool's padding exceeds half its window, or the window
    /// is larger than the padded input.
    Window,
    /// Groups (or a convolution's output channels) are zero, or groups do not divide the input or
    /// output channels.
    Groups,
    /// An input is not an earlier tensor of the model.
    Input,
    /// The output shape is not what the layer computes from its input.
    Output,
    /// The two inputs of an add differ in shape.
    AddInputs,
    /// A size does not fit the format's limits.
    TooLarge,
}

/// The output shape a layer computes from its input. `out_channels` is the output channel count
/// for convolution and dense layers and ignored by the others.
pub fn infer_output(
    kind: LayerKind,
    window: Window,
    groups: u16,
    out_channels: u16,
    input: Shape,
) -> Result<Shape, ShapeError> {
    match kind {
        LayerKind::Conv2d => {
            if groups == 0 || out_channels == 0 {
                return Err(ShapeError::Groups);
            }
            if !input.c.is_multiple_of(groups) || !out_channels.is_multiple_of(groups) {
                return Err(ShapeError::Groups);
            }
            let h = Window::out_dim(input.h, window.kh, window.sh, window.ph);
            let w = Window::out_dim(input.w, window.kw, window.sw, window.pw);
            match (h, w) {
                (Some(h), Some(w)) => Ok(Shape::new(h, w, out_channels)),
                _ => Err(ShapeError::Window),
            }
        }
        LayerKind::AvgPool | LayerKind::MaxPool => {
            // Padding beyond half the kernel would make whole windows of padding.
            if window.ph as u16 * 2 > window.kh as u16 || window.pw as u16 * 2 > window.kw as u16 {
                return Err(ShapeError::Window);
            }
            let h = Window::out_dim(input.h, window.kh, window.sh, window.ph);
            let w = Window::out_dim(input.w, window.kw, window.sw, window.pw);
            match (h, w) {
                (Some(h), Some(w)) => Ok(Shape::new(h, w, input.c)),
                _ => Err(ShapeError::Window),
            }
        }
        LayerKind::Dense => {
            if out_channels == 0 {
                return Err(ShapeError::Output);
            }
            Ok(Shape::vector(out_channels))
        }
        LayerKind::GlobalAvgPool => Ok(Shape::vector(input.c)),
        LayerKind::Add => Ok(input),
        LayerKind::Flatten => {
            let n = input.len();
            if n > u16::MAX as usize {
                return Err(ShapeError::TooLarge);
            }
            Ok(Shape::vector(n as u16))
        }
    }
}

impl Geometry {
    /// Check that `output` is what the layer computes from `input` (and, for an add, that the
    /// second input has the same shape).
    pub fn check(&self, second_input: Option<Shape>) -> Result<(), ShapeError> {
        let expect = infer_output(
            self.kind,
            self.window,
            self.groups,
            self.output.c,
            self.input,
        )?;
        if expect != self.output {
            return Err(ShapeError::Output);
        }
        if self.kind == LayerKind::Add && second_input != Some(self.input) {
            return Err(ShapeError::AddInputs);
        }
        Ok(())
    }

    /// Number of weights: `out_c * kh * kw * in_c / groups` for a convolution, `out * in` for a
    /// dense layer, 0 otherwise. In u64, where no shape can overflow it.
    pub const fn weight_count(&self) -> u64 {
        match self.kind {
            LayerKind::Conv2d => {
                let g = if self.groups == 0 { 1 } else { self.groups } as u64;
                self.output.c as u64
                    * self.window.kh as u64
                    * self.window.kw as u64
                    * (self.input.c as u64 / g)
            }
            LayerKind::Dense => self.output.c as u64 * self.input.len() as u64,
            _ => 0,
        }
    }

    /// Number of output channels that carry requantization parameters (and bias): the output's
    /// channel count for every requantizing layer.
    pub const fn channels(&self) -> usize {
        self.output.c as usize
    }
}
