"""The ResNet-18-style people embedder exports with supported ops and keeps parity, in the exporter's
reference graph runner and through ``dml embed`` (where ``DML_BIN`` names the built tool)."""

import os
import subprocess

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dmlkit.export import export_model
from dmlkit.export.zoo import calibrate_batchnorm
from dmlkit.models import ResNetEmbedder
from graph_reference import ops_json_problems, run_graph

DML = os.environ.get("DML_BIN")


@pytest.fixture(scope="module")
def model_and_input():
    torch.manual_seed(0)
    model = calibrate_batchnorm(ResNetEmbedder(dim=16, size=32, width=8), (3, 32, 32))
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(x).numpy()
    return model, x, want


def test_shape_and_unit_output(model_and_input):
    model, x, want = model_and_input
    assert want.shape == (3, 16) and np.allclose(np.linalg.norm(want, axis=1), 1.0)
    assert (want[0] * want[1]).sum() < 0.9999  # different inputs, different embeddings: parity means something
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == 1 + 16 + 3  # stem, 8 blocks, 3 shortcuts
    unnormalised = ResNetEmbedder(dim=4, size=32, width=2, normalize=False).eval()
    assert not torch.allclose(unnormalised(x).norm(dim=1), torch.ones(3))
    with pytest.raises(ValueError, match="multiple of 16"):
        ResNetEmbedder(size=40)


def test_exports_with_supported_ops_and_reproduces_pytorch(tmp_path, model_and_input):
    model, x, want = model_and_input
    arch = export_model(model, x, tmp_path / "m.safetensors")
    assert ops_json_problems(arch) == []
    assert arch["output_dim"] == 16
    got = run_graph(tmp_path / "m.safetensors", x)
    assert np.abs(got - want).max() <= 1e-4  # NaN fails


@pytest.mark.skipif(not DML or not os.path.exists(DML), reason="DML_BIN does not name a built dml tool")
def test_through_dml_embed(tmp_path, model_and_input):
    model, x, want = model_and_input
    export_model(model, x, tmp_path / "m.safetensors")
    np.save(tmp_path / "x.npy", x.numpy())
    result = subprocess.run([DML, "embed", "--model", str(tmp_path / "m.safetensors"), "--input",
                             str(tmp_path / "x.npy"), "--output", str(tmp_path / "e.npy"), "--threads", "1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    got = np.load(tmp_path / "e.npy")
    assert got.shape == want.shape and np.abs(got - F.normalize(torch.from_numpy(want), dim=1).numpy()).max() <= 1e-4


def test_people_experiment_trains_the_resnet():
    from dmlkit.data.people import sample_person
    from dmlkit.experiments import people
    from dmlkit.experiments.people_labels import PoseLabels

    samples = [sample_person(np.random.default_rng([5, i]), 32) for i in range(12)]
    images, kps = np.stack([s.image for s in samples]), np.stack([s.keypoints for s in samples])
    model, info = people.train(images, PoseLabels(kps), dim=8, steps=2, seed=0, batch=8, k=3, width=4,
                               arch="resnet", log=lambda m: None)
    assert isinstance(model, ResNetEmbedder) and np.isfinite(info["final_loss"])
    with pytest.raises(ValueError, match="arch"):
        people.make_embedder("vgg", 8, 32, 4)
