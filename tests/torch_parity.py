#!/usr/bin/python3
"""The PyTorch side of tests/torch_weights_test.ts: the article's model, state dicts and
logits exchanged as safetensors files (written and read here with numpy alone, so the
`safetensors` pip package is not needed).

  torch_parity.py reference WIDTH SEED STATE PROBE
      Builds ResNet(WIDTH), gives every BatchNorm non-trivial affine weights and running
      statistics (two training-mode passes), writes its state_dict to STATE and, to PROBE,
      a few normalised NCHW images ("images") with their eval-mode logits ("logits").
  torch_parity.py check STATE PROBE
      Loads STATE (strictly) into ResNet(width read from conv1.weight), runs PROBE's images
      in eval mode and prints {"maxAbsDiff": ...} against PROBE's "logits".
"""
import json, struct, sys
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F


# ResidualBlock and ResNet: copied verbatim from the peer, shared/peer/article_torch.py, whose
# module trains at import.
class ResidualBlock(nn.Module):
    def __init__(s, i, o, stride=1):
        super().__init__()
        s.conv1 = nn.Conv2d(i, o, 3, stride, 1); s.bn1 = nn.BatchNorm2d(o); s.conv2 = nn.Conv2d(o, o, 3, 1, 1); s.bn2 = nn.BatchNorm2d(o)
        s.shortcut = nn.Sequential()
        if stride != 1 or i != o: s.shortcut = nn.Sequential(nn.Conv2d(i, o, 1, stride, bias=False), nn.BatchNorm2d(o))
    def forward(s, x):
        out = F.relu(s.bn1(s.conv1(x))); out = s.bn2(s.conv2(out)); out += s.shortcut(x); return F.relu(out)
class ResNet(nn.Module):
    def __init__(s, w):
        super().__init__(); s.in_channels = w
        s.conv1 = nn.Conv2d(3, w, 3, 1, 1); s.bn1 = nn.BatchNorm2d(w)
        s.layer1 = s._make_layer(w, 2, 1); s.layer2 = s._make_layer(2 * w, 2, 2); s.layer3 = s._make_layer(4 * w, 2, 2); s.layer4 = s._make_layer(8 * w, 2, 2)
        s.fc = nn.Linear(8 * w, 10)
    def _make_layer(s, o, n, stride):
        layers = []
        for st in [stride] + [1] * (n - 1): layers.append(ResidualBlock(s.in_channels, o, st)); s.in_channels = o
        return nn.Sequential(*layers)
    def forward(s, x):
        out = F.relu(s.bn1(s.conv1(x))); out = s.layer4(s.layer3(s.layer2(s.layer1(out))))
        out = F.avg_pool2d(out, 4).view(x.size(0), -1); return s.fc(out)


DTYPES = {"F32": np.float32, "I32": np.int32, "I64": np.int64}
MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.2023, 0.1994, 0.2010], np.float32).reshape(1, 3, 1, 1)
PROBE_IMAGES = 4


def write_safetensors(path, arrays):
    """8-byte little-endian header length, JSON header, raw little-endian data."""
    header, offset, blobs = {}, 0, []
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        dtype = next(k for k, v in DTYPES.items() if a.dtype == v)
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        blobs.append(a.astype(a.dtype.newbyteorder("<")).tobytes()); offset += a.nbytes
    text = json.dumps(header).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text))); f.write(text); f.write(b"".join(blobs))


def read_safetensors(path):
    with open(path, "rb") as f: raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8]); header = json.loads(raw[8:8 + n]); data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__": continue
        begin, end = e["data_offsets"]
        out[name] = np.frombuffer(data[begin:end], np.dtype(DTYPES[e["dtype"]]).newbyteorder("<")).reshape(e["shape"]).copy()
    return out


def reference(width, seed, state_path, probe_path):
    torch.manual_seed(seed); rng = np.random.default_rng(seed)
    model = ResNet(width)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5); m.bias.normal_(0, 0.2)
        model.train()
        for _ in range(2): model(torch.randn(16, 3, 32, 32) * 1.5 + 0.3)
    pixels = rng.integers(0, 256, (PROBE_IMAGES, 3, 32, 32)).astype(np.float32)
    images = ((pixels / 255 - MEAN) / STD).astype(np.float32)
    model.eval()
    with torch.no_grad(): logits = model(torch.from_numpy(images)).numpy()
    write_safetensors(state_path, {k: v.numpy() for k, v in model.state_dict().items()})
    write_safetensors(probe_path, {"images": images, "logits": logits})


def check(state_path, probe_path):
    state = {k: torch.from_numpy(v) for k, v in read_safetensors(state_path).items()}
    probe = read_safetensors(probe_path)
    model = ResNet(state["conv1.weight"].shape[0])
    model.load_state_dict(state, strict=True)
    model.eval()
    with torch.no_grad(): logits = model(torch.from_numpy(probe["images"])).numpy()
    print(json.dumps({"maxAbsDiff": float(np.abs(logits - probe["logits"]).max()),
                      "maxAbsLogit": float(np.abs(logits).max())}))


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1:2] == ["reference"] and len(sys.argv) == 6:
        reference(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    elif sys.argv[1:2] == ["check"] and len(sys.argv) == 4:
        check(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
