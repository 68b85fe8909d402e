//! Choosing a Burn device by name, and seeding Burn's random numbers safely.
//!
//! Burn 0.22 picks the backend at run time through a [`Device`]; which constructors exist
//! depends on the cargo features this crate was built with (`flex`, `ndarray`, `wgpu`,
//! `cuda`, `cpu`). Every example takes `--device NAME` and resolves it here.

use std::sync::Mutex;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};

/// Held while Burn's random numbers are seeded and drawn (see [`seeded`]).
static BACKEND_RNG: Mutex<()> = Mutex::new(());

/// Runs `f` with Burn's random numbers (layer initialisation, dropout masks) seeded by
/// `seed`, holding a process-wide lock.
///
/// A Burn backend draws every random number from one process-wide generator, so two
/// models initialised or trained at the same time would take turns in it and get
/// different numbers on every run. Every use of that generator in this workspace (encoder,
/// MSPA and composer initialisation, the composer's training steps) goes through here, so
/// models trained side by side get the same numbers as alone; MSPA and SASRec draw their
/// dropout masks from streams of their own and need no lock while training. Keep `f`
/// short: other seeded work waits for it.
///
/// ```
/// use burn::tensor::{Device, Distribution, Tensor};
/// use mspa_modal::device::seeded;
/// let device = Device::flex();
/// let draw = || Tensor::<1>::random([4], Distribution::Default, &device).into_data();
/// assert_eq!(seeded(&device, 7, draw), seeded(&device, 7, draw));
/// ```
pub fn seeded<R>(device: &Device, seed: u64, f: impl FnOnce() -> R) -> R {
    let _guard = BACKEND_RNG.lock().unwrap_or_else(|e| e.into_inner());
    device.seed(seed);
    f()
}

/// Initialises every parameter of `module` now. Burn initialises a layer's parameters
/// lazily, when first read, drawing from the backend's generator at that moment; call this
/// inside [`seeded`] right after building a module so its numbers come from that seed.
pub fn materialize<M: Module>(module: &M) {
    struct Touch;
    impl ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Touch);
}

/// Runs `f` on a pool of its own with one thread, so that its tensor work is done in one
/// fixed order whatever else runs beside it.
///
/// A CPU backend splits a reduction over the threads of the current rayon pool as they
/// become free, so the order of float additions (and the last bits of the results) can
/// change when other work competes for the same pool. Models trained side by side each
/// run alone on one thread (the machine's cores still all work, one model each), which
/// gives the numbers of a `RAYON_NUM_THREADS=1` run. Falls back to running `f` in place if
/// the pool cannot be built.
pub fn on_one_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

/// The device names this crate understands, in the order the README lists them.
pub const DEVICE_NAMES: [&str; 5] = ["flex", "ndarray", "wgpu", "cuda", "cpu"];

/// Why a device name could not be turned into a device.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    /// The name is none of [`DEVICE_NAMES`].
    #[error("unknown device `{name}`: expected one of flex, ndarray, wgpu, cuda, cpu")]
    Unknown {
        /// The name that was asked for.
        name: String,
    },
    /// The name is known but its backend was not compiled into this build.
    #[error(
        "device `{name}` was not compiled in: rebuild with `--features {name}` \
         (compiled in: {compiled})"
    )]
    NotCompiled {
        /// The name that was asked for.
        name: String,
        /// The device names this build does support, comma separated.
        compiled: String,
    },
}

/// The device names compiled into this build.
///
/// ```
/// assert!(mspa_modal::device::compiled_devices().contains(&"flex"));
/// ```
pub fn compiled_devices() -> Vec<&'static str> {
    DEVICE_NAMES
        .into_iter()
        .filter(|name| is_compiled(name))
        .collect()
}

fn is_compiled(name: &str) -> bool {
    match name {
        "flex" => cfg!(feature = "flex"),
        "ndarray" => cfg!(feature = "ndarray"),
        "wgpu" => cfg!(feature = "wgpu"),
        "cuda" => cfg!(feature = "cuda"),
        "cpu" => cfg!(feature = "cpu"),
        _ => false,
    }
}

/// Turns a device name (`flex`, `ndarray`, `wgpu`, `cuda`, `cpu`; case-insensitive) into a
/// Burn [`Device`]. `wgpu` takes the default adapter, `cuda` the GPU with index 0.
///
/// Unknown names and backends that were not compiled in are errors, never a silent
/// fallback to another backend.
///
/// ```
/// let device = mspa_modal::device::device_from_name("flex").unwrap();
/// let t = burn::tensor::Tensor::<1>::from_floats([1.0, 2.0], &device);
/// assert_eq!(t.sum().into_scalar::<f32>(), 3.0);
/// assert!(mspa_modal::device::device_from_name("tpu").is_err());
/// ```
pub fn device_from_name(name: &str) -> Result<Device, DeviceError> {
    let lower = name.trim().to_ascii_lowercase();
    if !DEVICE_NAMES.contains(&lower.as_str()) {
        return Err(DeviceError::Unknown {
            name: name.to_string(),
        });
    }
    construct(&lower).ok_or_else(|| DeviceError::NotCompiled {
        name: lower.clone(),
        compiled: compiled_devices().join(", "),
    })
}

#[allow(unreachable_code)]
fn construct(name: &str) -> Option<Device> {
    match name {
        #[cfg(feature = "flex")]
        "flex" => Some(Device::flex()),
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        "ndarray" => Some(Device::ndarray()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Some(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(feature = "cuda")]
        "cuda" => Some(Device::cuda(0)),
        #[cfg(feature = "cpu")]
        "cpu" => Some(Device::cpu()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Tensor;

    #[test]
    fn unknown_name_is_a_clear_error() {
        let err = device_from_name("tpu").unwrap_err();
        assert!(matches!(err, DeviceError::Unknown { .. }));
        assert!(err.to_string().contains("tpu"));
        assert!(err.to_string().contains("flex"));
    }

    #[test]
    fn names_are_case_insensitive() {
        assert!(device_from_name(" FLEX ").is_ok());
    }

    #[test]
    fn missing_backends_say_how_to_get_them() {
        for name in DEVICE_NAMES {
            match device_from_name(name) {
                Ok(_) => assert!(compiled_devices().contains(&name)),
                Err(DeviceError::NotCompiled { name: n, compiled }) => {
                    assert_eq!(n, name);
                    assert!(compiled.contains("flex"));
                }
                Err(e) => panic!("unexpected error for {name}: {e}"),
            }
        }
    }

    /// Runs a small matmul and a reduction on every device this build has (wgpu runs on
    /// lavapipe in CI) and compares with the result computed by hand.
    #[test]
    fn every_compiled_cpu_or_gpu_device_computes_the_same() {
        for name in compiled_devices() {
            if name == "cuda" || name == "cpu" {
                continue; // built only where their toolchains exist
            }
            let device = device_from_name(name).unwrap();
            let a = Tensor::<2>::from_floats([[1.0, 2.0], [3.0, 4.0]], &device);
            let b = Tensor::<2>::from_floats([[0.5, -1.0], [2.0, 0.25]], &device);
            let c: Vec<f32> = a.matmul(b).into_data().try_to_vec::<f32>().unwrap();
            assert_eq!(c, vec![4.5, -0.5, 9.5, -2.0], "device {name}");
        }
    }
}
