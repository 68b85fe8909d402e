//! `mspa-modal`: the media side of MSPA.
//!
//! * [`device`]: turning a device name into a Burn device (every example's `--device`).
//!
//! See `DESIGN.md` for the parts still to come (encoders, feature extraction).

pub mod audio;
pub mod device;
pub mod encoders;
pub mod error;
pub mod features;
pub mod frames;
pub mod pretrain;
pub mod text;

pub use device::{DeviceError, compiled_devices, device_from_name};
pub use error::{ModalError, Result};
