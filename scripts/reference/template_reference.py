#!/usr/bin/env python3
"""Reference renders of the model families' real chat templates by HF transformers, for
crates/hearth-text/tests/family_templates.rs (hearth's minijinja render must match byte
for byte).

No model hub is reachable here, so the templates are read, at run time, from a pinned PyPI
source distribution that ships them as data: llama-cpp-python 0.3.36's sdist vendors
llama.cpp, whose models/templates/*.jinja are the templates of the models' own
tokenizer_config.json (Meta Llama 3.1/3.2/3.3 Community Licences; Qwen2.5/Qwen3:
Apache-2.0), and whose llama_cpp/llama_chat_format.py carries Meta-Llama-3-8B-Instruct's.
Gemma 3's template ships in no sdist searched (llama.cpp vendors only Gemma 2's); it is
read from unsloth 2026.10.9's wheel (unsloth/chat_templates.py, `gemma3_template`), which
says it printed google/gemma-3's tokenizer.chat_template (Gemma Terms of Use): a
transcription: compared by hand with a quoted copy of the official tokenizer_config, it
differs only by spaces inside the last `{{ }}`, which does not change any render.
The fixture keeps a copy of each template so the Rust test runs offline.

Requirements (pinned): transformers==4.51.3 tokenizers==0.21.1 jinja2==3.1.6
(e.g. PYTHONPATH=/tmp/tf_qwen3 /tmp/refvenv/bin/python; transformers 4.46.3 works too).
Sdist: pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36
(sha256 832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e).
Wheel: pip download --no-deps unsloth==2026.10.9
(sha256 feb40b99bc4f8c543a36cbd0fe6e1410d6e4ac16bd4d0c731f607adce3d63bb0).

Usage:
    python3 scripts/reference/template_reference.py --sdist llama_cpp_python-0.3.36.tar.gz \
        --unsloth-wheel unsloth-2026.10.9-py3-none-any.whl [--out crates/hearth-text/tests/fixtures/family_templates.json]
"""

import argparse
import ast
import hashlib
import json
import os
import tarfile
import zipfile

import transformers
from transformers import PreTrainedTokenizerFast

PACKAGE, VERSION = "llama-cpp-python", "0.3.36"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
UNSLOTH, UNSLOTH_VERSION = "unsloth", "2026.10.9"
WHEEL_SHA256 = "feb40b99bc4f8c543a36cbd0fe6e1410d6e4ac16bd4d0c731f607adce3d63bb0"
GEMMA = ("gemma3", "google/gemma-3-4b-it", "unsloth/chat_templates.py", "gemma3_template",
         ("<bos>", "<eos>"), "Gemma Terms of Use")
ROOT = f"llama_cpp_python-{VERSION}/"
TPL = ROOT + "vendor/llama.cpp/models/templates/"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_TOKENIZER = os.path.join(REPO, "crates/hearth-text/tests/fixtures/hf_tiny/tokenizer.json")
DATE = "26 Jul 2024"

LLAMA = ("<|begin_of_text|>", "<|eot_id|>")
QWEN = (None, "<|im_end|>")
# (family, model, file inside the sdist, python constant or None, (bos, eos), licence)
FAMILIES = [
    ("llama3", "meta-llama/Meta-Llama-3-8B-Instruct", ROOT + "llama_cpp/llama_chat_format.py",
     "LLAMA3_INSTRUCT_CHAT_TEMPLATE", LLAMA, "Meta Llama 3 Community License"),
    ("llama3.1", "meta-llama/Llama-3.1-8B-Instruct", TPL + "meta-llama-Llama-3.1-8B-Instruct.jinja",
     None, LLAMA, "Llama 3.1 Community License"),
    ("llama3.2", "meta-llama/Llama-3.2-3B-Instruct", TPL + "meta-llama-Llama-3.2-3B-Instruct.jinja",
     None, LLAMA, "Llama 3.2 Community License"),
    ("llama3.3", "meta-llama/Llama-3.3-70B-Instruct", TPL + "meta-llama-Llama-3.3-70B-Instruct.jinja",
     None, LLAMA, "Llama 3.3 Community License"),
    ("qwen2.5", "Qwen/Qwen2.5-7B-Instruct", TPL + "Qwen-Qwen2.5-7B-Instruct.jinja",
     None, QWEN, "Apache-2.0"),
    ("qwen3", "Qwen/Qwen3-0.6B", TPL + "Qwen-Qwen3-0.6B.jinja", None, QWEN, "Apache-2.0"),
]

SYS = {"role": "system", "content": "You are a helpful assistant."}
U1 = {"role": "user", "content": "What is 2+2?"}
A1 = {"role": "assistant", "content": "2+2 is 4."}
U2 = {"role": "user", "content": "  And times three? Réponds en français 🙂  "}
THINK = {"role": "assistant", "content": "<think>\nEasy sum.\n</think>\n\n2+2 is 4."}

# (name, messages, add_generation_prompt, extra template variables)
COMMON = [
    ("system_user_gen", [SYS, U1], True, {}),
    ("system_user_nogen", [SYS, U1], False, {}),
    ("user_only_gen", [U1], True, {}),
    ("multi_turn_gen", [SYS, U1, A1, U2], True, {}),
    ("no_system_multi_turn_nogen", [U1, A1, U2, A1], False, {}),
    ("ends_with_assistant", [SYS, U1, A1], False, {}),
]
EXTRA = {
    "llama3.1": [("date_string", [SYS, U1], True, {"date_string": "01 Jan 2025"})],
    "llama3.2": [("date_string", [U1], True, {"date_string": "01 Jan 2025"})],
    "qwen3": [
        ("thinking_on", [SYS, U1], True, {"enable_thinking": True}),
        ("thinking_off", [SYS, U1], True, {"enable_thinking": False}),
        ("thinking_off_multi", [U1, THINK, U2], True, {"enable_thinking": False}),
        ("past_reasoning_stripped", [SYS, U1, THINK, U2], True, {}),
        ("reasoning_last_turn", [U1, THINK], False, {}),
    ],
    "gemma3": [
        ("system_multi_turn_nogen", [SYS, U1, A1, U2, A1], False, {}),
    ],
}
# Conversations the template rejects (raise_exception): (family, name, messages, message).
ERRORS = {
    "gemma3": [("roles_not_alternating", [U1, U2], "Conversation roles must alternate")],
}


def read_template(read, member, constant):
    data = read(member)
    text = data.decode("utf-8")
    if constant is None:
        return text, hashlib.sha256(data).hexdigest()
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == constant for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            return value, hashlib.sha256(value.encode("utf-8")).hexdigest()
    raise SystemExit(f"{constant} not found in {member}")


def tokenizer_for(template, bos, eos):
    return PreTrainedTokenizerFast(
        tokenizer_file=TINY_TOKENIZER, bos_token=bos, eos_token=eos, chat_template=template
    )


def check_sha(path, want):
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != want:
        raise SystemExit(f"{path}: sha256 {digest} != pinned {want}")


def render_family(read, family, package, version):
    name, model, member, constant, (bos, eos), licence = family
    template, tsha = read_template(read, member, constant)
    tok = tokenizer_for(template, bos, eos)
    cases = []
    for cname, msgs, gen, extra in COMMON + EXTRA.get(name, []):
        kwargs = dict(extra)
        # Llama 3.1+ call strftime_now when no date is given: fix the date.
        if "date_string" in template and "date_string" not in kwargs:
            kwargs["date_string"] = DATE
        text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen, **kwargs)
        cases.append({"name": cname, "messages": msgs, "add_generation_prompt": gen,
                      "extra": kwargs, "expected": text})
    for cname, msgs, want in ERRORS.get(name, []):
        try:
            tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        except Exception as e:  # jinja2's TemplateError from raise_exception
            if want not in str(e):
                raise
            cases.append({"name": cname, "messages": msgs, "add_generation_prompt": True,
                          "extra": {}, "expected_error": want})
        else:
            raise SystemExit(f"{name}/{cname}: transformers rendered it")
    return {
        "family": name, "model": model,
        "source": {"package": package, "version": version, "file": member,
                   "constant": constant, "template_sha256": tsha},
        "licence": f"{licence} (template text from the model's tokenizer config)",
        "bos_token": bos, "eos_token": eos, "template": template, "cases": cases,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sdist", required=True)
    ap.add_argument("--unsloth-wheel", required=True)
    ap.add_argument(
        "--out", default=os.path.join(REPO, "crates/hearth-text/tests/fixtures/family_templates.json")
    )
    args = ap.parse_args()
    check_sha(args.sdist, SDIST_SHA256)
    check_sha(args.unsloth_wheel, WHEEL_SHA256)
    families = []
    with tarfile.open(args.sdist) as tar:
        for fam in FAMILIES:
            read = lambda m: tar.extractfile(m).read()
            families.append(render_family(read, fam, PACKAGE, VERSION))
    with zipfile.ZipFile(args.unsloth_wheel) as whl:
        families.append(render_family(whl.read, GEMMA, UNSLOTH, UNSLOTH_VERSION))
    out = {"format": "hearth-family-templates/1", "transformers": transformers.__version__,
           "archives_sha256": {PACKAGE: SDIST_SHA256, UNSLOTH: WHEEL_SHA256},
           "families": families}
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {args.out}: {sum(len(f['cases']) for f in families)} cases")


if __name__ == "__main__":
    main()
