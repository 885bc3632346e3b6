#!/usr/bin/env python3
"""Generates the conformance fixtures: tiny random GGUF models and llama.cpp's answers on them.

Run from the repository root with the llama.cpp Python binding's venv (llama_cpp, numpy, jinja2,
gguf):

    ~/.cache/llama-anchor/venv/bin/python tests/conformance/gen_fixtures.py

It (re)writes, in tests/conformance/:
  <name>.gguf  a tiny model with random weights (quality irrelevant) in mixed tensor types;
  <name>.json  the reference: llama.cpp's tokenization of a set of strings, llama.cpp's logits of
               fixed token sequences on an exact F32 dequantization of the model with an F32 KV cache
               (reference for `Precision::Exact`) and on the model itself with llama.cpp's default CPU
               path (F16 KV cache, activations quantized inside matmuls; reference for
               `Precision::Fast`), and jinja2's rendering of the chat template.

Everything is deterministic: fixed seeds, fixed corpus, and llama.cpp evaluated on 1 thread.

The models (all: n_embd 256, n_ff 512 so that every row length is a multiple of 256 for K-quants):
  llama-spm     llama arch, SentencePiece vocab (byte tokens, <unk>/<s>/</s>, '▁' pieces with
                scores), GQA 4/2, separate output.weight, rope_freqs.weight, rms eps 1e-6,
                rope base 10000, 2 layers, a Llama-2 style chat template;
  qwen2-bpe     qwen2 arch, Q/K/V biases (NeoX RoPE), byte-level BPE vocab (256 byte tokens + merges
                learned here from a small corpus, pre = qwen2) with <|endoftext|>, <|im_start|>,
                <|im_end|> (CONTROL) and <tool_call> (USER_DEFINED), tied output, GQA 8/2, ChatML;
  llama-linear  llama arch, the SentencePiece vocab, linear RoPE scaling (factor 2), plain multi-head
                attention, tied output, 1 layer, a Llama-3 style template (namespace, whitespace
                control).
Together their matrices use every supported type (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
Q2_K..Q6_K), each in at least two models/roles. Types gguf-py can quantize are quantized from random
floats; K-quants (which gguf-py cannot quantize) are random valid blocks: random quant and scale bits,
positive f16 super-block scales chosen so the weights have a sane spread.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize
import jinja2
import jinja2.sandbox
import llama_cpp
from llama_cpp import Llama

OUT = Path(__file__).resolve().parent
QK_K = 256

CORPUS = """\
The quick brown fox jumps over the lazy dog. A model that runs on your own computer reads its
weights from a file, turns the text into tokens, and predicts the next token again and again.
Tokens are pieces of words: the most common words are single tokens, rarer words are split into
several pieces, and anything else falls back to bytes. In 2024 there were 365 days plus one, and
3.14159 is close to pi. Don't worry, it's fine: we'll see what they've done and what you're doing.
Hello world! Hello again, world. How are you today? I am fine, thank you, and you?
The engine must produce the same tokens and the same numbers as the reference implementation,
within a small tolerance, on every model of the supported families and for every tensor type.
Small random models are enough to check the arithmetic: quality does not matter, agreement does.
"""

# --------------------------------------------------------------------------------------------------
# Tokenizer vocabularies


def bytes_to_unicode() -> list[str]:
    """GPT-2's byte -> printable character table."""
    out, n = [], 0
    for b in range(256):
        if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255:
            out.append(chr(b))
        else:
            out.append(chr(256 + n))
            n += 1
    return out


def train_bpe(words: list[list[str]], n_merges: int) -> list[tuple[str, str]]:
    """A tiny BPE trainer: repeatedly merge the most frequent adjacent pair (ties: first seen in
    sorted order, so the result is deterministic)."""
    from collections import Counter

    counts = Counter(tuple(w) for w in words)
    merges: list[tuple[str, str]] = []
    for _ in range(n_merges):
        pairs: Counter = Counter()
        for w, c in counts.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])
        merges.append(best)
        new: Counter = Counter()
        for w, c in counts.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] += c
        counts = new
    return merges


def corpus_words(space: str) -> list[str]:
    """Words with their leading space (as `space`), a rough pre-tokenization for training."""
    import re

    return [m.replace(" ", space) for m in re.findall(r" ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9]+|\n", CORPUS)]


def bpe_vocab() -> dict:
    b2u = bytes_to_unicode()
    words = [[b2u[b] for b in w.encode()] for w in corpus_words(" ")]
    merges = train_bpe(words, 220)
    tokens = list(b2u)  # ids 0..255: the byte tokens, in byte order
    for a, b in merges:
        if a + b not in tokens:
            tokens.append(a + b)
    types = [1] * len(tokens)
    specials = [("<|endoftext|>", 3), ("<|im_start|>", 3), ("<|im_end|>", 3), ("<tool_call>", 4)]
    for s, t in specials:
        tokens.append(s)
        types.append(t)
    ids = {t: i for i, t in enumerate(tokens)}
    return {
        "tokens": tokens,
        "types": types,
        "merges": [f"{a} {b}" for a, b in merges],
        "bos": ids["<|endoftext|>"],
        "eos": ids["<|im_end|>"],
        "pad": ids["<|endoftext|>"],
    }


def spm_vocab() -> dict:
    """llama-style SentencePiece vocab: <unk>, <s>, </s>, 256 byte tokens, then pieces by score."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    scores = [0.0, 0.0, 0.0] + [0.0] * 256
    words = [list(w) for w in corpus_words("\u2581")]
    chars = sorted({c for w in words for c in w if c != "\n"})
    # A few characters beyond the corpus (one CJK, one accented) so that some non-ASCII text
    # tokenizes by piece and some by byte fallback.
    for c in ["é", "世"]:
        if c not in chars:
            chars.append(c)
    merges = train_bpe(words, 140)
    pieces = []
    for a, b in merges:
        if a + b not in pieces and a + b not in chars:
            pieces.append(a + b)
    # Merged pieces score by merge order (earlier = higher); single characters lowest.
    for i, p in enumerate(pieces):
        tokens.append(p)
        types.append(1)
        scores.append(-float(i))
    for i, c in enumerate(chars):
        tokens.append(c)
        types.append(1)
        scores.append(-1000.0 - i)
    return {"tokens": tokens, "types": types, "scores": scores}


# --------------------------------------------------------------------------------------------------
# Tensors


FLOAT_TYPES = {T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0}
KQ_LAYOUT = {
    # type: (block bytes, offset of d, offset of dmin or None)
    T.Q2_K: (84, 80, 82),
    T.Q3_K: (110, 108, None),
    T.Q4_K: (144, 0, 2),
    T.Q5_K: (176, 0, 2),
    T.Q6_K: (210, 208, None),
}


def set_f16(blocks: np.ndarray, off: int, vals: np.ndarray) -> None:
    blocks[:, off : off + 2] = vals.astype(np.float16).view(np.uint8).reshape(-1, 2)


def random_kquant(rng: np.random.Generator, qtype: T, rows: int, cols: int, std: float) -> np.ndarray:
    """Random valid K-quant blocks whose dequantized values have about the given spread."""
    bsz, d_off, m_off = KQ_LAYOUT[qtype]
    nb = rows * cols // QK_K
    blocks = rng.integers(0, 256, size=(nb, bsz), dtype=np.uint8)
    # Per-block variation of the scales, so that indexing the wrong block's scale shows.
    u = rng.uniform(0.5, 1.5, size=nb).astype(np.float32)

    def deq(d: np.ndarray, m: np.ndarray | None) -> np.ndarray:
        b = blocks.copy()
        set_f16(b, d_off, d)
        if m_off is not None:
            set_f16(b, m_off, m)
        return dequantize(b, qtype).reshape(nb, QK_K)

    zeros = np.zeros(nb, np.float32)
    a = deq(u, zeros)
    ratio = 0.0
    if m_off is not None:
        # w = d*A + dmin*B with B <= 0: pick dmin/d so that the weights are about zero-mean.
        bm = deq(zeros, u)
        ratio = -float(a.mean()) / float(bm.mean())
        w = a + ratio * bm
    else:
        w = a
    s = std / float(w.std())
    set_f16(blocks, d_off, u * s)
    if m_off is not None:
        set_f16(blocks, m_off, u * s * ratio)
    return blocks.reshape(rows, -1)


def make_tensor(rng: np.random.Generator, qtype: T, rows: int, cols: int, std: float):
    """(array for GGUFWriter, raw dtype) of a random `rows x cols` matrix of the given type."""
    if qtype in KQ_LAYOUT:
        return random_kquant(rng, qtype, rows, cols, std), qtype
    x = (rng.standard_normal((rows, cols)) * std).astype(np.float32)
    if qtype == T.F32:
        return x, None
    if qtype == T.F16:
        return x.astype(np.float16), None
    return quantize(x, qtype), qtype


def as_f32(arr: np.ndarray, raw: T | None) -> np.ndarray:
    if raw is None:
        return arr.astype(np.float32)
    return dequantize(arr, raw).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Models


def build(spec: dict) -> dict:
    """Builds the metadata and tensors of one model (deterministic for spec['seed'])."""
    rng = np.random.default_rng(spec["seed"])
    arch, e, ff = spec["arch"], spec["n_embd"], spec["n_ff"]
    nh, nkv = spec["n_head"], spec["n_head_kv"]
    hd = e // nh
    vocab = spec["vocab"]
    nv = len(vocab["tokens"])
    tensors: list[tuple[str, np.ndarray, T | None]] = []
    types = spec["types"]

    def mat(name: str, rows: int, cols: int, std: float) -> None:
        arr, raw = make_tensor(rng, types[name], rows, cols, std)
        tensors.append((name, arr, raw))

    def vec(name: str, n: int, mean: float, std: float) -> None:
        tensors.append((name, (mean + std * rng.standard_normal(n)).astype(np.float32), None))

    mat("token_embd.weight", nv, e, 0.15)
    vec("output_norm.weight", e, 1.0, 0.1)
    if "output.weight" in types:
        mat("output.weight", nv, e, 0.15)
    if spec.get("rope_freqs"):
        # Llama-3.1 style: high-frequency pairs untouched, low-frequency ones slowed down.
        n = hd // 2
        f = np.ones(n, np.float32)
        f[n // 2 :] = np.linspace(1.0, 8.0, n - n // 2, dtype=np.float32)
        tensors.append(("rope_freqs.weight", f, None))
    for i in range(spec["n_layer"]):
        p = f"blk.{i}."
        vec(p + "attn_norm.weight", e, 1.0, 0.1)
        mat(p + "attn_q.weight", nh * hd, e, 0.08)
        mat(p + "attn_k.weight", nkv * hd, e, 0.08)
        mat(p + "attn_v.weight", nkv * hd, e, 0.1)
        mat(p + "attn_output.weight", e, nh * hd, 0.1)
        if arch == "qwen2":
            vec(p + "attn_q.bias", nh * hd, 0.0, 0.2)
            vec(p + "attn_k.bias", nkv * hd, 0.0, 0.5)
            vec(p + "attn_v.bias", nkv * hd, 0.0, 0.1)
        vec(p + "ffn_norm.weight", e, 1.0, 0.1)
        mat(p + "ffn_gate.weight", ff, e, 0.1)
        mat(p + "ffn_up.weight", ff, e, 0.1)
        mat(p + "ffn_down.weight", e, ff, 0.08)
    return {"spec": spec, "tensors": tensors, "n_vocab": nv}


def write_gguf(model: dict, path: Path, f32: bool) -> None:
    spec = model["spec"]
    arch = spec["arch"]
    v = spec["vocab"]
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(spec["name"] + (" (F32 dequantized)" if f32 else ""))
    w.add_uint32(f"{arch}.context_length", 4096)
    w.add_uint32(f"{arch}.embedding_length", spec["n_embd"])
    w.add_uint32(f"{arch}.feed_forward_length", spec["n_ff"])
    w.add_uint32(f"{arch}.block_count", spec["n_layer"])
    w.add_uint32(f"{arch}.attention.head_count", spec["n_head"])
    w.add_uint32(f"{arch}.attention.head_count_kv", spec["n_head_kv"])
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", spec["rms_eps"])
    w.add_float32(f"{arch}.rope.freq_base", spec["rope_base"])
    w.add_uint32(f"{arch}.rope.dimension_count", spec["n_embd"] // spec["n_head"])
    if spec.get("rope_linear"):
        w.add_string(f"{arch}.rope.scaling.type", "linear")
        w.add_float32(f"{arch}.rope.scaling.factor", spec["rope_linear"])
    w.add_tokenizer_model(spec["tokenizer"])
    if spec["tokenizer"] == "gpt2":
        w.add_tokenizer_pre(spec["pre"])
    w.add_token_list(v["tokens"])
    w.add_token_types(v["types"])
    if "scores" in v:
        w.add_token_scores(v["scores"])
    if "merges" in v:
        w.add_token_merges(v["merges"])
    for key, meta in [("bos", "bos"), ("eos", "eos"), ("pad", "padding")]:
        if key in v:
            w.add_uint32(f"tokenizer.ggml.{meta}_token_id", v[key])
    if spec["tokenizer"] == "gpt2":
        w.add_bool("tokenizer.ggml.add_bos_token", False)
    w.add_chat_template(spec["chat_template"])
    for name, arr, raw in model["tensors"]:
        if f32:
            w.add_tensor(name, as_f32(arr, raw))
        elif raw is None:
            w.add_tensor(name, arr)
        else:
            w.add_tensor(name, arr, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# --------------------------------------------------------------------------------------------------
# Chat templates

LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}"
    "{% endfor %}"
)

CHATML_TEMPLATE = (
    "{%- for message in messages %}\n"
    "    {%- if loop.first and message['role'] != 'system' %}\n"
    "        {{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "    {{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n"
)

LLAMA3_TEMPLATE = (
    "{{- bos_token }}\n"
    "{%- set ns = namespace(n_user=0) %}\n"
    "{%- for message in messages %}\n"
    "  {%- if message.role == 'user' %}{% set ns.n_user = ns.n_user + 1 %}{% endif %}\n"
    "  {{- '<|' + message['role'] + '|>\\n' + message['content'] | trim + '\\n' }}\n"
    "  {%- if not loop.last %}{{ '\\n' }}{% endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "{{- '<|assistant|> (turn ' ~ (ns.n_user + 1) ~ ')\\n' }}\n"
    "{%- endif %}\n"
)

CONVERSATIONS = [
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "  What is 2+2?  "},
        {"role": "assistant", "content": "4 \u2014 obviously. \U0001f600"},
    ],
    [
        {"role": "user", "content": "Hello!\nSecond line."},
        {"role": "assistant", "content": "Hi."},
        {"role": "user", "content": "Bye <b>now</b>"},
    ],
]


def render_template(src: str, messages, add_generation_prompt: bool, bos: str, eos: str) -> str:
    """As Hugging Face transformers renders chat templates."""

    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.globals["raise_exception"] = raise_exception
    return env.from_string(src).render(
        messages=messages, add_generation_prompt=add_generation_prompt, bos_token=bos, eos_token=eos
    )


# --------------------------------------------------------------------------------------------------
# References

TOKENIZE_TEXTS = [
    "Hello world",
    "Hello, world! How are you today?",
    "The quick brown fox jumps over the lazy dog.",
    "  leading spaces,   runs of    spaces and trailing  ",
    "tabs\tand\nnewlines\n\n  indented\r\nCRLF",
    "1234567890 and 3.14159, 42 and 2024",
    "!!! ... ??? --- (brackets) [x] {y} <z> a@b.c #tag $5 100%",
    "don't won't it's I'm we'll they've you're HE'S",
    "internationalization tokenization",
    "na\u00efve caf\u00e9 r\u00e9sum\u00e9 \u00fcber",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \u4e2d\u6587 \u4e16\u754c",
    "emoji \U0001f389\U0001f680 and \U0001f44d\U0001f3fd!",
    "",
    " ",
    "\n",
    "a",
]
SPECIAL_TEXTS_SPM = ["<s>Hello</s> <unk> world", "x</s>y<s>", "<s> <s>"]
SPECIAL_TEXTS_BPE = [
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "a<|endoftext|>b <tool_call>{\"x\": 1}</tool_call>",
    "<|im_end|><|im_end|> <|im_start|",
]


def logits_of(path: Path, ids: list[int], f32_kv: bool, n_batch: int) -> np.ndarray:
    kw = dict(type_k=0, type_v=0) if f32_kv else {}
    llm = Llama(
        model_path=str(path),
        n_ctx=128,
        n_batch=n_batch,
        n_ubatch=n_batch,
        n_threads=1,
        n_threads_batch=1,
        logits_all=True,
        flash_attn=False,
        verbose=False,
        **kw,
    )
    llm.reset()
    llm.eval(ids)
    out = np.array(llm.scores[: len(ids)], dtype=np.float32)
    del llm
    return out


def rows_json(x: np.ndarray) -> list[list[float]]:
    return [[round(float(v), 5) for v in row] for row in x]


def reference(model: dict, path: Path, f32_path: Path) -> dict:
    spec = model["spec"]
    v = spec["vocab"]
    llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
    texts = TOKENIZE_TEXTS + (SPECIAL_TEXTS_BPE if spec["tokenizer"] == "gpt2" else SPECIAL_TEXTS_SPM)
    tok = []
    for t in texts:
        for add_special in (True, False):
            for parse_special in (True, False):
                ids = llm.tokenize(t.encode(), add_bos=add_special, special=parse_special)
                tok.append({"text": t, "add_special": add_special, "parse_special": parse_special, "ids": ids})
    # Sequences: a real sentence (as llama.cpp tokenizes it) and random ids over the whole vocab.
    rng = np.random.default_rng(spec["seed"] + 1000)
    text_ids = llm.tokenize(b"Hello world! The quick brown fox jumps over the lazy dog; 3.14159 and 42.", add_bos=True, special=False)
    del llm
    bos = [1] if spec["tokenizer"] == "llama" else []
    rand_ids = bos + [int(x) for x in rng.integers(0, model["n_vocab"], 24 - len(bos))]
    seqs = []
    for name, ids in [("text", text_ids[:24]), ("random", rand_ids)]:
        f32 = logits_of(f32_path, ids, True, 128)
        f32_b = logits_of(f32_path, ids, True, 5)
        dflt = logits_of(path, ids, False, 128)
        seqs.append(
            {
                "name": name,
                "ids": ids,
                # llama.cpp against itself: the same F32 run in batches of 5 instead of one batch.
                "f32_batch_spread": float(np.abs(f32 - f32_b).max()),
                # How far llama.cpp's default path is from its own F32 path.
                "default_vs_f32_max": float(np.abs(dflt - f32).max()),
                "f32": rows_json(f32),
                "default": rows_json(dflt),
            }
        )
    bos_t = v["tokens"][v["bos"]] if "bos" in v else "<s>"
    eos_t = v["tokens"][v["eos"]] if "eos" in v else "</s>"
    chats = []
    for msgs in CONVERSATIONS:
        for agp in (True, False):
            try:
                text = render_template(spec["chat_template"], msgs, agp, bos_t, eos_t)
            except jinja2.exceptions.TemplateError as e:
                text = None
                err = str(e)
            chats.append({"messages": msgs, "add_generation_prompt": agp, "text": text, **({} if text is not None else {"error": err})})
    return {
        "model": path.name,
        "generator": "tests/conformance/gen_fixtures.py",
        "llama_cpp_python": llama_cpp.__version__,
        "variants": {
            "f32": "llama.cpp on an exact F32 dequantization of the model (gguf.quants.dequantize), "
            "KV cache F32, flash attention off, one batch, 1 thread",
            "default": "llama.cpp on the model as is, default CPU path (F16 KV cache, activations "
            "quantized inside quantized matmuls), flash attention off, one batch, 1 thread",
        },
        "tensor_types": {name: (raw.name if raw is not None else ("F16" if arr.dtype == np.float16 else "F32")) for name, arr, raw in model["tensors"]},
        "bos_token": bos_t,
        "eos_token": eos_t,
        "tokenize": tok,
        "sequences": seqs,
        "chat": chats,
    }


def main() -> None:
    spm = spm_vocab()
    bpe = bpe_vocab()
    common = dict(n_embd=256, n_ff=512)
    models = [
        dict(
            name="llama-spm",
            seed=1,
            arch="llama",
            n_layer=2,
            n_head=4,
            n_head_kv=2,
            rms_eps=1e-6,
            rope_base=10000.0,
            rope_freqs=True,
            tokenizer="llama",
            vocab=spm,
            chat_template=LLAMA2_TEMPLATE,
            types={
                "token_embd.weight": T.Q8_0,
                "output.weight": T.Q6_K,
                "blk.0.attn_q.weight": T.Q4_0,
                "blk.0.attn_k.weight": T.F32,
                "blk.0.attn_v.weight": T.F16,
                "blk.0.attn_output.weight": T.Q4_1,
                "blk.0.ffn_gate.weight": T.Q5_0,
                "blk.0.ffn_up.weight": T.Q5_1,
                "blk.0.ffn_down.weight": T.Q2_K,
                "blk.1.attn_q.weight": T.Q3_K,
                "blk.1.attn_k.weight": T.BF16,
                "blk.1.attn_v.weight": T.Q8_0,
                "blk.1.attn_output.weight": T.Q4_K,
                "blk.1.ffn_gate.weight": T.Q5_K,
                "blk.1.ffn_up.weight": T.Q6_K,
                "blk.1.ffn_down.weight": T.Q4_K,
            },
            **common,
        ),
        dict(
            name="qwen2-bpe",
            seed=2,
            arch="qwen2",
            n_layer=2,
            n_head=8,
            n_head_kv=2,
            rms_eps=1e-6,
            rope_base=1000000.0,
            tokenizer="gpt2",
            pre="qwen2",
            vocab=bpe,
            chat_template=CHATML_TEMPLATE,
            types={
                "token_embd.weight": T.Q4_K,
                "blk.0.attn_q.weight": T.Q5_K,
                "blk.0.attn_k.weight": T.Q8_0,
                "blk.0.attn_v.weight": T.Q6_K,
                "blk.0.attn_output.weight": T.BF16,
                "blk.0.ffn_gate.weight": T.Q2_K,
                "blk.0.ffn_up.weight": T.Q3_K,
                "blk.0.ffn_down.weight": T.Q4_0,
                "blk.1.attn_q.weight": T.F16,
                "blk.1.attn_k.weight": T.F32,
                "blk.1.attn_v.weight": T.Q5_1,
                "blk.1.attn_output.weight": T.Q5_0,
                "blk.1.ffn_gate.weight": T.Q4_1,
                "blk.1.ffn_up.weight": T.Q8_0,
                "blk.1.ffn_down.weight": T.Q6_K,
            },
            **common,
        ),
        dict(
            name="llama-linear",
            seed=3,
            arch="llama",
            n_layer=1,
            n_head=4,
            n_head_kv=4,
            rms_eps=1e-5,
            rope_base=10000.0,
            rope_linear=2.0,
            tokenizer="llama",
            vocab=spm,
            chat_template=LLAMA3_TEMPLATE,
            types={
                "token_embd.weight": T.F16,
                "blk.0.attn_q.weight": T.Q2_K,
                "blk.0.attn_k.weight": T.Q3_K,
                "blk.0.attn_v.weight": T.Q4_K,
                "blk.0.attn_output.weight": T.Q5_K,
                "blk.0.ffn_gate.weight": T.Q6_K,
                "blk.0.ffn_up.weight": T.Q4_0,
                "blk.0.ffn_down.weight": T.BF16,
            },
            **common,
        ),
    ]
    out = OUT
    args = sys.argv[1:]
    if args[:1] == ["--per-type"]:
        # Diagnostic models, not committed: one per type, every matrix of that type (embedding and
        # output F32), to find which type's kernels a fast-mode difference comes from. Run the
        # conformance test on them with SPARSETOP_CONFORMANCE_EXTRA=DIR.
        out = Path(args[1])
        out.mkdir(parents=True, exist_ok=True)
        args = args[2:]
        base = models[0]
        models = []
        for i, t in enumerate([T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0,
                               T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]):
            types = {k: (T.F32 if k in ("token_embd.weight", "output.weight") else t) for k in base["types"]}
            models.append(dict(base, name=f"type-{t.name}", seed=100 + i, types=types))
    only = set(args)
    with tempfile.TemporaryDirectory() as tmp:
        for spec in models:
            if only and spec["name"] not in only:
                continue
            model = build(spec)
            path = out / f"{spec['name']}.gguf"
            f32_path = Path(tmp) / f"{spec['name']}.f32.gguf"
            write_gguf(model, path, f32=False)
            write_gguf(model, f32_path, f32=True)
            ref = reference(model, path, f32_path)
            with open(out / f"{spec['name']}.json", "w") as f:
                json.dump(ref, f, ensure_ascii=False, separators=(",", ":"))
                f.write("\n")
            s = ref["sequences"]
            print(
                f"{path.name}: {path.stat().st_size} bytes, n_vocab {model['n_vocab']}, "
                f"f32 batch spread {max(x['f32_batch_spread'] for x in s):.2e}, "
                f"default vs f32 {max(x['default_vs_f32_max'] for x in s):.3f}, "
                f"|logit| max {max(np.abs(np.array(x['f32'])).max() for x in s):.2f}"
            )


if __name__ == "__main__":
    main()
