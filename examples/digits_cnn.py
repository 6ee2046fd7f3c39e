"""A small CNN on scikit-learn's 8x8 digits, single process: `python examples/digits_cnn.py` (< 1 minute on a CPU)."""
import argparse

from sklearn.datasets import load_digits
from tqdm import tqdm

import dtrain as torch
import dtrain.nn as nn
import dtrain.nn.functional as F
from dtrain.utils.data import DataLoader, TensorDataset

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=8)
ap.add_argument("--batch-size", type=int, default=64)
args = ap.parse_args()

torch.manual_seed(0)
d = load_digits()
x = torch.tensor(d.data / 16.0, dtype=torch.float32).view(-1, 1, 8, 8)
y = torch.tensor(d.target)
perm = torch.randperm(len(x))
train, test = perm[:1437], perm[1437:]
loader = DataLoader(TensorDataset(x[train], y[train]), batch_size=args.batch_size, shuffle=True)

model = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
    nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 8x8 -> 4x4
    nn.Flatten(), nn.Linear(32 * 4 * 4, 10))
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
for epoch in tqdm(range(args.epochs), desc="epochs"):
    model.train()
    for xb, yb in loader:
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
model.eval()  # BatchNorm switches to its running statistics
with torch.no_grad():
    acc = (model(x[test]).argmax(1) == y[test]).float().mean().item()
print(f"final loss={loss.item():.4f} test_acc={acc:.4f}")
