#!/usr/bin/env python3
"""Reference for GGUF SentencePiece (`tokenizer.ggml.model = "llama"`) tokenizers, for
hearth-text's tests (crates/hearth-text/tests/spm_reference.rs).

Trains a tiny SentencePiece BPE model (byte fallback on, like Llama 2 / Gemma), writes a
tiny GGUF holding only its tokenizer metadata (plus the llama config keys transformers'
GGUF loader reads; no tensors), then records what transformers' GGUF tokenizer
(`AutoTokenizer.from_pretrained(dir, gguf_file=...)`, which builds a `tokenizers` BPE with
merges derived from the scores) gives for a set of strings, next to what sentencepiece
itself gives. Both the .gguf and the JSON are committed; CI does not run this script.

Requirements (pinned; the virtualenv of text_reference.py works):
    torch==2.5.1 transformers==4.46.3 tokenizers==0.20.3 gguf==0.10.0 numpy==1.26.4
    sentencepiece==0.2.0

Usage:
    python3 scripts/reference/spm_reference.py [--out-dir crates/hearth-text/tests/fixtures]

Output: spm_tiny.gguf and spm_reference.json, one JSON object:
{
  "format": "hearth-spm-reference/1",
  "gguf": {"file", "sha256"},
  "generator": {...versions...},
  "special": {"bos_token_id", "eos_token_id", "unknown_token_id", "add_bos_token"},
  "encode": [{"text", "ids" (add_special_tokens=False), "ids_with_special" (True),
              "decode" (skip_special_tokens=False), "decode_skip_special" (True),
              "sentencepiece_ids", "sentencepiece_decode"}]
}
Decodes use clean_up_tokenization_spaces=False.
"""

import argparse
import hashlib
import io
import json
import os
import random
import tempfile

import gguf
import sentencepiece as spm
import tokenizers
import transformers
from transformers import AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "..", "crates", "hearth-text", "tests", "fixtures")

# Control tokens (type 3) the text may contain; they must map to one id each.
CONTROL = ["<start_of_turn>", "<end_of_turn>"]
# A user-defined token (type 4): sentencepiece always matches it, transformers' GGUF
# converter does not add it (it only adds type 3), so the two may disagree on it.
USER_DEFINED = ["<mask>"]

TEXTS = [
    "Hello world",
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    " leading space",
    "   three leading spaces",
    "trailing space ",
    "multiple    spaces   here",
    "line one\nline two\n\nline four\n",
    "\nstarts with a newline",
    "tab\tseparated\tvalues",
    "12345 and 3.14159, 2024-06-01",
    "Crème brûlée, naïve café, Ångström.",
    "日本語のテキスト",
    "中文文本。",
    "Emoji: 😀👍🏽🎉",
    "zebra quixotic jukebox",
    "<start_of_turn>user\nhi there<end_of_turn>\n<start_of_turn>model\n",
    "a<end_of_turn>b",
    "the <mask> token",
    "<s>not special in text?</s>",
    "",
    " ",
    "I'm sure they'll say it's John's.",
]


def corpus():
    """A deterministic English-ish corpus: enough to give the BPE model real merges."""
    rng = random.Random(1234)
    words = ("the quick brown fox jumps over lazy dog hello world model token text "
             "sentence piece byte pair encoding merge score vocabulary language small "
             "test data line number value space newline user turn start end answer "
             "question is are was were be to of and in that it for on with as this").split()
    lines = []
    for _ in range(3000):
        n = rng.randint(3, 14)
        line = " ".join(rng.choice(words) for _ in range(n))
        if rng.random() < 0.3:
            line = line.capitalize() + rng.choice([".", "!", "?", ","])
        if rng.random() < 0.2:
            line += " " + str(rng.randint(0, 99999))
        lines.append(line)
    return "\n".join(lines) + "\n"


def train(workdir):
    text_path = os.path.join(workdir, "corpus.txt")
    with open(text_path, "w") as f:
        f.write(corpus())
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        input=text_path, model_writer=model, model_type="bpe", vocab_size=600,
        byte_fallback=True, character_coverage=1.0, split_digits=True,
        allow_whitespace_only_pieces=True, remove_extra_whitespaces=False,
        normalization_rule_name="identity", add_dummy_prefix=True,
        control_symbols=CONTROL, user_defined_symbols=USER_DEFINED,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, seed_sentencepiece_size=100000,
        minloglevel=2)
    return spm.SentencePieceProcessor(model_proto=model.getvalue())


def write_gguf(sp, path):
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("spm-tiny")
    # The llama config keys transformers' GGUF loader reads; nothing reads weights.
    w.add_context_length(128)
    w.add_embedding_length(8)
    w.add_block_count(1)
    w.add_feed_forward_length(16)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    w.add_rope_dimension_count(4)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama")
    n = sp.get_piece_size()
    pieces = [sp.id_to_piece(i) for i in range(n)]
    scores = [sp.get_score(i) for i in range(n)]
    types = []
    for i in range(n):
        if sp.is_unknown(i):
            types.append(2)
        elif sp.is_control(i):
            types.append(3)
        elif sp.is_byte(i):
            types.append(6)
        elif pieces[i] in USER_DEFINED:
            types.append(4)
        else:
            types.append(1)
    w.add_token_list(pieces)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(sp.bos_id())
    w.add_eos_token_id(sp.eos_id())
    w.add_unk_token_id(sp.unk_id())
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out-dir", default=DEFAULT_OUT)
    args = ap.parse_args()
    out_dir = os.path.abspath(args.out_dir)
    gguf_path = os.path.join(out_dir, "spm_tiny.gguf")
    with tempfile.TemporaryDirectory() as tmp:
        sp = train(tmp)
    write_gguf(sp, gguf_path)
    tok = AutoTokenizer.from_pretrained(out_dir, gguf_file="spm_tiny.gguf")

    cases = []
    disagree = 0
    for text in TEXTS:
        ids = tok.encode(text, add_special_tokens=False)
        sp_ids = sp.encode(text)
        disagree += sp_ids != ids
        cases.append({
            "text": text,
            "ids": ids,
            "ids_with_special": tok.encode(text, add_special_tokens=True),
            "decode": tok.decode(ids, skip_special_tokens=False,
                                 clean_up_tokenization_spaces=False),
            "decode_skip_special": tok.decode(ids, skip_special_tokens=True,
                                              clean_up_tokenization_spaces=False),
            "sentencepiece_ids": sp_ids,
            "sentencepiece_decode": sp.decode(sp_ids),
        })
    with open(gguf_path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    out = {
        "format": "hearth-spm-reference/1",
        "gguf": {"file": "spm_tiny.gguf", "sha256": sha},
        "generator": {"script": "scripts/reference/spm_reference.py",
                      "transformers": transformers.__version__,
                      "tokenizers": tokenizers.__version__, "gguf": "0.10.0",
                      "sentencepiece": spm.__version__},
        "special": {"bos_token_id": sp.bos_id(), "eos_token_id": sp.eos_id(),
                    "unknown_token_id": sp.unk_id(), "add_bos_token": True},
        "encode": cases,
    }
    with open(os.path.join(out_dir, "spm_reference.json"), "w") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(cases)} cases, {disagree} where sentencepiece and transformers differ; "
          f"vocab {sp.get_piece_size()}, gguf {os.path.getsize(gguf_path)} bytes")


if __name__ == "__main__":
    main()
