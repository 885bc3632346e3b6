#!/usr/bin/env python3
"""Perplexity of SmolLM2-class (llama) models under different rules for choosing FFN neurons.

Why this exists: the sparsity issue asks both for perplexity within +5% of dense at sparsity 0.5
and for FFN bytes that fall in proportion to sparsity. Bytes fall in proportion only if the
neurons are chosen before their `up` rows are read (by the gate, by a sparse input, or by a
predictor). This script measures, outside the engine and in plain f32, what each such rule costs
in perplexity, so the choice made in `engine/src/sparse/ffn.rs` rests on numbers anyone can redo.

It is a reference forward pass in numpy (weights dequantized with gguf-py, as llama.cpp's F32
reference; dense perplexity on the golden GPL-3 text at c=512 comes out 18.300, llama.cpp's F32
figure 18.3001), in which a rule masks `a = act(gate)·up` before the down projection at every
position. Rules keep a share of neurons per token (top-k), as the engine's calibrated thresholds
do on average:

  a:K              keep the K share with the largest |a| (needs every gate and up row)
  screen:Q:K       drop the Q share with the smallest |act(gate)| first (their up rows unread),
                   then keep the K share by |a| (the engine's rule, with Q = 0.4 x the level)
  gate:K           keep the K share by |act(gate)| alone (CATS; up read only for those)
  teal:XS:K        zero the XS share of the smallest |x| entries of the FFN input before up (TEAL
                   input sparsity: only those columns of up are read), then keep K by |a|
  tealgu:XS:K      the same for gate and up
  pred:R:M:K       rank-R predictors of gate and up (best rank-R maps under the input covariance of
                   the calibration text) choose an M share of candidates by |act(g)·u| estimated;
                   of those, keep K by the true |a| (gate and up rows read for candidates only)

Usage (needs numpy and gguf: `pip install numpy gguf`; the binary for tokenizing):
  cargo build --release
  python3 scripts/selection-rules.py MODEL.gguf a:0.5 screen:0.3:0.5 teal:0.5:0.5 pred:64:0.7:0.5
Options: --text FILE (default the golden GPL-3 text), --chunks N (default all 512-token chunks),
--cal FILE (default assets/calibration.txt, for the predictors' covariance), --rank-error L,L,...
(instead of rules: for those layers, how much of gate's and up's output on the text's first chunk
the rank-64/128/256 maps miss, as |estimate - true| / |true|).
A rule costs about 4 s per chunk on two cores (a minute for the 14 chunks of GPL-3).
"""
import argparse
import json
import math
import os
import subprocess
import sys

import gguf
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CTX = 512


def tokenize(model, path):
    binary = os.path.join(ROOT, "target", "release", "sparsetop")
    out = subprocess.run([binary, "tokenize", "-m", model, "-f", path],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


class Llama:
    """A llama-architecture GGUF, every tensor dequantized to f32."""

    def __init__(self, path):
        r = gguf.GGUFReader(path)
        f = {k: r.fields[k] for k in r.fields}

        def val(key):
            fld = f[key]
            return fld.parts[fld.data[0]][0]

        arch = bytes(f["general.architecture"].parts[-1]).decode()
        if arch != "llama":
            sys.exit(f"{path}: architecture {arch}, this script knows llama only")
        self.n_layer = int(val("llama.block_count"))
        self.n_embd = int(val("llama.embedding_length"))
        self.n_head = int(val("llama.attention.head_count"))
        self.n_head_kv = int(val("llama.attention.head_count_kv"))
        self.eps = float(val("llama.attention.layer_norm_rms_epsilon"))
        self.theta = float(val("llama.rope.freq_base")) if "llama.rope.freq_base" in f else 10000.0
        self.head_dim = self.n_embd // self.n_head
        self.t = {}
        for t in r.tensors:
            a = gguf.quants.dequantize(t.data, t.tensor_type)
            self.t[t.name] = np.asarray(a, dtype=np.float32).reshape([int(x) for x in reversed(t.shape)])
        self.out = self.t.get("output.weight", self.t["token_embd.weight"])

    def rms(self, x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * w

    def rope(self, x, pos):
        # llama.cpp's normal rope: adjacent pairs rotate together.
        inv = self.theta ** (-np.arange(0, self.head_dim, 2) / self.head_dim)
        ang = pos[:, None] * inv[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        o = np.empty_like(x)
        o[..., 0::2] = x0 * c - x1 * s
        o[..., 1::2] = x0 * s + x1 * c
        return o.astype(np.float32)

    def forward(self, toks, rule=None, observe=None):
        """Logits of every position; `rule(l, x, g, u, a)` returns the masked `a`."""
        n, hd, t = len(toks), self.head_dim, self.t
        h = t["token_embd.weight"][toks].copy()
        pos = np.arange(n, dtype=np.float64)
        causal = np.triu(np.full((n, n), -np.inf, dtype=np.float32), 1)
        rep = self.n_head // self.n_head_kv
        for l in range(self.n_layer):
            p = f"blk.{l}."
            x = self.rms(h, t[p + "attn_norm.weight"])
            q = self.rope((x @ t[p + "attn_q.weight"].T).reshape(n, self.n_head, hd), pos)
            k = self.rope((x @ t[p + "attn_k.weight"].T).reshape(n, self.n_head_kv, hd), pos)
            v = (x @ t[p + "attn_v.weight"].T).reshape(n, self.n_head_kv, hd)
            k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
            s = np.einsum("qhd,khd->hqk", q, k) / math.sqrt(hd) + causal
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            h = h + np.einsum("hqk,khd->qhd", s, v).reshape(n, self.n_embd) @ t[p + "attn_output.weight"].T
            x = self.rms(h, t[p + "ffn_norm.weight"])
            g = x @ t[p + "ffn_gate.weight"].T
            u = x @ t[p + "ffn_up.weight"].T
            if observe:
                observe(l, x)
            a = silu(g) * u
            if rule:
                a = rule(l, x, g, u, a)
            h = h + a @ t[p + "ffn_down.weight"].T
        return self.rms(h, t["output_norm.weight"]) @ self.out.T

    def perplexity(self, toks, rule=None, chunks=None):
        """As llama-perplexity: non-overlapping chunks, the second half of each scored, no BOS."""
        n_chunks = len(toks) // CTX if chunks is None else min(chunks, len(toks) // CTX)
        nll, cnt = 0.0, 0
        for c in range(n_chunks):
            tk = toks[c * CTX:(c + 1) * CTX]
            lg = self.forward(np.array(tk), rule).astype(np.float64)
            for i in range(CTX // 2, CTX - 1):
                row = lg[i]
                m = row.max()
                nll += m + math.log(np.exp(row - m).sum()) - row[tk[i + 1]]
                cnt += 1
        return math.exp(nll / cnt)


def silu(x):
    return x / (1 + np.exp(-x))


def top(score, keep):
    """Per row, the `keep` share of entries with the largest score."""
    k = max(1, int(round(score.shape[-1] * keep)))
    th = -np.partition(-score, k - 1, axis=-1)[:, k - 1:k]
    return score >= th


def covariances(model, cal_toks):
    """Per layer, the covariance of the FFN input over the calibration text."""
    cov = [np.zeros((model.n_embd, model.n_embd)) for _ in range(model.n_layer)]
    n = 0
    for c in range(len(cal_toks) // CTX):
        model.forward(np.array(cal_toks[c * CTX:(c + 1) * CTX]),
                      observe=lambda l, x: cov[l].__iadd__(x.T.astype(np.float64) @ x))
        n += CTX
    return [c / n for c in cov]


def low_rank(model, cov, l, name, ranks):
    """The best rank-r maps of layer l's W_gate or W_up under the input covariance `cov` (the
    fit the engine's predictor uses for the gate), for each r in `ranks`."""
    w, vec = np.linalg.eigh(cov)
    w = np.maximum(w, 1e-8)
    half, inv_half = (vec * np.sqrt(w)) @ vec.T, (vec / np.sqrt(w)) @ vec.T
    m = model.t[f"blk.{l}.ffn_{name}.weight"].astype(np.float64)
    u, s, vt = np.linalg.svd(m @ half, full_matrices=False)
    return [((u[:, :r] * s[:r]) @ (vt[:r] @ inv_half)).astype(np.float32) for r in ranks]


def predictors(model, cov, rank):
    """Per layer, rank-`rank` maps of W_gate and W_up under the covariances `cov`."""
    return {(l, name): low_rank(model, cov[l], l, name, [rank])[0]
            for l in range(model.n_layer) for name in ("gate", "up")}


def rank_error(model, toks, cal_toks, layers):
    """How much of gate's and up's output the low-rank maps miss, on the text's first chunk."""
    cov = covariances(model, cal_toks)
    xs = {}
    model.forward(np.array(toks[:CTX]), observe=lambda l, x: xs.__setitem__(l, x))
    ranks = [64, 128, 256]
    print("| layer | matrix | " + " | ".join(f"rank {r} misses" for r in ranks) + " |")
    print("|---:|---|" + "---:|" * len(ranks))
    for l in layers:
        x = xs[l]
        for name in ("gate", "up"):
            y = x @ model.t[f"blk.{l}.ffn_{name}.weight"].T
            errs = [np.linalg.norm(x @ m.T - y) / np.linalg.norm(y)
                    for m in low_rank(model, cov[l], l, name, ranks)]
            print(f"| {l} | {name} | " + " | ".join(f"{100 * e:.0f}%" for e in errs) + " |")


# Each rule's kind and how many numbers follow it.
ARITY = {"a": 1, "screen": 2, "gate": 1, "teal": 2, "tealgu": 2, "pred": 3}


def parse_rule(spec):
    """A rule's kind and numbers; exits with a message when it is not one of the above."""
    kind, *args = spec.split(":")
    try:
        nums = [float(a) for a in args]
    except ValueError:
        nums = None
    if ARITY.get(kind) != (len(nums) if nums is not None else None):
        sys.exit(f"unknown rule {spec}: see the top of this script")
    return kind, nums


def make_rule(model, spec, cal_toks, cache):
    kind, f = parse_rule(spec)
    if kind == "a":
        return lambda l, x, g, u, a: a * top(np.abs(a), f[0])
    if kind == "screen":
        return lambda l, x, g, u, a: a * top(np.where(top(np.abs(silu(g)), 1 - f[0]), np.abs(a), -1), f[1])
    if kind == "gate":
        return lambda l, x, g, u, a: a * top(np.abs(silu(g)), f[0])
    if kind in ("teal", "tealgu"):
        def rule(l, x, g, u, a):
            xs = x * top(np.abs(x), 1 - f[0])
            u2 = xs @ model.t[f"blk.{l}.ffn_up.weight"].T
            g2 = xs @ model.t[f"blk.{l}.ffn_gate.weight"].T if kind == "tealgu" else g
            a2 = silu(g2) * u2
            return a2 * top(np.abs(a2), f[1])
        return rule
    if kind == "pred":
        rank = int(f[0])
        # One calibration pass serves every rank asked for.
        if "cov" not in cache:
            cache["cov"] = covariances(model, cal_toks)
        if rank not in cache:
            cache[rank] = predictors(model, cache["cov"], rank)
        maps = cache[rank]

        def rule(l, x, g, u, a):
            est = silu(x @ maps[(l, "gate")].T) * (x @ maps[(l, "up")].T)
            return a * top(np.where(top(np.abs(est), f[1]), np.abs(a), -1), f[2])
        return rule
    raise AssertionError(kind)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("rules", nargs="*", help="rules as in the script's header; dense is always measured first")
    ap.add_argument("--text", default=os.path.join(ROOT, "..", "shared", "golden", "GPL-3.txt"))
    ap.add_argument("--cal", default=os.path.join(ROOT, "assets", "calibration.txt"))
    ap.add_argument("--chunks", type=int)
    ap.add_argument("--rank-error", help="layers, comma-separated")
    o = ap.parse_args()
    for spec in o.rules:
        parse_rule(spec)
    for f in (o.model, o.text, o.cal):
        if not os.path.isfile(f):
            sys.exit(f"{f}: no such file")
    model = Llama(o.model)
    toks = tokenize(o.model, o.text)
    if o.rank_error:
        return rank_error(model, toks, tokenize(o.model, o.cal), [int(v) for v in o.rank_error.split(",")])
    cal = tokenize(o.model, o.cal) if any(r.startswith("pred") for r in o.rules) else []
    dense = model.perplexity(toks, None, o.chunks)
    print(f"| rule | perplexity | vs dense |\n|---|---:|---:|\n| dense | {dense:.3f} | |", flush=True)
    cache = {}
    for spec in o.rules:
        p = model.perplexity(toks, make_rule(model, spec, cal, cache), o.chunks)
        print(f"| {spec} | {p:.3f} | {100 * (p / dense - 1):+.1f}% |", flush=True)


if __name__ == "__main__":
    main()
