"""Whole-object files across frameworks: `save PATH` pickles a user's model and its optimizer with torch.save,
`load PATH` loads them with torch.load(weights_only=False); both print the model's output and the loss after one
more optimizer step, so a run under torch and one under dtrain can be compared whichever wrote the file."""
import sys

import torch

from custom_model import TinyNet


def batch():  # the same tokens in either framework
    return torch.arange(20).reshape(4, 5) * 7 % 12, torch.arange(4) * 5 % 12


def train_step(model, opt):
    x, y = batch()
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()


def report(model, opt):
    model.eval()
    with torch.no_grad():
        out = model(batch()[0])
    print("OUT", " ".join(f"{v:.6f}" for v in out.flatten().tolist()))
    model.train()
    print("LOSS", f"{train_step(model, opt):.6f}")


if __name__ == "__main__":
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "save":
        torch.manual_seed(0)
        model = TinyNet()
        with torch.no_grad():  # the same weights in either framework: a fixed, framework-free pattern
            for i, p in enumerate(model.parameters()):
                p.copy_(torch.linspace(-0.5, 0.5, p.numel()).reshape(p.shape) * (1 + i % 3) / 3)
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        train_step(model, opt)
        torch.save({"model": model, "opt": opt}, path)
    else:
        ck = torch.load(path, weights_only=False)
        model, opt = ck["model"], ck["opt"]
        assert type(model).__module__ == "custom_model", type(model)
        assert opt.param_groups[0]["params"][0] is next(model.parameters())
        print("CLASS", type(model).__module__, type(model).__name__, type(opt).__name__, model.temperature)
    report(model, opt)
