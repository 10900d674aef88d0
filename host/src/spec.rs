//! The network specification: one list of nodes that drives both the tch module
//! ([`crate::net::QNet`]) and the export, the architectures bitspike trains, and each node's
//! shapes and geometry.
//!
//! Node `i` reads tensor `input` (0 is the image, `j + 1` the output of node `j`) and produces
//! tensor `i + 1`, exactly as layer `i` of the model file does (`bitspike_core::layer`).

use anyhow::{bail, Context, Result};
use bitspike_core::layer::{Geometry, LayerKind, Shape, Window};
use serde::{Deserialize, Serialize};

/// One operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// Convolution (square kernel), BatchNorm, ReLU (unless `relu` is false) and activation
    /// quantizer.
    Conv {
        /// Output channels.
        out: i64,
        /// Kernel size.
        k: i64,
        /// Stride.
        stride: i64,
        /// Zero padding.
        pad: i64,
        /// Groups.
        groups: i64,
        /// A ReLU before the quantizer (true), or none: a signed output (a residual block's
        /// second convolution and its shortcut), quantized at 8 bits with a zero point.
        #[serde(default = "relu_default")]
        relu: bool,
    },
    /// Max pooling (codes pass through).
    MaxPool {
        /// Window.
        k: i64,
        /// Stride.
        stride: i64,
    },
    /// Average pooling, requantized on its input's step.
    AvgPool {
        /// Window.
        k: i64,
        /// Stride.
        stride: i64,
    },
    /// Global average pooling, requantized on its input's step.
    GlobalAvgPool,
    /// Flatten to a vector.
    Flatten,
    /// Residual add with tensor `other`, then ReLU and activation quantizer.
    Add {
        /// The other tensor.
        other: usize,
    },
    /// Fully connected: hidden (bias, ReLU, activation quantizer) or the logits (raw output).
    Dense {
        /// Output features.
        out: i64,
        /// Hidden layer (true) or the network's logits (false).
        hidden: bool,
    },
}

/// Whether a node ends in an activation quantizer of its own.
fn quantizes(op: &Op) -> bool {
    matches!(
        op,
        Op::Conv { .. } | Op::Add { .. } | Op::Dense { hidden: true, .. }
    )
}

/// Convolutions written before `relu` existed all had a ReLU.
fn relu_default() -> bool {
    true
}

/// A node: an operation and the tensor it reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// What it computes.
    pub op: Op,
    /// The tensor it reads (0 = the image).
    pub input: usize,
}

/// The architectures bitspike trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum TrainArch {
    /// A small CNN: three 3x3 convolutions (8/16/32) each followed by a 2x2 max pool (GAP
    /// instead of the last pool on inputs under 16 pixels), then dense.
    Cnn,
    /// LeNet-5 size: 5x5 convolutions (6/16) with max pools, dense 120-84-classes.
    Lenet,
    /// A small VGG-style CNN: pairs of 3x3 convolutions (16/32/64) with max pools, GAP, dense.
    Vgg,
    /// MLPerf Tiny's image-classification ResNet-8 (16/32/64 filters, residual adds): each
    /// block's second convolution and its 1x1 shortcut end without a ReLU (signed outputs);
    /// the shortcut keeps a BatchNorm, as ResNet's projection shortcuts do.
    Resnet8,
}

/// A network specification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// Input channels, height, width.
    pub input: [i64; 3],
    /// Nodes in execution order.
    pub nodes: Vec<Node>,
}

struct Builder {
    nodes: Vec<Node>,
}

impl Builder {
    fn push(&mut self, op: Op, input: usize) -> usize {
        self.nodes.push(Node { op, input });
        self.nodes.len()
    }

    fn conv(&mut self, input: usize, out: i64, k: i64, stride: i64) -> usize {
        self.push(
            Op::Conv {
                out,
                k,
                stride,
                pad: k / 2,
                groups: 1,
                relu: true,
            },
            input,
        )
    }
}

impl Spec {
    /// How many features the last node (the logits layer) reads.
    pub fn feature_count(&self) -> Result<i64> {
        let shapes = self.shapes()?;
        let last = self.nodes.last().context("the network has no nodes")?;
        Ok(shapes[last.input].iter().product())
    }

    /// Whether node `i`'s output is signed (a convolution without a ReLU).
    pub fn signed(&self, i: usize) -> bool {
        matches!(
            self.nodes.get(i).map(|n| &n.op),
            Some(Op::Conv { relu: false, .. })
        )
    }

    /// The node whose activation quantizer makes the codes the logits layer reads (found back
    /// from its input through pools and flattens, which keep their input's codes).
    pub fn head_input_node(&self) -> Option<usize> {
        let mut t = self.nodes.last()?.input;
        while t > 0 {
            let n = &self.nodes[t - 1];
            if quantizes(&n.op) {
                return Some(t - 1);
            }
            match n.op {
                Op::MaxPool { .. } | Op::AvgPool { .. } | Op::GlobalAvgPool | Op::Flatten => {
                    t = n.input
                }
                _ => return None,
            }
        }
        None
    }

    /// The nodes whose activation quantizers make the edge activations: the first node's
    /// output and the codes the logits layer reads ([`Spec::head_input_node`]).
    pub fn edge_nodes(&self) -> Vec<usize> {
        let mut nodes = Vec::new();
        if self.nodes.first().is_some_and(|n| quantizes(&n.op)) {
            nodes.push(0);
        }
        if let Some(h) = self.head_input_node().filter(|h| !nodes.contains(h)) {
            nodes.push(h);
        }
        nodes
    }

    /// The specification of `arch` for `[c, h, w]` inputs and `classes` classes.
    pub fn of(arch: TrainArch, input: [i64; 3], classes: i64) -> Self {
        let mut b = Builder { nodes: Vec::new() };
        let pool = |b: &mut Builder, t| b.push(Op::MaxPool { k: 2, stride: 2 }, t);
        let small = input[1] < 16;
        match arch {
            TrainArch::Cnn => {
                let t = b.conv(0, 8, 3, 1);
                let t = pool(&mut b, t);
                let t = b.conv(t, 16, 3, 1);
                let t = if small { t } else { pool(&mut b, t) };
                let t = b.conv(t, 32, 3, 1);
                let t = if small {
                    b.push(Op::GlobalAvgPool, t)
                } else {
                    pool(&mut b, t)
                };
                let t = b.push(Op::Flatten, t);
                b.push(
                    Op::Dense {
                        out: classes,
                        hidden: false,
                    },
                    t,
                );
            }
            TrainArch::Lenet => {
                let t = b.push(
                    Op::Conv {
                        out: 6,
                        k: 5,
                        stride: 1,
                        pad: 2,
                        groups: 1,
                        relu: true,
                    },
                    0,
                );
                let t = pool(&mut b, t);
                let pad = if small { 2 } else { 0 };
                let t = b.push(
                    Op::Conv {
                        out: 16,
                        k: 5,
                        stride: 1,
                        pad,
                        groups: 1,
                        relu: true,
                    },
                    t,
                );
                let t = pool(&mut b, t);
                let t = b.push(Op::Flatten, t);
                let t = b.push(
                    Op::Dense {
                        out: 120,
                        hidden: true,
                    },
                    t,
                );
                let t = b.push(
                    Op::Dense {
                        out: 84,
                        hidden: true,
                    },
                    t,
                );
                b.push(
                    Op::Dense {
                        out: classes,
                        hidden: false,
                    },
                    t,
                );
            }
            TrainArch::Vgg => {
                let mut t = 0;
                for (i, c) in [16, 32, 64].into_iter().enumerate() {
                    t = b.conv(t, c, 3, 1);
                    t = b.conv(t, c, 3, 1);
                    if i < 2 && !(small && i == 1) {
                        t = pool(&mut b, t);
                    }
                }
                let t = b.push(Op::GlobalAvgPool, t);
                let t = b.push(Op::Flatten, t);
                b.push(
                    Op::Dense {
                        out: classes,
                        hidden: false,
                    },
                    t,
                );
            }
            TrainArch::Resnet8 => {
                // Each block: conv-BN-ReLU, conv-BN (no ReLU), plus the block's input or its
                // 1x1 strided projection (with BatchNorm, no ReLU), then ReLU.
                let mut x = b.conv(0, 16, 3, 1);
                for (c, s) in [(16, 1), (32, 2), (64, 2)] {
                    let y = b.conv(x, c, 3, s);
                    let y = b.push(
                        Op::Conv {
                            out: c,
                            k: 3,
                            stride: 1,
                            pad: 1,
                            groups: 1,
                            relu: false,
                        },
                        y,
                    );
                    let short = if s == 1 {
                        x
                    } else {
                        b.push(
                            Op::Conv {
                                out: c,
                                k: 1,
                                stride: s,
                                pad: 0,
                                groups: 1,
                                relu: false,
                            },
                            x,
                        )
                    };
                    x = b.push(Op::Add { other: short }, y);
                }
                let t = b.push(Op::GlobalAvgPool, x);
                let t = b.push(Op::Flatten, t);
                b.push(
                    Op::Dense {
                        out: classes,
                        hidden: false,
                    },
                    t,
                );
            }
        }
        Self {
            input,
            nodes: b.nodes,
        }
    }

    /// The specification a spiking conversion needs (QAC Algorithm 1, lines 5-7): max pools
    /// become average pools (a maximum of spike trains is not the spike train of a maximum).
    /// Residual adds are refused: the spiking engine has no spiking add.
    pub fn spiking(mut self) -> Result<Self> {
        for (i, n) in self.nodes.iter_mut().enumerate() {
            match n.op {
                Op::MaxPool { k, stride } => n.op = Op::AvgPool { k, stride },
                Op::Add { .. } => bail!(
                    "node {i} is a residual add, which the spiking engine does not run: \
                     QAC trains cnn, lenet and vgg"
                ),
                _ => {}
            }
        }
        Ok(self)
    }

    /// The geometry of every node as the shared crate describes a layer: what the exporter
    /// writes and what the cost model (`bitspike_core::cost`: MACs, BOPs, RAM) counts.
    pub fn geometries(&self) -> Result<Vec<Geometry>> {
        let shapes = self.shapes()?;
        let dim = |x: i64, what: &str| {
            u16::try_from(x)
                .with_context(|| format!("{what} {x} is beyond the model format's range"))
        };
        let shape = |[c, h, w]: [i64; 3]| -> Result<Shape> {
            Ok(Shape::new(
                dim(h, "a height of")?,
                dim(w, "a width of")?,
                dim(c, "a channel count of")?,
            ))
        };
        let window = |k: i64, stride: i64, pad: i64| -> Result<Window> {
            let b = |x: i64| {
                u8::try_from(x)
                    .with_context(|| format!("a window of {k}, stride {stride}, padding {pad}"))
            };
            Ok(Window::square(b(k)?, b(stride)?, b(pad)?))
        };
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let (kind, window, groups) = match n.op {
                    Op::Conv {
                        k,
                        stride,
                        pad,
                        groups,
                        ..
                    } => (
                        LayerKind::Conv2d,
                        window(k, stride, pad)?,
                        dim(groups, "a group count of")?,
                    ),
                    Op::MaxPool { k, stride } => (LayerKind::MaxPool, window(k, stride, 0)?, 1),
                    Op::AvgPool { k, stride } => (LayerKind::AvgPool, window(k, stride, 0)?, 1),
                    Op::GlobalAvgPool => (LayerKind::GlobalAvgPool, Window::default(), 1),
                    Op::Flatten => (LayerKind::Flatten, Window::default(), 1),
                    Op::Add { .. } => (LayerKind::Add, Window::default(), 1),
                    Op::Dense { .. } => (LayerKind::Dense, Window::default(), 1),
                };
                Ok(Geometry {
                    kind,
                    window,
                    groups,
                    input: shape(shapes[n.input])?,
                    output: shape(shapes[i + 1])?,
                })
            })
            .collect()
    }

    /// Shapes `[c, h, w]` of every tensor (0 = input), or an error naming the node whose
    /// shapes do not chain.
    pub fn shapes(&self) -> Result<Vec<[i64; 3]>> {
        let mut s = vec![self.input];
        for (i, n) in self.nodes.iter().enumerate() {
            let Some(&[c, h, w]) = s.get(n.input) else {
                bail!(
                    "node {i} reads tensor {}, which is not an earlier tensor",
                    n.input
                );
            };
            let dim = |x: i64, k: i64, st: i64, p: i64| (x + 2 * p - k) / st + 1;
            let out = match n.op {
                Op::Conv {
                    out,
                    k,
                    stride,
                    pad,
                    groups,
                    ..
                } => {
                    if c % groups != 0 || out % groups != 0 || h + 2 * pad < k || w + 2 * pad < k {
                        bail!("node {i}: a {k}x{k} convolution does not fit {c}x{h}x{w}");
                    }
                    [out, dim(h, k, stride, pad), dim(w, k, stride, pad)]
                }
                Op::MaxPool { k, stride } | Op::AvgPool { k, stride } => {
                    if h < k || w < k {
                        bail!("node {i}: a {k}x{k} pool does not fit {c}x{h}x{w}");
                    }
                    [c, dim(h, k, stride, 0), dim(w, k, stride, 0)]
                }
                Op::GlobalAvgPool => [c, 1, 1],
                Op::Flatten => [c * h * w, 1, 1],
                Op::Add { other } => {
                    if s.get(other) != Some(&[c, h, w]) {
                        bail!("node {i}: adds tensors of different shapes");
                    }
                    [c, h, w]
                }
                Op::Dense { out, .. } => [out, 1, 1],
            };
            s.push(out);
        }
        Ok(s)
    }
}
