"""Pose- and caption-aware image embedders on synthetic people (issue 6): a small CNN trained on
dense-triplet batches with the log-ratio loss (or a triplet baseline), label = pose (pose distance)
or caption (MiniLM caption embedding), evaluated on held-out people by nDCG and mean label distance.

    python -m dmlkit.experiments.people --data out/people/synth-s0-n10000 --count 10000 --label pose \
        --train 8000 --queries 400 --gallery 1600 --dim 128 --steps 1500 --seed 0 --out out/people/pose-lr

The data set is generated into ``--data`` if it is not there yet (``dmlkit.data.people.generate``).
Every method here sees the same images, batches and optimiser; the comparison rows are the trained
model, the same CNN untrained (random init), raw pixels and the label-space oracle.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from torch import nn

from ..data.people import generate_dataset, load_people
from ..models import L2Normalize, ResNetEmbedder
from ..samplers import DenseTripletBatchSampler, PaperBinaryBatchSampler
from .people_labels import DEFAULT_TEXT_MODEL, CaptionLabels, PoseLabels, embed_captions
from .protocols import LOSSES, OPTIMIZERS, PROTOCOLS, label_power, make_loss, make_optimizer  # noqa: F401 (re-exported)

PIXEL_MEAN, PIXEL_STD = 0.5, 0.25
# learning rate of an optimiser that replaces a protocol's own (--protocol-optimizer)
PROTOCOL_OPTIMIZER_LR = {"adam_cosine": 1e-3, "paper_sgd": 0.01}


class PeopleCNN(nn.Module):
    """64 x 64 RGB -> four stride-2 conv blocks -> 4 x 4 x 128 map -> flatten -> linear -> dim,
    L2-normalised (``normalize=False``: as the head gives it, for the paper's log-ratio protocol).
    The flatten keeps where things are, which a pose embedding needs (global pooling would throw the
    layout away)."""

    def __init__(self, dim: int = 128, size: int = 64, width: int = 32, normalize: bool = True) -> None:
        super().__init__()
        chans = [3, width, 2 * width, 3 * width, 4 * width]
        layers = []
        for cin, cout in zip(chans, chans[1:]):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        side = size // 16
        self.head = nn.Linear(chans[-1] * side * side, dim)
        self.norm = L2Normalize() if normalize else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.head(torch.flatten(self.features(x), 1)))


ARCHS = ("cnn", "resnet")


def make_embedder(arch: str, dim: int, size: int, width: int, normalize: bool = True) -> nn.Module:
    """``cnn``: :class:`PeopleCNN` (four conv blocks); ``resnet``: :class:`dmlkit.models.ResNetEmbedder`
    (ResNet-18-style, two basic blocks per stage), both flattening the final map."""
    if arch == "cnn":
        return PeopleCNN(dim, size, width, normalize=normalize)
    if arch == "resnet":
        return ResNetEmbedder(dim, size, width, normalize=normalize)
    raise ValueError(f"unknown arch {arch!r}; choose from {', '.join(ARCHS)}")


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W), standardised like the exported preprocessing."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return (x - PIXEL_MEAN) / PIXEL_STD


def graded_metrics_from_distances(query: np.ndarray, gallery: np.ndarray, label_d: np.ndarray,
                                  ks=(10, 50, 100), top=(1, 5, 10)) -> dict:
    """nDCG@K (gain 1/(1+d), discount 1/log2(rank+1), ideal = gallery sorted by label distance) and
    mean label distance of the top K, ranking the gallery by Euclidean embedding distance (ties by
    index). The same definitions as :func:`dmlkit.evaluation.graded_metrics`, for label distances
    that are given as a matrix rather than as vectors."""
    q, g = np.asarray(query, np.float64), np.asarray(gallery, np.float64)
    # |q - g|^2 by the matrix form: the broadcast form needs queries x gallery x dim floats
    emb_d = np.maximum((q * q).sum(1)[:, None] + (g * g).sum(1)[None, :] - 2.0 * q @ g.T, 0.0)
    order = np.argsort(emb_d, axis=1, kind="stable")
    lab = np.take_along_axis(label_d, order, axis=1)
    ideal = np.sort(label_d, axis=1)
    kmax = max(max(ks), max(top))
    disc = 1.0 / np.log2(np.arange(2, kmax + 2))
    out = {}
    for k in ks:
        w = min(k, lab.shape[1])  # a gallery smaller than K: all of it
        dcg = (disc[:w] / (1 + lab[:, :w])).sum(1)
        idcg = (disc[:w] / (1 + ideal[:, :w])).sum(1)
        out[f"ndcg@{k}"] = float((dcg / idcg).mean())
    for k in top:
        out[f"label_distance@{k}"] = float(lab[:, :k].mean())
    return out


def curves(query: np.ndarray, gallery: np.ndarray, label_d: np.ndarray, kmax: int = 100) -> dict:
    """Mean label distance of the top K and nDCG@K for K = 1..kmax (the paper's curves)."""
    ks = list(range(1, min(kmax, label_d.shape[1]) + 1))
    m = graded_metrics_from_distances(query, gallery, label_d, ks=ks, top=ks)
    return {"k": ks, "ndcg": [m[f"ndcg@{k}"] for k in ks], "label_distance": [m[f"label_distance@{k}"] for k in ks]}


def embed(model: nn.Module, images: np.ndarray, batch: int = 256, device: str = "cpu") -> np.ndarray:
    """Embeddings of uint8 ``images`` (float32 arithmetic on ``device`` too: TF32 off); the model stays where it was."""
    model.eval()
    home = next(model.parameters()).device
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        model.to(device)
        with torch.no_grad():
            return np.concatenate([model(to_tensor(images[s:s + batch]).to(device)).cpu().numpy()
                                   for s in range(0, len(images), batch)])
    finally:
        model.to(home)
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32


def train(images: np.ndarray, labels, dim: int, steps: int, seed: int, batch: int = 32, k: int = 5,
          lr: float = 1e-3, loss: str = "log_ratio", width: int = 32, neighbours: np.ndarray | None = None,
          groups: int = 1, protocol: str | None = None, optimizer: str = "adam_cosine", arch: str = "cnn",
          crops=None, device: str = "cpu", protocol_optimizer: str | None = None,
          log=print) -> tuple[nn.Module, dict]:
    """Train an embedder (:func:`make_embedder`: ``arch`` ``cnn`` or ``resnet``) with ``loss`` (see
    :func:`make_loss`) on dense-triplet batches: an anchor, its k label-space neighbours and random
    others (``groups`` anchors with their neighbours per batch). ``labels`` is a
    :class:`~dmlkit.experiments.people_labels.PoseLabels` or ``CaptionLabels`` over the same samples.
    Label distances are raised to the loss's ``label_power`` (2 for the squared log-ratio loss, which
    compares squared embedding distances); the triplet losses only use their order.

    ``protocol`` (a name in :data:`~dmlkit.experiments.protocols.PROTOCOLS`) replaces ``loss``,
    ``batch``, ``lr``, ``optimizer`` and the output normalisation with the paper's settings; the
    ``paper_binary`` protocol needs ``neighbours`` with >= 30 columns (searched if not given).
    ``protocol_optimizer`` keeps the protocol's batches and loss but trains with another optimiser
    (``adam_cosine``: the project rows' Adam, lr 1e-3, cosine decay), to tell the two apart.

    ``crops`` (a :class:`~dmlkit.data.people.augment.PersonCrops` over ``images``) trains on jittered,
    batch-flipped person crops instead of the whole images; pose labels are then measured on the
    crops' keypoints (joints cut off by the jitter no longer count).

    ``device`` (``cpu`` or ``cuda``) is where training runs; the model comes back on the CPU."""
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    spec = protocol_spec(protocol)
    torch.manual_seed(seed)
    side = crops.size if crops is not None else images.shape[1]
    model = make_embedder(arch, dim, side, width, normalize=spec.normalize if spec else True)
    x_all = to_tensor(images) if crops is None else None

    def batch_of(idx: np.ndarray):
        if crops is None:
            return x_all[idx], labels.distances(idx)
        pixels, kps = crops.batch(idx)
        d = (PoseLabels(kps, labels.scale).distances(np.arange(len(idx))) if isinstance(labels, PoseLabels)
             else labels.distances(idx))
        return to_tensor(pixels), d

    info = fit(model, batch_of, labels, steps, seed, batch=batch, k=k, lr=lr, loss=loss, neighbours=neighbours,
               groups=groups, protocol=protocol, optimizer=optimizer, device=device,
               protocol_optimizer=protocol_optimizer, log=log)
    return model, info


def protocol_spec(protocol: str | None):
    """The :class:`~dmlkit.experiments.protocols.Protocol` named ``protocol`` (None for none); unknown names raise."""
    if protocol is None:
        return None
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    return PROTOCOLS[protocol]


def fit(model: nn.Module, batch_of, labels, steps: int, seed: int, batch: int = 32, k: int = 5, lr: float = 1e-3,
        loss: str = "log_ratio", neighbours: np.ndarray | None = None, groups: int = 1, protocol: str | None = None,
        optimizer: str = "adam_cosine", device: str = "cpu", protocol_optimizer: str | None = None,
        log=print) -> dict:
    """The training loop of :func:`train` for any embedder of ``len(labels)`` samples: ``batch_of(idx)`` gives
    a batch's inputs and its label distances; batches, loss and optimiser as :func:`train` says (build the
    model with the protocol's output normalisation). Returns the timings and the final training loss."""
    spec = protocol_spec(protocol)
    n = len(labels)
    need = 30 if spec and spec.sampler == "paper_binary" else k
    t0 = time.time()
    neighbours = labels.neighbours(need) if neighbours is None else neighbours
    t_nn = time.time() - t0
    neighbours = torch.from_numpy(np.asarray(neighbours))
    if spec:
        batch, lr, optimizer, loss_fn = spec.batch, spec.lr, spec.optimizer, spec.loss()
        if protocol_optimizer not in (None, spec.optimizer):
            optimizer, lr = protocol_optimizer, PROTOCOL_OPTIMIZER_LR[protocol_optimizer]
    else:
        loss_fn = make_loss(loss, k)
    if spec and spec.sampler == "paper_binary":
        sampler = PaperBinaryBatchSampler(np.arange(n), batch, positives=5, top=30, num_batches=steps,
                                          seed=seed, neighbours=neighbours)
    else:
        sampler = DenseTripletBatchSampler(np.arange(n), batch, k=k, num_batches=steps, seed=seed,
                                           neighbours=neighbours, groups=groups)
    power = label_power(loss_fn)
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    model.to(device)
    opt, sched = make_optimizer(optimizer, model.parameters(), steps, lr)
    model.train()
    t0, running = time.time(), []
    for step, (x, d) in enumerate(_prefetched(batch_of, sampler, ahead=2 if device == "cuda" else 0), 1):
        value = loss_fn(model(x.to(device)), label_distances=torch.from_numpy(d ** power).to(device))
        opt.zero_grad()
        value.backward()
        opt.step()
        sched.step()
        running.append(value.item())
        if step % 100 == 0 or step == steps:
            log(f"step {step}/{steps} loss {np.mean(running[-100:]):.4f} ({time.time() - t0:.0f} s)")
    model.cpu()
    return {"train_seconds": round(time.time() - t0, 1), "neighbour_seconds": round(t_nn, 1),
            "final_loss": float(np.mean(running[-100:]))}


def _prefetched(batch_of, sampler, ahead: int):
    """``batch_of(idx)`` for each batch of ``sampler``, in order; with ``ahead`` > 0 one background thread
    builds the next batches (the jittered crops) while the GPU trains on this one. One thread in
    sampler order keeps every random draw where the serial loop makes it, so the batches are the same."""
    if ahead <= 0:
        for idx in sampler:
            yield batch_of(np.asarray(idx))
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pending = deque()
        for idx in sampler:
            pending.append(pool.submit(batch_of, np.asarray(idx)))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def caption_label_vectors(records, captions_json: str, mode: str, text_model: str) -> np.ndarray:
    """Caption label of each person (``records`` in data order): the all-MiniLM-L6-v2 embedding of
    the first caption, or (``mode="mean"``) the renormalised mean of the embeddings of all of them."""
    from ..data.people import load_captions

    by_image = load_captions(captions_json)
    texts = [by_image[r.image_id] if mode == "mean" else by_image[r.image_id][:1] for r in records]
    flat = embed_captions([t for person in texts for t in person], text_model)
    out, start = np.empty((len(texts), flat.shape[1])), 0
    for i, person in enumerate(texts):
        v = flat[start:start + len(person)].mean(0)
        out[i] = v / np.linalg.norm(v)
        start += len(person)
    return out


def raw_pixels(images: np.ndarray, size: int = 16) -> np.ndarray:
    """Downsampled, standardised pixels as an embedding (the raw-pixel bound)."""
    x = torch.nn.functional.adaptive_avg_pool2d(to_tensor(images), size).flatten(1).numpy()
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def f16_parity(model: nn.Module, images: np.ndarray, device: str = "cpu") -> float:
    """Smallest cosine similarity between the model's embeddings and those of a copy whose weights are
    rounded to float16 (what an f16 export stores), over ``images``."""
    import copy

    rounded = copy.deepcopy(model)
    with torch.no_grad():
        for t in list(rounded.parameters()) + list(rounded.buffers()):
            if t.is_floating_point():
                t.copy_(t.half().float())
    a, b = embed(model, images, device=device), embed(rounded, images, device=device)
    return float((np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


def export(model: nn.Module, path: str, dtype: str, metadata: dict, size: int = 64) -> dict:
    """Write the model for the Swift runtime (8-bit RGB pixels in, L2-normalised embedding out)."""
    from ..export import export_model

    model.eval()
    example = torch.zeros(1, 3, size, size)
    return export_model(model, example, path, metadata={k: str(v) for k, v in metadata.items()}, dtype=dtype,
                        preprocessing={"channel_order": "rgb", "scale": 1.0 / 255.0, "mean": PIXEL_MEAN,
                                       "std": PIXEL_STD})


LOSS_TEXT = {"log_ratio": "log-ratio, squared distances in both spaces, every sample an anchor",
             "log_ratio_first": ("log-ratio, squared distances in both spaces, only the batch's first sample an "
                                 "anchor"),
             "dense_triplet": "triplet margin 0.05 on all dense triplets of the batch",
             "binary_triplet": "triplet margin 0.2, the 5 label-space nearest as positives"}
ARCH_TEXT = {"cnn": "`dmlkit.experiments.people.PeopleCNN(dim={dim}, width={width})`: four stride-2\n  "
                    "conv3x3/BN/ReLU blocks, flatten, linear, L2 normalisation",
             "resnet": "`dmlkit.models.ResNetEmbedder(dim={dim}, width={width})`: ResNet-18-style (stem and four\n  "
                       "stages of two basic blocks), flatten, linear, L2 normalisation"}
OPTIMIZER_TEXT = {"adam_cosine": "Adam with cosine decay,",
                  "paper_sgd": "SGD (momentum 0.9, weight decay 5e-4, lr / (1 + 1e-4 step)),"}
LABEL_TEXT = {
    "pose": ("Pose", "pose distance (`dmlkit.data.people.pose_distance`, no mirror invariance)",
             "pose distance in torso lengths"),
    "caption": ("Caption", "the distance between the all-MiniLM-L6-v2 embeddings of the people's generated "
                "captions", "Euclidean distance of unit caption embeddings"),
}


# What a whole-image model expects in a gallery (GalleryBuilder's default crop), for its card.
INPUT_CROP_TEXT = """- **Input crop**: trained on whole 64x64 images, each holding one generated person with a margin around them.
  In a gallery, give it a person crop of that shape: `dml gallery build` (`GalleryBuilder`) cuts the person's COCO bbox (or
  the extent of their labelled keypoints), grown by 10 % of its longer side on every side and widened to a square, and the
  runtime resizes it to 64x64 (bilinear); `--whole-images` embeds whole images instead.
"""


def model_card(result: dict, fingerprint: str, command: str) -> str:
    """Markdown model card of an exported run."""
    c, m = result["config"], result["metrics"]
    cols = ["ndcg@10", "ndcg@50", "ndcg@100", "label_distance@1", "label_distance@5", "label_distance@10"]
    table = ["| row | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    caption_note = (" (each person's label: the renormalised mean of the embeddings of all its captions)"
                    if c["label"] == "caption" and c.get("caption_label", "first") == "mean" else "")
    for name, row in m.items():
        table.append(f"| {name} | " + " | ".join(f"{row[k]:.4f}" for k in cols) + " |")
    crop_text = (f"{c['crop']}x{c['crop']} RGB person-centred crop (square of 1.25 x the person box's larger "
                 "side)" if c.get("crop") else "64x64 RGB image")
    spec = PROTOCOLS.get(c.get("protocol") or "")
    where = "GPU (CUDA)" if c.get("device") == "cuda" else f"CPU, {c.get('threads', 1)} thread(s)"
    loss_text = f"protocol: {spec.description}" if spec else LOSS_TEXT[c["loss"]]
    unit = "L2-normalised" if spec is None or spec.normalize else "unnormalised (compare by Euclidean distance)"
    return f"""# {os.path.basename(result['export']['path'])}

{LABEL_TEXT[c['label']][0]}-aware image embedder: {crop_text} of one person -> {c['dim']}-d {unit}
embedding whose distances follow {LABEL_TEXT[c['label']][1]}{caption_note}.

- **Architecture**: {ARCH_TEXT[c.get('arch', 'cnn')].format(dim=c['dim'], width=c['width'])}. Preprocessing: pixels / 255, minus
  {PIXEL_MEAN}, divided by {PIXEL_STD} (stored in the file). Weights stored as {result['export']['dtype']}
  (smallest cosine to the float32 model on the held-out queries: {result['f16_min_cosine']:.6f}).
{INPUT_CROP_TEXT if not c.get('crop') else ''}- **Data**: synthetic people from `dmlkit.data.people` (seed {c['data_seed']}, {c['count']} generated): the first
  {c['train']} train; held out: {c['queries']} queries against a gallery of {c['gallery']} (never seen in training).
- **Training**: loss `{c['loss']}` ({loss_text}), batches of {c['batch']}
  ({c.get('groups', 1)} anchor(s), each with its 5 label-space neighbours, then random others), {OPTIMIZER_TEXT[c.get('optimizer', 'adam_cosine')]} lr {c['lr']}, {c['steps']} steps,
  seed {c['seed']}, {where}: {result['train']['train_seconds']} s of training, plus the label-space
  neighbour search ({result['train']['neighbour_seconds']} s; cached per data set).
- **Fingerprint**: `{fingerprint}`

## Held-out retrieval (gain 1/(1+d), d = {LABEL_TEXT[c['label']][2]})

{chr(10).join(table)}

One seed of the comparison in `models/RESULTS.md`, where losses, sizes and seeds are side by side.

## Reproduce

```
{command}
```
"""


def _write_text(path: str, text: str) -> None:
    """Write a file atomically (temp file + rename): a killed run never leaves half a card or metrics file."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _save_npy(path: str, array: np.ndarray) -> None:
    """Cache an array atomically, so that runs started side by side never read a half-written cache."""
    tmp = f"{path}.tmp{os.getpid()}.npy"
    np.save(tmp, array)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dmlkit.experiments.people", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="data set directory (generated there if missing)")
    p.add_argument("--count", type=int, default=10000, help="people to generate if --data is empty")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--data-size", type=int, default=64, help="image side of the people if --data is generated "
                   "(160 for --crop 112)")
    p.add_argument("--captions-per-image", type=int, default=5, help="captions per person if --data is generated")
    p.add_argument("--train", type=int, default=8000, help="first N people train, the rest is held out")
    p.add_argument("--queries", type=int, default=400)
    p.add_argument("--gallery", type=int, default=1600)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--groups", type=int, default=1, help="anchors (each with its 5 label-space neighbours) per batch")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--loss", choices=LOSSES, default="log_ratio")
    p.add_argument("--protocol", choices=sorted(PROTOCOLS),
                   help="train as the paper's official code (replaces --loss, --batch, --lr, --optimizer; see "
                        "dmlkit.experiments.protocols)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam_cosine")
    p.add_argument("--protocol-optimizer", choices=OPTIMIZERS,
                   help="with --protocol: keep its batches and loss, train with this optimiser instead (adam_cosine: "
                        "Adam lr 1e-3 with cosine decay, as the --loss rows)")
    p.add_argument("--label", choices=("pose", "caption"), default="pose", help="what similarity means")
    p.add_argument("--text-model", default=DEFAULT_TEXT_MODEL, help="sentence-transformers model for captions")
    p.add_argument("--caption-label", choices=("mean", "first"), default="mean",
                   help="caption label: the mean of the unit embeddings of all a person's captions (renormalised; "
                        "averages the random wording away), or the first caption's embedding")
    p.add_argument("--pose-scale", choices=("torso", "torso_clipped", "extent"), default="torso",
                   help="pose normalisation of the training label (held-out metrics always use the torso "
                        "length, the project's pose distance)")
    p.add_argument("--width", type=int, default=32, help="channels of the first conv block")
    p.add_argument("--crop", type=int, default=0,
                   help="train and evaluate on person-centred crops of this size from each person's box (training "
                        "crops jittered in scale and position, batches flipped); 0: whole images")
    p.add_argument("--arch", choices=ARCHS, default="cnn", help="embedder: the 4-block CNN or the ResNet-18-style one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where training and evaluation run (float32 evaluation; export on the CPU)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy small CPU)")
    p.add_argument("--out", help="directory for metrics.json and the checkpoint")
    p.add_argument("--export", help="also write the trained model here (.safetensors, f16 if parity allows) "
                                    "and its model card next to it (.md)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    kp_json = os.path.join(a.data, "person_keypoints.json")
    if not os.path.exists(kp_json):
        print(f"generating {a.count} people into {a.data}", flush=True)
        generate_dataset(a.data, a.count, a.data_seed, a.data_size, captions_per_image=a.captions_per_image,
                         progress=True)
    with open(kp_json) as f:
        a.count = len(json.load(f).get("annotations", []))  # the data set's size, for the card and metadata
    need = a.train + a.queries + a.gallery
    captions = os.path.join(a.data, "captions.json") if a.label == "caption" else None
    data = load_people(kp_json, os.path.join(a.data, "images"), captions, limit=need)
    if len(data.images) < need:
        print(f"error: {a.data} has {len(data.images)} people, need {need}", file=sys.stderr)
        return 1
    tr = slice(0, a.train)
    qs = slice(a.train, a.train + a.queries)
    gs = slice(a.train + a.queries, need)
    if a.label == "pose":
        labels = PoseLabels(data.keypoints)
    else:
        labels_cache = os.path.join(a.data, f"caption_minilm_{a.caption_label}_first{need}.npy")
        if os.path.exists(labels_cache):  # encoding takes a while: keep it
            vectors = np.load(labels_cache)
        else:
            vectors = caption_label_vectors(data.records, captions, a.caption_label, a.text_model)
            _save_npy(labels_cache, vectors)
        labels = CaptionLabels(vectors)
    label_qg = labels.distances(np.arange(need)[qs], np.arange(need)[gs])
    train_labels = (PoseLabels(data.keypoints[tr], scale=a.pose_scale) if a.label == "pose"
                    else CaptionLabels(labels.vectors[tr]))
    # the neighbour search is the slow part of setting up; cache it beside the data
    space = (("pose" if a.pose_scale == "torso" else f"pose_{a.pose_scale}") if a.label == "pose"
             else f"caption_{a.caption_label}")
    k_needed = 30 if a.protocol and PROTOCOLS[a.protocol].sampler == "paper_binary" else 5
    cache = os.path.join(a.data, f"{space}_neighbours_k5_first{a.train}.npy")
    cache30 = os.path.join(a.data, f"{space}_neighbours_k30_first{a.train}.npy")
    t0 = time.time()
    if os.path.exists(cache30):  # the search is stable, so its first 5 columns are the k = 5 answer
        neighbours = np.load(cache30)
    elif k_needed == 5 and os.path.exists(cache):
        neighbours = np.load(cache)
    else:
        neighbours = train_labels.neighbours(k_needed)
        _save_npy(cache30 if k_needed == 30 else cache, neighbours)
    if k_needed == 30:
        cache = cache30
    t_nn = time.time() - t0
    crops = None
    if a.crop:
        from ..data.people.augment import PersonCrops

        crops = PersonCrops.of_people(data, a.crop, seed=a.seed)
        data.images, _ = crops.fixed(range(need))  # evaluation and export see the plain crops
        train_crops = PersonCrops(crops.images[tr], data.keypoints[tr], crops.boxes[tr], a.crop, seed=a.seed)
    model, info = train(data.images[tr] if crops is None else train_crops.images, train_labels, a.dim, a.steps, a.seed, a.batch, lr=a.lr,
                        loss=a.loss, width=a.width, neighbours=neighbours, groups=a.groups,
                        protocol=a.protocol, optimizer=a.optimizer, arch=a.arch,
                        crops=train_crops if crops is not None else None, device=a.device,
                        protocol_optimizer=a.protocol_optimizer,
                        log=lambda m: print(m, flush=True))
    info["neighbour_seconds"] = round(t_nn, 1)
    info["neighbours_cached"] = bool(t_nn < 5 and os.path.exists(cache))
    torch.manual_seed(a.seed)
    if a.protocol:  # the card and the rows name what was trained
        spec = PROTOCOLS[a.protocol]
        a.loss, a.batch, a.lr, a.optimizer = f"protocol:{a.protocol}", spec.batch, spec.lr, spec.optimizer
        if a.protocol_optimizer not in (None, spec.optimizer):
            a.optimizer, a.lr = a.protocol_optimizer, PROTOCOL_OPTIMIZER_LR[a.protocol_optimizer]
    untrained = make_embedder(a.arch, a.dim, data.images.shape[1], a.width)
    dev = a.device  # evaluation where training ran (float32 there too)
    embeddings = {a.loss: (embed(model, data.images[qs], device=dev), embed(model, data.images[gs], device=dev)),
                  "random-init CNN": (embed(untrained, data.images[qs], device=dev),
                                      embed(untrained, data.images[gs], device=dev)),
                  "raw pixels (16x16)": (raw_pixels(data.images[qs]), raw_pixels(data.images[gs]))}
    rows = {name: graded_metrics_from_distances(q, g, label_qg) for name, (q, g) in embeddings.items()}
    curve = {name: curves(q, g, label_qg) for name, (q, g) in embeddings.items()}
    rows["label-space oracle"] = _oracle(label_qg)
    ideal = np.sort(label_qg, axis=1)[:, :100]
    ks = np.arange(1, ideal.shape[1] + 1)
    curve["label-space oracle"] = {"k": ks.tolist(), "ndcg": [1.0] * len(ks),
                                   "label_distance": (ideal.cumsum(1) / ks).mean(0).tolist()}
    result = {"config": vars(a), "train": info, "metrics": rows, "curves": curve,
              "f16_min_cosine": f16_parity(model, data.images[qs], device=dev)}
    if a.export:
        dtype = "f16" if result["f16_min_cosine"] >= 0.999 else "f32"
        generated_side = (crops.images if crops is not None else data.images).shape[1]
        arch = export(model, a.export, dtype, size=data.images.shape[1], metadata={
            "people.task": a.label, "people.loss": a.loss, "people.dim": a.dim, "people.seed": a.seed,
            "people.data": f"dmlkit.data.people seed {a.data_seed}, first {a.train} of {a.count} people, "
                           f"{generated_side}x{generated_side}",
            "people.steps": a.steps, "people.crop": a.crop or "whole image"})
        result["export"] = {"path": a.export, "dtype": dtype, "output_dim": arch["output_dim"]}
        from safetensors import safe_open

        with safe_open(a.export, "np") as f:
            fingerprint = f.metadata()["dml.fingerprint"]
        command = "cd training && python -m dmlkit.experiments.people " + " ".join(argv if argv is not None
                                                                                    else sys.argv[1:])
        _write_text(os.path.splitext(a.export)[0] + ".md", model_card(result, fingerprint, command))
    print(json.dumps(result, indent=1))
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        _write_text(os.path.join(a.out, "metrics.json"), json.dumps(result, indent=1))
        torch.save(model.state_dict(), os.path.join(a.out, "model.pt"))
    return 0


def _oracle(label_d: np.ndarray, top=(1, 5, 10), ks=(10, 50, 100)) -> dict:
    """The label-space oracle: ranks by the label distance itself (nDCG = 1 by construction)."""
    lab = np.sort(label_d, axis=1)
    out = {f"ndcg@{k}": 1.0 for k in ks}
    out.update({f"label_distance@{k}": float(lab[:, :k].mean()) for k in top})
    return out


if __name__ == "__main__":
    sys.exit(main())
