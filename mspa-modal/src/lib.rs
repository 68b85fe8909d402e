//! `mspa-modal`: the media side of MSPA.
//!
//! Today it holds the device helper every example uses ([`device::device_from_name`]).
//! Media decoding, preprocessing, encoders and feature extraction are not implemented yet
//! (see `DESIGN.md`).

pub mod device;

pub use device::{DeviceError, compiled_devices, device_from_name};
