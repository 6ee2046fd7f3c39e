"""In the style of pygcn (Kipf & Welling's graph convolutional network): a two-layer GCN for node classification
with a symmetric-normalised sparse adjacency, `torch.sparse.mm` / `torch.spmm` in the layers, Adam with weight
decay, on a random planted-partition graph (four communities, noisy features).

The graph, the features and the initial weights come from NumPy with a fixed seed, and there is no dropout: the
program is deterministic given its data, so runs under different frameworks can be compared step by step. As in
pygcn, it trains on the GPU when there is one (`--no-cuda` keeps it on the CPU)."""
import argparse
import math
import time

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim


class GraphConvolution(nn.Module):
    def __init__(self, in_features, out_features, rng, sparse_mm=torch.sparse.mm):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.FloatTensor(in_features, out_features))
        self.bias = nn.Parameter(torch.FloatTensor(out_features))
        self.sparse_mm = sparse_mm
        self.reset_parameters(rng)

    def reset_parameters(self, rng):
        stdv = 1. / math.sqrt(self.weight.size(1))
        self.weight.data = torch.from_numpy(rng.uniform(-stdv, stdv, tuple(self.weight.shape)).astype(np.float32))
        self.bias.data = torch.from_numpy(rng.uniform(-stdv, stdv, tuple(self.bias.shape)).astype(np.float32))

    def forward(self, input, adj):
        support = torch.mm(input, self.weight)
        output = self.sparse_mm(adj, support)
        return output + self.bias

    def __repr__(self):
        return f"{self.__class__.__name__} ({self.in_features} -> {self.out_features})"


class GCN(nn.Module):
    def __init__(self, nfeat, nhid, nclass, rng):
        super().__init__()
        self.gc1 = GraphConvolution(nfeat, nhid, rng)
        self.gc2 = GraphConvolution(nhid, nclass, rng, sparse_mm=torch.spmm)

    def forward(self, x, adj):
        x = F.relu(self.gc1(x, adj))
        x = self.gc2(x, adj)
        return F.log_softmax(x, dim=1)


def normalize_adj(mx):
    """D^-1/2 (A + I) D^-1/2, as scipy sparse."""
    mx = mx + sp.eye(mx.shape[0])
    rowsum = np.array(mx.sum(1)).flatten()
    d_inv_sqrt = np.power(rowsum, -0.5)
    d_inv_sqrt[np.isinf(d_inv_sqrt)] = 0.
    d = sp.diags(d_inv_sqrt)
    return d @ mx @ d


def normalize_adj_torch(adj):
    """The same normalisation with torch's sparse ops: self-loops appended, coalesced, degrees by torch.sparse.sum."""
    n = adj.shape[0]
    loops = torch.arange(n)
    adj = torch.sparse_coo_tensor(torch.cat([adj._indices(), torch.stack([loops, loops])], 1),
                                  torch.cat([adj._values(), torch.ones(n)]), adj.shape).coalesce()
    d_inv_sqrt = torch.sparse.sum(adj, dim=1).to_dense().pow(-0.5)
    row, col = adj.indices()
    return torch.sparse_coo_tensor(adj.indices(), d_inv_sqrt[row] * adj.values() * d_inv_sqrt[col], adj.shape)


def sparse_mx_to_torch_sparse_tensor(sparse_mx):
    sparse_mx = sp.coo_matrix(sparse_mx).astype(np.float32)
    indices = torch.from_numpy(np.vstack((sparse_mx.row, sparse_mx.col)).astype(np.int64))
    values = torch.from_numpy(sparse_mx.data)
    return torch.sparse_coo_tensor(indices, values, torch.Size(sparse_mx.shape))


def planted_partition(rng, n=240, k=4, p_in=0.08, p_out=0.01, nfeat=32):
    labels = np.repeat(np.arange(k), n // k)
    same = labels[:, None] == labels[None, :]
    upper = np.triu(rng.random((n, n)) < np.where(same, p_in, p_out), 1)
    adj = sp.coo_matrix(upper | upper.T, dtype=np.float32)
    features = rng.standard_normal((n, nfeat)).astype(np.float32) * 0.5
    features[np.arange(n), labels] += 0.6  # a weak label signal the graph has to reinforce
    perm = rng.permutation(n)
    return adj, features, labels, perm[:40], perm[40:120], perm[120:]


def accuracy(output, labels):
    preds = output.max(1)[1].type_as(labels)
    return preds.eq(labels).double().sum() / len(labels)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-cuda", action="store_true", default=False, help="Disables CUDA training.")
    args = parser.parse_args()
    args.cuda = not args.no_cuda and torch.cuda.is_available()
    rng = np.random.default_rng(42)
    adj, features, labels, idx_train, idx_val, idx_test = planted_partition(rng)
    adj_torch = normalize_adj_torch(sparse_mx_to_torch_sparse_tensor(adj))
    adj = sparse_mx_to_torch_sparse_tensor(normalize_adj(adj))
    print("ADJ", adj._nnz(), torch.allclose(adj_torch.to_dense(), adj.to_dense(), atol=1e-6))
    features = torch.FloatTensor(features)
    labels = torch.LongTensor(labels)
    idx_train, idx_val, idx_test = map(torch.LongTensor, (idx_train, idx_val, idx_test))

    model = GCN(nfeat=features.shape[1], nhid=16, nclass=int(labels.max()) + 1, rng=rng)
    optimizer = optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    if args.cuda:
        model.cuda()
        features, adj, labels = features.cuda(), adj.cuda(), labels.cuda()
        idx_train, idx_val, idx_test = idx_train.cuda(), idx_val.cuda(), idx_test.cuda()
    print("DEVICE", "cuda" if args.cuda else "cpu", adj.device.type, model.gc1.weight.device.type)
    t0 = time.time()
    for epoch in range(120):
        model.train()
        optimizer.zero_grad()
        output = model(features, adj)
        loss_train = F.nll_loss(output[idx_train], labels[idx_train])
        loss_train.backward()
        optimizer.step()
        if epoch % 20 == 0 or epoch == 119:
            model.eval()
            with torch.no_grad():
                output = model(features, adj)
            loss_val = F.nll_loss(output[idx_val], labels[idx_val])
            print(f"EPOCH {epoch} loss_train {loss_train.item():.6f} loss_val {loss_val.item():.6f} "
                  f"acc_val {accuracy(output[idx_val], labels[idx_val]).item():.4f}")
    model.eval()
    output = model(features, adj)
    print(f"TEST loss {F.nll_loss(output[idx_test], labels[idx_test]).item():.6f} "
          f"accuracy {accuracy(output[idx_test], labels[idx_test]).item():.4f}")
    print(f"time {time.time() - t0:.2f}s")


if __name__ == "__main__":
    main()
