"""An MLP on scikit-learn's digits, single process: `python examples/digits_mlp.py` (< 1 minute on a CPU)."""
import argparse

import numpy as np
from sklearn.datasets import load_digits
from tqdm import tqdm

import dtrain as torch
import dtrain.nn as nn
import dtrain.nn.functional as F
from dtrain.utils.data import DataLoader, TensorDataset

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=15)
ap.add_argument("--batch-size", type=int, default=64)
args = ap.parse_args()

torch.manual_seed(0)
d = load_digits()
x = torch.tensor(d.data / 16.0, dtype=torch.float32)
y = torch.tensor(d.target)
perm = torch.randperm(len(x))
train, test = perm[:1437], perm[1437:]
loader = DataLoader(TensorDataset(x[train], y[train]), batch_size=args.batch_size, shuffle=True)

model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10))
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
for epoch in tqdm(range(args.epochs), desc="epochs"):
    model.train()
    for xb, yb in loader:
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
model.eval()
with torch.no_grad():
    acc = (model(x[test]).argmax(1) == y[test]).float().mean().item()
print(f"final loss={loss.item():.4f} test_acc={acc:.4f}")
