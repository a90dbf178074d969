#!/usr/bin/python3
"""Inference speed of the PyTorch peer, for `deno task bench --peer`.

The peer script (`../shared/peer/article_torch.py`) only times training. This runs the
peer's own code up to its training loop (argument parsing, data loading, the model, its
normalisation), so the network and the input path are exactly the peer's, then times
`model.eval()` forward passes under `torch.no_grad()` on consecutive test-set batches,
after one untimed batch, as `deno task bench` times its own inference.

Usage: peer_infer.py PEER_SCRIPT ARCHIVE.tar.gz [the peer's flags: --width, --threads,
--batch, --bench-steps S]   Prints 'infer img/s X'.
"""
import sys
import time

if len(sys.argv) < 3:
    sys.exit("usage: peer_infer.py PEER_SCRIPT ARCHIVE.tar.gz [peer flags] --bench-steps S")
script = sys.argv[1]
with open(script, encoding="utf-8") as f:
    source = f.read()
marker = "if a.bench_steps:"
if marker not in source:
    sys.exit(f"peer_infer: expected the peer {script} to contain '{marker}' but it does not")
sys.argv = [script] + sys.argv[2:]
peer = {"__name__": "peer"}
exec(compile(source[: source.index(marker)], script, "exec"), peer)
torch, model, norm, xte, a = (peer[k] for k in ("torch", "model", "norm", "xte", "a"))
if a.bench_steps < 1:
    sys.exit("peer_infer: expected --bench-steps >= 1")
if (a.bench_steps + 1) * a.batch > len(xte):
    sys.exit(f"peer_infer: {a.bench_steps + 1} batches of {a.batch} exceed the {len(xte)} test images")
model.eval()
with torch.no_grad():
    model(norm(xte[: a.batch]))
    start = time.time()
    for k in range(1, a.bench_steps + 1):
        model(norm(xte[k * a.batch : (k + 1) * a.batch]))
    print(f"infer img/s {a.batch * a.bench_steps / (time.time() - start):.2f}")
