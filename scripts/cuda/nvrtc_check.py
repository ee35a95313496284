#!/usr/bin/env python3
"""Compiles hearth's CUDA kernels on a machine without a GPU, as the GPU machine will.

NVRTC compiles CUDA C++ to PTX with no GPU present; ptxas then assembles the PTX for a
real architecture and reports each kernel's registers, shared memory and spills. Both
come from NVIDIA's PyPI wheels:

    python3 -m venv /tmp/nvvenv
    /tmp/nvvenv/bin/pip install nvidia-cuda-nvrtc-cu12 nvidia-cuda-nvcc-cu12
    /tmp/nvvenv/bin/python scripts/cuda/nvrtc_check.py [--arch 90] [--ptx OUT.ptx]

The sources are concatenated in the order `crates/hearth-models/src/cuda/mod.rs` lists
them (the KERNELS array), so a compile error here is one the GPU machine would hit.
Exit status 1 on a compile or assembly error.
"""
import argparse
import ctypes
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
CUDA_DIR = ROOT / "crates/hearth-models/src/cuda"


def kernel_sources(array="KERNELS"):
    """The files of an array of cuda/mod.rs (KERNELS, QUANT_KERNELS), in order."""
    text = (CUDA_DIR / "mod.rs").read_text()
    block = re.search(rf"const {array}: \[&str; \d+\] = \[(.*?)\];", text, re.S)
    if not block:
        sys.exit(f"{array} array not found in cuda/mod.rs")
    return [CUDA_DIR / p for p in re.findall(r'include_str!\("([^"]+)"\)', block.group(1))]


def nvidia_dir(pkg):
    import importlib.util

    spec = importlib.util.find_spec(f"nvidia.{pkg}")
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"nvidia-{pkg.replace('_', '-')}-cu12 is not installed")
    return pathlib.Path(list(spec.submodule_search_locations)[0])


def compile_ptx(source, arch):
    lib = ctypes.CDLL(str(nvidia_dir("cuda_nvrtc") / "lib/libnvrtc.so.12"))
    prog = ctypes.c_void_p()
    check = lambda rc, what: rc == 0 or sys.exit(f"NVRTC {what} failed: {rc}")
    check(lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"hearth.cu", 0, None, None),
          "create")
    opts = [f"--gpu-architecture=compute_{arch}".encode()]
    arr = (ctypes.c_char_p * len(opts))(*opts)
    rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    if log.value.strip():
        print(log.value.decode(errors="replace"))
    if rc != 0:
        sys.exit(f"NVRTC compile failed ({rc})")
    lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
    ptx = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetPTX(prog, ptx)
    return ptx.value.decode()


def define_head(defines):
    """`#define NAME VALUE` lines for NAME=VALUE switches."""
    return "".join("#define {} {}\n".format(*d.split("=", 1)) for d in defines)


def quant_source(defines=()):
    """The quantized products' program (cuda/mod.rs's QUANT_KERNELS) with every type that
    quant_type.rs instantiates, after `defines` (NAME=VALUE: the switches cuda/mod.rs
    prepends, e.g. QROWS=1)."""
    types = re.findall(r'QuantType::\w+ => names!\("(\w+)", "(\w+)"(?:, "(\w+)")?\)',
                       (CUDA_DIR / "quant_type.rs").read_text())
    if not types:
        sys.exit("no QUANT_TYPE instantiations found in cuda/quant_type.rs")
    lines = "".join(f"QUANT_TYPE({stem}, {ty})\n" + (f"MMQ_TYPE({stem}, {mmq})\n" if mmq else "")
                    for stem, ty, mmq in types)
    return define_head(defines) + "".join(p.read_text() for p in kernel_sources("QUANT_KERNELS")) + lines


def assemble(ptx, out, arch):
    """ptxas over one program's PTX: one line a kernel (registers, spills); exits on error."""
    out.write_text(ptx)
    ptxas = nvidia_dir("cuda_nvcc") / "bin/ptxas"
    res = subprocess.run([str(ptxas), f"-arch=sm_{arch}", "-v", str(out), "-o", os.devnull],
                         capture_output=True, text=True)
    name = None
    for line in res.stderr.splitlines():
        m = re.search(r"Compiling entry function '(\w+)'", line)
        if m:
            name = m.group(1)
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and name:
            spill = f"stack {m.group(1)} spill {m.group(2)}/{m.group(3)}"
        m = re.search(r"Used (\d+) registers", line)
        if m and name:
            print(f"{name:40s} {m.group(1):>4s} registers  {spill}")
    if res.returncode != 0:
        print(res.stderr)
        sys.exit("ptxas failed")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="90")
    ap.add_argument("--ptx", help="also write the base program's PTX here")
    ap.add_argument("--define", action="append", default=[],
                    help="NAME=VALUE before both programs (QROWS=1, QACT_BITS=8)")
    args = ap.parse_args()
    source = define_head(args.define) + "".join(p.read_text() for p in kernel_sources())
    assemble(compile_ptx(source, args.arch),
             pathlib.Path(args.ptx or "/tmp/hearth-kernels.ptx"), args.arch)
    assemble(compile_ptx(quant_source(args.define), args.arch), pathlib.Path("/tmp/hearth-quant.ptx"),
             args.arch)


if __name__ == "__main__":
    main()
