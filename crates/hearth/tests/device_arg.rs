//! `serve --device`: `cpu` is the default; `cuda` in a build without the `cuda`
//! feature is refused at start with a message saying how to build it.

mod common;

use std::process::Command;

use common::model_path;

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("serve")
        .arg(model_path())
        .args(["--port", "0", "--device", "cuda"])
        .output()
        .expect("run hearth serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("built without CUDA") && err.contains("--features cuda"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn unknown_devices_are_refused_by_the_parser() {
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "x.gguf", "--device", "tpu"])
        .output()
        .expect("run hearth serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("tpu") && err.contains("cpu") && err.contains("cuda"),
        "{err}"
    );
}

/// `--dtype` is the GPU's weight type: on the CPU anything but `auto` is refused
/// before the model loads, and an unknown type by the parser with the choices.
#[test]
fn dtype_is_for_the_gpu() {
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("serve")
        .arg(model_path())
        .args(["--port", "0", "--dtype", "bfloat16"])
        .output()
        .expect("run hearth serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("--dtype applies to --device cuda"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "x.gguf", "--dtype", "int3"])
        .output()
        .expect("run hearth serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("int3") && err.contains("bfloat16") && err.contains("float32"),
        "{err}"
    );
}
