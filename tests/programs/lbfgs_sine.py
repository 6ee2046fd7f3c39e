"""In the style of pytorch/examples time_sequence_prediction: two stacked LSTMCells learn sine waves in float64,
fitted with LBFGS (a closure that re-evaluates the loss), then predict the waves' continuation.

Smaller than the original (fewer, shorter waves and a narrower cell) so it runs in seconds; the data and the
initial weights come from NumPy with a fixed seed, so runs under different frameworks can be compared."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

T, L, N, HIDDEN = 20, 60, 24, 16


class Sequence(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm1 = nn.LSTMCell(1, HIDDEN)
        self.lstm2 = nn.LSTMCell(HIDDEN, HIDDEN)
        self.linear = nn.Linear(HIDDEN, 1)

    def forward(self, input, future=0):
        outputs = []
        h_t = torch.zeros(input.size(0), HIDDEN, dtype=torch.double)
        c_t = torch.zeros(input.size(0), HIDDEN, dtype=torch.double)
        h_t2 = torch.zeros(input.size(0), HIDDEN, dtype=torch.double)
        c_t2 = torch.zeros(input.size(0), HIDDEN, dtype=torch.double)

        for input_t in input.split(1, dim=1):
            h_t, c_t = self.lstm1(input_t, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        for i in range(future):  # predicting the future: the last output is the next input
            h_t, c_t = self.lstm1(output, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        outputs = torch.cat(outputs, dim=1)
        return outputs


def sine_waves(rng):
    x = np.empty((N, L), np.int64)
    x[:] = np.array(range(L)) + rng.integers(-4 * T, 4 * T, N).reshape(N, 1)
    return np.sin(x / 1.0 / T).astype("float64")


if __name__ == "__main__":
    rng = np.random.default_rng(2)
    data = sine_waves(rng)
    input = torch.from_numpy(data[3:, :-1])
    target = torch.from_numpy(data[3:, 1:])
    test_input = torch.from_numpy(data[:3, :-1])
    test_target = torch.from_numpy(data[:3, 1:])
    seq = Sequence()
    seq.double()
    with torch.no_grad():  # the same starting point in every framework
        for p in seq.parameters():
            p.copy_(torch.from_numpy(rng.uniform(-0.25, 0.25, tuple(p.shape))))
    criterion = nn.MSELoss()
    optimizer = optim.LBFGS(seq.parameters(), lr=0.8, max_iter=12)
    for i in range(3):
        evals = []

        def closure():
            optimizer.zero_grad()
            out = seq(input)
            loss = criterion(out, target)
            evals.append(loss.item())
            loss.backward()
            return loss
        optimizer.step(closure)
        print(f"STEP {i} evals {len(evals)} first {evals[0]:.10f} last {evals[-1]:.10f}")
        with torch.no_grad():
            future = 20
            pred = seq(test_input, future=future)
            loss = criterion(pred[:, :-future], test_target)
            print(f"TEST {i} loss {loss.item():.10f} prediction_end {pred[0, -1].item():.8f}")
