"""A small character-level GPT trained on Python's own standard-library sources (text that ships with Python).

    python examples/char_gpt.py                       # one process
    dtrain-run -n 2 examples/char_gpt.py              # data-parallel on 2 ranks (DDP)
    python examples/char_gpt.py --resume              # continue from the last checkpoint
    python examples/char_gpt.py --amp                 # mixed precision: bfloat16 on the CPU, float16 on CUDA
    sbatch slurm/one_node.sbatch examples/char_gpt.py # on SLURM: preemption-ready, see below

Every `--ckpt-every` steps rank 0 writes a checkpoint (model, optimizer, step, RNG state); `--resume` picks it
up and training continues where it stopped. With `--amp` the forward runs under torch.autocast (products in
bfloat16 on the CPU, float16 on a GPU; losses and norms in float32) while the weights and the optimizer stay
float32; float16 also needs a GradScaler, so that small gradients do not underflow. The model follows nanoGPT:
pre-norm blocks of causal self-attention and an MLP, learned position embeddings, weight-tied head.

Inside a SLURM job the script is preemption-ready without options: SLURM's warning signal (USR1, which the
batch templates ask for 90 s before the time limit) makes every rank stop at the same step, rank 0 saves a
checkpoint and asks for a requeue, and the requeued run resumes from it."""
import os

if os.environ.get("SLURM_JOB_ID"):
    from dtrain_launcher import slurm

    # first thing: USR1 kills a process that has no handler yet, and MPICH's MPI_Init would swallow it
    preempt = slurm.PreemptionFlag()
else:
    slurm = preempt = None

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import numpy as np
from tqdm import tqdm

import dtrain as torch
import dtrain.distributed as dist
import dtrain.nn as nn
import dtrain.nn.functional as F
from dtrain.nn.parallel import DistributedDataParallel as DDP

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=600)
ap.add_argument("--batch-size", type=int, default=32, help="sequences per step, split across ranks")
ap.add_argument("--block", type=int, default=64, help="context length")
ap.add_argument("--layers", type=int, default=2)
ap.add_argument("--width", type=int, default=128)
ap.add_argument("--heads", type=int, default=4)
ap.add_argument("--lr", type=float, default=3e-3)
ap.add_argument("--ckpt", default="runs/char_gpt.pt")
ap.add_argument("--ckpt-every", type=int, default=200)
ap.add_argument("--resume", action="store_true")
ap.add_argument("--seed", type=int, default=1337)
ap.add_argument("--amp", action="store_true", help="autocast: bfloat16 on the CPU, float16 on CUDA")
args = ap.parse_args()

ddp = int(os.environ.get("RANK", -1)) != -1
if ddp:
    dist.init_process_group()
    rank, world = dist.get_rank(), dist.get_world_size()
else:
    rank, world = 0, 1
master = rank == 0
device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
device_type = device.split(":")[0]
# bfloat16 has float32's range, so it needs no loss scaling; float16 (the GPU's fast type) does
amp_dtype = torch.float16 if device_type == "cuda" else torch.bfloat16


def corpus():
    """A few standard-library modules' source: ~200 KB of text every Python install has."""
    import argparse as m1, string as m2, textwrap as m3, json.decoder as m4, logging as m5
    text = "".join(open(m.__file__, encoding="utf-8").read() for m in (m1, m2, m3, m4, m5))
    chars = sorted(set(text))
    return np.array([chars.index(c) for c in text], dtype=np.int64), chars


data, chars = corpus()
vocab = len(chars)
split = int(0.9 * len(data))
train_data, val_data = data[:split], data[split:]


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(vocab, args.width)
        self.pos = nn.Embedding(args.block, args.width)
        self.blocks = nn.ModuleList([Block(args.width, args.heads) for _ in range(args.layers)])
        self.ln = nn.LayerNorm(args.width)
        self.head = nn.Linear(args.width, vocab, bias=False)
        self.head.weight = self.tok.weight  # weight tying, as in GPT-2
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        # GPT-2's small-normal init; with the tied head, N(0, 1) embeddings would start at a loss of ~60
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln(x))


torch.manual_seed(args.seed)  # the same initial weights on every rank
model = GPT().to(device)
opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
scaler = torch.amp.GradScaler(device_type, enabled=args.amp and amp_dtype is torch.float16)
start = 0
resume = args.resume or (slurm is not None and slurm.restart_count() > 0)  # a requeued SLURM job resumes
if resume and os.path.exists(args.ckpt):
    ck = torch.load(args.ckpt)  # weights_only: plain tensors, numbers and dicts
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optim"])
    if "scaler" in ck:
        scaler.load_state_dict(ck["scaler"])
    start = ck["step"]
    if master:
        print(f"resumed from {args.ckpt} at step {start}")
raw = model
if ddp:
    model = DDP(model)

# each rank draws its own batches: offset the data stream by rank (as nanoGPT offsets its seed)
rng = np.random.default_rng([args.seed, rank, start])
per_rank = args.batch_size // world


def get_batch(src):
    ix = rng.integers(0, len(src) - args.block - 1, per_rank)
    x = np.stack([src[i:i + args.block] for i in ix])
    y = np.stack([src[i + 1:i + 1 + args.block] for i in ix])
    return torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)


def lr_at(step):  # linear warm-up, cosine decay
    warm = 50
    if step < warm:
        return args.lr * (step + 1) / warm
    return 0.1 * args.lr + 0.45 * args.lr * (1 + math.cos(math.pi * (step - warm) / max(1, args.steps - warm)))


t0 = time.time()
bar = tqdm(range(start, args.steps), disable=not master, initial=start, total=args.steps)
losses = []
for step in bar:
    for g in opt.param_groups:
        g["lr"] = lr_at(step)
    x, y = get_batch(train_data)
    with torch.autocast(device_type, dtype=amp_dtype, enabled=args.amp):
        logits = model(x)  # bfloat16/float16 logits under --amp
        loss = F.cross_entropy(logits.view(-1, vocab), y.view(-1))  # float32: autocast lists the loss
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()  # the float32 weights get float32 gradients through autocast's casts
    scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(opt)  # skipped if float16 gradients overflowed
    scaler.update()
    losses.append(loss.item())
    bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    preempted = preempt is not None and preempt.agreed(dist)  # every rank stops at the same step
    if master and ((step + 1) % args.ckpt_every == 0 or step + 1 == args.steps or preempted):
        os.makedirs(os.path.dirname(args.ckpt) or ".", exist_ok=True)
        torch.save({"model": raw.state_dict(), "optim": opt.state_dict(), "scaler": scaler.state_dict(),
                    "step": step + 1}, args.ckpt)
    if preempted:
        if master:
            print(f"preempted: checkpoint at step {step + 1}, asking SLURM to requeue the job", flush=True)
            slurm.requeue()  # under the templates a note: the batch script requeues once every rank exited
        if ddp:
            dist.barrier()  # nobody exits before the checkpoint is on disk
        break

raw.eval()
with torch.no_grad():
    vx, vy = get_batch(val_data)
    with torch.autocast(device_type, dtype=amp_dtype, enabled=args.amp):
        val = F.cross_entropy(raw(vx).view(-1, vocab), vy.view(-1)).item()
if master:
    train_loss = float(np.mean(losses[-20:])) if losses else float("nan")
    print(f"ranks={world} amp={amp_dtype if args.amp else None} steps={args.steps} time={time.time() - t0:.1f}s "
          f"train_loss={train_loss:.3f} val_loss={val:.3f} checkpoint={args.ckpt}")
if ddp:
    dist.destroy_process_group()
