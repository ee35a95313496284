//! A GGUF file from untrusted bytes, through the loader `hearth serve` uses: header,
//! metadata and tensor infos (hearth's checks around candle's reader), then the model
//! build, which reads tensors the metadata names, and the tokenizer hearth-text builds
//! from the metadata. Any panic, over-large allocation or
//! timeout is a bug; an error is the right answer to a bad file.
#![no_main]

use hearth_models::gguf_read::read_content;
use hearth_models::{load_gguf_from, LoadOptions};
use hearth_text::Tokenizer;
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    if let Ok(content) = read_content(&mut Cursor::new(data), "fuzz") {
        // Every tensor the header lists is read (its bytes were checked to be there).
        for name in content.tensor_infos.keys() {
            let _ = content.tensor(&mut Cursor::new(data), name, &candle_core::Device::Cpu);
        }
        // hearth-text builds the tokenizer from the same metadata.
        let _ = Tokenizer::from_gguf_metadata(&content.metadata);
    }
    let _ = load_gguf_from(&mut Cursor::new(data), "fuzz", &LoadOptions::default());
});
