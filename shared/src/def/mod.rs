//! Owned model definitions (`std`): what the trainer's exporter builds and the writer serializes.
//!
//! A [`ModelDef`] is the network input plus a list of [`LayerDef`]s; layer `i` produces tensor
//! `i + 1` (see [`crate::layer`]). Output shapes are not stored here: they follow from the layer
//! geometry ([`crate::layer::infer_output`]), so a definition cannot disagree with itself.

pub mod random;

use crate::layer::{infer_output, Align, Dtype, Geometry, LayerKind, Shape, ShapeError, Window};

/// A tensor's element storage, level count and scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TensorDef {
    /// Shape, HWC.
    pub shape: Shape,
    /// Storage.
    pub dtype: Dtype,
    /// Level count (codes `0..=L`), 0 for i32.
    pub levels: u8,
    /// Real value of one code step.
    pub scale: f32,
}

impl TensorDef {
    /// Bytes the tensor takes.
    pub const fn bytes(&self) -> usize {
        self.shape.len() * self.dtype.size()
    }
}

/// One channel's requantization: a Q31 multiplier and a shift (see [`crate::quant`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Requant {
    /// Q31 multiplier, `>= 0`.
    pub multiplier: i32,
    /// Shift: positive right (rounding), negative left (saturating).
    pub shift: i8,
}

impl Requant {
    /// The scale this channel multiplies by, as a typed fixed-point value.
    pub const fn scale(self) -> crate::quant::Q31Scale {
        crate::quant::Q31Scale::from_bits(self.multiplier, self.shift)
    }
}

impl From<crate::quant::Q31Scale> for Requant {
    fn from(s: crate::quant::Q31Scale) -> Self {
        let (multiplier, shift) = s.to_bits();
        Self { multiplier, shift }
    }
}

/// Spiking parameters of an integrate-and-fire layer (QAC eq. 1-3), per output channel, in
/// membrane units: accumulator units times `2^shift` (see [`crate::snn`]). A spiking layer's
/// bias is in the same units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpikingDef {
    /// Firing threshold, `> 0`.
    pub threshold: Vec<i32>,
    /// Initial membrane potential.
    pub v0: Vec<i32>,
    /// Membrane shift `k`: the accumulator is scaled by `2^k` before it enters the membrane,
    /// `0..=`[`crate::snn::MAX_MEMBRANE_SHIFT`].
    pub shift: u8,
}

/// One layer, owned.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerDef {
    /// What the layer computes.
    pub kind: LayerKind,
    /// Input tensor index.
    pub input: u16,
    /// Second input tensor index (add only).
    pub input2: Option<u16>,
    /// Window (conv and windowed pools).
    pub window: Window,
    /// Groups (conv; 1 otherwise).
    pub groups: u16,
    /// Output channels (conv) or features (dense); ignored by the other kinds.
    pub out_channels: u16,
    /// Output level count (codes `0..=L`); ignored with `raw_output` and by max pool and
    /// flatten, whose output keeps the input's.
    pub levels: u8,
    /// Output scale; ignored by max pool and flatten, like `levels`.
    pub scale: f32,
    /// Write raw i32 accumulators instead of codes (last layer only).
    pub raw_output: bool,
    /// Weight bit width (2..=8 for conv and dense, 0 otherwise).
    pub weight_bits: u8,
    /// Unpacked weights (OHWI for conv, `[out][in]` for dense).
    pub weights: Vec<i8>,
    /// Bias per output channel, in accumulator units.
    pub bias: Option<Vec<i32>>,
    /// Requantization per output channel (empty for max pool, flatten and raw output).
    pub requant: Vec<Requant>,
    /// Output offset added after scaling.
    pub offset: i32,
    /// Add weights (wa, wb).
    pub add_weights: [i16; 2],
    /// Timesteps (1 for a non-spiking layer of a non-spiking model).
    pub timesteps: u16,
    /// Temporal alignment of the input.
    pub align: Align,
    /// Spiking parameters, for integrate-and-fire layers.
    pub spiking: Option<SpikingDef>,
    /// Scratch bytes the layer asks for; the writer raises it to what the runtime's kernel for
    /// the layer needs ([`crate::kernel::scratch_bytes`]).
    pub scratch_bytes: u32,
    /// How many of the layer's input codes are nonzero, measured by the exporter on training
    /// inputs ([`crate::kernel::density`]; 0: not measured). The runtime accumulates event by
    /// event on a target where that is cheaper at this density ([`crate::kernel::choose`]).
    pub input_density: u8,
}

impl LayerDef {
    /// A layer of `kind` reading `input`, with every optional part empty.
    pub fn new(kind: LayerKind, input: u16) -> Self {
        Self {
            kind,
            input,
            input2: None,
            window: Window::default(),
            groups: 1,
            out_channels: 0,
            levels: 255,
            scale: 1.0,
            raw_output: false,
            weight_bits: 0,
            weights: Vec::new(),
            bias: None,
            requant: Vec::new(),
            offset: 0,
            add_weights: [0, 0],
            timesteps: 1,
            align: Align::Average,
            spiking: None,
            scratch_bytes: 0,
            input_density: 0,
        }
    }

    /// A convolution.
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d(
        input: u16,
        out_channels: u16,
        window: Window,
        groups: u16,
        weight_bits: u8,
        weights: Vec<i8>,
        bias: Option<Vec<i32>>,
        requant: Vec<Requant>,
    ) -> Self {
        Self {
            window,
            groups,
            out_channels,
            weight_bits,
            weights,
            bias,
            requant,
            ..Self::new(LayerKind::Conv2d, input)
        }
    }

    /// A dense layer.
    pub fn dense(
        input: u16,
        out_features: u16,
        weight_bits: u8,
        weights: Vec<i8>,
        bias: Option<Vec<i32>>,
        requant: Vec<Requant>,
    ) -> Self {
        Self {
            out_channels: out_features,
            weight_bits,
            weights,
            bias,
            requant,
            ..Self::new(LayerKind::Dense, input)
        }
    }

    /// Set the output level count and scale.
    pub fn with_output(mut self, levels: u8, scale: f32) -> Self {
        self.levels = levels;
        self.scale = scale;
        self
    }

    /// Set the output offset.
    pub fn with_offset(mut self, offset: i32) -> Self {
        self.offset = offset;
        self
    }
}

/// A whole model, owned.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelDef {
    /// The network input (u8 codes).
    pub input: TensorDef,
    /// Layers in execution order.
    pub layers: Vec<LayerDef>,
}

impl ModelDef {
    /// A model with this input and no layers yet.
    pub fn new(input_shape: Shape, input_levels: u8, input_scale: f32) -> Self {
        Self {
            input: TensorDef {
                shape: input_shape,
                dtype: Dtype::Code,
                levels: input_levels,
                scale: input_scale,
            },
            layers: Vec::new(),
        }
    }

    /// Append a layer and return the index of the tensor it produces.
    pub fn push(&mut self, layer: LayerDef) -> u16 {
        self.layers.push(layer);
        self.layers.len() as u16
    }

    /// Every tensor of the model (input first), with shapes inferred layer by layer. Errors name
    /// the layer whose inputs are not earlier tensors or whose shapes do not chain.
    pub fn tensors(&self) -> Result<Vec<TensorDef>, (usize, ShapeError)> {
        let mut out: Vec<TensorDef> = Vec::with_capacity(self.layers.len() + 1);
        out.push(self.input);
        for (i, l) in self.layers.iter().enumerate() {
            let input = out
                .get(l.input as usize)
                .map(|t| t.shape)
                .ok_or((i, ShapeError::Input))?;
            match (l.kind, l.input2) {
                (LayerKind::Add, Some(b)) => {
                    let b = out.get(b as usize).ok_or((i, ShapeError::Input))?;
                    if b.shape != input {
                        return Err((i, ShapeError::AddInputs));
                    }
                }
                (LayerKind::Add, None) | (_, Some(_)) => return Err((i, ShapeError::Input)),
                _ => {}
            }
            let shape = infer_output(l.kind, l.window, l.groups, l.out_channels, input)
                .map_err(|e| (i, e))?;
            let (dtype, levels, scale) = match l.kind {
                // Pass-through kinds keep their input's levels and scale.
                LayerKind::MaxPool | LayerKind::Flatten => {
                    let t = out[l.input as usize];
                    (Dtype::Code, t.levels, t.scale)
                }
                _ if l.raw_output => (Dtype::Acc32, 0, l.scale),
                _ => (Dtype::Code, l.levels, l.scale),
            };
            out.push(TensorDef {
                shape,
                dtype,
                levels,
                scale,
            });
        }
        Ok(out)
    }

    /// Reserve, in every layer's scratch, the threshold tables with which the pairs kernel
    /// requantizes on Armv6-M cores ([`crate::kernel::thresholds_scratch_bytes`]): for a
    /// model meant for such a board (the tables cost `32 x channels` bytes of scratch where
    /// they apply; `cargo xtask bench --board qemu-an386-v6m` shows what they save). Layers whose
    /// shapes do not chain are left as they are (the writer reports them).
    pub fn reserve_armv6m_tables(&mut self) {
        let Ok(tensors) = self.tensors() else {
            return;
        };
        let geoms = self.geometries_of(&tensors);
        for (l, g) in self.layers.iter_mut().zip(&geoms) {
            if l.spiking.is_some() || l.raw_output {
                continue;
            }
            let levels = tensors[l.input as usize].levels;
            let need = crate::kernel::thresholds_scratch_bytes(g, l.weight_bits, levels, l.levels);
            l.scratch_bytes = l.scratch_bytes.max(need);
        }
    }

    /// Geometry of every layer (needs shapes that chain).
    pub fn geometries(&self) -> Result<Vec<Geometry>, (usize, ShapeError)> {
        Ok(self.geometries_of(&self.tensors()?))
    }

    /// Geometry of every layer, given the model's [`tensors`](Self::tensors).
    pub fn geometries_of(&self, t: &[TensorDef]) -> Vec<Geometry> {
        self.layers
            .iter()
            .enumerate()
            .map(|(i, l)| Geometry {
                kind: l.kind,
                window: l.window,
                groups: l.groups,
                input: t[l.input as usize].shape,
                output: t[i + 1].shape,
            })
            .collect()
    }
}
