//! Hostile model files for the bad-input suite: a small GGUF writer (each field
//! settable, so it can lie) and safetensors buffers, plus a runner that serves a
//! file and expects a quick, clear, non-panicking refusal.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A GGUF metadata value.
pub enum Kv {
    U32(u32),
    U64(u64),
    F32(f32),
    Str(String),
}

/// One tensor entry of the header: name, dims, ggml type id, offset in the data.
pub struct TensorEntry {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    pub offset: u64,
}

/// A GGUF v3 file; `tensor_count`/`kv_count` override the true counts (to lie).
#[derive(Default)]
pub struct Gguf {
    pub kvs: Vec<(String, Kv)>,
    pub tensors: Vec<TensorEntry>,
    pub tensor_count: Option<u64>,
    pub kv_count: Option<u64>,
    pub data: Vec<u8>,
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend((s.len() as u64).to_le_bytes());
    b.extend(s.as_bytes());
}

impl Gguf {
    pub fn kv(mut self, k: &str, v: Kv) -> Gguf {
        self.kvs.push((k.into(), v));
        self
    }

    pub fn tensor(mut self, name: &str, dims: &[u64], ggml_type: u32, offset: u64) -> Gguf {
        self.tensors.push(TensorEntry {
            name: name.into(),
            dims: dims.into(),
            ggml_type,
            offset,
        });
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(
            self.tensor_count
                .unwrap_or(self.tensors.len() as u64)
                .to_le_bytes(),
        );
        b.extend(self.kv_count.unwrap_or(self.kvs.len() as u64).to_le_bytes());
        for (k, v) in &self.kvs {
            put_str(&mut b, k);
            match v {
                Kv::U32(x) => {
                    b.extend(4u32.to_le_bytes());
                    b.extend(x.to_le_bytes());
                }
                Kv::F32(x) => {
                    b.extend(6u32.to_le_bytes());
                    b.extend(x.to_le_bytes());
                }
                Kv::U64(x) => {
                    b.extend(10u32.to_le_bytes());
                    b.extend(x.to_le_bytes());
                }
                Kv::Str(s) => {
                    b.extend(8u32.to_le_bytes());
                    put_str(&mut b, s);
                }
            }
        }
        for t in &self.tensors {
            put_str(&mut b, &t.name);
            b.extend((t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                b.extend(d.to_le_bytes());
            }
            b.extend(t.ggml_type.to_le_bytes());
            b.extend(t.offset.to_le_bytes());
        }
        while b.len() % 32 != 0 {
            b.push(0);
        }
        b.extend(&self.data);
        b
    }
}

/// A llama GGUF whose header is complete and consistent for a 1-layer model of
/// width 32 (f32 tensors), except for what the caller changes.
pub fn llama_header(block_count: u64) -> Gguf {
    let (h, vocab, ffn) = (32u64, 8u64, 64u64);
    let mut g = Gguf::default()
        .kv("general.architecture", Kv::Str("llama".into()))
        .kv("llama.embedding_length", Kv::U32(h as u32))
        .kv("llama.attention.head_count", Kv::U32(4))
        .kv("llama.feed_forward_length", Kv::U32(ffn as u32))
        .kv("llama.attention.layer_norm_rms_epsilon", Kv::F32(1e-5))
        .kv("llama.block_count", Kv::U64(block_count));
    let mut off = 0u64;
    let mut add = |g: Gguf, name: &str, dims: &[u64]| {
        let n: u64 = dims.iter().product();
        let g = g.tensor(name, dims, 0, off);
        off += n * 4;
        g
    };
    // ggml dims are innermost first.
    g = add(g, "token_embd.weight", &[h, vocab]);
    g = add(g, "output_norm.weight", &[h]);
    for (s, dims) in [
        ("attn_norm", vec![h]),
        ("attn_q", vec![h, h]),
        ("attn_k", vec![h, h]),
        ("attn_v", vec![h, h]),
        ("attn_output", vec![h, h]),
        ("ffn_norm", vec![h]),
        ("ffn_gate", vec![h, ffn]),
        ("ffn_up", vec![h, ffn]),
        ("ffn_down", vec![ffn, h]),
    ] {
        g = add(g, &format!("blk.0.{s}.weight"), &dims);
    }
    g.data = vec![0u8; off as usize];
    g
}

/// A safetensors file: an 8-byte header length (`declared`, else the true one),
/// the JSON header, then `data`.
pub fn safetensors(header: &str, declared: Option<u64>, data: &[u8]) -> Vec<u8> {
    let mut b = declared
        .unwrap_or(header.len() as u64)
        .to_le_bytes()
        .to_vec();
    b.extend(header.as_bytes());
    b.extend(data);
    b
}

/// `hearth serve MODEL` must exit non-zero within 60 s, say `says` (lowercase
/// compare) on stderr, and not panic. Returns stderr.
pub fn assert_refused(model: &Path, says: &str, home: &Path) -> String {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("serve")
        .arg(model)
        .args(["--port", "0", "--kv-cache-memory", "16MiB"])
        .env("HEARTH_HOME", home)
        .env("RUST_LOG", "warn")
        // A panic is seen by its exit code and message, with or without this.
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hearth serve");
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("hearth serve {} still running after 60 s", model.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut err)
        .expect("read stderr");
    let shown = model.display();
    assert!(!status.success(), "{shown}: exited 0\n{err}");
    // A panic exits 101 and prints "panicked"; an abort is killed by a signal.
    assert_eq!(status.code(), Some(1), "{shown}: {status}\n{err}");
    assert!(!err.contains("panicked"), "{shown}: panicked\n{err}");
    assert!(
        err.to_lowercase().contains(says),
        "{shown}: stderr does not say {says:?}\n{err}"
    );
    err
}
