"""Training-step benchmarks written against the PyTorch API, run with `--framework torch` or `--framework dtrain`.

Workloads (one process): mlp (64-256-256-10) and mlp-wide (64-2048-2048-10) on scikit-learn's digits with
SGD+momentum, a two-conv CNN on the digits as 8x8 images, and a 2-layer 128-wide char-level GPT with AdamW on
text that ships with Python. `--amp` runs the forward and the loss under autocast: bfloat16 on the CPU, float16
with a GradScaler on CUDA (`--device cuda`). `--size tiny` shrinks the GPT (a smoke test, e.g. on emulated
CUDA); `--sdpa` runs the GPT's attention through F.scaled_dot_product_attention, as nanoGPT does. Without
scikit-learn (GPU machines may lack it) the digits are replaced by random data of their shape.
Prints one JSON line: median step time (after warm-up), tokens/s for the GPT or samples/s, losses, test
accuracy."""
import argparse
import importlib
import json
import math
import statistics
import time

import numpy as np


def digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # GPU machines may lack scikit-learn: random data of the digits' shape times the same
        rng = np.random.default_rng(1)
        x = rng.random((1797, 64), dtype=np.float32)
        y = rng.integers(0, 10, 1797)
    else:
        d = load_digits()
        x = (d.data / 16.0).astype(np.float32)
        y = d.target.astype(np.int64)
    idx = np.random.default_rng(0).permutation(len(x))
    x, y = x[idx], y[idx]
    n = int(0.8 * len(x))
    return x[:n], y[:n], x[n:], y[n:]


def text_corpus():
    import argparse as ap, string, textwrap
    src = "".join(open(m.__file__).read() for m in (textwrap, string, ap))
    chars = sorted(set(src))
    stoi = {c: i for i, c in enumerate(chars)}
    return np.array([stoi[c] for c in src], dtype=np.int64), len(chars)


GPT_SIZES = {"normal": dict(d=128, ctx=64, heads=4, layers=2), "tiny": dict(d=32, ctx=16, heads=2, layers=1)}


def build(fw, name, vocab=None, size="normal", sdpa=False):
    nn, F = fw.nn, fw.nn.functional
    if name == "mlp":
        return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    if name == "mlp-wide":
        return nn.Sequential(nn.Linear(64, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 10))
    if name == "cnn":
        return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 4 * 4, 10))
    if name != "gpt":
        raise SystemExit(f"unknown workload {name}")
    d, ctx, heads, layers = (GPT_SIZES[size][k] for k in ("d", "ctx", "heads", "layers"))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
            self.register_buffer("mask", fw.tril(fw.ones(ctx, ctx)).view(1, 1, ctx, ctx))

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
            q = q.view(B, T, heads, C // heads).transpose(1, 2)
            k = k.view(B, T, heads, C // heads).transpose(1, 2)
            v = v.view(B, T, heads, C // heads).transpose(1, 2)
            if sdpa:  # nanoGPT's path where the framework has it
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // heads))
                att = att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf"))
                y = F.softmax(att, dim=-1) @ v
            y = y.transpose(1, 2).contiguous().view(B, T, C)
            x = x + self.proj(y)
            return x + self.out(F.gelu(self.fc(self.ln2(x))))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
            self.blocks = nn.ModuleList([Block() for _ in range(layers)])
            self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

        def forward(self, idx):
            x = self.tok(idx) + self.pos(fw.arange(idx.shape[1], device=idx.device))
            for b in self.blocks:
                x = b(x)
            return self.head(self.ln(x))
    return GPT()


def run(framework, workload, steps, batch, amp=False, device="cpu", size="normal", sdpa=False):
    fw = importlib.import_module(framework)
    fw.manual_seed(0)
    rng = np.random.default_rng(0)
    F = fw.nn.functional
    ctx = GPT_SIZES[size]["ctx"]
    if workload == "gpt":
        data, vocab = text_corpus()
        model = build(fw, "gpt", vocab, size, sdpa).to(device)
        opt = fw.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)

        def batch_fn():
            ix = rng.integers(0, len(data) - ctx - 1, batch)
            x = np.stack([data[i:i + ctx] for i in ix])
            y = np.stack([data[i + 1:i + ctx + 1] for i in ix])
            return fw.from_numpy(x).to(device), fw.from_numpy(y).to(device)

        def loss_of(x, y):
            logits = model(x)
            return F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1))
    else:
        xtr, ytr, xte, yte = digits()
        if workload == "cnn":
            xtr, xte = xtr.reshape(-1, 1, 8, 8), xte.reshape(-1, 1, 8, 8)
        model = build(fw, workload).to(device)
        opt = fw.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

        def batch_fn():
            ix = rng.integers(0, len(xtr), batch)
            return fw.from_numpy(xtr[ix]).to(device), fw.from_numpy(ytr[ix]).to(device)

        def loss_of(x, y):
            return F.cross_entropy(model(x), y)
    # --amp: products in the lower precision, losses in float32; float16 on CUDA needs loss scaling
    low = fw.bfloat16 if device == "cpu" else fw.float16
    scaler = fw.amp.GradScaler(device, enabled=amp and device != "cpu")
    times, losses = [], []
    model.train()
    for _ in range(steps):
        x, y = batch_fn()
        t0 = time.perf_counter()
        with fw.autocast(device, dtype=low, enabled=amp):
            loss = loss_of(x, y)
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(loss.item())  # a host read: the step's device work is finished when the clock stops
        times.append(time.perf_counter() - t0)
    warm = max(1, steps // 10)
    res = {"framework": framework, "workload": workload, "device": device, "batch": batch, "steps": steps,
           "amp": amp, "step_ms_median": round(1e3 * statistics.median(times[warm:]), 3),
           "first_loss": round(losses[0], 4), "final_loss": round(statistics.mean(losses[-10:]), 4)}
    if workload == "gpt":
        res["tokens_per_s"] = round(batch * ctx / statistics.median(times[warm:]), 1)
    else:
        res["samples_per_s"] = round(batch / statistics.median(times[warm:]), 1)
    if workload != "gpt":
        model.eval()
        with fw.no_grad():
            pred = model(fw.from_numpy(xte).to(device)).argmax(1).cpu().numpy()
        res["test_acc"] = round(float((pred == yte).mean()), 4)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--framework", default="dtrain")
    ap.add_argument("--workload", default="mlp")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--amp", action="store_true",
                    help="forward and loss under autocast: bfloat16 on the CPU, float16 and a GradScaler on CUDA")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--size", default="normal", choices=sorted(GPT_SIZES), help="the GPT's size")
    ap.add_argument("--sdpa", action="store_true",
                    help="the GPT's attention through F.scaled_dot_product_attention(is_causal=True), as nanoGPT's")
    a = ap.parse_args()
    print(json.dumps(run(a.framework, a.workload, a.steps, a.batch, a.amp, a.device, a.size, a.sdpa)))


if __name__ == "__main__":
    main()
