#!/usr/bin/env python3
"""torch_dit.py - a PyTorch DiT written from the math, for checking and benchmarking ditc.

The model is our own implementation of the DiT family from the semantics pinned down in
shared/reference/README.md (not the DiT repository's code).  Module and parameter names
follow the reference state_dict, so `load_state_dict` takes the reference checkpoints and
ditc's weight files unchanged.  Only torch and the standard library are needed; safetensors
files are read and written by the small reader/writer below.

  torch_dit.py check --case dit-tiny-p2[,dit-tiny-p4-eps,...] [--ref-dir DIR]
      Load DIR/NAME.json, NAME.weights.safetensors (half weights upcast to f32) and
      NAME.case.safetensors; run forward and forward_with_cfg on the CPU in float32 with
      both attention paths (SDPA and explicit softmax) and print the relative L2 errors
      against `out` / `cfg_out`.  Exit status 1 if any error is above 1e-5.

  torch_dit.py bench --model DiT-XL/2 --batch 1,32 --dtype fp32,fp16,bf16 --mode eager,compile
                     [--weights FILE|random] [--warmup 10] [--iters 50] [--json OUT]
                     [--device cuda] [--compile-mode default] [--attn sdpa|math]
      Time forward passes and print (and write with --json) a JSON list of rows.

  torch_dit.py random-weights --model DiT-XL/2 --out FILE [--dtype fp32] [--seed 0]
      Write the deterministic random weights that `bench --weights random` uses, so the same
      file can be handed to ditc.

Benchmark method: the model's parameters and activations are all in the benchmarked dtype
(model.to(dtype), no autocast).  TF32 is disabled, so fp32 means IEEE fp32 matmuls and
convolutions.  Each forward pass is bracketed by CUDA events (wall clock on the CPU); the row
holds the median over --iters passes after --warmup untimed ones.  Peak memory is
torch.cuda.max_memory_allocated over the timed passes after a reset (weights included).
`compile` wraps the model in torch.compile(dynamic=False, mode=--compile-mode), a fresh one
per (dtype, batch) after torch._dynamo.reset(); the first call (tracing + code generation,
autotuning in the max-autotune modes) is timed on its own as compile_s and is not part of
the warmup or the timed passes.  The default compile mode is "default" (no CUDA graphs, like
"max-autotune-no-cudagraphs"), chosen because max-autotune on DiT-XL takes minutes per shape.
"""

import argparse
import ctypes
import json
import math
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------
# safetensors: 8-byte little-endian header length, a JSON header mapping names to
# {dtype, shape, data_offsets=[begin, end)} relative to the end of the header, then data.

_ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}


def st_load(path):
    """Return ({name: CPU tensor}, metadata dict) of a safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (hlen,) = struct.unpack("<Q", raw[:8])
    if 8 + hlen > len(raw):
        raise ValueError(f"{path}: header length {hlen} runs past the end of the file")
    header = json.loads(raw[8:8 + hlen].decode("utf-8"))
    base = 8 + hlen
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        dt = _ST_DTYPES.get(info["dtype"])
        if dt is None:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {info['dtype']}")
        begin, end = info["data_offsets"]
        shape = list(info["shape"])
        count = math.prod(shape)
        esize = torch.empty((), dtype=dt).element_size()
        if end - begin != count * esize or base + end > len(raw):
            raise ValueError(f"{path}: tensor {name}: data size does not match its shape")
        if count == 0:
            out[name] = torch.empty(shape, dtype=dt)
            continue
        if sys.byteorder != "little" and esize > 1:
            raise ValueError("big-endian hosts are not supported")
        # A fresh bytearray per tensor: writable, aligned, and kept alive by the tensor.
        buf = bytearray(raw[base + begin:base + end])
        out[name] = torch.frombuffer(buf, dtype=dt, count=count).reshape(shape)
    return out, meta


def _tensor_bytes(t):
    """Raw little-endian bytes of a contiguous CPU tensor (ctypes, so numpy is not needed)."""
    n = t.numel() * t.element_size()
    return ctypes.string_at(t.data_ptr(), n) if n else b""


def st_save(path, tensors, meta=None):
    """Write {name: tensor} as safetensors (names sorted, header padded to 8 bytes)."""
    header, items, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        n = t.numel() * t.element_size()
        header[name] = {"dtype": _ST_NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + n]}
        items.append(t)
        off += n
    if meta:
        header["__metadata__"] = {k: str(v) for k, v in meta.items()}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for t in items:
            f.write(_tensor_bytes(t))


# ---------------------------------------------------------------------------
# Configurations.  Keys are the reference code's constructor arguments.

_SIZES = {  # name: (depth, hidden_size, num_heads)
    "XL": (28, 1152, 16), "L": (24, 1024, 16), "B": (12, 768, 12), "S": (12, 384, 6),
    "XS": (6, 256, 4),
}


def _named_configs():
    out = {}
    for size, (depth, hidden, heads) in _SIZES.items():
        for p in ((2, 4) if size == "XS" else (2, 4, 8)):
            out[f"DiT-{size}/{p}"] = dict(
                input_size=32, patch_size=p, in_channels=4, hidden_size=hidden, depth=depth,
                num_heads=heads, mlp_ratio=4.0, num_classes=1000, learn_sigma=True)
    return out


CONFIGS = _named_configs()

# Keys of a case json / config that DiT() takes; everything else (sampling settings, file
# names) is ignored.
_MODEL_KEYS = ("input_size", "patch_size", "in_channels", "hidden_size", "depth", "num_heads",
               "mlp_ratio", "num_classes", "learn_sigma", "att", "moe_experts", "moe_top_k",
               "moe_frequency")


def model_config(cfg):
    return {k: cfg[k] for k in _MODEL_KEYS if k in cfg}


# ---------------------------------------------------------------------------
# The model.


def sincos_pos_embed(dim, grid):
    """Fixed 2-D sin-cos table [1, grid*grid, dim], computed in float64 and stored f32.

    Token n = row*grid + col.  Channels [0, dim/2) encode the column, [dim/2, dim) the row;
    each half is [sin(pos*w_k), cos(pos*w_k)] with w_k = 10000^(-k/(dim/4)).
    """
    assert dim % 4 == 0, "hidden_size must be a multiple of 4 for the 2-D sin-cos table"
    q = dim // 4
    omega = 1.0 / 10000.0 ** (torch.arange(q, dtype=torch.float64) / q)
    idx = torch.arange(grid, dtype=torch.float64)
    row = idx.repeat_interleave(grid)  # row of token n
    col = idx.repeat(grid)             # column of token n

    def half(pos):
        a = pos[:, None] * omega[None, :]
        return torch.cat([torch.sin(a), torch.cos(a)], dim=1)

    return torch.cat([half(col), half(row)], dim=1).float().unsqueeze(0)


def timestep_freqs(t, dim=256, max_period=10000):
    """[cos(t*f), sin(t*f)], f_k = exp(-ln(max_period)*k/(dim/2)), computed in float32."""
    half = dim // 2
    f = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device)
                  / half)
    a = t.float()[:, None] * f[None, :]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class PatchEmbed(nn.Module):
    def __init__(self, p, cin, d):
        super().__init__()
        self.proj = nn.Conv2d(cin, d, kernel_size=p, stride=p)

    def forward(self, x):  # [N,C,H,W] -> [N, T, D], tokens row-major over the patch grid
        return self.proj(x).flatten(2).transpose(1, 2)


class TimestepEmbedder(nn.Module):
    def __init__(self, d, freq_dim=256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, d), nn.SiLU(), nn.Linear(d, d))

    def forward(self, t):
        f = timestep_freqs(t, self.freq_dim)
        return self.mlp(f.to(self.mlp[0].weight.dtype))


class LabelEmbedder(nn.Module):
    def __init__(self, num_classes, d):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + 1, d)  # last row: the null class

    def forward(self, y):
        return self.embedding_table(y)


class Attention(nn.Module):
    """Multi-head softmax attention; qkv rows are [q; k; v], head h owns rows h*hd..(h+1)*hd-1."""

    def __init__(self, d, heads, impl="sdpa"):
        super().__init__()
        self.heads, self.hd, self.impl = heads, d // heads, impl
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, self.hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, H, N, hd]
        if self.impl == "sdpa":
            o = F.scaled_dot_product_attention(q, k, v)
        else:
            s = (q * self.hd ** -0.5) @ k.transpose(-2, -1)
            o = s.softmax(dim=-1) @ v
        return self.proj(o.transpose(1, 2).reshape(B, N, D))


def _focus(x):
    """relu, cube, rescale to the Frobenius norm before cubing, per (batch, head)."""
    r = F.relu(x)
    r3 = r ** 3
    nr = r.flatten(2).norm(dim=-1)
    n3 = r3.flatten(2).norm(dim=-1)
    nr = torch.where(nr == 0, torch.full_like(nr, 1e-12), nr)
    n3 = torch.where(n3 == 0, torch.full_like(n3, 1e-12), n3)
    return (nr / n3)[:, :, None, None] * r3


class FGQAttention(nn.Module):
    """The seed study's focused grouped-query linear attention (att: fgq), grouping 3."""

    def __init__(self, d, heads, grid, groups=3):
        super().__init__()
        assert heads % groups == 0
        self.heads, self.hd, self.grid = heads, d // heads, grid
        self.kvh = heads // groups
        c = self.kvh * self.hd
        self.wq = nn.Linear(d, d)
        self.wkv = nn.Linear(d, 2 * c)
        self.dwc = nn.Conv2d(c, c, kernel_size=3, padding=1, groups=c)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        B, N, D = x.shape
        H, hd, G = self.heads, self.hd, self.kvh
        q = self.wq(x).reshape(B, N, H, hd).transpose(1, 2)               # [B, H, N, hd]
        kv = self.wkv(x).reshape(B, N, 2, G, hd).permute(2, 0, 3, 1, 4)   # [2, B, G, N, hd]
        k, v = kv[0], kv[1]
        q, k = _focus(q), _focus(k)
        rep = H // G
        kr, vr = k.repeat(1, rep, 1, 1), v.repeat(1, rep, 1, 1)           # q-head h -> kv h % G
        o = q @ (kr.transpose(-2, -1) @ vr)
        img = v.transpose(1, 2).reshape(B, N, G * hd).transpose(1, 2).reshape(
            B, G * hd, self.grid, self.grid)
        dv = self.dwc(img).reshape(B, G, hd, N).transpose(-2, -1)        # [B, G, N, hd]
        o = o + dv.repeat(1, rep, 1, 1)
        return self.proj(o.transpose(1, 2).reshape(B, N, D))


class Mlp(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, d)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class MoEMlp(nn.Module):
    """Top-k mixture of experts: softmax over the k largest router logits of each token."""

    def __init__(self, d, hidden, experts, top_k):
        super().__init__()
        self.top_k = top_k
        self.router = nn.Linear(d, experts)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d))
            for _ in range(experts))

    def forward(self, x):
        B, N, D = x.shape
        xs = x.reshape(-1, D)
        val, idx = self.router(xs).topk(self.top_k, dim=-1)
        gate = val.softmax(dim=-1)
        out = torch.zeros_like(xs)
        for e, expert in enumerate(self.experts):
            tok, slot = (idx == e).nonzero(as_tuple=True)
            if tok.numel():
                out.index_add_(0, tok, gate[tok, slot, None] * expert(xs[tok]))
        return out.reshape(B, N, D)


class DiTBlock(nn.Module):
    def __init__(self, d, heads, mlp_ratio, attn_impl, att, grid, moe):
        super().__init__()
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        hidden = int(d * mlp_ratio)
        if att == "fgq":
            self.attn = FGQAttention(d, heads, grid)
        elif att in (None, "", "softmax", "mhsa"):
            self.attn = Attention(d, heads, attn_impl)
        else:
            raise ValueError(f"attention variant '{att}' is not implemented")
        self.mlp = MoEMlp(d, hidden, *moe) if moe else Mlp(d, hidden)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))

    def forward(self, x, c):
        sa, sc, ga, sm, scm, gm = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + ga.unsqueeze(1) * self.attn(modulate(self.norm1(x), sa, sc))
        return x + gm.unsqueeze(1) * self.mlp(modulate(self.norm2(x), sm, scm))


class FinalLayer(nn.Module):
    def __init__(self, d, p, cout):
        super().__init__()
        self.norm_final = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(d, p * p * cout)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class DiT(nn.Module):
    def __init__(self, input_size=32, patch_size=2, in_channels=4, hidden_size=1152, depth=28,
                 num_heads=16, mlp_ratio=4.0, num_classes=1000, learn_sigma=True, att=None,
                 moe_experts=0, moe_top_k=2, moe_frequency=1, attn_impl="sdpa"):
        super().__init__()
        assert input_size % patch_size == 0 and hidden_size % num_heads == 0
        self.in_channels = in_channels
        self.out_channels = 2 * in_channels if learn_sigma else in_channels
        self.patch_size = patch_size
        self.grid = input_size // patch_size
        self.x_embedder = PatchEmbed(patch_size, in_channels, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.y_embedder = LabelEmbedder(num_classes, hidden_size)
        self.register_buffer("pos_embed", sincos_pos_embed(hidden_size, self.grid), persistent=True)
        blocks = []
        for i in range(depth):
            moe = (moe_experts, moe_top_k) if moe_experts and i % moe_frequency == 0 else None
            blocks.append(DiTBlock(hidden_size, num_heads, mlp_ratio, attn_impl, att, self.grid,
                                   moe))
        self.blocks = nn.ModuleList(blocks)
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels)

    def unpatchify(self, x):
        """[N, T, p*p*c] -> [N, c, h*p, w*p] from the (N, h, w, p, q, c) layout."""
        N, p, g, c = x.shape[0], self.patch_size, self.grid, self.out_channels
        x = x.reshape(N, g, g, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(N, c, g * p, g * p)

    def forward(self, x, t, y):
        h = self.x_embedder(x) + self.pos_embed
        c = self.t_embedder(t) + self.y_embedder(y)
        for blk in self.blocks:
            h = blk(h, c)
        return self.unpatchify(self.final_layer(h, c))

    def forward_with_cfg(self, x, t, y, cfg_scale):
        """Classifier-free guidance, reference convention: the batch's first half is duplicated
        (conditional labels in rows 0..N-1, null labels in N..2N-1 come from y); guidance
        mixes only the first 3 output channels, the rest pass through per row."""
        n = x.shape[0] // 2
        half = x[:n]
        out = self.forward(torch.cat([half, half], dim=0), t, y)
        eps, rest = out[:, :3], out[:, 3:]
        cond, uncond = eps[:n], eps[n:]
        g = uncond + cfg_scale * (cond - uncond)
        return torch.cat([torch.cat([g, g], dim=0), rest], dim=1)


def build(cfg, attn_impl="sdpa"):
    return DiT(attn_impl=attn_impl, **model_config(cfg))


def build_empty(cfg, attn_impl="sdpa"):
    """The module tree on the meta device (no memory, no init); fill with load_into()."""
    with torch.device("meta"):
        return build(cfg, attn_impl)


def load_into(model, state):
    """load_state_dict(strict) taking the tensors themselves (assign), so meta models work."""
    model.load_state_dict(state, strict=True, assign=True)
    return model


def random_state(cfg, seed=0):
    """Deterministic weights with every tensor non-zero: weights ~ N(0, 1/fan_in), biases and
    embedding rows ~ N(0, 0.02^2); pos_embed holds its fixed sin-cos values.  Tensors are
    drawn in state_dict order from one CPU generator."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, t in build_empty(cfg).state_dict().items():
        if name == "pos_embed":
            sd[name] = sincos_pos_embed(t.shape[-1], int(round(math.sqrt(t.shape[1]))))
            continue
        if t.dim() >= 2 and "embedding_table" not in name:
            std = 1.0 / math.sqrt(t[0].numel())
        else:
            std = 0.02
        sd[name] = torch.randn(t.shape, generator=g, dtype=torch.float32) * std
    return sd


# ---------------------------------------------------------------------------
# check: compare with the reference vectors.

TOL = 1e-5


def rel_l2(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm()).item()


def _default_ref_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    for d in (os.path.join(here, "..", "..", "shared", "reference"), "/work/shared/reference",
              os.path.join(here, "..", "shared", "reference")):
        if os.path.isdir(d):
            return os.path.normpath(d)
    return "/work/shared/reference"


def load_weights(path, dtype=torch.float32):
    """A state_dict from a safetensors file, floating tensors converted to dtype."""
    sd, meta = st_load(path)
    return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in sd.items()}, meta


def cmd_check(args):
    torch.set_num_threads(max(1, min(torch.get_num_threads(), args.threads)))
    worst = 0.0
    for name in [c for c in args.case.split(",") if c]:
        base = os.path.join(args.ref_dir, name)
        if not os.path.isfile(base + ".json"):
            print(f"error: no case {base}.json (see --ref-dir)", file=sys.stderr)
            return 2
        with open(base + ".json") as f:
            cfg = json.load(f)
        sd, _ = load_weights(os.path.join(args.ref_dir, cfg.get("weights",
                                          name + ".weights.safetensors")))
        case, _ = st_load(os.path.join(args.ref_dir, cfg.get("case", name + ".case.safetensors")))
        for impl in ("sdpa", "math"):
            model = build(cfg, impl).eval()
            pe = model.pos_embed.clone()
            model.load_state_dict(sd, strict=True)
            if impl == "sdpa" and "pos_embed" in sd:
                print(f"{name}: computed pos_embed vs stored: max abs diff "
                      f"{(pe - sd['pos_embed']).abs().max().item():.3g}")
            with torch.no_grad():
                out = model(case["x"], case["t"], case["y"])
                e = rel_l2(out, case["out"])
                worst = max(worst, e)
                print(f"{name} [{impl}] forward          rel L2 {e:.3e}"
                      f"{'  FAIL' if not e <= TOL else ''}")
                if "cfg_out" in case:
                    out = model.forward_with_cfg(case["cfg_x"], case["cfg_t"], case["cfg_y"],
                                                 float(cfg["cfg_scale"]))
                    e = rel_l2(out, case["cfg_out"])
                    worst = max(worst, e)
                    print(f"{name} [{impl}] forward_with_cfg rel L2 {e:.3e}"
                          f"{'  FAIL' if not e <= TOL else ''}")
    ok = worst <= TOL
    print(f"worst rel L2 {worst:.3e} ({'ok' if ok else 'FAIL'}, tolerance {TOL:g})")
    return 0 if ok else 1


# ---------------------------------------------------------------------------
# bench

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_config(spec):
    """A named config (DiT-XL/2 ...) or a json file with the reference keys."""
    if spec in CONFIGS:
        return spec, dict(CONFIGS[spec])
    if os.path.isfile(spec):
        with open(spec) as f:
            return os.path.basename(spec), model_config(json.load(f))
    raise SystemExit(f"unknown model '{spec}'; named configs: {', '.join(CONFIGS)}")


def disable_tf32():
    """fp32 must mean IEEE fp32: no TF32 in matmuls or cuDNN convolutions.

    The legacy flags are used on purpose: in torch 2.9-2.11, setting only the new
    fp32_precision attributes leaves cudnn.conv and cudnn.rnn disagreeing, and reading
    torch.backends.cudnn.allow_tf32 (as some code does) then raises."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def tf32_enabled():
    return bool(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32)


def _time_iters(fn, iters, cuda):
    times = []
    if cuda:
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(iters)]
        for s, e in ev:
            s.record()
            fn()
            e.record()
        torch.cuda.synchronize()
        times = [s.elapsed_time(e) for s, e in ev]
    else:
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return times


def _median(v):
    s = sorted(v)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def bench_one(name, cfg, state, batch, dtype_name, mode, args, dev):
    cuda = dev.type == "cuda"
    dtype = _DTYPES[dtype_name]
    model = load_into(build_empty(cfg, args.attn), state).eval()
    model = model.to(device=dev, dtype=dtype)
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(batch, cfg.get("in_channels", 4), cfg["input_size"], cfg["input_size"],
                    generator=g).to(dev, dtype)
    t = torch.randint(0, 1000, (batch,), generator=g).to(dev)
    y = torch.randint(0, cfg["num_classes"], (batch,), generator=g).to(dev)
    fn = model
    compile_s = None
    with torch.inference_mode():
        if mode == "compile":
            torch._dynamo.reset()
            kw = {} if args.compile_mode == "default" else {"mode": args.compile_mode}
            fn = torch.compile(model, dynamic=False, **kw)
            t0 = time.perf_counter()
            fn(x, t, y)
            if cuda:
                torch.cuda.synchronize()
            compile_s = time.perf_counter() - t0
        for _ in range(args.warmup):
            fn(x, t, y)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(dev)
        times = _time_iters(lambda: fn(x, t, y), args.iters, cuda)
        peak = torch.cuda.max_memory_allocated(dev) if cuda else None
    med = _median(times)
    row = {
        "model": name, "batch": batch, "dtype": dtype_name, "mode": mode,
        "median_ms": med, "images_per_s": batch / (med / 1e3),
        "peak_mem_bytes": peak, "torch_version": torch.__version__,
        "device_name": torch.cuda.get_device_name(dev) if cuda else "cpu",
        "weights_bytes": sum(v.numel() * v.element_size() for v in model.state_dict().values()),
        "min_ms": min(times), "mean_ms": sum(times) / len(times),
        "compile_mode": args.compile_mode if mode == "compile" else None,
        "compile_s": compile_s, "attn": args.attn, "weights": args.weights,
        "warmup": args.warmup, "iters": args.iters, "tf32": tf32_enabled(),
    }
    del fn, model
    if cuda:
        torch.cuda.empty_cache()
    return row


def cmd_bench(args):
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available; use --device cpu")
    disable_tf32()
    name, cfg = resolve_config(args.model)
    if args.weights == "random":
        state = random_state(cfg, args.seed)
    else:
        state, _ = load_weights(args.weights)
    rows = []
    for dtype_name in args.dtype.split(","):
        if dtype_name not in _DTYPES:
            raise SystemExit(f"unknown dtype '{dtype_name}' (fp32, fp16, bf16)")
        for mode in args.mode.split(","):
            if mode not in ("eager", "compile"):
                raise SystemExit(f"unknown mode '{mode}' (eager, compile)")
            for batch in (int(b) for b in args.batch.split(",")):
                try:
                    row = bench_one(name, cfg, state, batch, dtype_name, mode, args, dev)
                except Exception as exc:  # keep the other rows (e.g. out of memory)
                    row = {"model": name, "batch": batch, "dtype": dtype_name, "mode": mode,
                           "error": f"{type(exc).__name__}: {exc}"[:500]}
                    if dev.type == "cuda":
                        torch.cuda.empty_cache()
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
                if args.json:  # rewrite after every row so a timeout keeps what was measured
                    with open(args.json, "w") as f:
                        json.dump(rows, f, indent=1)
    print(json.dumps(rows, indent=1))
    return 0 if all("error" not in r for r in rows) else 1


def cmd_random_weights(args):
    name, cfg = resolve_config(args.model)
    state = random_state(cfg, args.seed)
    dt = _DTYPES[args.dtype]
    st_save(args.out, {k: v.to(dt) if v.is_floating_point() else v for k, v in state.items()},
            {"format": "pt", "config": json.dumps(cfg), "seed": args.seed})
    print(f"wrote {args.out}: {name}, {sum(v.numel() for v in state.values())} values, "
          f"{args.dtype}, seed {args.seed}")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="compare with the reference vectors (CPU, float32)")
    c.add_argument("--case", required=True, help="comma-separated case names")
    c.add_argument("--ref-dir", default=_default_ref_dir())
    c.add_argument("--threads", type=int, default=4)
    b = sub.add_parser("bench", help="time forward passes")
    b.add_argument("--model", default="DiT-XL/2", help="named config or json file")
    b.add_argument("--batch", default="1,32")
    b.add_argument("--dtype", default="fp32,fp16,bf16")
    b.add_argument("--mode", default="eager,compile")
    b.add_argument("--weights", default="random", help="safetensors file or 'random'")
    b.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    b.add_argument("--warmup", type=int, default=10)
    b.add_argument("--iters", type=int, default=50)
    b.add_argument("--json", help="also write the rows to this file")
    b.add_argument("--device", default="cuda")
    b.add_argument("--compile-mode", default="default",
                   help="torch.compile mode: default, max-autotune-no-cudagraphs, ...")
    b.add_argument("--attn", default="sdpa", choices=("sdpa", "math"),
                   help="scaled_dot_product_attention or the explicit softmax path")
    r = sub.add_parser("random-weights", help="write bench's random weights as safetensors")
    r.add_argument("--model", default="DiT-XL/2")
    r.add_argument("--out", required=True)
    r.add_argument("--dtype", default="fp32", choices=tuple(_DTYPES))
    r.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    return {"check": cmd_check, "bench": cmd_bench, "random-weights": cmd_random_weights}[
        args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
